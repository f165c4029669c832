"""Training loop for FullSubNet / Fast FullSubNet, following the published recipe (research note §4).

- Loss: MSE between the predicted and the target **compressed** cRM (K = 10, C = 0.1), over all T-F bins and
  both real and imaginary parts. Target: ``build_crm(stft(noisy), stft(clean))``.
- Adam, lr 1e-3, β = (0.9, 0.999), no schedule (as published); gradient-norm clipping at 10. Optional beyond
  the recipe: a linear warm-up over ``warmup_steps`` and ``lr_schedule="cosine"``, a cosine decay from ``lr`` to
  ``lr_min`` over the budget (steps, or wall time for a ``max_minutes`` budget), for continuing a run from a
  checkpoint without the divergence a fresh Adam at 1e-3 can show.
- Batch 72 (Fast FullSubNet) / 32 (FullSubNet) of 3.072 s segments in the ``gpu`` preset.
- FullSubNet trains with drop-band (2 groups): sample b runs its sub-band model only on the bins f ≡ b (mod 2),
  and the target is reduced the same way (:meth:`FullSubNet.forward_drop_band`). Inference uses every bin.
- AMP on CUDA: bf16 autocast when a probe step works, else fp16 with a GradScaler. The STFT, the target and the
  loss stay float32.
- Validation every ``val_every`` steps on a small fixed set of longer clips: STOI, WB-PESQ (if ``pesq`` is
  installed) and SI-SDR; the model is selected by FullSubNet's score ``(STOI + (WB_PESQ + 0.5) / 5) / 2``
  (:func:`~linseq.experiments.speech_enhancement.metrics.selection_score` gives the fallbacks).
- Optional beyond the recipe: ``ema_decay`` keeps an exponential moving average of the weights
  (:mod:`~linseq.experiments.speech_enhancement.weight_ema`); validation and ``best/`` then use the average.
- Checkpoints: ``OUT/best/`` (best validation score, float16 by default) and ``OUT/last/`` (float32 weights,
  optimizer, trainer state and any weight average, for ``resume``), each written atomically;
  ``OUT/metrics.json`` (history, validations, run metadata) and ``OUT/loss.png``.
- Budgets: ``steps`` and/or ``max_minutes`` (wall clock of the training loop, validations included), so several
  models can be trained for equal time or for equal steps.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from linseq.data.speech.mixer import check_mixture_options
from linseq.experiments.speech_enhancement.checkpoint import (
    build_model, load_speech_model, load_training_state, save_speech_checkpoint, weights_sha256,
)
from linseq.experiments.speech_enhancement.metrics import available_metrics, evaluate_pairs, mean_metrics, selection_score
from linseq.experiments.speech_enhancement.stoi_loss import negative_stoi
from linseq.experiments.speech_enhancement.weight_ema import WeightEMA
from linseq.io import run_metadata, save_json
from linseq.models.speech import FullSubNet, SpeechMaskModel, apply_crm, build_crm, enhance_spectrum, istft, stft
from linseq.models.speech.fullsubnet import gather_bins

AMP_MODES = ("auto", "bf16", "fp16", "none")
LR_SCHEDULES = ("constant", "cosine")

# Small models for the `ci` preset: the layer sizes that the constructors expose, shrunk.
TINY_MODEL_KWARGS = {"fast_fullsubnet": {"sb_hidden_size": 32}, "fullsubnet": {"fb_hidden_size": 64, "sb_hidden_size": 32}}

PRESETS: dict[str, dict[str, Any]] = {
    # a few CPU minutes on synthetic or real data: checks the pipeline, not for quality
    "ci": {"batch_size": 4, "segment_seconds": 1.0, "steps": 40, "val_every": 20, "num_workers": 0, "val_items": 4,
           "val_seconds": 2.0, "tiny": True, "log_every": 5},
    # the published recipe on one GPU; set steps or max_minutes
    "gpu": {"batch_size": None, "segment_seconds": 3.072, "steps": None, "max_minutes": 5.0, "val_every": 300,
            "num_workers": 4, "val_items": 32, "val_seconds": 4.0, "tiny": False, "log_every": 20},
}
RECIPE_BATCH = {"fast_fullsubnet": 72, "fullsubnet": 32}


@dataclass
class TrainConfig:
    """Everything a training run needs besides the data. ``None`` fields take the preset's value."""

    model: str = "fast_fullsubnet"  # or "fullsubnet"
    shrink: int = 2  # Fast FullSubNet's time down-sampling m
    sequence: str = "lstm"  # or "lightning"
    look_ahead: int = 2
    tiny: bool = False
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    batch_size: int | None = None
    segment_seconds: float = 3.072
    snr_range: tuple[int, int] | None = None  # mixtures' SNR range in dB (None: the recipe's -5..20)
    extra_noise: tuple[str, ...] = ()  # generated noise families added to the mixtures (noise.EXTRA_FAMILIES)
    clean_proportion: float = 0.0  # share of training mixtures left without noise (input = target)
    speech_eq_db: float = 0.0  # random colouring of the training speech, gains within ±this (mixer.shape_spectrum)
    speed_perturb: float = 0.0  # training utterances played at a random speed in [1 - this, 1 + this]
    lr: float = 1e-3
    lr_schedule: str = "constant"  # or "cosine": lr -> lr_min over the budget
    lr_min: float = 1e-5
    warmup_steps: int = 0
    clip_grad: float = 10.0
    sisdr_weight: float = 0.0  # adds this × (−SI-SDR in dB) of the enhanced wave to the cRM loss (0: cRM only)
    stoi_weight: float = 0.0  # adds this × (−STOI-like intelligibility, stoi_loss.py) of the enhanced wave
    ema_decay: float = 0.0  # > 0: validate and save a moving average of the weights (weight_ema.py); 0: off
    steps: int | None = None
    max_minutes: float | None = None
    val_every: int = 300
    val_every_seconds: float | None = None  # also validate when this much wall time passed since the last one
    val_items: int = 32
    val_seconds: float = 4.0
    val_seed: int = 10_000  # the fixed validation mixtures' seed, apart from `seed`, so chained runs compare
    num_workers: int = 4
    amp: str = "auto"
    drop_band: int = 2  # groups; FullSubNet only, 1 disables
    seed: int = 0
    device: str = "auto"
    out: str = "runs/speech"
    resume: bool = False
    init_from: str | None = None  # start from these weights (a checkpoint of the same model), fresh optimizer
    save_dtype: str = "float16"
    log_every: int = 20

    @classmethod
    def from_preset(cls, preset: str, **overrides: Any) -> "TrainConfig":
        if preset not in PRESETS:
            raise ValueError(f"preset must be one of {sorted(PRESETS)}; got {preset!r}")
        values = {**PRESETS[preset], **{k: v for k, v in overrides.items() if v is not None}}
        fields = cls.__dataclass_fields__
        return cls(**{k: v for k, v in values.items() if k in fields})

    def model_settings(self) -> dict[str, Any]:
        """The config dict :func:`build_model` takes."""
        if self.model not in RECIPE_BATCH:
            raise ValueError(f"model must be one of {sorted(RECIPE_BATCH)}; got {self.model!r}")
        cfg: dict[str, Any] = {"model": self.model, "sequence_model": self.sequence, "look_ahead": self.look_ahead,
                               "norm": "cumulative"}
        if self.model == "fast_fullsubnet":
            cfg["shrink_size"] = self.shrink
        if self.tiny:
            cfg.update(TINY_MODEL_KWARGS[self.model])
        cfg.update(self.model_kwargs)
        return cfg

    def check(self) -> None:
        if self.steps is None and self.max_minutes is None:
            raise ValueError("set steps or max_minutes (a training budget); both are None")
        if self.steps is not None and self.steps < 1:
            raise ValueError(f"steps must be >= 1; got {self.steps}")
        if self.max_minutes is not None and self.max_minutes <= 0:
            raise ValueError(f"max_minutes must be > 0; got {self.max_minutes}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"lr_schedule must be one of {LR_SCHEDULES}; got {self.lr_schedule!r}")
        cosine = self.lr_schedule == "cosine"
        if not self.lr > 0 or (cosine and not 0 <= self.lr_min <= self.lr) or self.warmup_steps < 0:
            raise ValueError(f"need lr > 0, warmup_steps >= 0 and (cosine) 0 <= lr_min <= lr; got lr={self.lr}, "
                             f"lr_min={self.lr_min}, warmup_steps={self.warmup_steps}")
        check_mixture_options(self.clean_proportion, self.speech_eq_db, self.snr_range, self.speed_perturb)
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"ema_decay must be in [0, 1) (0: no weight average); got {self.ema_decay}")
        if self.amp not in AMP_MODES:
            raise ValueError(f"amp must be one of {AMP_MODES}; got {self.amp!r}")
        if self.save_dtype not in ("float16", "float32", "bfloat16"):
            raise ValueError(f"save_dtype must be float16, float32 or bfloat16; got {self.save_dtype!r}")
        if not (math.isfinite(self.sisdr_weight) and self.sisdr_weight >= 0
                and math.isfinite(self.stoi_weight) and self.stoi_weight >= 0):
            raise ValueError(f"sisdr_weight and stoi_weight must be finite and >= 0; got {self.sisdr_weight} and "
                             f"{self.stoi_weight}")
        if self.val_every < 1 or (self.batch_size is not None and self.batch_size < 1):
            raise ValueError(f"val_every and batch_size must be >= 1; got {self.val_every} and {self.batch_size}")


