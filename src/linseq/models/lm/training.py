"""The training loop of ``linseq train``: one readable function with named helpers (nanoGPT-style).

Deterministic by construction: the batch of step ``s`` on rank ``r`` depends only on (seed, s, r), the learning rate
only on s, and the optimizer state is checkpointed, so a resumed run continues exactly where the last checkpoint was.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from linseq.data.text import TextCorpus, evenly_spaced_windows, load_text_corpus, sample_windows
from linseq.io import run_metadata, save_json
from linseq.layers import fit_model_hashes, set_attention_mode
from linseq.models.lm.checkpoint import find_checkpoint, load_trainer_state, save_checkpoint
from linseq.models.lm.modeling import LinseqForCausalLM, count_parameters
from linseq.models.lm.presets import Preset, preset_config


@dataclass
class TrainOptions:
    """What ``linseq train`` was asked to do. Fields left None take the preset's value."""

    preset: str = "tiny"
    data: str | None = None
    out: str = "runs/lm"
    attn_pattern: str | None = None
    steps: int | None = None
    batch_size: int | None = None
    seq_len: int | None = None
    lr: float | None = None
    eval_every: int | None = None
    eval_batches: int | None = None
    checkpoint_every: int | None = None
    max_bytes: int | None = None
    seed: int = 0
    resume: bool = False
    device: str = "auto"
    progress: bool = True
    eco_softmax_steps: int | None = None  # EcoFormer layers: steps in softmax mode before the hash fit (None: half)
    model_overrides: dict[str, Any] | None = None  # extra LinseqLMConfig fields (Python API; benchmarks, tests)


def lr_at(step: int, preset: Preset) -> float:
    """Learning rate of optimizer step ``step`` (0-based): linear warmup, then cosine from ``lr`` to ``min_lr``."""
    if step < preset.warmup_steps:
        return preset.lr * (step + 1) / preset.warmup_steps
    progress = (step - preset.warmup_steps) / max(1, preset.steps - preset.warmup_steps)
    return preset.min_lr + 0.5 * (preset.lr - preset.min_lr) * (1.0 + math.cos(math.pi * min(1.0, progress)))


def batch_generator(seed: int, step: int, rank: int, world_size: int) -> torch.Generator:
    """The random source of one step's batch on one rank (independent of how the run was interrupted)."""
    return torch.Generator().manual_seed(seed * 1_000_003 + step * world_size + rank)


def make_optimizer(model: torch.nn.Module, preset: Preset) -> torch.optim.AdamW:
    """AdamW (β = 0.9, 0.95) with weight decay on matrices only (not on norms, biases, decays or embeddings)."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (decay if p.dim() >= 2 and "embed" not in name else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": preset.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=preset.lr, betas=(0.9, 0.95), eps=1e-8)


def next_token_loss(model: torch.nn.Module, windows: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy (nats) of predicting ``windows[:, 1:]`` from ``windows[:, :-1]``; windows ``[B, T+1]``."""
    logits = model(input_ids=windows[:, :-1], use_cache=False).logits
    return F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), windows[:, 1:].reshape(-1))


