"""How closely the STOI-like training term (stoi_loss.py) follows pystoi on real training speech.

    python benchmarks/speech_stoi_agreement.py [--pools data/speech_pools] [--clips 6] [--out FILE.json]

Clean 3.072 s segments from the pools' training split, each with white noise at −5, 0, 5, 10 and 20 dB SNR; for
every pair both values, then their Pearson correlation and mean / largest absolute difference.
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch
from pystoi import stoi

from linseq.data.speech import SpeechMixer
from linseq.experiments.speech_enhancement.stoi_loss import short_time_intelligibility
from linseq.io import run_metadata

SNRS_DB = (-5, 0, 5, 10, 20)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pools", default="data/speech_pools")
    p.add_argument("--clips", type=int, default=6)
    p.add_argument("--out", default=None)
    args = p.parse_args()
    mixer = SpeechMixer(args.pools, split="train", segment_seconds=3.072, seed=5, num_items=100, snr_range=(-5, 30))
    rng = np.random.default_rng(0)
    rows = []
    for i in range(args.clips):
        clean = np.asarray(mixer[i][1], np.float64)
        for snr in SNRS_DB:
            noise = rng.standard_normal(clean.shape)
            noise *= np.sqrt((clean**2).mean() / (noise**2).mean() / 10 ** (snr / 10))
            noisy = clean + noise
            ours = short_time_intelligibility(torch.tensor(noisy[None]), torch.tensor(clean[None])).item()
            rows.append({"clip": i, "snr_db": snr, "pystoi": float(stoi(clean, noisy, 16000)), "ours": ours})
    a, b = np.array([r["ours"] for r in rows]), np.array([r["pystoi"] for r in rows])
    doc = {"meta": run_metadata(), "pools": args.pools, "pairs": len(rows),
           "pearson": float(np.corrcoef(a, b)[0, 1]), "mean_abs_diff": float(np.abs(a - b).mean()),
           "max_abs_diff": float(np.abs(a - b).max()), "rows": rows}
    print(json.dumps({k: v for k, v in doc.items() if k not in ("meta", "rows")}, indent=1))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(doc, f, indent=1)


if __name__ == "__main__":
    main()
