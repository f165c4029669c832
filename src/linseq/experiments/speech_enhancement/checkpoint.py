"""Speech-model checkpoints: a folder with ``config.json`` (what model to build, training step, metrics) and
``model.safetensors`` (weights, float32 or float16 to keep a shipped file small), written atomically.

Training runs also keep ``OUT/last/`` with the optimizer state (``optimizer.safetensors``) and the trainer state
(``trainer_state.json``) for ``--resume``. Folders are replaced as a whole (write into a temporary sibling, then
rename), so an interrupted write leaves the previous complete checkpoint.

The shipped default, a trained Fast FullSubNet, lives in ``linseq/models/speech/weights/fast_fullsubnet/``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import torch
from safetensors.torch import load_file, save_file

from linseq.io import optimizer_from_tensors, optimizer_to_tensors, save_json
from linseq.models.speech import FastFullSubNet, FullSubNet, SpeechMaskModel

MODEL_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
OPTIMIZER_FILE = "optimizer.safetensors"
EMA_FILE = "ema.safetensors"
TRAINER_FILE = "trainer_state.json"
FORMAT = "linseq-speech-enhancement"
MODEL_KINDS = ("fast_fullsubnet", "fullsubnet")
SHIPPED = Path(__file__).resolve().parents[2] / "models" / "speech" / "weights" / "fast_fullsubnet"


def model_config(model: SpeechMaskModel) -> dict[str, Any]:
    """The constructor arguments that rebuild ``model`` (model kind, shrink size m, sequence model, ...)."""
    if isinstance(model, FastFullSubNet):
        return {"model": "fast_fullsubnet", "shrink_size": model.shrink_size, "sequence_model": model.sequence_model,
                "look_ahead": model.look_ahead, "norm": model.norm, "num_mels": model.num_mels,
                "num_neighbors": model.num_neighbors, "sb_hidden_size": model.sub_band.hidden_size}
    if isinstance(model, FullSubNet):
        return {"model": "fullsubnet", "sequence_model": model.sequence_model, "look_ahead": model.look_ahead,
                "norm": model.norm, "sb_num_neighbors": model.sb_num_neighbors,
                "fb_hidden_size": model.fb_model.hidden_size, "sb_hidden_size": model.sb_model.hidden_size}
    raise TypeError(f"model must be a FullSubNet or FastFullSubNet; got {type(model).__name__}")


def build_model(config: dict[str, Any]) -> SpeechMaskModel:
    """Build an untrained model from a config dict (``model`` plus constructor arguments)."""
    cfg = dict(config)
    kind = cfg.pop("model", None)
    if kind not in MODEL_KINDS:
        raise ValueError(f"model must be one of {MODEL_KINDS}; got {kind!r}")
    cls = FastFullSubNet if kind == "fast_fullsubnet" else FullSubNet
    import inspect

    allowed = set(inspect.signature(cls.__init__).parameters) - {"self"}
    return cls(**{k: v for k, v in cfg.items() if k in allowed})


@contextmanager
def staged_dir(final: Path) -> Iterator[Path]:
    """``with staged_dir(final) as tmp:`` fill the empty sibling folder ``tmp``; on leaving the block it becomes
    ``final`` whole (:func:`replace_dir`), so an interrupted write leaves the previous ``final`` intact."""
    tmp = final.with_name(f".{final.name}-tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    yield tmp
    replace_dir(tmp, final)


def replace_dir(tmp: Path, final: Path) -> None:
    """Make the finished folder ``tmp`` the folder ``final`` (fsynced files, the old one removed only after)."""
    for f in tmp.iterdir():
        with open(f, "rb") as fh:
            os.fsync(fh.fileno())
    old = final.with_name(f".{final.name}-old")
    if final.exists():
        shutil.rmtree(old, ignore_errors=True)
        os.replace(final, old)
    os.replace(tmp, final)
    shutil.rmtree(old, ignore_errors=True)


def save_speech_checkpoint(
    path: str | os.PathLike, model: SpeechMaskModel, info: dict[str, Any] | None = None,
    dtype: torch.dtype = torch.float32, optimizer: torch.optim.Optimizer | None = None,
    trainer_state: dict[str, Any] | None = None, ema: SpeechMaskModel | None = None,
) -> Path:
    """Write the checkpoint folder ``path`` atomically; returns it.

    ``info`` (step, metrics, ...) is stored in config.json beside the model config. ``dtype=torch.float16`` halves
    the file (weights are cast back to float32 on load). ``optimizer``/``trainer_state`` add the resume files, and
    ``ema`` the weight average of a run that keeps one (float32, ``ema.safetensors``).
    """
    if dtype not in (torch.float32, torch.float16, torch.bfloat16):
        raise ValueError(f"dtype must be float32, float16 or bfloat16; got {dtype}")
    path = Path(path)
    state = _cpu_state(model, dtype)
    config = {"format": FORMAT, **model_config(model), "dtype": str(dtype).replace("torch.", ""),
              "parameters": sum(p.numel() for p in model.parameters()), **(info or {})}
    with staged_dir(path) as tmp:
        save_file(state, str(tmp / MODEL_FILE), metadata={"format": "pt"})
        save_json(tmp / CONFIG_FILE, config)
        if optimizer is not None:
            tensors, groups = optimizer_to_tensors(optimizer)
            save_file(tensors, str(tmp / OPTIMIZER_FILE))
            save_json(tmp / TRAINER_FILE, {**(trainer_state or {}), "optimizer_param_groups": groups})
        if ema is not None:
            save_file(_cpu_state(ema, torch.float32), str(tmp / EMA_FILE))
    return path


def _cpu_state(model: SpeechMaskModel, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """``model``'s state dict on the CPU, floating-point tensors in ``dtype``, ready for safetensors."""
    return {k: v.detach().to("cpu", dtype if v.is_floating_point() else v.dtype).contiguous()
            for k, v in model.state_dict().items()}


