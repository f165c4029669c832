"""``linseq train``: train the linear-attention LM (TransNormerLLM layers) on text, with checkpoints and resume."""

from __future__ import annotations

import argparse

NAME = "train"
HELP = "train a Lightning-attention language model (byte-level) on text"
DESCRIPTION = (
    "Train a causal LM of Lightning (TransNormerLLM) layers, or a hybrid / all-softmax / all-EcoFormer model, on a\n"
    "byte-level corpus. EcoFormer layers (--pattern eco) follow EcoFormer's schedule: softmax attention for\n"
    "--eco-softmax-steps (default half the steps), then each layer's hash is fitted and training goes on in hash mode.\n"
    "Without --data it uses this Python's own standard-library sources. Writes OUT/checkpoint/\n"
    "(Hugging Face folder: config.json + model.safetensors, plus optimizer and trainer state), OUT/metrics.json\n"
    "and OUT/loss.png. Multi-GPU: launch with torchrun (WORLD_SIZE is detected)."
)
EPILOG = """example:
  linseq train                                   # tiny preset, a few minutes on a laptop CPU
  linseq train --preset small --out runs/small   # ~92M parameters, one GPU
  linseq train --data ~/notes --pattern hybrid --steps 2000 --out runs/notes
  linseq train --pattern eco --steps 400 --eco-softmax-steps 200 --out runs/eco
  linseq train --out runs/lm --resume            # continue an interrupted run
  torchrun --nproc-per-node 4 -m linseq train --preset small --out runs/small
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from linseq.models.lm.presets import PRESETS

    parser.add_argument("--preset", default="tiny", choices=sorted(PRESETS), help="model size and schedule (default tiny)")
    parser.add_argument("--data", default=None, help="text file or folder (default: the Python standard library)")
    parser.add_argument("--out", default="runs/lm", help="run folder (default runs/lm)")
    parser.add_argument(
        "--pattern", dest="attn_pattern", default=None, choices=["linear", "hybrid", "softmax", "eco"],
        help="token mixers: all Lightning (default), 1 softmax in 8, all softmax, or all EcoFormer",
    )
    parser.add_argument(
        "--eco-softmax-steps", type=int, default=None,
        help="EcoFormer layers: steps in softmax mode before the hash fit (default: half of --steps; 0: hash from the start)",
    )
    parser.add_argument("--steps", type=int, default=None, help="optimizer steps (default: preset)")
    parser.add_argument("--batch-size", type=int, default=None, help="windows per step per process")
    parser.add_argument("--seq-len", type=int, default=None, help="training window in bytes")
    parser.add_argument("--lr", type=float, default=None, help="peak learning rate")
    parser.add_argument("--eval-every", type=int, default=None, help="validation period in steps")
    parser.add_argument("--eval-batches", type=int, default=None, help="validation batches per evaluation")
    parser.add_argument("--checkpoint-every", type=int, default=None, help="checkpoint period in steps")
    parser.add_argument("--max-bytes", type=int, default=None, help="read at most this many corpus bytes")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint if present")
    parser.add_argument("--device", default="auto", help="auto (CUDA if available), cpu, cuda, cuda:1, ...")
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="hide the progress bar")


def run(args: argparse.Namespace) -> int:
    from linseq.models.lm.training import TrainOptions, train_lm

    fields = TrainOptions.__dataclass_fields__
    options = TrainOptions(**{k: v for k, v in vars(args).items() if k in fields})
    summary = train_lm(options)
    if summary["rank"] != 0:  # under torchrun only the first process reports
        return 0
    first, last = summary["initial_val_bpb"], summary["final_val_bpb"]
    print(
        f"validation: {first:.3f} -> {last:.3f} bits/byte; checkpoint: {summary['checkpoint']}; "
        f"metrics: {options.out}/metrics.json, plot: {options.out}/loss.png"
    )
    print(f"next: linseq generate --checkpoint {options.out} --prompt 'def '")
    return 0