def scheduled_lr(cfg: TrainConfig, step: int, progress: float) -> float:
    """Learning rate of optimizer step ``step + 1`` (0-based ``step`` steps done) at ``progress`` ∈ [0, 1] of the
    budget: linear warm-up over ``cfg.warmup_steps``, then constant or cosine from ``cfg.lr`` to ``cfg.lr_min``."""
    lr = cfg.lr
    if cfg.lr_schedule == "cosine":
        lr = cfg.lr_min + 0.5 * (cfg.lr - cfg.lr_min) * (1.0 + math.cos(math.pi * min(max(progress, 0.0), 1.0)))
    if cfg.warmup_steps and step < cfg.warmup_steps:
        lr *= (step + 1) / cfg.warmup_steps
    return lr


class _EpochView(Dataset):
    """Index ``i`` of an endless stream -> item ``i % len`` of epoch ``i // len`` (calls ``set_epoch`` if any), so
    that a resumed run continues the data stream where it stopped, in every DataLoader worker.

    A dataset whose epoch lives in shared memory (``SpeechMixer``) would see workers at an epoch boundary change
    each other's epoch; give such a dataset more items than a run draws (the CLI uses 10⁹) so it never wraps."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset, self.n, self.epoch = dataset, len(dataset), None

    def __len__(self) -> int:  # only for DataLoader bookkeeping; the sampler is endless
        return self.n

    def __getitem__(self, i: int):
        epoch, j = divmod(int(i), self.n)
        if epoch != self.epoch and hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(epoch)
        self.epoch = epoch
        return self.dataset[j]


class _Endless(Sampler):
    def __init__(self, start: int) -> None:
        self.start = start

    def __iter__(self) -> Iterator[int]:
        i = self.start
        while True:
            yield i
            i += 1


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def make_validation_set(dataset: Dataset, n: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """The first ``n`` items of ``dataset`` as float32 numpy ``(noisy, clean)`` pairs (a fixed validation set)."""
    if len(dataset) < n:
        raise ValueError(f"the validation dataset has {len(dataset)} items; {n} requested")
    out = []
    for i in range(n):
        noisy, clean = dataset[i]
        out.append((np.asarray(noisy, np.float32), np.asarray(clean, np.float32)))
    return out


def negative_si_sdr(estimate: torch.Tensor, reference: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Mean over the batch of −SI-SDR in dB for waves ``[B, L]``: differentiable, and as metrics.si_sdr defines it
    (no mean removal)."""
    alpha = (estimate * reference).sum(-1, keepdim=True) / (reference.pow(2).sum(-1, keepdim=True) + eps)
    target = alpha * reference
    ratio = target.pow(2).sum(-1) / ((estimate - target).pow(2).sum(-1) + eps)
    return -(10 * torch.log10(ratio + eps)).mean()


