"""Time per training item of the speech mixer with and without speed perturbation, and with the crop lengths the
mixer rounds to (prime factors at most 11) against exact crop lengths, on one CPU thread:

    python benchmarks/speech_mixer_timing.py OUT.json [--pools data/speech_pools] [--items 400] [--speed 0.1]

Every mixer simulates all its RIRs first, so only the per-item work is timed; the recipe's training options
(SNR -5..30 dB, extra noise) as in the device runs.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from linseq.data.speech import SpeechMixer
from linseq.io import run_metadata, save_json


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out")
    p.add_argument("--pools", default="data/speech_pools")
    p.add_argument("--items", type=int, default=400)
    p.add_argument("--speed", type=float, default=0.1)
    p.add_argument("--repeats", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(1)
    kw = dict(split="train", segment_seconds=3.072, seed=21, num_items=args.items, snr_range=(-5, 30),
              extra_noise_families=("tones", "sweeps", "textures"))
    mixers = {"off": SpeechMixer(args.pools, **kw).preload(rirs=True)}
    mixers["rounded crops"] = SpeechMixer(args.pools, speed_perturb=args.speed, **kw).share_decoded(mixers["off"])
    mixers["exact crops"] = SpeechMixer(args.pools, speed_perturb=args.speed, **kw).share_decoded(mixers["off"])
    mixers["exact crops"]._crop_lengths = np.empty(0, dtype=np.int64)  # the mixer before rounding
    for m in mixers.values():
        m.preload(rirs=True)
    ms = {name: [] for name in mixers}
    for _ in range(args.repeats):
        for name, m in mixers.items():
            t0 = time.perf_counter()
            for i in range(args.items):
                m[i]
            ms[name].append(1e3 * (time.perf_counter() - t0) / args.items)
    rows = {name: round(min(v), 2) for name, v in ms.items()}
    print({name: f"{v} ms/item" for name, v in rows.items()})
    save_json(args.out, {"meta": run_metadata(), "args": vars(args), "ms_per_item": rows})


if __name__ == "__main__":
    main()
