"""Fold evaluations made after a GPU speech run (on a CPU, or in an earlier run on the same test set) into that
run's results JSON, so render_speech_table.py shows them with their provenance.

    python benchmarks/merge_speech_evals.py RUN/results.json EVAL.json [EVAL.json ...] --manifest RUN/test_set_manifest.json \
        --out benchmarks/results/speech/results.json

Each EVAL.json is an ``eval_<name>.json`` written by ``linseq speech eval --out``; ``<name>`` becomes the row. With
``--manifest``, an evaluation is accepted only if its test set's manifest equals the run's (the pools folder path
aside; the copy beside EVAL.json is used when there is one), so every row is measured on the same clips. A
``test_set_manifest.sha256`` (store_speech_manifests.py) stands for the stored copy it names.

A model trained further over several runs (``linseq speech train --init-from``) enters as its own row:

    python benchmarks/merge_speech_evals.py RESULTS.json LAST_RUN/eval/eval_fast_m2_lightning.json \
        --name fast_m2_lightning_more --chain RUN1/metrics.json RUN2/metrics.json RUN3/metrics.json ...

``--chain`` lists each run's training metrics in order; the steps up to each run's best checkpoint (the one the
next run started from) are summed into the row's label and training entry. ``--single METRICS.json`` does the same
for one run from scratch that gets its own row; with ``--after ROW`` for one run that started from the checkpoint
evaluated in ROW (e.g. an averaged one), checked by weight hash where the run recorded its starting weights.
``--averaged ROW...`` enters a mean of checkpoints (``linseq speech average``) evaluated in those rows;
``--averaged-runs METRICS...`` one of runs' ``best/`` checkpoints that were not evaluated alone, named by the weight
hash each run recorded (``best.weights_sha256``), so only the mean costs a test-set evaluation.

Pools rebuilt on another machine give a test set with the same clips whose manifest differs only in the pools'
hash. ``--rebuilt-noisy EVAL_NOISY.json`` (the noisy input evaluated on that test set) accepts such evaluations
when every noisy mean is within 0.01 of the run's noisy row, and says so in the row's source. ``--complexity`` adds a
``linseq speech rtf`` JSON (GPU real-time factors) with its provenance.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

from linseq.experiments.speech_enhancement.training import wave_loss_terms


def read_manifest(path: Path) -> dict:
    """A test-set manifest from its JSON or from a ``test_set_manifest.sha256`` reference to a stored copy (see
    store_speech_manifests.py), whose hash is checked."""
    if path.suffix != ".sha256":
        return json.loads(path.read_text())
    digest, relative = path.read_text().split(maxsplit=1)
    stored = path.parent / relative.strip()
    if not stored.is_file():
        raise SystemExit(f"{path}: the manifest it names ({stored}) is missing")
    data = stored.read_bytes()
    if hashlib.sha256(data).hexdigest() != digest:
        raise SystemExit(f"{path}: {stored} does not have the recorded SHA-256")
    return json.loads(data)


def _manifest_key(path: Path) -> dict:
    data = read_manifest(path)
    data.pop("pools_dir", None)
    return data


REBUILT_TOLERANCE = 0.01


def _without_pools_hash(manifest: dict) -> dict:
    params = {k: v for k, v in manifest.get("params", {}).items() if k != "pools_manifest_sha256"}
    return {**manifest, "params": params}


def _noisy_agrees(run: dict, noisy_eval: Path) -> bool:
    """True when the noisy input's subset means on a rebuilt test set are within REBUILT_TOLERANCE of the run's."""
    ours = run.get("evals", {}).get("noisy", {}).get("subsets", {})
    theirs = json.loads(noisy_eval.read_text()).get("subsets", {})
    if not ours or set(ours) != set(theirs):
        return False
    return all(abs(ours[s][m] - theirs[s][m]) <= REBUILT_TOLERANCE
               for s in ours for m in ours[s] if isinstance(ours[s][m], (int, float)) and m in theirs[s])


def merge(run: dict, evals: list[Path], manifest: Path | None, name: str | None = None, label_suffix: str = "",
          rebuilt_noisy: Path | None = None) -> dict:
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
            beside = [d / f"test_set_manifest.{kind}" for d in (path.parent, path.parent.parent)
                      for kind in ("json", "sha256")]
            test_manifest = next((m for m in beside if m.is_file()), Path(data.get("test_set", "")) / "manifest.json")
            rebuilt = False
            if not test_manifest.is_file():
                raise SystemExit(f"{path}: no test-set manifest at {test_manifest}; not merged")
            if _manifest_key(test_manifest) != reference:
                same_clips = _without_pools_hash(_manifest_key(test_manifest)) == _without_pools_hash(reference)
                if not (same_clips and rebuilt_noisy is not None and _noisy_agrees(run, rebuilt_noisy)):
                    raise SystemExit(f"{path}: its test set ({test_manifest}) differs from the run's; not merged"
                                     + ("" if not same_clips else " (same clips from rebuilt pools: pass "
                                        "--rebuilt-noisy with the noisy input evaluated on them)"))
                rebuilt = True
        run["evals"][row] = data
        meta = data.get("meta", {})
        sources[row] = f"{meta.get('device', '?')}, {str(meta.get('date', '?'))[:10]}, commit {meta.get('commit', '?')}"
        if reference is not None and rebuilt:
            sources[row] += (f"; test set rebuilt from pools rebuilt later (same clips; the noisy input there is "
                             f"within {REBUILT_TOLERANCE} of this run's on every mean)")
        run.get("failures", {}).pop(f"eval {row}", None)
    return run


def _averaged_sources(evaluation: dict) -> list[str]:
    """Sorted weight hashes of the checkpoints averaged into the one ``evaluation`` measured."""
    sources = (evaluation.get("model_config") or {}).get("averaged_from")
    if not sources:
        raise SystemExit("--averaged: the evaluated checkpoint is not an average (no averaged_from in its config)")
    return sorted(s["weights_sha256"] for s in sources)


def averaged_suffix(run: dict, evaluation: dict, rows: list[str]) -> str:
    """Label suffix of an averaged checkpoint's row, after checking that the checkpoint evaluated in
    ``evaluation`` is the mean of exactly the checkpoints evaluated in ``rows`` of ``run`` (by weight hashes)."""
    sources = _averaged_sources(evaluation)
    missing = [r for r in rows if not run.get("evals", {}).get(r, {}).get("weights_sha256")]
    if missing:
        raise SystemExit(f"--averaged: no evaluated weights recorded for rows {missing}")
    if sorted(run["evals"][r]["weights_sha256"] for r in rows) != sources:
        raise SystemExit(f"--averaged: the averaged checkpoint's sources are not the checkpoints of rows {rows}")
    return f", mean weights of the checkpoints of {', '.join(rows)} (`linseq speech average`)"


def averaged_runs(run: dict, evaluation: dict, metrics: list[Path], after: str | None) -> tuple[str, dict]:
    """Label suffix and training entry of an averaged checkpoint whose sources are the ``best/`` checkpoints of the
    training runs with these metrics files (recorded as ``best.weights_sha256``), none of them evaluated alone;
    with ``after``, every run must have recorded that it started from the checkpoint evaluated in row ``after``."""
    sources = _averaged_sources(evaluation)
    runs = [json.loads(m.read_text()) for m in metrics]
    unnamed = [str(m) for m, r in zip(metrics, runs) if not (r.get("best") or {}).get("weights_sha256")]
    if unnamed:
        raise SystemExit(f"--averaged-runs: {unnamed} recorded no best.weights_sha256 (runs from before the record: "
                         "evaluate each and use --averaged ROW...)")
    if sorted(r["best"]["weights_sha256"] for r in runs) != sources:
        raise SystemExit("--averaged-runs: the averaged checkpoint's sources are not these runs' best checkpoints")
    if after and not all(parent_checked(run, after, r["config"]) for r in runs):
        raise SystemExit(f"--averaged-runs: a run recorded no starting weights to check against row {after!r}")
    t = runs_training(runs)
    entry = {"averaged_runs": [str(m) for m in metrics], "steps_per_run": t["steps_per_run"], "seeds": t["seeds"],
             "schedules": t["schedules"]}
    start = ""
    if after:
        entry.update(after_row=after, after_checked_by_hash=True)
        start = f" from the checkpoint of {after}"
    minutes = ", ".join(f"{m:.3g}" if (m := r["config"].get("max_minutes")) else "?" for r in runs)
    devices = sorted({r.get("meta", {}).get("device", "?") for r in runs})
    seeds = ", ".join(str(s) for s in t["seeds"])
    schedules = sorted(set(t["schedules"]))
    suffix = (f", mean weights of {len(runs)} runs{start} (seeds {seeds}; {minutes} min on {', '.join(devices)}, "
              f"{', '.join(f'{n:,}' for n in t['steps_per_run'])} steps; {'; '.join(schedules)}), "
              f"not evaluated alone (`linseq speech average`)")
    return suffix, entry


def parent_checked(run: dict, row: str, config: dict) -> bool:
    """Whether a run trained with ``config`` is checked to have started from the checkpoint evaluated in ``row``
    of ``run``: True when its recorded ``init_weights_sha256`` is that row's weights, False when the run predates
    the record; SystemExit when the row is unknown or the weights differ."""
    parent = run.get("evals", {}).get(row, {}).get("weights_sha256")
    if not parent:
        raise SystemExit(f"--after: no evaluated weights recorded for row {row!r}")
    started = config.get("init_weights_sha256")
    if started is not None and started != parent:
        raise SystemExit(f"--after: the run started from other weights than row {row!r}'s checkpoint")
    return started is not None


def _schedule(config: dict) -> str:
    """A run's learning rate in words: ``constant 0.001`` or ``cosine 0.0008 -> 2e-05, 300 warm-up steps``."""
    text = f"{config.get('lr_schedule', 'constant')} {config.get('lr', 1e-3):g}"
    if config.get("lr_schedule") == "cosine":
        text += f" -> {config.get('lr_min'):g}"
    if config.get("warmup_steps"):
        text += f", {config['warmup_steps']} warm-up steps"
    data = _departures(config)
    return f"{text} ({data})" if data else text


