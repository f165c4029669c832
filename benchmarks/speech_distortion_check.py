"""Where does a model's STOI deficit against the noisy input come from? Two checks on the first N test clips of each
subset, offline on the CPU:

- clean pass-through: the clean reference goes in; STOI(clean, model(clean)) and the energy the model removes
  from each one-third-octave band (STOI's bands, continued to 8 kHz) over the frames where speech is present. A
  model that left speech alone would give STOI 1 and 0 dB;
- training length: STOI(model) on each third of the clip when the whole clip is enhanced at once, and when it is
  cut into pieces of the training segment length (3.072 s) that are enhanced each alone. If the sequence state
  went wrong past the training length, the later thirds would score better in pieces.

    python benchmarks/speech_distortion_check.py CHECKPOINT TEST_SET [--clips 30] [--out distortion.json]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from linseq.experiments.speech_enhancement.checkpoint import load_speech_model
from linseq.experiments.speech_enhancement.evaluate import enhance_waves, load_test_clips
from linseq.experiments.speech_enhancement.stoi_loss import LOWEST_CENTRE_HZ, third_octave_matrix
from linseq.io import run_metadata

RATE = 16000
PIECE = int(3.072 * RATE)
NUM_BANDS = 18  # one-third-octave bands centred from 150 Hz to 7.6 kHz
BANDS = third_octave_matrix(n_fft=512, sample_rate=RATE, num_bands=NUM_BANDS).numpy()  # [18, 257]


def band_energies(wave: np.ndarray) -> np.ndarray:
    """Energy per one-third-octave band and 512/256 Hann frame: [18, frames]."""
    frames = np.lib.stride_tricks.sliding_window_view(wave, 512)[::256] * np.hanning(512)
    return BANDS @ (np.abs(np.fft.rfft(frames, axis=-1)) ** 2).T


def band_change_db(clean: np.ndarray, out: np.ndarray) -> np.ndarray:
    """10·log10(out / clean) energy per band over the frames where the clean speech is within 40 dB of its peak."""
    e_clean, e_out = band_energies(clean), band_energies(out[:len(clean)])
    total = e_clean.sum(0)
    active = total > total.max() * 1e-4
    return 10 * np.log10((e_out[:, active].sum(1) + 1e-12) / (e_clean[:, active].sum(1) + 1e-12))


def enhance_in_pieces(model, waves: list[np.ndarray]) -> list[np.ndarray]:
    """Each wave cut into PIECE-sample pieces, each enhanced with a fresh state, joined again."""
    pieces, owner = [], []
    for i, w in enumerate(waves):
        for a in range(0, len(w), PIECE):
            pieces.append(w[a:a + PIECE])
            owner.append(i)
    done = enhance_waves(model, pieces, torch.device("cpu"))
    return [np.concatenate([d[:len(p)] for d, p, o in zip(done, pieces, owner) if o == i]) for i in range(len(waves))]


def distortion_report(checkpoint: str, test_set: str, clips: int) -> dict:
    from pystoi import stoi

    model, _ = load_speech_model(checkpoint, torch.device("cpu"))
    items = load_test_clips(test_set, limit=clips)
    noisy, clean = [it[2] for it in items], [it[3] for it in items]
    whole = enhance_waves(model, noisy, torch.device("cpu"))
    from_clean = enhance_waves(model, clean, torch.device("cpu"))
    pieces = enhance_in_pieces(model, noisy)
    report: dict = {}
    for subset in sorted({it[1] for it in items}):
        idx = [i for i, it in enumerate(items) if it[1] == subset]
        thirds = {}
        for a, b in ((0, PIECE), (PIECE, 2 * PIECE), (2 * PIECE, None)):
            def mean_stoi(waves):
                return float(np.mean([100 * stoi(clean[i][a:b], waves[i][:len(clean[i])][a:b], RATE) for i in idx]))
            label = f"{a / RATE:.3f}-{'end' if b is None else f'{b / RATE:.3f}'} s"
            thirds[label] = {"noisy": mean_stoi(noisy), "whole": mean_stoi(whole), "pieces": mean_stoi(pieces)}
        report[subset] = {
            "clips": len(idx),
            "clean_in_stoi_percent": float(np.mean([100 * stoi(clean[i], from_clean[i][:len(clean[i])], RATE)
                                                    for i in idx])),
            "clean_in_band_change_db": np.mean([band_change_db(clean[i], from_clean[i]) for i in idx],
                                               0).round(3).tolist(),
            "stoi_percent_by_third": thirds,
        }
    centres = LOWEST_CENTRE_HZ * 2.0 ** (np.arange(NUM_BANDS) / 3)
    return {"band_centres_hz": centres.round(0).tolist(), "subsets": report}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint")
    p.add_argument("test_set")
    p.add_argument("--clips", type=int, default=30, help="clips per subset (the first ones by name)")
    p.add_argument("--out", type=Path, default=None, help="write the result here as JSON")
    args = p.parse_args()
    result = {"meta": run_metadata(), "checkpoint": args.checkpoint,
              **distortion_report(args.checkpoint, args.test_set, args.clips)}
    for subset, row in result["subsets"].items():
        print(f"{subset}: clean in -> STOI {row['clean_in_stoi_percent']:.2f} %; band change dB "
              f"{row['clean_in_band_change_db']}")
        for third, v in row["stoi_percent_by_third"].items():
            print(f"  {third}: noisy {v['noisy']:.2f}  whole {v['whole']:.2f}  pieces {v['pieces']:.2f}")
    if args.out:
        args.out.write_text(json.dumps(result, indent=1))
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