def crm_loss(model: SpeechMaskModel, noisy: torch.Tensor, clean: torch.Tensor, drop_band: int = 1,
             autocast: torch.dtype | None = None, sisdr_weight: float = 0.0, stoi_weight: float = 0.0) -> torch.Tensor:
    """MSE on the compressed cRM for a batch ``noisy, clean [B, L]`` (float32 16 kHz waves on the model's device),
    plus ``sisdr_weight`` × the mean −SI-SDR (dB) and ``stoi_weight`` × the mean −STOI-like intelligibility
    (``stoi_loss.negative_stoi``, in [−1, 1]) of the enhanced wave, for each weight that is positive (not with
    FullSubNet's drop-band batches, whose output covers only some frequencies)."""
    Y, S = stft(noisy), stft(clean)
    target = build_crm(Y, S)  # [B, 2, F, T]
    with torch.autocast(noisy.device.type, dtype=autocast or torch.float32, enabled=autocast is not None):
        if isinstance(model, FullSubNet) and drop_band > 1 and noisy.shape[0] > drop_band and model.training:
            out, bins = model.forward_drop_band(Y.abs(), drop_band)
            target = gather_bins(target, bins)
        else:
            out = model(Y.abs())
    loss = torch.nn.functional.mse_loss(out.float(), target)
    if (sisdr_weight > 0 or stoi_weight > 0) and out.shape[2] == Y.shape[1]:
        enhanced = istft(apply_crm(out.float(), Y), length=noisy.shape[-1])
        if sisdr_weight > 0:
            loss = loss + sisdr_weight * negative_si_sdr(enhanced, clean)
        if stoi_weight > 0:
            loss = loss + stoi_weight * negative_stoi(enhanced, clean)
    return loss