def find_checkpoint(path: str | os.PathLike) -> Path:
    """The checkpoint folder for ``path``: the folder itself, or ``best/`` / ``last/`` of a training run folder.

    Raises FileNotFoundError (one line) when none holds config.json and model.safetensors."""
    path = Path(path).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint at {path}: the folder does not exist")
    for candidate in (path, path / "best", path / "last"):
        if (candidate / CONFIG_FILE).is_file() and (candidate / MODEL_FILE).is_file():
            return candidate
    raise FileNotFoundError(f"no checkpoint at {path} (expected {CONFIG_FILE} and {MODEL_FILE} there or in best/)")


def weights_sha256(path: str | os.PathLike) -> str:
    """SHA-256 (hex) of the weights file of the checkpoint at ``path`` (see :func:`find_checkpoint`): ties an
    evaluation to the exact weights it measured."""
    digest = hashlib.sha256()
    with open(find_checkpoint(path) / MODEL_FILE, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_config(path: str | os.PathLike) -> dict[str, Any]:
    """config.json of a checkpoint folder; ValueError (one line) when it is unreadable."""
    ckpt = find_checkpoint(path)
    try:
        config = json.loads((ckpt / CONFIG_FILE).read_text())
        if not isinstance(config, dict) or config.get("model") not in MODEL_KINDS:
            raise ValueError(f"'model' must be one of {MODEL_KINDS}")
    except (ValueError, UnicodeDecodeError) as err:
        raise ValueError(f"corrupt checkpoint {ckpt}: {CONFIG_FILE} is unreadable ({err})") from None
    return config


def load_speech_model(
    path: str | os.PathLike | None = None, device: str | torch.device = "cpu"
) -> tuple[SpeechMaskModel, dict[str, Any]]:
    """Load ``(model in eval mode, float32, on device; config dict)`` from a checkpoint or run folder.

    ``path=None`` loads the shipped Fast FullSubNet. FileNotFoundError for a missing checkpoint, ValueError for a
    corrupt one (both one line)."""
    if path is None:
        if not (SHIPPED / MODEL_FILE).is_file():
            raise FileNotFoundError(
                f"the shipped Fast FullSubNet checkpoint is missing ({SHIPPED / MODEL_FILE}); "
                "pass --checkpoint DIR with a checkpoint from `linseq speech train`"
            )
        path = SHIPPED
    ckpt = find_checkpoint(path)
    config = read_config(ckpt)
    try:
        state = load_file(str(ckpt / MODEL_FILE))
    except Exception as err:  # safetensors raises its own error type for truncated or garbled files
        raise ValueError(f"corrupt checkpoint {ckpt}: {MODEL_FILE} is unreadable ({err})") from None
    try:
        model = build_model(config)
    except (TypeError, ValueError) as err:
        raise ValueError(f"corrupt checkpoint {ckpt}: cannot build the model from {CONFIG_FILE} ({err})") from None
    state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ValueError(f"corrupt checkpoint {ckpt}: weights do not match {CONFIG_FILE} "
                         f"(missing {sorted(missing)[:3]}, unexpected {sorted(unexpected)[:3]})")
    return model.to(device).eval(), config


def load_training_state(
    path: str | os.PathLike, model: SpeechMaskModel, optimizer: torch.optim.Optimizer,
    ema: SpeechMaskModel | None = None,
) -> dict[str, Any]:
    """Restore weights and optimizer from a ``last/`` folder written with an optimizer; returns the trainer state.
    With ``ema``, the weight average is restored too: from ``ema.safetensors``, or, where the run kept none, from
    the restored weights."""
    path = Path(path)
    try:
        state = json.loads((path / TRAINER_FILE).read_text())
        model.load_state_dict(load_file(str(path / MODEL_FILE)))
        tensors = load_file(str(path / OPTIMIZER_FILE))
        optimizer.load_state_dict(optimizer_from_tensors(tensors, state.pop("optimizer_param_groups")))
        if ema is not None:
            kept = path / EMA_FILE
            ema.load_state_dict(load_file(str(kept)) if kept.is_file() else model.state_dict())
    except FileNotFoundError as err:
        raise FileNotFoundError(f"cannot resume from {path}: {Path(err.filename or '?').name} is missing") from None
    except (ValueError, RuntimeError, KeyError) as err:
        raise ValueError(f"cannot resume from corrupt checkpoint {path}: {str(err).splitlines()[0]}") from None
    return state


def average_speech_checkpoints(
    paths: list[str | os.PathLike], out: str | os.PathLike, dtype: torch.dtype = torch.float16,
) -> Path:
    """Write the checkpoint whose floating-point weights are the uniform mean of those at ``paths`` (a "model
    soup"; meaningful for runs that started from one checkpoint); returns the folder.

    Every checkpoint must hold the same model (config without training details) and the same non-float tensors;
    ValueError (one line) otherwise. The means are taken in float32 and stored in ``dtype``; ``config.json`` lists
    the sources with their steps and weight hashes under ``averaged_from``."""
    if len(paths) < 2:
        raise ValueError(f"averaging needs at least two checkpoints; got {len(paths)}")
    loaded = [(p, *load_speech_model(p)) for p in paths]
    reference = model_config(loaded[0][1])
    for p, model, _ in loaded[1:]:
        built = model_config(model)
        if built != reference:
            diff = sorted(k for k in set(built) | set(reference) if built.get(k) != reference.get(k))
            raise ValueError(f"cannot average {p} with {paths[0]}: different models ({', '.join(diff)})")
    sources = [{"path": str(find_checkpoint(p)), "step": config.get("step"), "weights_sha256": weights_sha256(p)}
               for p, _, config in loaded]
    mean = loaded[0][1]
    states = [model.state_dict() for _, model, _ in loaded]
    with torch.no_grad():
        for name, tensor in states[0].items():
            if tensor.is_floating_point():
                tensor.copy_(torch.stack([s[name].float() for s in states]).mean(0))
            elif any(not torch.equal(s[name], tensor) for s in states[1:]):
                raise ValueError(f"cannot average: the non-float tensor {name} differs between the checkpoints")
    return save_speech_checkpoint(out, mean, {"averaged_from": sources}, dtype=dtype)
