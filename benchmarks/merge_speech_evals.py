"""Fold evaluations made after a GPU speech run (on a CPU, or in an earlier run on the same test set) into that
run's results JSON, so render_speech_table.py shows them with their provenance.

    python benchmarks/merge_speech_evals.py RUN/results.json EVAL.json [EVAL.json ...] --manifest RUN/test_set_manifest.json \
        --out benchmarks/results/speech/results.json

Each EVAL.json is an ``eval_<name>.json`` written by ``linseq speech eval --out``; ``<name>`` becomes the row. With
``--manifest``, an evaluation is accepted only if its test set's manifest equals the run's (the pools folder path
aside; the copy beside EVAL.json is used when there is one), so every row is measured on the same clips.

A model trained further over several runs (``linseq speech train --init-from``) enters as its own row:

    python benchmarks/merge_speech_evals.py RESULTS.json LAST_RUN/eval/eval_fast_m2_lightning.json \
        --name fast_m2_lightning_more --chain RUN1/metrics.json RUN2/metrics.json RUN3/metrics.json ...

``--chain`` lists each run's training metrics in order; the steps up to each run's best checkpoint (the one the
next run started from) are summed into the row's label and training entry. ``--complexity`` adds a
``linseq speech rtf`` JSON (GPU real-time factors) with its provenance.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def _manifest_key(path: Path) -> dict:
    data = json.loads(path.read_text())
    data.pop("pools_dir", None)
    return data


def merge(run: dict, evals: list[Path], manifest: Path | None, name: str | None = None, label_suffix: str = "") -> dict:
    """``run`` with ``evals`` added under ``run["evals"]`` and their origin under ``run["eval_sources"]``.

    ``name`` (one evaluation only) replaces the row name taken from the file name; ``label_suffix`` is appended to
    each row's label."""
    if name is not None and len(evals) != 1:
        raise SystemExit("--name needs exactly one EVAL.json")
    reference = _manifest_key(manifest) if manifest else None
    run.setdefault("evals", {})
    sources = run.setdefault("eval_sources", {})
    for path in evals:
        row = name or path.stem.removeprefix("eval_")
        data = json.loads(path.read_text())
        data.pop("per_clip", None)
        data["label"] += label_suffix
        if reference is not None:
            # the manifest saved beside the evaluation or beside its eval/ folder (a GPU run's copy), else the
            # test set's own
            beside = [d / "test_set_manifest.json" for d in (path.parent, path.parent.parent)]
            test_manifest = next((m for m in beside if m.is_file()), Path(data.get("test_set", "")) / "manifest.json")
            if not test_manifest.is_file() or _manifest_key(test_manifest) != reference:
                raise SystemExit(f"{path}: its test set ({test_manifest}) differs from the run's; not merged")
        run["evals"][row] = data
        meta = data.get("meta", {})
        sources[row] = f"{meta.get('device', '?')}, {str(meta.get('date', '?'))[:10]}, commit {meta.get('commit', '?')}"
        run.get("failures", {}).pop(f"eval {row}", None)
    return run


def _schedule(config: dict) -> str:
    """A run's learning rate in words: ``constant 0.001`` or ``cosine 0.0008 -> 2e-05, 300 warm-up steps``."""
    text = f"{config.get('lr_schedule', 'constant')} {config.get('lr', 1e-3):g}"
    if config.get("lr_schedule") == "cosine":
        text += f" -> {config.get('lr_min'):g}"
    if config.get("warmup_steps"):
        text += f", {config['warmup_steps']} warm-up steps"
    data = _data(config)
    return f"{text} ({data})" if data else text


def _data(config: dict) -> str:
    """A run's mixtures where they differ from the recipe: ``SNR -5 to 30 dB, extra noise: tones, sweeps`` or ''."""
    parts = []
    snr = config.get("snr_range")
    if snr and list(snr) != [-5, 20]:
        parts.append(f"SNR {snr[0]:g} to {snr[1]:g} dB")
    if config.get("extra_noise"):
        parts.append("extra noise: " + ", ".join(config["extra_noise"]))
    return ", ".join(parts)


def chained_training(metrics: list[Path]) -> dict:
    """Training entry of a model trained over chained runs: steps to each run's best checkpoint, summed."""
    runs = [json.loads(m.read_text()) for m in metrics]
    steps = [int(r["best"]["step"]) for r in runs]
    return {"steps": sum(steps), "steps_per_run": steps, "batch_size": runs[-1]["config"]["batch_size"],
            "seeds": [r["config"].get("seed") for r in runs], "schedules": [_schedule(r["config"]) for r in runs],
            "best": runs[-1]["best"],
            "parameters": runs[-1].get("parameters")}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", type=Path, help="results.json of the GPU run")
    p.add_argument("evals", type=Path, nargs="+", help="eval_<name>.json files")
    p.add_argument("--manifest", type=Path, default=None, help="the run's test_set_manifest.json")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--name", default=None, help="row name for a single EVAL.json (default: from its file name)")
    p.add_argument("--chain", type=Path, nargs="+", default=None,
                   help="metrics.json of each chained training run, in order (needs --name)")
    p.add_argument("--complexity", type=Path, default=None, help="complexity.json with GPU real-time factors")
    args = p.parse_args()
    run = json.loads(args.run.read_text())
    suffix = ""
    if args.chain:
        if not args.name:
            raise SystemExit("--chain needs --name (the row of the model trained further)")
        t = chained_training(args.chain)
        last = _data(json.loads(args.chain[-1].read_text())["config"])
        suffix = f", trained further ({len(args.chain)} runs, {t['steps']:,} steps{'; last: ' + last if last else ''})"
        run.setdefault("training", {})[args.name] = t
    if args.complexity:
        c = json.loads(args.complexity.read_text())
        run["complexity"] = c
        meta = c.get("meta", {})
        run["complexity_source"] = (f"{meta.get('device', '?')}, {str(meta.get('date', '?'))[:10]}, "
                                    f"commit {meta.get('commit', '?')}")
        run.get("failures", {}).pop("rtf", None)
    merged = merge(run, args.evals, args.manifest, args.name, suffix)
    args.out.write_text(json.dumps(merged, indent=1, default=str))
    print(f"wrote {args.out}: {', '.join(merged['evals'])}")


if __name__ == "__main__":
    main()