@torch.no_grad()
def enhance_batch(model: SpeechMaskModel, noisy: torch.Tensor) -> torch.Tensor:
    """Offline enhancement of equal-length waves ``[B, L]`` -> ``[B, L]`` (float32, model's device)."""
    Y = stft(noisy)
    return istft(enhance_spectrum(model, Y), length=noisy.shape[-1])


def validate(model: SpeechMaskModel, val_set: Sequence[tuple[np.ndarray, np.ndarray]], device: torch.device,
             batch: int = 16) -> dict[str, float]:
    """Mean STOI / WB-PESQ / SI-SDR (those installed) of the model on ``val_set``, plus ``score`` (higher is better)."""
    was_training = model.training
    model.eval()
    estimates = []
    for i in range(0, len(val_set), batch):
        part = val_set[i:i + batch]
        lengths = {len(n) for n, _ in part}
        if len(lengths) == 1:
            noisy = torch.from_numpy(np.stack([n for n, _ in part])).to(device)
            estimates += list(enhance_batch(model, noisy).cpu().numpy())
        else:
            estimates += [enhance_batch(model, torch.from_numpy(n)[None].to(device))[0].cpu().numpy() for n, _ in part]
    model.train(was_training)
    metrics = available_metrics(("STOI", "WB_PESQ", "SI_SDR"))
    rows = evaluate_pairs(((c, e) for (_, c), e in zip(val_set, estimates)), metrics)
    means = mean_metrics(rows)
    means["score"], _ = selection_score(means)
    return means


