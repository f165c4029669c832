"""``linseq enhance``: remove background noise from speech recordings with the shipped Fast FullSubNet."""

from __future__ import annotations

import argparse
from pathlib import Path

NAME = "enhance"
HELP = "remove background noise from speech recordings (Fast FullSubNet, real-time capable)"
DESCRIPTION = """\
Denoise speech recordings with Fast FullSubNet (Hao & Li, 2022): a causal model that predicts a complex
ratio mask from the noisy spectrum, 32 ms window + 32 ms look-ahead. By default it uses the checkpoint
shipped inside linseq; --checkpoint uses one of yours (a folder written by `linseq speech train`).

Any format soundfile reads (WAV, FLAC, OGG, ...). The model works at 16 kHz: other rates are resampled to
16 kHz and back, so the output has the input's rate, length and channel count (note that content above
8 kHz is lost). Stereo/multichannel: each channel is enhanced on its own. Long files are streamed in
blocks with the model state carried over, so memory stays bounded and the result equals processing the
whole file at once. The level is kept (no normalisation)."""
EPILOG = """\
examples:
  linseq enhance noisy.wav -o clean.wav
  linseq enhance a.flac b.wav c.ogg -o enhanced/            # several files into a folder (same names)
  linseq enhance talk.wav -o out/ --checkpoint runs/speech/fast_m2   # your own trained model
  linseq enhance noisy.wav -o clean.wav --device cuda
  linseq enhance noisy.wav -o clean.wav --attenuation-limit 12   # suppress by about 12 dB at most"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="+", type=Path, metavar="IN", help="audio files to enhance")
    parser.add_argument("-o", "--output", type=Path, required=True, metavar="OUT",
                        help="output folder (created), or an output file when there is one input")
    parser.add_argument("--checkpoint", type=Path, default=None, metavar="DIR",
                        help="checkpoint folder (default: the Fast FullSubNet shipped with linseq)")
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:1, ... or auto")
    parser.add_argument("--attenuation-limit", type=float, default=None, metavar="DB",
                        help="limit the suppression to about DB decibels: the output is 1-a of the model's plus a = "
                             "10^(-DB/20) of the input, e.g. 12 "
                             "keeps a quarter of it, for a more natural result where the model removes too much "
                             "(default: no limit; 0 returns the input)")
    parser.add_argument("--block-seconds", type=float, default=10.0, help="seconds read per block (default 10)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def _targets(inputs: list[Path], output: Path) -> list[Path]:
    as_file = len(inputs) == 1 and output.suffix != "" and not output.is_dir()
    if as_file:
        return [output]
    if output.exists() and not output.is_dir():
        raise ValueError(f"-o {output} must be a folder when enhancing {len(inputs)} files")
    names = [p.name for p in inputs]
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        raise ValueError(f"inputs with the same file name would overwrite each other in {output}: {sorted(dup)}")
    return [output / p.name for p in inputs]


def run(args: argparse.Namespace) -> int:
    from tqdm.auto import tqdm

    from linseq.experiments.speech_enhancement.audio import audio_info, enhance_file
    from linseq.experiments.speech_enhancement.checkpoint import load_speech_model
    from linseq.experiments.speech_enhancement.training import pick_device
    from linseq.models.speech.streaming import input_share

    if args.block_seconds <= 0:
        raise ValueError(f"--block-seconds must be > 0; got {args.block_seconds}")
    input_share(args.attenuation_limit)  # a bad --attenuation-limit fails here, before any file is read
    infos = [audio_info(p) for p in args.inputs]  # fail early, before loading the model, on a bad input
    targets = _targets(args.inputs, args.output)
    for src, dst in zip(args.inputs, targets):
        if src.resolve() == dst.resolve():
            raise ValueError(f"{dst}: the output would overwrite its input; choose another -o")
    model, config = load_speech_model(args.checkpoint, pick_device(args.device))
    total = sum(i.frames for i in infos)
    bar = tqdm(total=total, unit="sample", unit_scale=True, desc="enhance", disable=args.no_progress)
    reports = []
    try:
        for src, dst in zip(args.inputs, targets):
            reports.append(enhance_file(model, src, dst, args.block_seconds, on_progress=bar.update,
                                        attenuation_limit_db=args.attenuation_limit))
    finally:
        bar.close()
    label = "shipped Fast FullSubNet" if args.checkpoint is None else str(args.checkpoint)
    for r in reports:
        note = f", {r['clipped_samples']} samples clipped" if r["clipped_samples"] else ""
        print(f"wrote {r['output']} ({r['frames'] / r['sample_rate']:.2f} s, {r['sample_rate']} Hz, "
              f"{r['channels']} ch{note})")
    print(f"model: {label} ({config['model']}, m={config.get('shrink_size', '-')}, {config['sequence_model']})")
    return 0
