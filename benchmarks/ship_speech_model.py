"""Make a trained Fast FullSubNet the model `linseq enhance` uses by default, only if the results say it may ship.

    python benchmarks/ship_speech_model.py ROW CHECKPOINT [--results benchmarks/results/speech/results.json]

ROW names a row of the merged results (``merge_speech_evals.py``); CHECKPOINT is the folder that row evaluated.
The script refuses, naming every shortfall, unless
- the row beats the noisy input on every metric (WB-PESQ, NB-PESQ, STOI, SI-SDR) of every subset (issue 6), and
- CHECKPOINT's weights are the ones the row measured (``weights_sha256`` that ``linseq speech eval`` records).
Then it copies config.json and model.safetensors into ``src/linseq/models/speech/weights/fast_fullsubnet/`` (the
package data) with ``provenance.json``: the row, its and the noisy input's means, the margins and the hash.
tests/experiments/speech_enhancement/test_shipped_speech_model.py checks the shipped files against it.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path
from typing import Any

from linseq.experiments.speech_enhancement.checkpoint import (
    CONFIG_FILE, MODEL_FILE, SHIPPED, find_checkpoint, read_config, staged_dir, weights_sha256,
)
from linseq.experiments.speech_enhancement.evaluate import SUBSETS
from linseq.experiments.speech_enhancement.metrics import METRICS
from linseq.io import run_metadata, save_json

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "speech" / "results.json"
PROVENANCE = "provenance.json"


def shortfalls(row: dict[str, Any], noisy: dict[str, Any]) -> list[str]:
    """Every (subset, metric) where ``row`` does not beat ``noisy`` (both merged result rows), as readable lines."""
    bad = []
    for subset in SUBSETS:
        for metric in METRICS:
            ours = row.get("subsets", {}).get(subset, {}).get(metric)
            ref = noisy.get("subsets", {}).get(subset, {}).get(metric)
            if ours is None or ref is None:
                bad.append(f"{subset} {metric}: missing ({'row' if ours is None else 'noisy'})")
            elif not ours > ref:
                bad.append(f"{subset} {metric}: {ours:.4f} does not beat noisy {ref:.4f}")
    return bad


def margins(row: dict[str, Any], noisy: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Row − noisy per subset and metric."""
    return {s: {m: row["subsets"][s][m] - noisy["subsets"][s][m] for m in METRICS} for s in SUBSETS}


def ship(results_path: Path, name: str, checkpoint: Path, dest: Path = SHIPPED) -> dict[str, Any]:
    """Check ``name`` in ``results_path`` and ``checkpoint`` as the module doc says, then install into ``dest``.
    Returns the provenance written. ValueError with every reason when it may not ship."""
    evals = json.loads(Path(results_path).read_text()).get("evals", {})
    if name not in evals or "noisy" not in evals:
        raise ValueError(f"{results_path} has no row {name!r} and a 'noisy' row; rows: {sorted(evals)}")
    row, noisy = evals[name], evals["noisy"]
    reasons = shortfalls(row, noisy)
    ckpt = find_checkpoint(checkpoint)
    config = read_config(ckpt)
    if config.get("model") != "fast_fullsubnet":
        reasons.append(f"{ckpt} is a {config.get('model')}, not a Fast FullSubNet")
    sha = weights_sha256(ckpt)
    measured = row.get("weights_sha256")
    if measured != sha:
        reasons.append(f"{ckpt}/{MODEL_FILE} (sha256 {sha[:12]}…) is not the checkpoint row {name!r} measured ("
                       + (f"sha256 {measured[:12]}…)" if measured else "it records no hash: re-run linseq speech eval)"))
    if reasons:
        raise ValueError(f"row {name!r} may not ship:\n  " + "\n  ".join(reasons))
    provenance = {
        "row": name, "label": row.get("label"), "results": str(Path(results_path).resolve().relative_to(ROOT))
        if Path(results_path).resolve().is_relative_to(ROOT) else str(results_path),
        "weights_sha256": sha, "subsets": {s: row["subsets"][s] for s in SUBSETS},
        "noisy": {s: noisy["subsets"][s] for s in SUBSETS}, "margin_over_noisy": margins(row, noisy),
        "evaluated": row.get("meta"), "shipped": run_metadata(),
    }
    with staged_dir(Path(dest)) as tmp:
        for f in (CONFIG_FILE, MODEL_FILE):
            shutil.copy2(ckpt / f, tmp / f)
        save_json(tmp / PROVENANCE, provenance)
    return provenance


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("row", help="row name in the results JSON, e.g. fast_m2_lightning_run12")
    p.add_argument("checkpoint", type=Path, help="the checkpoint folder that row evaluated")
    p.add_argument("--results", type=Path, default=RESULTS)
    p.add_argument("--dest", type=Path, default=SHIPPED, help=f"install folder (default {SHIPPED})")
    args = p.parse_args()
    try:
        prov = ship(args.results, args.row, args.checkpoint, args.dest)
    except (ValueError, FileNotFoundError) as err:
        print(f"ship_speech_model: {err}", file=sys.stderr)
        return 2
    print(f"shipped {args.row} into {args.dest} (sha256 {prov['weights_sha256'][:12]}…); margins over noisy:")
    for subset, ms in prov["margin_over_noisy"].items():
        print(f"  {subset}: " + ", ".join(f"{m} {v * (100 if m == 'STOI' else 1):+.3f}" for m, v in ms.items())
              + " (STOI in points, SI-SDR in dB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