@torch.no_grad()
def validation_bits_per_byte(
    model: torch.nn.Module, windows: torch.Tensor, batch_size: int, device: torch.device, autocast: bool
) -> float:
    """Mean validation loss in bits per byte over fixed ``windows [N, T+1]`` (byte tokens: bits/token = bits/byte)."""
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    for i in range(0, windows.shape[0], batch_size):
        w = windows[i : i + batch_size].to(device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
            loss = next_token_loss(model, w)
        total += float(loss) * w.shape[0]
        count += w.shape[0]
    model.train(was_training)
    return total / count / math.log(2.0)


def eco_switch_step(options: TrainOptions, config: Any, preset: Preset) -> int | None:
    """Step at which EcoFormer layers leave softmax mode: their hashes are fitted on that step's batch and training
    continues in hash mode (EcoFormer's schedule: full attention, fit, fine-tune). None when there is no eco layer."""
    if "eco" not in config.mixer_types:
        if options.eco_softmax_steps is not None:
            raise ValueError("--eco-softmax-steps applies only to models with EcoFormer layers (--pattern eco)")
        return None
    if options.eco_softmax_steps is None:
        return preset.steps // 2
    if options.eco_softmax_steps < 0 or options.eco_softmax_steps > preset.steps:
        raise ValueError(f"--eco-softmax-steps must be in [0, {preset.steps}]; got {options.eco_softmax_steps}")
    return options.eco_softmax_steps


def set_eco_mode(model: torch.nn.Module, mode: str) -> None:
    """Put every EcoFormer layer in ``mode`` and record it in the config (so a saved checkpoint loads in it)."""
    set_attention_mode(model, mode)
    model.config.eco_mode = mode


def fit_eco_hashes(model: torch.nn.Module, windows: torch.Tensor, autocast: bool, seed: int) -> dict[str, float]:
    """Fit every EcoFormer layer's hash on ``windows [B, T+1]`` and switch to hash mode; returns the mean agreement
    with the layers' own softmax attention before (random hyperplanes) and after fitting. The anchor draw uses its
    own generator seeded by ``seed``, so a resumed run fits exactly as an uninterrupted one."""
    device = windows.device
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
            fits = fit_model_hashes(model, input_ids=windows[:, :-1], use_cache=False)
    set_eco_mode(model, "hash")
    mean = lambda key: sum(sum(f[key]) / len(f[key]) for f in fits) / len(fits)  # noqa: E731
    return {"agreement_random": mean("agreement_random"), "agreement_fitted": mean("agreement_fitted")}


def _distributed() -> tuple[int, int, int]:
    """(rank, local_rank, world_size) from torchrun's environment; initialises the process group when > 1."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 0, 1
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return dist.get_rank(), int(os.environ.get("LOCAL_RANK", "0")), world


def _pick_device(name: str, local_rank: int) -> torch.device:
    if name == "auto":
        return torch.device(f"cuda:{local_rank}") if torch.cuda.is_available() else torch.device("cpu")
    return torch.device(name)


def resolve_preset(options: TrainOptions) -> tuple[Any, Preset]:
    """Model config and schedule: the preset with the options' overrides applied."""
    overrides = dict(options.model_overrides or {})
    if options.attn_pattern:
        overrides["attn_pattern"] = options.attn_pattern
    config, preset = preset_config(options.preset, **overrides)
    changes = {
        k: getattr(options, k)
        for k in ("steps", "batch_size", "seq_len", "lr", "eval_every", "eval_batches", "checkpoint_every")
        if getattr(options, k) is not None
    }
    if "lr" in changes:
        changes["min_lr"] = changes["lr"] / 10
    if "steps" in changes:
        changes["warmup_steps"] = min(preset.warmup_steps, max(1, changes["steps"] // 10))
    for key in ("steps", "batch_size", "seq_len", "eval_every", "eval_batches", "checkpoint_every"):
        if key in changes and changes[key] < 1:
            raise ValueError(f"--{key.replace('_', '-')} must be >= 1; got {changes[key]}")
    preset = replace(preset, **changes)
    if config.has_softmax and preset.seq_len > config.max_position_embeddings:
        config.max_position_embeddings = preset.seq_len
    return config, preset


def train_lm(
    options: TrainOptions,
    corpus: TextCorpus | None = None,
    on_step: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Train (or resume) a causal LM as ``options`` say; write ``out/checkpoint/``, ``out/metrics.json`` and
    ``out/loss.png``. ``on_step(step)`` runs after each optimizer step (tests use it to interrupt a run).

    Returns the summary that ``metrics.json`` holds."""
    rank, local_rank, world = _distributed()
    device = _pick_device(options.device, local_rank)
    is_main = rank == 0
    out = Path(options.out)
    config, preset = resolve_preset(options)
    if corpus is None:
        corpus = load_text_corpus(options.data, max_bytes=options.max_bytes)
    if corpus.train.numel() <= preset.seq_len + 1:
        raise ValueError(f"corpus too small: {corpus.train.numel()} training bytes for windows of {preset.seq_len + 1}")
    val_len = min(preset.seq_len + 1, int(corpus.val.numel()))
    if val_len < 2:
        raise ValueError(f"corpus too small: {corpus.val.numel()} validation bytes")
    val_windows = evenly_spaced_windows(corpus.val, preset.eval_batches * preset.batch_size, val_len)

    switch = eco_switch_step(options, config, preset)
    torch.manual_seed(options.seed)
    model = LinseqForCausalLM(config).to(device)
    optimizer = make_optimizer(model, preset)
    history: list[dict[str, Any]] = []
    eco_fit: dict[str, Any] | None = None
    start, tokens_seen, elapsed_before = 0, 0, 0.0
    if options.resume:
        try:
            ckpt = find_checkpoint(out)
        except FileNotFoundError:
            ckpt = None
            if is_main:
                print(f"linseq train: no checkpoint in {out}; starting from scratch")
        if ckpt is not None:
            state = load_trainer_state(ckpt, model, optimizer)
            if state.get("model_config", {}).get("mixer_types") not in (None, config.mixer_types):
                raise ValueError(f"--resume: checkpoint in {ckpt} was trained with a different layer pattern")
            start, tokens_seen = int(state["step"]), int(state["tokens_seen"])
            history, elapsed_before = state.get("history", []), float(state.get("elapsed_s", 0.0))
            eco_fit = state.get("eco_fit")
            if is_main:
                print(f"linseq train: resuming {ckpt} at step {start}")

    train_model: torch.nn.Module = model
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel

        train_model = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    autocast = device.type == "cuda"
    tokens_per_step = preset.batch_size * preset.seq_len * world
    if switch is not None:
        set_eco_mode(model, "softmax" if start < switch else "hash")

    def train_windows(step: int) -> torch.Tensor:
        return sample_windows(
            corpus.train, preset.batch_size, preset.seq_len + 1, batch_generator(options.seed, step, rank, world)
        ).to(device, non_blocking=True)

    def maybe_fit(step: int) -> None:
        nonlocal eco_fit
        if switch == step and step < preset.steps:
            fit_seed = options.seed * 1_000_003 + step
            eco_fit = {"step": step, **fit_eco_hashes(model, train_windows(step), autocast, fit_seed)}
            if is_main:
                print(f"linseq train: EcoFormer hashes fitted at step {step} (agreement with softmax attention "
                      f"{eco_fit['agreement_random']:.3f} random -> {eco_fit['agreement_fitted']:.3f} fitted); "
                      "hash mode from here")

    def trainer_state(step: int, elapsed: float) -> dict[str, Any]:
        return {
            "step": step, "tokens_seen": tokens_seen, "elapsed_s": elapsed, "history": history,
            "preset": options.preset, "schedule": asdict(preset), "options": asdict(options),
            "model_config": config.to_dict(), "corpus": corpus.summary(), "world_size": world,
            "eco_softmax_steps": switch, "eco_fit": eco_fit,
        }

    bar = tqdm(
        total=preset.steps, initial=start, disable=not (is_main and options.progress), unit="step",
        desc=f"train {options.preset}", dynamic_ncols=True,
    )
    if start == 0:
        maybe_fit(0)
    if start == 0 and not history:  # the untrained model's score, so the drop is visible
        history.append({
            "step": 0, "tokens": 0, "lr": 0.0, "train_loss_nats": None, "grad_norm": None,
            "val_bpb": validation_bits_per_byte(model, val_windows, preset.batch_size, device, autocast),
            "elapsed_s": 0.0,
        })
    model.train()
    t_start = time.perf_counter()
    window_t, window_tokens = t_start, 0
    for step in range(start, preset.steps):
        if step:
            maybe_fit(step)
        windows = train_windows(step)
        lr = lr_at(step, preset)
        for group in optimizer.param_groups:
            group["lr"] = lr
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
            loss = next_token_loss(train_model, windows)
        loss.backward()
        loss = loss.detach()
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), preset.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        tokens_seen += tokens_per_step
        window_tokens += tokens_per_step
        done = step + 1
        if is_main and (done % 10 == 0 or done == preset.steps):
            now = time.perf_counter()
            bar.set_postfix(loss=f"{float(loss):.3f}", tok_s=f"{window_tokens / max(now - window_t, 1e-9):,.0f}")
            window_t, window_tokens = now, 0
        bar.update(1)
        record: dict[str, Any] = {}
        if done % preset.eval_every == 0 or done == preset.steps:
            record = {
                "step": done, "tokens": tokens_seen, "lr": lr, "train_loss_nats": float(loss),
                "grad_norm": float(grad_norm),
                "val_bpb": validation_bits_per_byte(model, val_windows, preset.batch_size, device, autocast),
                "elapsed_s": elapsed_before + time.perf_counter() - t_start,
            }
            history.append(record)
            if is_main:
                bar.write(f"step {done}: val {record['val_bpb']:.4f} bits/byte, train loss {float(loss):.4f} nats")
        if is_main and (done % preset.checkpoint_every == 0 or done == preset.steps):
            save_checkpoint(out, model, optimizer, trainer_state(done, elapsed_before + time.perf_counter() - t_start))
        if on_step is not None:
            on_step(done)
    bar.close()

    summary = {
        "run_metadata": run_metadata(seed=options.seed, device=str(device)),
        "parameters": count_parameters(model),
        **trainer_state(preset.steps, elapsed_before + time.perf_counter() - t_start),
        "final_val_bpb": history[-1]["val_bpb"] if history else None,
        "initial_val_bpb": history[0]["val_bpb"] if history else None,
        "checkpoint": str(out / "checkpoint"),
        "rank": rank,  # of the process returning it; under torchrun only rank 0 writes metrics.json
    }
    if is_main:
        save_json(out / "metrics.json", summary)
        plot_history(
            history, out / "loss.png",
            title=f"linseq train {options.preset} ({', '.join(sorted(set(config.mixer_types)))})",
            switch_tokens=None if switch is None else switch * tokens_per_step,
        )
    if world > 1:
        import torch.distributed as dist

        dist.barrier()
    return summary


def plot_history(
    history: list[dict[str, Any]], path: Path, title: str = "", switch_tokens: int | None = None
) -> Path | None:
    """Validation bits per byte against training tokens, as a PNG; ``switch_tokens`` marks where EcoFormer layers
    switched from softmax to hash mode."""
    if not history:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.plot([h["tokens"] for h in history], [h["val_bpb"] for h in history], marker="o")
    if switch_tokens is not None:
        ax.axvline(switch_tokens, color="gray", linestyle="--", linewidth=1, label="EcoFormer hash fit")
        ax.legend(fontsize=8)
    ax.set_xlabel("training tokens (bytes)")
    ax.set_ylabel("validation bits per byte")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