def _departures(config: dict) -> str:
    """A run's mixtures and loss where they differ from the recipe, e.g. ``SNR -5 to 30 dB, extra noise: tones,
    sweeps, loss + 0.0005 × (−SI-SDR) + 0.05 × (−STOI)``, or ''."""
    parts = []
    snr = config.get("snr_range")
    if snr and list(snr) != [-5, 20]:
        parts.append(f"SNR {snr[0]:g} to {snr[1]:g} dB")
    if config.get("extra_noise"):
        parts.append("extra noise: " + ", ".join(config["extra_noise"]))
    if config.get("clean_proportion"):
        parts.append(f"{100 * config['clean_proportion']:g} % without noise")
    if config.get("speech_eq_db"):
        parts.append(f"speech coloured ±{config['speech_eq_db']:g} dB")
    if config.get("speed_perturb"):
        parts.append(f"speech speed ±{100 * config['speed_perturb']:g} %")
    terms = wave_loss_terms(config.get("sisdr_weight"), config.get("stoi_weight"))
    if terms:
        parts.append("loss + " + " + ".join(terms))
    if config.get("ema_decay"):
        parts.append(f"weight EMA {config['ema_decay']:g}")
    return ", ".join(parts)


def chained_training(metrics: list[Path]) -> dict:
    """Training entry of a model trained over chained runs: steps to each run's best checkpoint, summed."""
    return runs_training([json.loads(m.read_text()) for m in metrics])