def _probe_amp(model: SpeechMaskModel, device: torch.device, dtype: torch.dtype, drop_band: int) -> bool:
    """One forward/backward on a tiny batch under ``dtype`` autocast; False if the backend rejects it."""
    try:
        x = torch.randn(3, 4096, device=device) * 0.1
        crm_loss(model, x, x * 0.5, drop_band, dtype).backward()
        model.zero_grad(set_to_none=True)
        return True
    except RuntimeError:
        model.zero_grad(set_to_none=True)
        return False


def resolve_amp(mode: str, model: SpeechMaskModel, device: torch.device, drop_band: int) -> str:
    """``auto`` -> ``bf16`` if a probe step works on this CUDA device, else ``fp16``; ``none`` on the CPU."""
    if device.type != "cuda" or mode == "none":
        return "none"
    if mode != "auto":
        return mode
    if torch.cuda.is_bf16_supported() and _probe_amp(model, device, torch.bfloat16, drop_band):
        return "bf16"
    return "fp16" if _probe_amp(model, device, torch.float16, drop_band) else "none"


def wave_loss_terms(sisdr_weight: float | None, stoi_weight: float | None) -> list[str]:
    """The wave-level terms a run adds to the cRM loss, in words: ``["0.0005 × (−SI-SDR)", "0.1 × (−STOI)"]``."""
    return [f"{w:g} × (−{name})" for w, name in ((sisdr_weight, "SI-SDR"), (stoi_weight, "STOI")) if w]


