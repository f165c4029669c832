"""How sure a speech model's gain over the noisy input is: paired per-clip differences with bootstrap intervals.

A results row gives one mean per subset and metric; a small mean gain (a few tenths of a STOI point, say) may be
noise in the choice of clips. This pairs each clip's metric with the noisy input's on the same clip, and reports
per subset and metric the mean difference (model − noisy), a 95 % percentile bootstrap interval for it (clips
resampled with replacement, a fixed seed), and the share of clips the model improves:

    python benchmarks/speech_paired_ci.py EVAL.json NOISY_EVAL.json [--resamples 10000] [--out ci.json]

Both files are ``linseq speech eval --out`` evaluations with per-clip values (``eval_<name>.json``), of the same
test set: every clip of EVAL must be in NOISY_EVAL, or it stops, naming the first missing one.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

SUBSETS = ("with_reverb", "no_reverb")


def paired_differences(model: dict, reference: dict[tuple[str, str], dict], metric: str, subset: str) -> np.ndarray:
    """Per-clip ``model − noisy`` of ``metric`` over the clips of ``subset``; ``reference``: the noisy input's
    per-clip rows by ``(subset, name)``. Shape [clips]."""
    out = []
    for row in model["per_clip"]:
        if row["subset"] != subset:
            continue
        key = (row["subset"], row["name"])
        if key not in reference:
            raise ValueError(f"clip {key[1]!r} of subset {subset!r} has no noisy value")
        out.append(row[metric] - reference[key][metric])
    if not out:
        raise ValueError(f"no clips of subset {subset!r}")
    return np.asarray(out, dtype=np.float64)


def bootstrap_interval(diff: np.ndarray, resamples: int = 10000, level: float = 0.95,
                       seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``diff`` (clips resampled with replacement)."""
    rng = np.random.default_rng(seed)
    means = diff[rng.integers(0, len(diff), size=(resamples, len(diff)))].mean(axis=1)
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(means, [tail, 1.0 - tail])
    return float(low), float(high)


def paired_table(model: dict, noisy: dict, metrics: list[str], resamples: int = 10000,
                 seed: int = 0) -> dict[str, dict[str, dict]]:
    """``{subset: {metric: {"n", "mean", "low", "high", "improved"}}}``, differences in the metric's own unit."""
    reference = {(r["subset"], r["name"]): r for r in noisy["per_clip"]}
    table: dict[str, dict[str, dict]] = {}
    for subset in SUBSETS:
        table[subset] = {}
        for metric in metrics:
            diff = paired_differences(model, reference, metric, subset)
            low, high = bootstrap_interval(diff, resamples, seed=seed)
            table[subset][metric] = {"n": len(diff), "mean": float(diff.mean()), "low": low, "high": high,
                                     "improved": float((diff > 0).mean())}
    return table


def markdown(table: dict[str, dict[str, dict]], label: str) -> str:
    out = [f"**{label} − noisy**, per clip; 95 % bootstrap interval of the mean; STOI in points of %", "",
           "| subset | metric | clips | mean | 95 % interval | clips improved |", "|---|---|---|---|---|---|"]
    for subset, rows in table.items():
        for metric, r in rows.items():
            s = 100.0 if metric == "STOI" else 1.0
            out.append(f"| {subset} | {metric} | {r['n']} | {s * r['mean']:+.3f} | "
                       f"[{s * r['low']:+.3f}, {s * r['high']:+.3f}] | {100 * r['improved']:.0f} % |")
    return "\n".join(out)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("eval", type=Path, help="the model's eval_<name>.json (per-clip values)")
    p.add_argument("noisy", type=Path, help="the noisy input's eval_noisy.json on the same test set")
    p.add_argument("--metrics", nargs="+", default=["WB_PESQ", "NB_PESQ", "STOI", "SI_SDR"])
    p.add_argument("--resamples", type=int, default=10000, help="bootstrap resamples (default 10000)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=None, help="JSON with the numbers")
    args = p.parse_args()
    if args.resamples < 100:
        raise SystemExit(f"--resamples {args.resamples}: use at least 100")
    data = {}
    for role, path in (("eval", args.eval), ("noisy", args.noisy)):
        if not path.is_file():
            raise SystemExit(f"{role} file not found: {path}")
        data[role] = json.loads(path.read_text())
        if "per_clip" not in data[role]:
            raise SystemExit(f"{path} has no per-clip values (a merged results.json drops them; use the eval file)")
    try:
        table = paired_table(data["eval"], data["noisy"], args.metrics, args.resamples, args.seed)
    except (ValueError, KeyError) as err:
        raise SystemExit(f"cannot pair {args.eval} with {args.noisy}: {err}") from None
    print(markdown(table, data["eval"].get("label", args.eval.stem)))
    if args.out:
        args.out.write_text(json.dumps({"eval": str(args.eval), "noisy": str(args.noisy),
                                        "weights_sha256": data["eval"].get("weights_sha256"),
                                        "resamples": args.resamples, "seed": args.seed, "level": 0.95,
                                        "table": table}, indent=1))
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
