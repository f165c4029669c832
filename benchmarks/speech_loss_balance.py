"""Gradient norms of the cRM loss and of the −SI-SDR and −STOI terms on one training batch, for choosing
--sisdr-weight and --stoi-weight.

    python benchmarks/speech_loss_balance.py CHECKPOINT [--pools data/speech_pools] [--out FILE.json]

A batch of 16 training mixtures (the fifth and sixth runs' mixing: SNR −5..30 dB, extra noise families) through the
checkpoint in float32; prints the losses, the norms of their gradients over all weights, and each term's ratio to
the cRM loss's (the weight that balances a term is about 1 / its ratio).
"""

from __future__ import annotations

import argparse
import json

import torch

from linseq.data.speech import SpeechMixer
from linseq.experiments.speech_enhancement.checkpoint import load_speech_model
from linseq.experiments.speech_enhancement.stoi_loss import negative_stoi
from linseq.experiments.speech_enhancement.training import crm_loss, negative_si_sdr
from linseq.io import run_metadata
from linseq.models.speech import enhance_spectrum, istft, stft


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint")
    p.add_argument("--pools", default="data/speech_pools")
    p.add_argument("--items", type=int, default=16)
    p.add_argument("--out", default=None)
    args = p.parse_args()
    mixer = SpeechMixer(args.pools, split="train", segment_seconds=3.072, seed=123, num_items=1000,
                        snr_range=(-5, 30), extra_noise_families=("tones", "sweeps", "textures"))
    pairs = [mixer[i] for i in range(args.items)]
    noisy = torch.stack([torch.as_tensor(n) for n, _ in pairs]).float()
    clean = torch.stack([torch.as_tensor(c) for _, c in pairs]).float()
    model, _ = load_speech_model(args.checkpoint)
    model = model.float().train()
    params = [w for w in model.parameters() if w.requires_grad]

    def grad_norm(loss: torch.Tensor) -> float:
        return torch.sqrt(sum((g.float() ** 2).sum() for g in torch.autograd.grad(loss, params, retain_graph=True))).item()

    crm = crm_loss(model, noisy, clean)
    Y = stft(noisy)
    enhanced = istft(enhance_spectrum(model, Y), length=noisy.shape[-1])
    neg = negative_si_sdr(enhanced, clean)
    neg_stoi = negative_stoi(enhanced, clean)
    doc = {"meta": run_metadata(), "checkpoint": args.checkpoint, "items": args.items,
           "crm_loss": crm.item(), "crm_grad_norm": grad_norm(crm),
           "neg_si_sdr_db": neg.item(), "neg_si_sdr_grad_norm": grad_norm(neg),
           "neg_stoi": neg_stoi.item(), "neg_stoi_grad_norm": grad_norm(neg_stoi)}
    doc["grad_ratio"] = doc["neg_si_sdr_grad_norm"] / doc["crm_grad_norm"]
    doc["stoi_grad_ratio"] = doc["neg_stoi_grad_norm"] / doc["crm_grad_norm"]
    print(json.dumps({k: v for k, v in doc.items() if k != "meta"}, indent=1))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(doc, f, indent=1)


if __name__ == "__main__":
    main()