def runs_training(runs: list[dict]) -> dict:
    """:func:`chained_training` of runs' metrics already read."""
    steps = [int(r["best"]["step"]) for r in runs]
    return {"steps": sum(steps), "steps_per_run": steps, "batch_size": runs[-1]["config"]["batch_size"],
            "seeds": [r["config"].get("seed") for r in runs], "schedules": [_schedule(r["config"]) for r in runs],
            "best": runs[-1]["best"],
            "parameters": runs[-1].get("parameters")}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", type=Path, help="results.json of the GPU run")
    p.add_argument("evals", type=Path, nargs="+", help="eval_<name>.json files")
    p.add_argument("--manifest", type=Path, default=None,
                   help="the run's test_set_manifest.json (or its .sha256 reference to a stored copy)")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--name", default=None, help="row name for a single EVAL.json (default: from its file name)")
    p.add_argument("--chain", type=Path, nargs="+", default=None,
                   help="metrics.json of each chained training run, in order (needs --name)")
    p.add_argument("--single", type=Path, default=None,
                   help="metrics.json of one training run from scratch that gets its own row (needs --name)")
    p.add_argument("--after", default=None, metavar="ROW",
                   help="with --single: the run started from the checkpoint evaluated in ROW (e.g. an averaged one); "
                        "checked by weight hash where the run recorded the weights it started from")
    p.add_argument("--averaged", nargs="+", default=None, metavar="ROW",
                   help="rows whose evaluated checkpoints the single EVAL.json's weights average (`linseq speech "
                        "average`); their weight hashes must be the averaged checkpoint's sources (needs --name)")
    p.add_argument("--averaged-runs", nargs="+", type=Path, default=None, metavar="METRICS",
                   help="metrics.json of the training runs whose best/ checkpoints the single EVAL.json's weights "
                        "average, checked by the best.weights_sha256 each run recorded; the runs need no evaluation "
                        "of their own (needs --name; with --after ROW: each run started from ROW's checkpoint)")
    p.add_argument("--rebuilt-noisy", type=Path, default=None,
                   help="eval_noisy.json on a test set rebuilt from rebuilt pools (same clips): accept its evaluations")
    p.add_argument("--complexity", type=Path, default=None, help="complexity.json with GPU real-time factors")
    args = p.parse_args()
    run = json.loads(args.run.read_text())
    suffix = ""
    if args.chain:
        if not args.name:
            raise SystemExit("--chain needs --name (the row of the model trained further)")
        t = chained_training(args.chain)
        last = _departures(json.loads(args.chain[-1].read_text())["config"])
        suffix = f", trained further ({len(args.chain)} runs, {t['steps']:,} steps{'; last: ' + last if last else ''})"
        run.setdefault("training", {})[args.name] = t
    if args.after and not (args.single or args.averaged_runs):
        raise SystemExit("--after needs --single or --averaged-runs (the runs that started from ROW's checkpoint)")
    if args.single:
        if not args.name or args.chain:
            raise SystemExit("--single needs --name and no --chain")
        t = chained_training([args.single])
        metrics = json.loads(args.single.read_text())
        config, device = metrics["config"], metrics.get("meta", {}).get("device", "?")
        start = ""
        if args.after:
            t.update(after_row=args.after, after_checked_by_hash=parent_checked(run, args.after, config))
            start = f" from the checkpoint of {args.after}"
        suffix = (f", one run{start} ({config.get('max_minutes'):.3g} min on {device}, {t['steps']:,} steps, "
                  f"{_schedule(config)})")
        run.setdefault("training", {})[args.name] = t
    if args.averaged:
        if not args.name or args.chain or args.single or len(args.evals) != 1:
            raise SystemExit("--averaged needs --name, one EVAL.json and no --chain or --single")
        suffix = averaged_suffix(run, json.loads(args.evals[0].read_text()), args.averaged)
        run.setdefault("training", {})[args.name] = {"averaged_rows": args.averaged}
    if args.averaged_runs:
        if not args.name or args.chain or args.single or args.averaged or len(args.evals) != 1:
            raise SystemExit("--averaged-runs needs --name, one EVAL.json and no --chain, --single or --averaged")
        suffix, entry = averaged_runs(run, json.loads(args.evals[0].read_text()), args.averaged_runs, args.after)
        run.setdefault("training", {})[args.name] = entry
    if args.complexity:
        c = json.loads(args.complexity.read_text())
        run["complexity"] = c
        meta = c.get("meta", {})
        run["complexity_source"] = (f"{meta.get('device', '?')}, {str(meta.get('date', '?'))[:10]}, "
                                    f"commit {meta.get('commit', '?')}")
        run.get("failures", {}).pop("rtf", None)
    merged = merge(run, args.evals, args.manifest, args.name, suffix, args.rebuilt_noisy)
    args.out.write_text(json.dumps(merged, indent=1, default=str))
    print(f"wrote {args.out}: {', '.join(merged['evals'])}")


if __name__ == "__main__":
    main()
