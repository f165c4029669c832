"""Does mixing a fraction of the noisy input back into a model's output (an attenuation limit) help? Measured on
mixtures of the pools' training split, never the test set, so the answer can choose a default without peeking.

    python benchmarks/speech_blend_check.py CHECKPOINT OUT.json [--items 48] [--seconds 6] [--snr 0 25]
        [--reverb-proportion 0.75] [--speed-perturb 0]

For each blend a in --blends, the estimate is (1 − a)·enhanced + a·noisy; the noisy input itself is the first row.
With ``--blends 0`` alone it is a plain model-against-noisy check on training-split mixtures, e.g. at high SNR
(``--snr 20 30``), all reverberant (``--reverb-proportion 1``) or with speed-shifted voices (``--speed-perturb 0.2``).
Each row is also given per speech source of the pools under ``by_source``: per kind (asterisk, espeak, klettres,
ktuberling) and per source (e.g. asterisk-en, one recorded voice).
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from linseq.data.speech import SpeechMixer
from linseq.experiments.speech_enhancement.checkpoint import load_speech_model
from linseq.experiments.speech_enhancement.evaluate import enhance_waves
from linseq.experiments.speech_enhancement.metrics import evaluate_pairs, mean_metrics, selection_score
from linseq.io import run_metadata, save_json


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint")
    p.add_argument("out")
    p.add_argument("--pools", default="data/speech_pools")
    p.add_argument("--items", type=int, default=48)
    p.add_argument("--seconds", type=float, default=6.0)
    p.add_argument("--snr", type=float, nargs=2, default=(0.0, 25.0), help="SNR range in dB (default: the test's)")
    p.add_argument("--reverb-proportion", type=float, default=0.75,
                   help="share of mixtures with a room response (default: the training recipe's 0.75)")
    p.add_argument("--speed-perturb", type=float, default=0.0,
                   help="play each utterance at a random speed in [1 - P, 1 + P] (new voices from the training "
                        "speakers; default 0)")
    p.add_argument("--seed", type=int, default=777)
    p.add_argument("--blends", type=float, nargs="+", default=[0.0, 0.05, 0.1, 0.15, 0.2, 0.3])
    p.add_argument("--workers", type=int, default=2)
    args = p.parse_args()
    model = load_speech_model(args.checkpoint)
    model = (model[0] if isinstance(model, tuple) else model).float().eval()
    mixer = SpeechMixer(args.pools, split="train", segment_seconds=args.seconds, seed=args.seed,
                        num_items=args.items, snr_range=tuple(args.snr),
                        reverb_proportion=args.reverb_proportion, speed_perturb=args.speed_perturb)
    mixed = [mixer.mix(i) for i in range(args.items)]
    pairs = [(noisy, clean) for noisy, clean, _ in mixed]
    source_of = {uid: source for uid, _, source in mixer.pool.utterances}
    sources = [source_of[info["utterance"]] for _, _, info in mixed]
    labels = [{source, source.split("-")[0]} for source in sources]
    t0 = time.time()
    enhanced = enhance_waves(model, [noisy for noisy, _ in pairs], torch.device("cpu"))
    print(f"enhanced {args.items} mixtures in {time.time() - t0:.0f} s", flush=True)
    rows: dict[str, dict] = {}
    by_source: dict[str, dict[str, dict]] = {label: {} for label in sorted(set().union(*labels))}
    for blend in [None] + list(args.blends):
        name = "noisy" if blend is None else f"{blend:g}"
        est = [n for n, _ in pairs] if blend is None else [(1 - blend) * e + blend * n
                                                           for e, (n, _) in zip(enhanced, pairs)]
        per_item = evaluate_pairs([(c, e) for (_, c), e in zip(pairs, est)], workers=args.workers)
        rows[name] = mean_metrics(per_item)
        rows[name]["score"] = selection_score(rows[name])[0]
        for source, groups in by_source.items():
            groups[name] = mean_metrics([r for r, item in zip(per_item, labels) if source in item])
        print(f"{name:>6}", {k: round(v, 4) for k, v in rows[name].items()}, flush=True)
    for source, groups in by_source.items():
        print(f"{source:>10}: " + "; ".join(f"{name} STOI {m['STOI']:.4f}" for name, m in groups.items()
                                             if "STOI" in m) + f" (n={groups['noisy']['n']})", flush=True)
    save_json(args.out, {"meta": run_metadata(), "args": vars(args), "rows": rows, "by_source": by_source})


if __name__ == "__main__":
    main()
