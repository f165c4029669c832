"""Does a model's STOI deficit against the noisy input come from the start of each clip?

The causal cumulative normalisation knows little in a clip's first frames, so a model could lose there and be fine
afterwards. This enhances the first N clips of each test subset offline, then scores STOI(model) − STOI(noisy) on the
clip from 0, 1, 2 and 3 s on: if the deficit comes from the onset it shrinks as the start is cut away.

    python benchmarks/speech_onset_check.py CHECKPOINT TEST_SET [--clips 40] [--out onset.json]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from linseq.experiments.speech_enhancement.checkpoint import load_speech_model
from linseq.experiments.speech_enhancement.evaluate import enhance_waves, load_test_clips
from linseq.io import run_metadata

RATE = 16000
CUTS_S = (0, 1, 2, 3)


def onset_deficits(checkpoint: str, test_set: str, clips: int) -> dict:
    """Mean STOI(model) − STOI(noisy) in points, per subset, on each clip from every cut of CUTS_S seconds on."""
    from pystoi import stoi

    model, _ = load_speech_model(checkpoint, torch.device("cpu"))
    items = load_test_clips(test_set, limit=clips)
    enhanced = enhance_waves(model, [noisy for _, _, noisy, _ in items], torch.device("cpu"))
    deltas: dict[str, dict[int, list[float]]] = {}
    for (_, subset, noisy, clean), out in zip(items, enhanced):
        for cut in CUTS_S:
            a = cut * RATE
            gain = stoi(clean[a:], out[a:len(clean)], RATE) - stoi(clean[a:], noisy[a:], RATE)
            deltas.setdefault(subset, {}).setdefault(cut, []).append(100 * gain)
    return {subset: {f"from_{cut}s": float(np.mean(v)) for cut, v in by_cut.items()} | {"clips": len(by_cut[0])}
            for subset, by_cut in deltas.items()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint")
    p.add_argument("test_set")
    p.add_argument("--clips", type=int, default=40, help="clips per subset (the first ones by name)")
    p.add_argument("--out", type=Path, default=None, help="write the result here as JSON")
    args = p.parse_args()
    result = {"meta": run_metadata(), "checkpoint": args.checkpoint,
              "stoi_gain_points": onset_deficits(args.checkpoint, args.test_set, args.clips)}
    for subset, row in result["stoi_gain_points"].items():
        print(subset, " ".join(f"{k}: {v:+.2f}" for k, v in row.items() if k != "clips"), f"({row['clips']} clips)")
    if args.out:
        args.out.write_text(json.dumps(result, indent=1))
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
