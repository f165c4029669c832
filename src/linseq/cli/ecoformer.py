"""``linseq lra``: the Long-Range-Arena-style benchmark of softmax, Lightning and EcoFormer attention."""

from __future__ import annotations

import argparse

NAME = "lra"
HELP = "offline ListOps/Pathfinder benchmark: softmax vs Lightning vs EcoFormer attention"
DESCRIPTION = (
    "Generate ListOps and Pathfinder offline, train small classifiers with each attention at equal budgets\n"
    "(EcoFormer: softmax phase, hash fit, fine-tune), and measure accuracy, time and memory against length,\n"
    "the energy model (3.7 pJ/mul, 0.9 pJ/add) and learned vs random hashes. Writes lra_results.json,\n"
    "lra_summary.png and lra_tables.md into --out.\n\n"
    "Presets: ci (2-core CPU, about 3 minutes, one training after another); full (one GPU, under 4 minutes, 600\n"
    "steps: too short to learn the tasks); gpu (one GPU, about 6 minutes: the six trainings run at once in separate\n"
    "processes, --jobs 6, each for up to 240 s after an untimed warm-up step, the learning-rate schedule following\n"
    "whichever of steps and seconds runs out first; then the scaling sweep on the idle GPU).\n"
    "With --jobs > 1 the 'train s' of a model is wall time on a shared device: compare speed in the scaling sweep."
)
EPILOG = (
    "examples:\n"
    "  OMP_NUM_THREADS=1 linseq lra --preset ci --attn softmax,lightning,ecoformer --out benchmarks/results/ecoformer\n"
    "  linseq lra --preset gpu --out /tmp/lra_gpu           # or: benchmarks/gpu_ecoformer.sh /tmp/lra_gpu"
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--preset", choices=("ci", "full", "gpu"), default="ci",
                   help="ci: CPU, minutes; full: one GPU, short; gpu: one GPU, 6 trainings at once (default: ci)")
    p.add_argument("--attn", default="softmax,lightning,ecoformer", help="comma-separated attentions to compare")
    p.add_argument("--tasks", default="listops,pathfinder", help="comma-separated tasks")
    p.add_argument("--out", default="benchmarks/results/ecoformer", help="output folder")
    p.add_argument("--seed", type=int, default=None, help="override the preset's seed")
    p.add_argument("--steps", type=int, default=None, help="override the training steps per model")
    p.add_argument("--jobs", type=int, default=None,
                   help="trainings run at once, each in its own process on the same device (preset: ci 1, gpu 6)")
    p.add_argument("--workers", type=int, default=None, help="processes generating the data (preset: ci 1, gpu 16)")
    p.add_argument("--max-train-seconds", type=float, default=None,
                   help="override the per-model training time cap (warm-up excluded)")
    p.add_argument("--normalizer", choices=("consistent", "reference"), default=None,
                   help="EcoFormer normaliser (default: the preset's, consistent)")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from linseq.experiments.lra import markdown_tables, preset, run_lra

    given = (("seed", args.seed), ("steps", args.steps), ("normalizer", args.normalizer), ("jobs", args.jobs),
             ("workers", args.workers), ("max_train_seconds", args.max_train_seconds))
    overrides = {k: v for k, v in given if v is not None}
    cfg = preset(args.preset, **overrides)
    attns = [a.strip() for a in args.attn.split(",") if a.strip()]
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    results = run_lra(cfg, args.out, attns, tasks, preset_name=args.preset)
    out = Path(args.out)
    (out / "lra_tables.md").write_text(markdown_tables(results))
    print(f"wrote {out / 'lra_results.json'}, {out / 'lra_summary.png'} and {out / 'lra_tables.md'}")
    return 0
