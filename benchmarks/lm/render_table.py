"""Render the README tables of the LM benchmark from its JSON (never type a measured number by hand).

    python benchmarks/lm/render_table.py benchmarks/results/lm/lm_bench.json --out benchmarks/results/lm/lm_tables.md
    python benchmarks/lm/render_table.py benchmarks/results/lm/train_tiny_cpu/metrics.json --out .../train_table.md
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def _fmt(value, spec: str, missing: str = "—") -> str:
    return missing if value is None else format(value, spec)


def render(result: dict) -> str:
    """Markdown tables (quality, training throughput, generation) from a ``lm_bench.json`` dict."""
    meta = result["run_metadata"]
    lines = [
        f"Measured on {meta['device']} (torch {meta['torch']}, triton {meta.get('triton')}, commit {meta['commit']}, "
        f"Lightning backend `{meta.get('lightning_backend')}`{', tiny smoke sizes' if meta.get('tiny') else ''}).",
        "",
    ]
    model = result["sizes"]["model"]
    size = (f"{model['num_hidden_layers']} layers, width {model['hidden_size']}, "
            f"{model['num_attention_heads']} heads")
    if result.get("quality"):
        rows = result["quality"]
        lines += [
            f"**Quality at equal size and training tokens** ({size}; byte-level, {result.get('corpus', {}).get('source', '')}):",
            "",
            "| pattern | softmax layers | parameters | training bytes | val bits/byte (start → end) |",
            "|---|---|---|---|---|",
        ]
        for r in rows:
            n_soft = sum(t == "softmax" for t in r["mixer_types"])
            lines.append(
                f"| {r['pattern']} | {n_soft}/{len(r['mixer_types'])} | {r['parameters'] / 1e6:.1f}M | "
                f"{r['train_tokens'] / 1e6:.1f}M | {_fmt(r['initial_val_bpb'], '.3f')} → **{_fmt(r['val_bpb'], '.3f')}** |"
            )
        lines.append("")
    if result.get("throughput"):
        rows = result["throughput"]
        lens = sorted({r["seq_len"] for r in rows})
        lines += [
            f"**Training throughput** (tokens/s; forward + backward + AdamW, {size}, "
            f"{result['sizes']['throughput']['tokens_per_step']} tokens per step):",
            "",
            "| pattern | " + " | ".join(f"T = {n:,}" for n in lens) + " |",
            "|---|" + "---|" * len(lens),
        ]
        for pattern in dict.fromkeys(r["pattern"] for r in rows):
            cells = []
            for n in lens:
                r = next((x for x in rows if x["pattern"] == pattern and x["seq_len"] == n), {})
                cells.append(_fmt(r.get("tokens_per_s"), ",.0f", r.get("note", "—")))
            lines.append(f"| {pattern} | " + " | ".join(cells) + " |")
        lines.append("")
    if result.get("generation"):
        rows = result["generation"]
        patterns = list(dict.fromkeys(r["pattern"] for r in rows))
        mem = "peak_memory_mib" if any("peak_memory_mib" in r for r in rows) else "cache_mib"
        mem_name = "peak MiB" if mem == "peak_memory_mib" else "cache MiB"
        lines += [
            "**Generation** (batch 1, greedy; per-token latency and memory once the context holds L tokens):",
            "",
            "| L | " + " | ".join(f"{p} ms/token | {p} {mem_name}" for p in patterns) + " |",
            "|---|" + "---|---|" * len(patterns),
        ]
        for context in sorted({r["context"] for r in rows}):
            cells = []
            for p in patterns:
                r = next((x for x in rows if x["pattern"] == p and x["context"] == context), {})
                cells += [_fmt(r.get("ms_per_token"), ".2f", r.get("note", "—")), _fmt(r.get(mem), ".1f")]
            lines.append(f"| {context:,} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def render_training(metrics: dict) -> str:
    """Markdown table of a ``linseq train`` run's validation curve from its ``metrics.json``."""
    meta = metrics["run_metadata"]
    lines = [
        f"`linseq train --preset {metrics['preset']}` on {meta['device']} (torch {meta['torch']}, commit "
        f"{meta['commit']}): {metrics['parameters'] / 1e6:.2f}M parameters, layers {metrics['model_config']['mixer_types']}, "
        f"{metrics['elapsed_s'] / 60:.1f} min.",
        "",
        "| step | training bytes | validation bits/byte |",
        "|---|---|---|",
    ]
    for h in metrics["history"]:
        lines.append(f"| {h['step']} | {h['tokens']:,} | {h['val_bpb']:.3f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("json", help="lm_bench.json written by bench_lm.py, or metrics.json of `linseq train`")
    parser.add_argument("--out", default=None, help="write the Markdown here instead of stdout")
    args = parser.parse_args(argv)
    data = json.loads(Path(args.json).read_text())
    text = render_training(data) if "history" in data and "quality" not in data else render(data)
    if args.out:
        Path(args.out).write_text(text + "\n")
    else:
        sys.stdout.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
