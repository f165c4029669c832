"""Measure the linseq LM on one device: quality at equal size and tokens, training throughput vs sequence length,
and generation memory / per-token latency vs context length, for all-linear, hybrid and all-softmax models.

    python benchmarks/lm/bench_lm.py --out OUTDIR            # GPU sizes (about 3 minutes on an H100)
    python benchmarks/lm/bench_lm.py --out OUTDIR --tiny     # CPU smoke sizes, seconds (also LINSEQ_BENCH_TINY=1)

Writes OUTDIR/lm_bench.json (with run_metadata; rewritten after every section, so a cut-off run keeps what it
measured) and OUTDIR/lm_quality.png, lm_throughput.png, lm_generation.png.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path

import torch

from linseq.data.text import load_text_corpus
from linseq.io import run_metadata, save_json
from linseq.models.lm import LinseqCache, LinseqForCausalLM, LinseqLMConfig, count_parameters
from linseq.models.lm.presets import PRESETS
from linseq.models.lm.training import TrainOptions, make_optimizer, next_token_loss, train_lm

PATTERNS = ("linear", "hybrid", "softmax")

GPU = dict(
    model=dict(hidden_size=512, num_hidden_layers=8, num_attention_heads=8, intermediate_size=1408),
    quality=dict(steps=300, batch_size=16, seq_len=1024, lr=1.5e-3, eval_batches=8),
    throughput=dict(seq_lens=[2048, 8192, 32768], tokens_per_step=32768, warmup=2, iters=4),
    generation=dict(patterns=["linear", "softmax"], contexts=[1024, 2048, 4096, 8192, 16384, 32768], steps=24),
    max_bytes=None,
)
TINY = dict(
    model=dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64),
    quality=dict(steps=4, batch_size=2, seq_len=32, lr=3e-3, eval_batches=1),
    throughput=dict(seq_lens=[64, 128, 256], tokens_per_step=256, warmup=1, iters=2),
    generation=dict(patterns=["linear", "softmax"], contexts=[16, 32, 64], steps=3),
    max_bytes=300_000,
)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def pick_backend(device: torch.device) -> str:
    """``"auto"`` (Triton on CUDA) when a small Lightning call works, else ``"chunk"`` (recorded in the JSON)."""
    from linseq.ops import lightning_attn

    if device.type != "cuda":
        return "auto"
    try:
        q = torch.randn(1, 128, 2, 64, device=device, dtype=torch.bfloat16, requires_grad=True)
        o, _ = lightning_attn(q, q, q, torch.full((2,), -0.01, device=device), scale=1.0)
        o.float().sum().backward()
        with torch.no_grad():  # the decoding path: one token with a carried state
            state = torch.zeros(1, 2, 64, 64, device=device)
            lightning_attn(q[:, :1], q[:, :1], q[:, :1], torch.full((2,), -0.01, device=device), scale=1.0,
                           initial_state=state, output_final_state=True, backend="recurrent")
        sync(device)
        return "auto"
    except Exception as err:  # noqa: BLE001 - any failure means: measure with the portable backend
        print(f"bench_lm: Triton Lightning backend unusable ({type(err).__name__}: {err}); using chunk", file=sys.stderr)
        return "chunk"


def model_config(sizes: dict, pattern: str, backend: str, max_len: int) -> LinseqLMConfig:
    return LinseqLMConfig(
        **sizes["model"], attn_pattern=pattern, attn_backend=backend, max_position_embeddings=max(max_len, 64)
    )


def measure_quality(sizes, device, backend, corpus, seed: int) -> list[dict]:
    """Validation bits per byte after equal training (same size, tokens, data order) for each pattern.
    Checkpoints go to a temporary folder (they are large and not results)."""
    import tempfile

    out = Path(tempfile.mkdtemp(prefix="linseq-bench-lm-"))
    rows = []
    q = sizes["quality"]
    for pattern in PATTERNS:
        t0 = time.perf_counter()
        summary = train_lm(
            TrainOptions(
                out=str(out / "runs" / pattern), attn_pattern=pattern, steps=q["steps"], batch_size=q["batch_size"],
                seq_len=q["seq_len"], lr=q["lr"], eval_every=q["steps"], eval_batches=q["eval_batches"],
                checkpoint_every=q["steps"], seed=seed, device=str(device), progress=False,
                model_overrides={**sizes["model"], "attn_backend": backend},
            ),
            corpus=corpus,
        )
        rows.append({
            "pattern": pattern, "mixer_types": summary["model_config"]["mixer_types"],
            "parameters": summary["parameters"], "train_tokens": summary["tokens_seen"],
            "val_bpb": summary["final_val_bpb"], "initial_val_bpb": summary["initial_val_bpb"],
            "wall_s": time.perf_counter() - t0,
        })
        print(f"quality {pattern}: {rows[-1]['val_bpb']:.4f} bits/byte ({rows[-1]['wall_s']:.1f} s)", flush=True)
    return rows


def measure_throughput(sizes, device, backend, deadline: float) -> list[dict]:
    """Training tokens/s (forward, backward, AdamW step; bf16 autocast on GPU) at each sequence length."""
    rows = []
    t = sizes["throughput"]
    autocast = device.type == "cuda"
    for pattern in PATTERNS:
        for seq_len in t["seq_lens"]:
            row = {"pattern": pattern, "seq_len": seq_len, "batch_size": max(1, t["tokens_per_step"] // seq_len)}
            if time.perf_counter() > deadline:
                rows.append({**row, "tokens_per_s": None, "note": "skipped: time budget"})
                continue
            torch.manual_seed(0)
            model = LinseqForCausalLM(model_config(sizes, pattern, backend, seq_len)).to(device).train()
            opt = make_optimizer(model, PRESETS["tiny"])
            windows = torch.randint(0, 256, (row["batch_size"], seq_len + 1), device=device)
            try:
                for i in range(t["warmup"] + t["iters"]):
                    if i == t["warmup"]:
                        sync(device)
                        start = time.perf_counter()
                    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
                        loss = next_token_loss(model, windows)
                    loss.backward()
                    opt.step()
                    opt.zero_grad(set_to_none=True)
                sync(device)
                elapsed = time.perf_counter() - start
                row["tokens_per_s"] = row["batch_size"] * seq_len * t["iters"] / elapsed
                if device.type == "cuda":
                    row["peak_memory_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
            except torch.cuda.OutOfMemoryError:
                row.update(tokens_per_s=None, note="out of memory")
            del model, opt, windows
            if device.type == "cuda":
                torch.cuda.empty_cache()
                torch.cuda.reset_peak_memory_stats(device)
            rows.append(row)
            print(f"throughput {pattern} T={seq_len}: {row.get('tokens_per_s') or 0:,.0f} tokens/s", flush=True)
    return rows


@torch.no_grad()
def measure_generation(sizes, device, backend, deadline: float) -> list[dict]:
    """Per-token decoding latency and memory after a context of L tokens (filled by one prefill pass, which
    leaves the cache exactly as L generated tokens would)."""
    rows = []
    g = sizes["generation"]
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    for pattern in g["patterns"]:
        torch.manual_seed(0)
        model = LinseqForCausalLM(model_config(sizes, pattern, backend, max(g["contexts"]) + g["steps"] + 1))
        model = model.to(device=device, dtype=dtype).eval()
        weights_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
        for context in g["contexts"]:
            row = {"pattern": pattern, "context": context}
            if time.perf_counter() > deadline:
                rows.append({**row, "ms_per_token": None, "note": "skipped: time budget"})
                continue
            cache = LinseqCache(model.config.mixer_types)
            ids = torch.randint(0, 256, (1, context), device=device)
            try:
                logits = model(ids, past_key_values=cache, logits_to_keep=1).logits
                token = logits[:, -1].argmax(-1, keepdim=True)
                if device.type == "cuda":
                    torch.cuda.empty_cache()
                    torch.cuda.reset_peak_memory_stats(device)
                model(token, past_key_values=cache)  # warm-up step
                sync(device)
                start = time.perf_counter()
                for _ in range(g["steps"]):
                    token = model(token, past_key_values=cache).logits[:, -1].argmax(-1, keepdim=True)
                sync(device)
                row["ms_per_token"] = (time.perf_counter() - start) / g["steps"] * 1e3
                row["cache_mib"] = cache.nbytes() / 2**20
                row["weights_mib"] = weights_bytes / 2**20
                if device.type == "cuda":
                    row["peak_memory_mib"] = torch.cuda.max_memory_allocated(device) / 2**20
            except torch.cuda.OutOfMemoryError:
                row.update(ms_per_token=None, note="out of memory")
            del cache
            rows.append(row)
            print(f"generation {pattern} L={context}: {row.get('ms_per_token') or 0:.2f} ms/token, "
                  f"cache {row.get('cache_mib', 0):.1f} MiB", flush=True)
        del model
    return rows


def plot_all(result: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = {"linear": "tab:blue", "hybrid": "tab:green", "softmax": "tab:red"}
    if result.get("quality"):
        fig, ax = plt.subplots(figsize=(4.5, 3.2))
        rows = result["quality"]
        ax.bar([r["pattern"] for r in rows], [r["val_bpb"] for r in rows], color=[colors[r["pattern"]] for r in rows])
        ax.set_ylabel("validation bits per byte")
        ax.set_title(f"equal size and tokens ({rows[0]['train_tokens'] / 1e6:.1f}M bytes)", fontsize=9)
        lo = min(r["val_bpb"] for r in rows)
        ax.set_ylim(max(0.0, lo * 0.9), max(r["val_bpb"] for r in rows) * 1.03)
        fig.tight_layout()
        fig.savefig(out / "lm_quality.png", dpi=120)
        plt.close(fig)
    if result.get("throughput"):
        fig, ax = plt.subplots(figsize=(4.8, 3.2))
        for pattern in PATTERNS:
            rows = [r for r in result["throughput"] if r["pattern"] == pattern and r.get("tokens_per_s")]
            ax.plot([r["seq_len"] for r in rows], [r["tokens_per_s"] for r in rows], "o-", label=pattern,
                    color=colors[pattern])
        ax.set_xscale("log", base=2)
        ax.set_xlabel("sequence length (tokens)")
        ax.set_ylabel("training tokens / s")
        ax.set_ylim(bottom=0)
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
        fig.tight_layout()
        fig.savefig(out / "lm_throughput.png", dpi=120)
        plt.close(fig)
    if result.get("generation"):
        fig, axes = plt.subplots(1, 2, figsize=(8.5, 3.2))
        for pattern in result["sizes"]["generation"]["patterns"]:
            rows = [r for r in result["generation"] if r["pattern"] == pattern and r.get("ms_per_token")]
            x = [r["context"] for r in rows]
            mem_key = "peak_memory_mib" if rows and "peak_memory_mib" in rows[0] else "cache_mib"
            axes[0].plot(x, [r[mem_key] for r in rows], "o-", label=pattern, color=colors[pattern])
            axes[1].plot(x, [r["ms_per_token"] for r in rows], "o-", label=pattern, color=colors[pattern])
        axes[0].set_ylabel("peak memory while decoding (MiB)" if result.get("device_type") == "cuda"
                           else "cache size (MiB)")
        axes[1].set_ylabel("ms per generated token")
        for ax in axes:
            ax.set_xscale("log", base=2)
            ax.set_xlabel("tokens already in context")
            ax.set_ylim(bottom=0)
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(out / "lm_generation.png", dpi=120)
        plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--tiny", action="store_true", help="CPU smoke sizes (also LINSEQ_BENCH_TINY=1)")
    parser.add_argument("--budget-s", type=float, default=200.0, help="skip remaining measurements after this")
    parser.add_argument("--sections", default="quality,throughput,generation")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    tiny = args.tiny or os.environ.get("LINSEQ_BENCH_TINY") == "1"
    sizes = TINY if tiny else GPU
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if not tiny and device.type != "cuda":
        print("bench_lm: no CUDA device; use --tiny for the CPU smoke sizes", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    deadline = t0 + args.budget_s
    backend = pick_backend(device)
    result: dict = {
        "run_metadata": run_metadata(seed=args.seed, device=str(device), lightning_backend=backend, tiny=tiny),
        "device_type": device.type, "sizes": sizes,
        "notes": {
            "quality": "same model size, data order and tokens for each pattern; byte-level tokens",
            "generation": "context filled by one prefill pass, then timed greedy decoding steps; batch 1",
        },
    }
    sections = args.sections.split(",")
    if "quality" in sections:
        corpus = load_text_corpus(None, max_bytes=sizes["max_bytes"])
        result["corpus"] = corpus.summary()
        result["quality"] = measure_quality(sizes, device, backend, corpus, args.seed)
        save_json(out / "lm_bench.json", result)
    if "throughput" in sections:
        result["throughput"] = measure_throughput(sizes, device, backend, deadline)
        save_json(out / "lm_bench.json", result)
    if "generation" in sections:
        result["generation"] = measure_generation(sizes, device, backend, deadline)
    result["wall_s"] = time.perf_counter() - t0
    save_json(out / "lm_bench.json", result)
    plot_all(result, out)
    print(f"bench_lm: wrote {out / 'lm_bench.json'} and plots in {math.floor(result['wall_s'])} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