def plot_history(history: list[dict[str, Any]], validations: list[dict[str, Any]], path: Path, title: str,
                 loss_label: str = "cRM MSE") -> Path | None:
    """Training loss and validation score against steps -> PNG (None if matplotlib is unavailable). The loss axis
    is logarithmic unless some logged loss is <= 0 (the wave-level terms are negative scores)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, ax = plt.subplots(1, 2, figsize=(9, 3.4))
    losses = [h["loss"] for h in history]
    if history:
        ax[0].plot([h["step"] for h in history], losses)
    positive = all(v > 0 for v in losses)
    ax[0].set(xlabel="step", ylabel="loss", yscale="log" if positive else "linear")
    ax[0].set_title(f"training loss: {loss_label}", fontsize=8 if len(loss_label) > 30 else None)
    if validations:
        ax[1].plot([v["step"] for v in validations], [v["score"] for v in validations], marker="o")
    ax[1].set(xlabel="step", ylabel="score", title="validation score")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def init_weights(model: SpeechMaskModel, path: str | Path) -> None:
    """Copy the weights of the checkpoint at ``path`` into ``model`` (same architecture required), e.g. to train
    a model further in a new run. ValueError (one line) when the checkpoint is another architecture."""
    source, config = load_speech_model(path)
    try:
        model.load_state_dict(source.state_dict(), strict=True)
    except RuntimeError as err:
        first = str(err).strip().splitlines()[0]
        raise ValueError(f"--init-from {path}: its model ({config.get('model')}, "
                         f"{config.get('sequence_model')}) does not match this run's ({first})") from None


def train_speech(
    cfg: TrainConfig, train_set: Dataset, val_set: Sequence[tuple[np.ndarray, np.ndarray]], progress: bool = True,
    on_step: Callable[[int, float], None] | None = None,
) -> dict[str, Any]:
    """Train one model; returns the summary also written to ``OUT/metrics.json``.

    ``train_set[i] -> (noisy [L], clean [L])`` float32 tensors of equal length (``set_epoch`` is called if it
    exists); ``val_set``: fixed ``(noisy, clean)`` numpy pairs. ``on_step(step, loss)`` runs after every
    optimizer step (tests use it to interrupt a run). ``timing`` in the summary: seconds spent before the
    training loop (model, AMP probe, loader), on its first step (worker start, first batch, kernel compilation) and
    after it (last validation, checkpoints, plot), the parts of a run its budget does not count or barely does.
    """
    t_entry = time.perf_counter()
    cfg.check()
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    device = pick_device(cfg.device)
    torch.manual_seed(cfg.seed)
    model = build_model(cfg.model_settings()).to(device).train()
    batch_size = cfg.batch_size or RECIPE_BATCH[cfg.model]
    drop_band = cfg.drop_band if cfg.model == "fullsubnet" else 1
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr, betas=(0.9, 0.999))

    step, elapsed_before, history, validations = 0, 0.0, [], []
    best: dict[str, Any] | None = None
    resumed_loss_ema: float | None = None
    init_sha: str | None = None  # the weights a run started from, so a result can name its parent checkpoint
    averaged = WeightEMA(model, cfg.ema_decay) if cfg.ema_decay > 0 else None
    average_model = averaged.model if averaged is not None else None
    if cfg.resume and (out / "last" / "trainer_state.json").is_file():
        state = load_training_state(out / "last", model, optimizer, average_model)
        step, elapsed_before = int(state["step"]), float(state.get("elapsed_s", 0.0))
        history, validations, best = state.get("history", []), state.get("validations", []), state.get("best")
        resumed_loss_ema, init_sha = state.get("loss_ema"), state.get("init_weights_sha256")
    elif cfg.init_from is not None:
        init_weights(model, cfg.init_from)
        init_sha = weights_sha256(cfg.init_from)
        if average_model is not None:
            average_model.load_state_dict(model.state_dict())
    amp = resolve_amp(cfg.amp, model, device, drop_band)
    amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(amp)
    scaler = torch.amp.GradScaler(device.type, enabled=amp == "fp16")
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True

    loader = DataLoader(
        _EpochView(train_set), batch_size=batch_size, sampler=_Endless(step * batch_size), drop_last=True,
        num_workers=cfg.num_workers, pin_memory=device.type == "cuda", persistent_workers=cfg.num_workers > 0,
        prefetch_factor=4 if cfg.num_workers > 0 else None,
    )
    settings = {**asdict(cfg), "batch_size": batch_size, "amp_resolved": amp, "drop_band_used": drop_band,
                "model_config": cfg.model_settings(), "device_resolved": str(device), "init_weights_sha256": init_sha}
    budget_s = cfg.max_minutes * 60 if cfg.max_minutes is not None else math.inf
    t_start = time.perf_counter()
    timing = {"before_loop_s": round(t_start - t_entry, 2)}

    def elapsed() -> float:
        return elapsed_before + time.perf_counter() - t_start

    def budget_used() -> float:
        """Fraction of the budget used: steps or wall time, whichever is further."""
        by_steps = step / cfg.steps if cfg.steps is not None else 0.0
        return max(by_steps, elapsed() / budget_s if math.isfinite(budget_s) else 0.0)

    def summary() -> dict[str, Any]:
        return {"config": settings, "meta": run_metadata(cfg.seed, str(device)), "steps": step,
                "elapsed_s": elapsed(), "history": history, "validations": validations, "best": best,
                "parameters": sum(p.numel() for p in model.parameters()),
                "steps_per_second": step / max(elapsed(), 1e-9)}

    def checkpoint_and_validate() -> None:
        nonlocal best
        scored = model if average_model is None else average_model  # what validation measures, best/ keeps
        v = validate(scored, val_set, device)
        v.update(step=step, elapsed_s=round(elapsed(), 2))
        validations.append(v)
        info = {"step": step, "metrics": v, "elapsed_s": v["elapsed_s"], "train_config": settings}
        improved = best is None or v["score"] > best["score"]
        if improved:
            best = dict(v)
            save_speech_checkpoint(out / "best", scored, info, dtype=getattr(torch, cfg.save_dtype))
            best["weights_sha256"] = weights_sha256(out / "best")  # names best/ for a mean of runs' checkpoints
        # one line per validation, also without the bar: a run stopped from outside still leaves its trace
        scores = ", ".join(f"{k} {v[k]:.3f}" for k in ("WB_PESQ", "STOI", "SI_SDR") if k in v)
        bar.write(f"validation at step {step} ({v['elapsed_s']:.0f} s): score {v['score']:.4f}; {scores}"
                  + (" (best so far)" if improved else ""))
        trainer_state = {"step": step, "elapsed_s": elapsed(), "history": history, "validations": validations,
                         "best": best, "loss_ema": loss_ema, "init_weights_sha256": init_sha}
        save_speech_checkpoint(out / "last", model, info, optimizer=optimizer, trainer_state=trainer_state,
                               ema=average_model)
        save_json(out / "metrics.json", summary())

    from tqdm.auto import tqdm

    bar = tqdm(total=cfg.steps, initial=step, disable=not progress, desc=f"{cfg.model} m={cfg.shrink} {cfg.sequence}"
               if cfg.model == "fast_fullsubnet" else f"fullsubnet {cfg.sequence}", unit="step", dynamic_ncols=True)
    loss_ema, t_log, s_log = resumed_loss_ema, time.perf_counter(), step
    t_val = t_log
    done = (cfg.steps is not None and step >= cfg.steps) or elapsed() >= budget_s
    data = iter(loader)
    try:
        while not done:
            noisy, clean = next(data)
            lr = scheduled_lr(cfg, step, budget_used())
            for group in optimizer.param_groups:
                group["lr"] = lr
            noisy = noisy.to(device, non_blocking=True).float()
            clean = clean.to(device, non_blocking=True).float()
            loss = crm_loss(model, noisy, clean, drop_band, amp_dtype, cfg.sisdr_weight, cfg.stoi_weight)
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip_grad)
            scaler.step(optimizer)
            scaler.update()
            optimizer.zero_grad(set_to_none=True)
            if averaged is not None:
                averaged.update(model, step)
            step += 1
            if "first_step_s" not in timing:
                timing["first_step_s"] = round(time.perf_counter() - t_start, 2)
            value = float(loss.detach())
            if not math.isfinite(value) and amp != "fp16":
                raise FloatingPointError(f"training loss became {value} at step {step}")
            loss_ema = value if loss_ema is None or not math.isfinite(loss_ema) else 0.9 * loss_ema + 0.1 * value
            if on_step is not None:
                on_step(step, value)
            if step % cfg.log_every == 0:
                now = time.perf_counter()
                history.append({"step": step, "loss": loss_ema, "elapsed_s": round(elapsed(), 2), "lr": lr})
                rate = (step - s_log) / max(now - t_log, 1e-9)
                t_log, s_log = now, step
                post = {"loss": f"{loss_ema:.4f}", "it/s": f"{rate:.2f}"}
                if math.isfinite(budget_s):
                    post["left"] = f"{max(0.0, budget_s - elapsed()) / 60:.1f}min"
                if best is not None:
                    post["best"] = f"{best['score']:.3f}"
                bar.set_postfix(post, refresh=False)
            bar.update()
            done = (cfg.steps is not None and step >= cfg.steps) or elapsed() >= budget_s
            due = step % cfg.val_every == 0 or (
                cfg.val_every_seconds is not None and time.perf_counter() - t_val >= cfg.val_every_seconds)
            if not done and due:
                checkpoint_and_validate()
                t_val = time.perf_counter()
        t_after = time.perf_counter()
        if not validations or validations[-1]["step"] != step:
            checkpoint_and_validate()
    finally:
        bar.close()
    result = summary()
    title = f"{cfg.model} ({cfg.sequence}{', m=' + str(cfg.shrink) if cfg.model == 'fast_fullsubnet' else ''})"
    terms = wave_loss_terms(cfg.sisdr_weight, cfg.stoi_weight)
    plot_history(history, validations, out / "loss.png", title, " + ".join(["cRM MSE", *terms]))
    result["timing"] = {**timing, "after_loop_s": round(time.perf_counter() - t_after, 2)}
    save_json(out / "metrics.json", result)
    return result
