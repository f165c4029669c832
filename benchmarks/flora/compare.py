"""FLoRA vs LoRA (PEFT) vs full fine-tuning at matched trainable-parameter budgets, on CPU, offline data.

Two transfers, each: pretrain a small model on a source task, then adapt it to a target task with
  * full fine-tuning (every weight trainable),
  * LoRA from Hugging Face PEFT at ranks 1, 2, 4, 8 (the budgets),
  * FLoRA (linseq.adapters) with the ranks whose parameter count is closest to each LoRA budget,
  * a floor: the head alone (CNN) / the pretrained model without adaptation (LM).
Learning rates come from a small grid, chosen on a validation split; the test split is reported.

1. CNN, scikit-learn's bundled 8x8 digits: pretrain on digits 0-4 (upright), adapt to digits 5-9 rotated by
   90 degrees (a class shift and a domain shift) from 20 images per class. Metric: test accuracy.
2. Byte-level causal LM with Lightning attention (linseq.lightning_attn): pretrain on Python standard-library
   source code, adapt to English prose, the reference-manual text in the standard library's pydoc_data/topics.py.
   Metric: test bits per byte.

Usage:  OMP_NUM_THREADS=1 python benchmarks/flora/compare.py --out benchmarks/results/flora
Writes flora_comparison.json (with run metadata) and flora_comparison.png.
"""

from __future__ import annotations

import argparse
import copy
import math
import sys
import sysconfig
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from linseq import lightning_attn, tnl_log_decay
from linseq.adapters import FloraConfig, flora_param_count, get_flora_model, resolve_ranks
from linseq.io import run_metadata, save_json

LORA_RANKS = (1, 2, 4, 8)


