"""Render the README's Lightning performance tables from benchmarks/results/lightning/lightning_bench.json.

    python benchmarks/render_lightning_table.py            # print the Markdown
    python benchmarks/render_lightning_table.py --readme   # replace the block between the markers in README.md
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "lightning" / "lightning_bench.json"
BEGIN, END = "<!-- lightning-table:begin -->", "<!-- lightning-table:end -->"


def _ms(rows, provider, T, mode):
    hit = [r for r in rows if r["provider"] == provider and r["T"] == T and r["mode"] == mode]
    return hit[0]["ms"] if hit and hit[0]["ms"] is not None else None


def _fmt(x, digits=2):
    return "—" if x is None else f"{x:.{digits}f}"


def config_table(entry: dict) -> str:
    cfg, rows = entry["config"], entry["results"]
    providers = [p for p in cfg["providers"] if any(r["provider"] == p and r["ms"] for r in rows)]
    lengths = sorted({r["T"] for r in rows if r["ms"] is not None})
    head = "| T | B | " + " | ".join(f"{p} fwd / fwd+bwd (ms)" for p in providers)
    has_ratio = "linseq-triton" in providers and "fla" in providers
    if has_ratio:
        head += " | speed-up vs fla fwd / fwd+bwd | peak GiB linseq / fla"
    lines = [head + " |", "|" + "---|" * (head.count("|") - 1 + 1)]
    lines[1] = "|" + "---|" * (len(head.split("|")) - 1)
    for T in lengths:
        B = next(r["B"] for r in rows if r["T"] == T)
        cells = [f"{T // 1024}K" if T % 1024 == 0 else str(T), str(B)]
        for p in providers:
            cells.append(f"{_fmt(_ms(rows, p, T, 'fwd'))} / {_fmt(_ms(rows, p, T, 'fwdbwd'))}")
        if has_ratio:
            ratios = []
            for mode in ("fwd", "fwdbwd"):
                a, b = _ms(rows, "linseq-triton", T, mode), _ms(rows, "fla", T, mode)
                ratios.append(f"{b / a:.2f}×" if a and b else "—")
            mem = []
            for p in ("linseq-triton", "fla"):
                hit = [r for r in rows if r["provider"] == p and r["T"] == T and r["mode"] == "fwdbwd"]
                mem.append(_fmt(hit[0]["peak_gib"] if hit else None))
            cells += [" / ".join(ratios), " / ".join(mem)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def render(path: Path = RESULTS) -> str:
    data = json.loads(path.read_text())
    meta = data["meta"]
    out = [f"Measured on **{meta['device']}**, {meta['date'][:10]}, commit `{meta['commit']}`, torch {meta['torch']}, "
           f"triton {meta['triton']}; median of `triton.testing.do_bench`; B·T = tokens held constant. "
           f"Source: `{path.relative_to(ROOT)}`.", ""]
    for entry in data["configs"]:
        c = entry["config"]
        out.append(f"**{c['name']}** — H={c['heads']}, D={c['head_dim']}, {c['dtype']}, {c['decay']} decay, "
                   f"B·T={c['tokens']:,}")
        out.append("")
        out.append(config_table(entry))
        errors = sorted({f"{r['provider']}: {r['error']}" for r in entry["results"] if r.get("error")})
        for e in errors:
            out.append(f"\n_{e}_")
        out.append("")
    if "decode" in data:
        out.append("**decode** — one token, H=16, D=128, float32 state (µs per step)")
        out.append("")
        out.append("| provider | " + " | ".join(f"B={b}" for b in data["decode"]["config"]["batches"]) + " |")
        out.append("|---|" + "---|" * len(data["decode"]["config"]["batches"]))
        for p in data["decode"]["config"]["providers"]:
            cells = []
            for b in data["decode"]["config"]["batches"]:
                hit = [r for r in data["decode"]["results"] if r["provider"] == p and r["B"] == b]
                cells.append(_fmt(hit[0]["ms"] * 1e3, 1) if hit and hit[0]["ms"] else "—")
            out.append(f"| {p} | " + " | ".join(cells) + " |")
    return "\n".join(out).rstrip() + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--readme", action="store_true", help="rewrite the marked block of README.md")
    args = ap.parse_args()
    text = render()
    if not args.readme:
        print(text)
        return
    readme = ROOT / "README.md"
    src = readme.read_text()
    start, stop = src.index(BEGIN) + len(BEGIN), src.index(END)
    readme.write_text(src[:start] + "\n" + text + src[stop:])
    print(f"updated {readme}")


if __name__ == "__main__":
    main()
