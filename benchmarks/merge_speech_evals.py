"""Fold evaluations made after a GPU speech run (on a CPU, or in an earlier run on the same test set) into that
run's results JSON, so render_speech_table.py shows them with their provenance.

    python benchmarks/merge_speech_evals.py RUN/results.json EVAL.json [EVAL.json ...] --manifest RUN/test_set_manifest.json \
        --out benchmarks/results/speech/results.json

Each EVAL.json is an ``eval_<name>.json`` written by ``linseq speech eval --out``; ``<name>`` becomes the row. With
``--manifest``, an evaluation is accepted only if its test set's manifest equals the run's (the pools folder path
aside; the copy beside EVAL.json is used when there is one), so every row is measured on the same clips.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def _manifest_key(path: Path) -> dict:
    data = json.loads(path.read_text())
    data.pop("pools_dir", None)
    return data


def merge(run: dict, evals: list[Path], manifest: Path | None) -> dict:
    """``run`` with ``evals`` added under ``run["evals"]`` and their origin under ``run["eval_sources"]``."""
    reference = _manifest_key(manifest) if manifest else None
    run.setdefault("evals", {})
    sources = run.setdefault("eval_sources", {})
    for path in evals:
        name = path.stem.removeprefix("eval_")
        data = json.loads(path.read_text())
        data.pop("per_clip", None)
        if reference is not None:
            # the manifest saved beside the evaluation (a GPU run's copy), else the test set's own
            test_manifest = path.parent / "test_set_manifest.json"
            if not test_manifest.is_file():
                test_manifest = Path(data.get("test_set", "")) / "manifest.json"
            if not test_manifest.is_file() or _manifest_key(test_manifest) != reference:
                raise SystemExit(f"{path}: its test set ({test_manifest}) differs from the run's; not merged")
        run["evals"][name] = data
        meta = data.get("meta", {})
        sources[name] = f"{meta.get('device', '?')}, {str(meta.get('date', '?'))[:10]}, commit {meta.get('commit', '?')}"
        run.get("failures", {}).pop(f"eval {name}", None)
    return run


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", type=Path, help="results.json of the GPU run")
    p.add_argument("evals", type=Path, nargs="+", help="eval_<name>.json files")
    p.add_argument("--manifest", type=Path, default=None, help="the run's test_set_manifest.json")
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args()
    merged = merge(json.loads(args.run.read_text()), args.evals, args.manifest)
    args.out.write_text(json.dumps(merged, indent=1, default=str))
    print(f"wrote {args.out}: {', '.join(merged['evals'])}")


if __name__ == "__main__":
    main()
