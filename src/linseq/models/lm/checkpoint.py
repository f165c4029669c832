"""Checkpoints of the causal LM: a Hugging Face folder (config.json + model.safetensors) plus the trainer's state,
replaced as a whole by a folder rename so that an interrupted write never leaves a mixed checkpoint."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from linseq.io import optimizer_from_tensors, optimizer_to_tensors, save_json
from linseq.models.lm.configuration import LinseqLMConfig
from linseq.models.lm.modeling import LinseqForCausalLM

MODEL_FILE = "model.safetensors"
OPTIMIZER_FILE = "optimizer.safetensors"
TRAINER_FILE = "trainer_state.json"
_OLD = ".checkpoint-old"


def find_checkpoint(path: str | os.PathLike) -> Path:
    """The checkpoint folder for ``path``: the folder itself, or its ``checkpoint/`` subfolder (a run folder).

    Raises FileNotFoundError (one line) when neither holds ``config.json`` and ``model.safetensors``."""
    path = Path(path).expanduser()
    for candidate in (path, path / "checkpoint", path / _OLD):
        if (candidate / "config.json").is_file() and (candidate / MODEL_FILE).is_file():
            return candidate
    raise FileNotFoundError(f"no checkpoint at {path} (expected config.json and {MODEL_FILE} there or in checkpoint/)")


def load_model(path: str | os.PathLike, device: str | torch.device = "cpu") -> LinseqForCausalLM:
    """Load a :class:`LinseqForCausalLM` from a checkpoint or run folder, in eval mode.

    Raises FileNotFoundError for a missing checkpoint and ValueError (one line) for an unreadable one."""
    ckpt = find_checkpoint(path)
    try:
        config = LinseqLMConfig.from_dict(json.loads((ckpt / "config.json").read_text()))
    except (ValueError, TypeError, KeyError) as err:
        raise ValueError(f"corrupt checkpoint {ckpt}: config.json is unreadable ({err})") from None
    try:
        state = load_file(str(ckpt / MODEL_FILE))
    except Exception as err:  # safetensors raises its own error type for truncated or garbled files
        raise ValueError(f"corrupt checkpoint {ckpt}: {MODEL_FILE} is unreadable ({err})") from None
    model = LinseqForCausalLM(config)
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ValueError(
            f"corrupt checkpoint {ckpt}: weights do not match config.json "
            f"(missing {sorted(missing)[:3]}, unexpected {sorted(unexpected)[:3]})"
        )
    return model.to(device).eval()


def save_checkpoint(
    run_dir: str | os.PathLike,
    model: LinseqForCausalLM,
    optimizer: torch.optim.Optimizer | None,
    trainer_state: dict[str, Any],
) -> Path:
    """Write ``run_dir/checkpoint/`` (model, optimizer, trainer state) atomically; returns that folder."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    final, old = run_dir / "checkpoint", run_dir / _OLD
    tmp = run_dir / f".checkpoint-tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    model.config.save_pretrained(tmp)  # config.json, readable by AutoConfig
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(tmp / MODEL_FILE), metadata={"format": "pt"})
    if optimizer is not None:
        tensors, groups = optimizer_to_tensors(optimizer)
        save_file(tensors, str(tmp / OPTIMIZER_FILE))
        trainer_state = {**trainer_state, "optimizer_param_groups": groups}
    save_json(tmp / TRAINER_FILE, trainer_state)
    _fsync_dir(tmp)
    if final.exists():
        shutil.rmtree(old, ignore_errors=True)
        os.replace(final, old)
    os.replace(tmp, final)
    shutil.rmtree(old, ignore_errors=True)
    return final


def load_trainer_state(
    ckpt: Path, model: LinseqForCausalLM, optimizer: torch.optim.Optimizer | None
) -> dict[str, Any]:
    """Restore weights and optimizer state from checkpoint folder ``ckpt``; return the trainer state dict."""
    try:
        state = json.loads((ckpt / TRAINER_FILE).read_text())
        model.load_state_dict(load_file(str(ckpt / MODEL_FILE)))
        if optimizer is not None:
            tensors = load_file(str(ckpt / OPTIMIZER_FILE))
            optimizer.load_state_dict(optimizer_from_tensors(tensors, state["optimizer_param_groups"]))
    except FileNotFoundError as err:
        raise FileNotFoundError(f"cannot resume from {ckpt}: {Path(err.filename).name} is missing") from None
    except (ValueError, RuntimeError, KeyError) as err:
        raise ValueError(f"cannot resume from corrupt checkpoint {ckpt}: {str(err).splitlines()[0]}") from None
    return state


def _fsync_dir(path: Path) -> None:
    for f in path.iterdir():
        with open(f, "rb") as fh:
            os.fsync(fh.fileno())
