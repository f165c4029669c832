"""Where a speech model gains or loses against the noisy input: per-clip metric differences (model − noisy) of
``linseq speech eval`` results, averaged by noise family, by SNR band (per subset), by speech source, and by
speech source within each subset's low (< 15 dB) and high SNR half.

    python benchmarks/speech_breakdown.py EVAL.json [EVAL.json ...] --test-set data/speech_testset \
        [--metrics STOI SI_SDR] [--out breakdown.json]

EVAL.json: an ``eval_<name>.json`` with per-clip values (``linseq speech eval --out`` writes them). The noisy
input's per-clip values are computed here, on the same clips, with the same metric code; the test set's
``manifest.json`` gives each clip's noise families, SNR and speech source. A clip with two noise families counts
in both. Prints one Markdown table per metric; ``--out`` also writes the numbers as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
from collections import defaultdict
from pathlib import Path

from linseq.experiments.speech_enhancement.evaluate import load_test_clips
from linseq.experiments.speech_enhancement.metrics import evaluate_pairs


def groups_of(clip: dict) -> list[str]:
    """The groups one clip belongs to, from its manifest entry."""
    subset = "WR" if clip["subset"] == "with_reverb" else "NR"
    low = int(clip["snr_db"]) // 5 * 5
    half = "SNR >= 15 dB" if clip["snr_db"] >= 15 else "SNR < 15 dB"
    return ([f"noise: {f}" for f in clip["noise_families"]] + [f"SNR {subset} {low:02d}-{low + 4:02d} dB"]
            + [f"speech: {clip['source_kind']}", f"speech: {clip['source_kind']}, {subset} {half}"])


def breakdown(evals: dict[str, dict], noisy: dict[tuple[str, str], dict], manifest: dict,
              metrics: list[str]) -> dict[str, dict[str, dict]]:
    """``{metric: {group: {"n": clips, <eval name>: mean difference, ...}}}``."""
    info = {(c["subset"], c["name"]): c for c in manifest["clips"]}
    sums: dict = defaultdict(lambda: defaultdict(lambda: defaultdict(float)))
    counts: dict = defaultdict(int)
    for name, data in evals.items():
        for row in data["per_clip"]:
            key = (row["subset"], row["name"])
            for group in groups_of(info[key]):
                if name == next(iter(evals)):
                    counts[group] += 1
                for m in metrics:
                    sums[m][group][name] += row[m] - noisy[key][m]
    return {m: {g: {"n": counts[g], **{e: sums[m][g][e] / counts[g] for e in evals}} for g in sorted(counts)}
            for m in metrics}


def markdown(table: dict[str, dict], labels: dict[str, str]) -> str:
    out = []
    for metric, rows in table.items():
        names = list(labels)
        out += [f"**{metric}, model − noisy** (mean over the clips of each group)", "",
                "| group | clips | " + " | ".join(labels[n] for n in names) + " |",
                "|---|---|" + "---|" * len(names)]
        scale = 100.0 if metric == "STOI" else 1.0  # STOI in points of %
        for group, row in rows.items():
            out.append(f"| {group} | {row['n']} | " + " | ".join(f"{scale * row[n]:+.2f}" for n in names) + " |")
        out.append("")
    return "\n".join(out)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("evals", type=Path, nargs="+", help="eval_<name>.json files with per-clip values")
    p.add_argument("--test-set", type=Path, required=True, help="the test-set folder the evaluations used")
    p.add_argument("--metrics", nargs="+", default=["STOI", "SI_SDR"],
                   help="metrics to break down (PESQ is slow to recompute for the noisy input; default STOI SI_SDR)")
    p.add_argument("--names", nargs="+", default=None,
                   help="column names, one per EVAL.json (default: each evaluation's label)")
    p.add_argument("--workers", type=int, default=None, help="metric processes (default: all cores)")
    p.add_argument("--out", type=Path, default=None, help="JSON with the numbers")
    args = p.parse_args()
    if args.names is not None and len(args.names) != len(args.evals):
        raise SystemExit(f"--names gives {len(args.names)} names for {len(args.evals)} evaluations")
    evals, labels = {}, {}
    for i, path in enumerate(args.evals):
        data = json.loads(path.read_text())
        if "per_clip" not in data:
            raise SystemExit(f"{path} has no per-clip values (a merged results.json drops them; use the eval file)")
        evals[str(i)] = data
        labels[str(i)] = args.names[i] if args.names else data["label"]
    manifest = json.loads((args.test_set / "manifest.json").read_text())
    clips = load_test_clips(args.test_set)
    rows = evaluate_pairs(((c[3], c[2]) for c in clips), args.metrics, workers=args.workers or os.cpu_count() or 1,
                          progress=True,
                          desc="metrics of the noisy input", total=len(clips))
    noisy = {(c[1], c[0]): r for c, r in zip(clips, rows)}
    missing = {(r["subset"], r["name"]) for e in evals.values() for r in e["per_clip"]} - set(noisy)
    if missing:
        raise SystemExit(f"{len(missing)} evaluated clips are not in {args.test_set}, e.g. {sorted(missing)[0]}")
    table = breakdown(evals, noisy, manifest, args.metrics)
    print(markdown(table, labels))
    if args.out:
        sources = {labels[k]: str(path) for k, path in zip(evals, args.evals)}
        args.out.write_text(json.dumps({"labels": labels, "sources": sources, "test_set": str(args.test_set),
                                        "breakdown": table}, indent=1))
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
