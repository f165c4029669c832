"""``linseq icl``: the in-context-learning vs weight-shifting experiment for softmax regression."""

from __future__ import annotations

import argparse
from pathlib import Path

NAME = "icl"
HELP = "in-context learning vs one GD step for softmax regression (identities + trained attention)"
DESCRIPTION = """\
Tests numerically the claim of Li, Song, Xia, Yu, Zhou (arXiv 2304.13276): for softmax regression
    min_x ‖softmax(A x) − b‖₂        (softmax over the n rows of the document A ∈ ℝ^{n×d})
one gradient step on the weight x and one self-attention layer on the data A both amount to solving the
problem with a shifted target b, with a bounded shift; hence a trained attention layer should behave like one
step of gradient descent.

Part A (float64, exact): the closed-form gradient AᵀJ(f − b), J = diag(f) − ffᵀ, against autograd; the
weight-shift and data-shift reformulations L(x₁; A, b) = L(x₀; A, b̃) and L(x; A₁, b) = L(x; A, b̂); the
measured shift against the softmax-Jacobian bound ½‖A‖₂‖Δx‖ and against the paper's M·‖Δx‖ with
M = n^1.5·exp(10R²); and one GD step written as one causal linear-attention layer (linseq.lightning_attn).

Part B (trained): one-layer softmax and linear self-attention read the context tokens [a_j; n·b_j − 1] and
predict softmax(A' x*) on query rows A'. They are compared with one GD step from x = 0 (η fitted) by loss,
Preds Diff, Model Diff and Model Cos (gradients of each query logit w.r.t. its query row) over training, and
swept over d, n and the attention temperature.

Presets: ci (about a minute on a CPU, small sizes) and paper (n = 200 and 25, d = 20, d swept 5..40; about
10 minutes on a 2-core CPU with fewer steps and seeds; on CUDA batch 512, 5000 steps, 5 seeds).
Outputs in --out: results.json (with device, versions, commit, seed) and PNG figures."""
EPILOG = """\
examples:
  linseq icl --preset ci --out /tmp/icl                 # a minute on a CPU
  OMP_NUM_THREADS=1 linseq icl --preset paper --out benchmarks/results/icl
  linseq icl --replot benchmarks/results/icl/results.json --docs docs/icl.md   # redraw + refresh the tables"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preset", choices=("ci", "paper"), default="ci", help="sizes and budget (default: ci)")
    parser.add_argument("--out", type=Path, default=Path("icl_results"),
                        help="output folder for results.json and figures (default: ./icl_results)")
    parser.add_argument("--device", default=None,
                        help="torch device for Part B (default: cuda if available, else cpu); Part A is CPU float64")
    parser.add_argument("--seed", type=int, default=0, help="base seed; seeds of repetitions are seed, seed+1, ...")
    parser.add_argument("--no-plots", action="store_true", help="write results.json only")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--replot", type=Path, default=None, metavar="RESULTS_JSON",
                        help="do not train: redraw the figures of an existing results.json into its folder")
    parser.add_argument("--docs", type=Path, default=None, metavar="MARKDOWN",
                        help="refill the generated block of this Markdown file (e.g. docs/icl.md) from the results")


def run(args: argparse.Namespace) -> int:
    from linseq.experiments.icl_softmax_regression.experiment import get_preset, run_experiment
    from linseq.experiments.icl_softmax_regression.plots import make_plots
    from linseq.experiments.icl_softmax_regression.report import load_results, statement, update_markdown

    if args.replot is not None:
        results = load_results(args.replot)
        paths = make_plots(results, args.replot.parent)
        out = args.replot.parent
    else:
        preset = get_preset(args.preset, args.device)
        preset.seed = args.seed
        results = run_experiment(preset, args.out, progress=not args.no_progress, plots=not args.no_plots)
        paths = [Path(p) for p in results.get("figures_written", [])]
        out = args.out
        print(f"wrote {out / 'results.json'}")
    for p in paths:
        print(f"wrote {p}")
    if args.docs is not None:
        print(f"updated {update_markdown(args.docs, results)}")
    print()
    print(statement(results))
    return 0