# ---------------------------------------------------------------------------------------------------------------
# adapters: build a model for a method and count what it trains
# ---------------------------------------------------------------------------------------------------------------
def count_trainable(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def target_weights(model: nn.Module, names: list[str]) -> dict[str, tuple[tuple[int, ...], int]]:
    """name -> (weight shape, number of kernel modes) for the targeted modules."""
    out = {}
    for name in names:
        w = model.get_submodule(name).weight
        out[name] = (tuple(w.shape), w.dim() - 2 if w.dim() > 2 else 0)
    return out


def flora_ranks_for_budget(weights: dict, budget: int) -> tuple[int, int | None, int]:
    """The channel rank r whose FLoRA parameter count on ``weights`` is closest to ``budget``, with kernel modes
    kept at full rank (spatial_r = kernel size: they are tiny, and FLoRA's point is to keep their structure)."""
    kernels = [max(s[-n:]) for s, n in weights.values() if n]
    spatial = max(kernels) if kernels else None
    best = None
    for r in range(1, 257):
        n = sum(flora_param_count(s, resolve_ranks(s, r, spatial, k, name)) for name, (s, k) in weights.items())
        if best is None or abs(n - budget) < abs(best[2] - budget):
            best = (r, spatial, n)
    return best


def make_variant(pretrained: nn.Module, method: str, targets: list[str], head: list[str], rank: int | None,
                 budget: int | None = None) -> tuple[nn.Module, dict]:
    """A fresh copy of ``pretrained`` set up for ``method``; returns (model, description). ``budget`` is the
    trainable-parameter count (adapter + head) FLoRA should match."""
    model = copy.deepcopy(pretrained)
    if method == "full":
        return model, {}
    if method == "head":
        model.requires_grad_(False)
        for name in head:
            model.get_submodule(name).requires_grad_(True)
        return model, {}
    if method == "lora":
        from peft import LoraConfig, get_peft_model

        cfg = LoraConfig(r=rank, lora_alpha=2 * rank, target_modules=targets, modules_to_save=head or None)
        return get_peft_model(model, cfg), {"rank": rank, "lora_alpha": 2 * rank}
    if method == "flora":
        head_params = sum(p.numel() for name in head for p in model.get_submodule(name).parameters())
        r, spatial, _ = flora_ranks_for_budget(target_weights(model, targets), budget - head_params)
        cfg = FloraConfig(r=r, spatial_r=spatial, target_modules=targets, modules_to_save=head or None)
        flora = get_flora_model(model, cfg)
        return flora, {"rank": r, "spatial_rank": spatial,
                       "ranks_per_module": {row["module"]: row["ranks"] for row in flora.adapter_summary()}}
    raise ValueError(f"method must be full, head, lora or flora; got {method!r}")


def method_grid(pretrained: nn.Module, targets: list[str], head: list[str], floor: str | None) -> list[dict]:
    """The runs of one transfer: the floor, full fine-tuning, then LoRA and FLoRA at each LoRA budget."""
    grid = [{"method": "full", "rank": None, "budget": None}]
    if floor == "head":
        grid.insert(0, {"method": "head", "rank": None, "budget": None})
    for rank in LORA_RANKS:
        lora, _ = make_variant(pretrained, "lora", targets, head, rank)
        budget = count_trainable(lora)
        grid.append({"method": "lora", "rank": rank, "budget": budget})
        grid.append({"method": "flora", "rank": None, "budget": budget})
    return grid


def fit(model: nn.Module, loss_fn, batches, steps: int, lr: float) -> None:
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    warmup = max(1, steps // 10)
    # linear warm-up over the first 10% of the steps, then cosine decay to zero
    shape = lambda s: (s + 1) / warmup if s < warmup else 0.5 * (1 + math.cos(math.pi * (s - warmup) / max(1, steps - warmup)))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, shape)
    model.train()
    for step in range(steps):
        opt.zero_grad(set_to_none=True)
        loss_fn(model, batches(step)).backward()
        opt.step()
        sched.step()
    model.eval()


# ---------------------------------------------------------------------------------------------------------------
# 1. CNN on digits
# ---------------------------------------------------------------------------------------------------------------
class DigitsCNN(nn.Module):
    """Three 3x3 convs (1->16->32->64 channels, one 2x2 max-pool), global average pool, a linear head."""

    def __init__(self, n_classes: int = 5) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 3, padding=1)
        self.conv2 = nn.Conv2d(16, 32, 3, padding=1)
        self.conv3 = nn.Conv2d(32, 64, 3, padding=1)
        self.head = nn.Linear(64, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x [B, 1, 8, 8]
        h = F.relu(self.conv1(x))
        h = F.max_pool2d(F.relu(self.conv2(h)), 2)  # [B, 32, 4, 4]
        h = F.relu(self.conv3(h)).mean(dim=(2, 3))  # [B, 64]
        return self.head(h)


def digits_tasks(seed: int, shots: int = 20, val_per_class: int = 20) -> dict:
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0  # [N, 1, 8, 8] in [0, 1]
    y = torch.tensor(digits.target)
    gen = torch.Generator().manual_seed(seed)
    src = (y < 5).nonzero().squeeze(1)
    src = src[torch.randperm(len(src), generator=gen)]
    n_src_test = len(src) // 5
    task = {"src_train": (x[src[n_src_test:]], y[src[n_src_test:]]), "src_test": (x[src[:n_src_test]], y[src[:n_src_test]])}
    tgt_x = torch.rot90(x, 1, dims=(2, 3))  # the domain shift: every target image is rotated by 90 degrees
    parts = {"train": [], "val": [], "test": []}
    for c in range(5, 10):
        idx = (y == c).nonzero().squeeze(1)
        idx = idx[torch.randperm(len(idx), generator=gen)]
        parts["train"].append(idx[:shots])
        parts["val"].append(idx[shots:shots + val_per_class])
        parts["test"].append(idx[shots + val_per_class:])
    for name, chunks in parts.items():
        idx = torch.cat(chunks)
        task[f"tgt_{name}"] = (tgt_x[idx], y[idx] - 5)
    return task


def accuracy(model: nn.Module, data: tuple[torch.Tensor, torch.Tensor]) -> float:
    with torch.no_grad():
        return (model(data[0]).argmax(-1) == data[1]).float().mean().item()


def run_cnn(seeds: list[int], lrs: list[float], steps: int, pretrain_steps: int = 600) -> dict:
    runs, pretrain_acc = [], []
    targets = ["conv1", "conv2", "conv3"]
    for seed in seeds:
        task = digits_tasks(seed)
        torch.manual_seed(seed)
        base = DigitsCNN()
        xs, ys = task["src_train"]

        def src_batch(step: int, g=torch.Generator().manual_seed(seed)):
            idx = torch.randint(0, len(xs), (64,), generator=g)
            return xs[idx], ys[idx]

        fit(base, lambda m, b: F.cross_entropy(m(b[0]), b[1]), src_batch, steps=pretrain_steps, lr=3e-3)
        pretrain_acc.append(accuracy(base, task["src_test"]))
        base.head = nn.Linear(64, 5)  # a fresh head for the new classes, shared by every method of this seed
        grid = method_grid(base, targets, ["head"], floor="head")
        for spec in tqdm(grid, desc=f"cnn seed {seed}", leave=False):
            best = None
            for lr in lrs:
                torch.manual_seed(seed + 1)
                model, info = make_variant(base, spec["method"], targets, ["head"], spec["rank"], spec["budget"])
                fit(model, lambda m, b: F.cross_entropy(m(b[0]), b[1]), lambda s: task["tgt_train"], steps, lr)
                val = accuracy(model, task["tgt_val"])
                if best is None or val > best["val_acc"]:
                    best = {"method": spec["method"], "seed": seed, "lr": lr, "trainable_params": count_trainable(model),
                            "lora_budget": spec["budget"], "val_acc": val, "test_acc": accuracy(model, task["tgt_test"]),
                            **info}
            runs.append(best)
    return {
        "task": "digits 0-4 upright -> digits 5-9 rotated 90 degrees, 20 images per class",
        "model": "DigitsCNN (conv 1-16-32-64, 3x3), "
                 f"{sum(p.numel() for p in DigitsCNN().parameters())} parameters",
        "targets": targets, "modules_to_save": ["head"], "metric": "test_acc", "higher_is_better": True,
        "source_test_acc": pretrain_acc, "steps": steps, "lr_grid": lrs, "seeds": seeds, "runs": runs,
    }


# ---------------------------------------------------------------------------------------------------------------
# 2. Byte-level causal LM with Lightning attention
# ---------------------------------------------------------------------------------------------------------------
class Block(nn.Module):
    def __init__(self, d: int, heads: int, layer: int, n_layers: int) -> None:
        super().__init__()
        self.heads = heads
        self.norm1, self.norm2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.q_proj, self.k_proj, self.v_proj, self.o_proj = (nn.Linear(d, d, bias=False) for _ in range(4))
        self.up, self.down = nn.Linear(d, 4 * d), nn.Linear(4 * d, d)
        self.register_buffer("log_decay", tnl_log_decay(heads, layer, n_layers), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x [B, T, d]
        b, t, d = x.shape
        h = self.norm1(x)
        q, k, v = (p(h).view(b, t, self.heads, d // self.heads) for p in (self.q_proj, self.k_proj, self.v_proj))
        o, _ = lightning_attn(F.silu(q), F.silu(k), v, self.log_decay)  # [B, T, H, D]
        o = F.rms_norm(o, (o.shape[-1],))  # TransNormer's NormAttention: normalise instead of softmax
        x = x + self.o_proj(o.reshape(b, t, d))
        return x + self.down(F.gelu(self.up(self.norm2(x))))


class ByteLM(nn.Module):
    def __init__(self, d: int = 128, heads: int = 4, n_layers: int = 2, ctx: int = 64) -> None:
        super().__init__()
        self.embed = nn.Embedding(256, d)
        self.pos = nn.Parameter(0.02 * torch.randn(ctx, d))
        self.blocks = nn.ModuleList([Block(d, heads, i, n_layers) for i in range(n_layers)])
        self.norm = nn.LayerNorm(d)
        self.lm_head = nn.Linear(d, 256, bias=False)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:  # idx [B, T] bytes -> logits [B, T, 256]
        h = self.embed(idx) + self.pos[: idx.shape[1]]
        for block in self.blocks:
            h = block(h)
        return self.lm_head(self.norm(h))


SOURCE_MODULES = ["argparse.py", "dataclasses.py", "functools.py", "inspect.py", "pathlib.py", "subprocess.py",
                  "typing.py", "textwrap.py", "enum.py", "shutil.py", "tarfile.py", "zipfile.py", "ast.py"]


def lm_corpora() -> tuple[torch.Tensor, torch.Tensor]:
    """(source bytes: Python stdlib code, target bytes: the reference-manual prose of pydoc_data.topics)."""
    from pydoc_data.topics import topics

    stdlib = Path(sysconfig.get_paths()["stdlib"])
    code = "\n".join((stdlib / name).read_text(encoding="utf-8") for name in SOURCE_MODULES)
    prose = "\n".join(topics[key] for key in sorted(topics))
    as_tensor = lambda s: torch.tensor(list(s.encode("utf-8", errors="replace")), dtype=torch.long)
    return as_tensor(code), as_tensor(prose)


def lm_loss(model: nn.Module, batch: torch.Tensor) -> torch.Tensor:
    logits = model(batch[:, :-1])
    return F.cross_entropy(logits.reshape(-1, 256), batch[:, 1:].reshape(-1))


def bits_per_byte(model: nn.Module, data: torch.Tensor, ctx: int) -> float:
    windows = data[: (len(data) - 1) // ctx * ctx + 1]
    starts = torch.arange(0, len(windows) - ctx, ctx)
    batch = torch.stack([windows[s: s + ctx + 1] for s in starts])
    with torch.no_grad():
        losses = [lm_loss(model, chunk).item() * len(chunk) for chunk in batch.split(256)]
    return sum(losses) / len(batch) / math.log(2)


def run_lm(seed: int, lrs: list[float], full_lrs: list[float], pretrain_steps: int, steps: int,
           train_bytes: int = 40_000) -> dict:
    ctx = 64
    code, prose = lm_corpora()
    n_val = len(prose) // 10
    # disjoint slices: train from the start, validation (lr choice) and test from the end
    tgt_train, tgt_val, tgt_test = prose[:train_bytes], prose[-2 * n_val:-2 * n_val + 16_000], prose[-32_000:]
    src_train, src_test = code[: -len(code) // 20], code[-len(code) // 20:]
    torch.manual_seed(seed)
    base = ByteLM(ctx=ctx)

    def sampler(data: torch.Tensor, batch: int, seed_: int):
        g = torch.Generator().manual_seed(seed_)

        def draw(step: int) -> torch.Tensor:
            starts = torch.randint(0, len(data) - ctx - 1, (batch,), generator=g)
            return torch.stack([data[s: s + ctx + 1] for s in starts])
        return draw

    t0 = time.perf_counter()
    fit(base, lm_loss, sampler(src_train, 16, seed), pretrain_steps, lr=3e-3)
    pretrain_s = time.perf_counter() - t0
    targets = [n for n, m in base.named_modules() if isinstance(m, nn.Linear) and n != "lm_head"]
    runs = [{"method": "pretrained", "seed": seed, "lr": None, "trainable_params": 0, "lora_budget": None,
             "val_bpb": bits_per_byte(base, tgt_val, ctx), "test_bpb": bits_per_byte(base, tgt_test, ctx)}]
    grid = method_grid(base, targets, [], floor=None)
    for spec in tqdm(grid, desc="lm", leave=False):
        best = None
        for lr in (full_lrs if spec["method"] == "full" else lrs):
            torch.manual_seed(seed + 1)
            model, info = make_variant(base, spec["method"], targets, [], spec["rank"], spec["budget"])
            fit(model, lm_loss, sampler(tgt_train, 16, seed + 2), steps, lr)
            val = bits_per_byte(model, tgt_val, ctx)
            if best is None or val < best[0]["val_bpb"]:
                best = ({"method": spec["method"], "seed": seed, "lr": lr, "trainable_params": count_trainable(model),
                         "lora_budget": spec["budget"], "val_bpb": val,
                         **{k: v for k, v in info.items() if k != "ranks_per_module"}}, model)
        runs.append(best[0] | {"test_bpb": bits_per_byte(best[1], tgt_test, ctx)})
    return {
        "task": f"Python stdlib source -> pydoc_data.topics prose ({train_bytes} training bytes)",
        "model": f"ByteLM: 2 Lightning-attention blocks, d=128, 4 heads, context {ctx}, "
                 f"{sum(p.numel() for p in ByteLM(ctx=ctx).parameters())} parameters",
        "targets": "every nn.Linear except lm_head", "modules_to_save": [], "metric": "test_bpb",
        "higher_is_better": False, "source_test_bpb": bits_per_byte(base, src_test[:20_000], ctx),
        "pretrain_steps": pretrain_steps, "pretrain_seconds": pretrain_s, "steps": steps, "lr_grid": lrs,
        "full_lr_grid": full_lrs, "seeds": [seed], "runs": runs,
    }


# ---------------------------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="benchmarks/results/flora", help="output folder")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="seeds of the CNN transfer")
    parser.add_argument("--quick", action="store_true", help="tiny step counts, to check the script runs")
    args = parser.parse_args(argv)
    out = Path(args.out)
    t0, cpu0 = time.perf_counter(), time.process_time()
    q = args.quick
    cnn = run_cnn(args.seeds[:1] if q else args.seeds, lrs=[3e-3, 1e-2, 3e-2], steps=20 if q else 120,
                  pretrain_steps=30 if q else 600)
    cnn_s = time.perf_counter() - t0
    lm = run_lm(args.seeds[0], lrs=[3e-3, 1e-2], full_lrs=[1e-3, 3e-3], pretrain_steps=20 if q else 600,
                steps=10 if q else 100)
    result = {
        "meta": run_metadata(seed=args.seeds[0], threads=torch.get_num_threads(), quick=q,
                             peft=__import__("peft").__version__, argv=sys.argv[1:]),
        "cnn": cnn | {"seconds": cnn_s},
        "lm": lm | {"seconds": time.perf_counter() - t0 - cnn_s},
        "seconds": time.perf_counter() - t0,
        "cpu_seconds": time.process_time() - cpu0,  # wall time is inflated when others share the 2 cores
    }
    path = save_json(out / "flora_comparison.json", result)
    from report import plot_comparison  # benchmarks/flora/report.py

    png = plot_comparison(result, out / "flora_comparison.png")
    print(f"wrote {path} and {png} in {result['seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    sys.exit(main())
