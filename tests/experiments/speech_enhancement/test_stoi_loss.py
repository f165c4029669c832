"""The STOI-like training term: agrees with pystoi on graded degradations, reaches the weights, rejects bad input."""

import numpy as np
import pytest
import torch

from linseq.experiments.speech_enhancement.stoi_loss import (
    FRAME, HOP, SEGMENT_FRAMES, negative_stoi, short_time_intelligibility, third_octave_matrix,
)
from linseq.experiments.speech_enhancement.synthetic import SyntheticMixtures


def test_bands_cover_150_hz_to_4_khz_without_overlap():
    bands = third_octave_matrix()
    assert bands.shape == (15, 257) and (bands.sum(0) <= 1).all() and (bands.sum(1) >= 1).all()
    hz = torch.arange(257) * 16000 / 512
    assert hz[bands.any(0)].min() >= 150 * 2 ** (-1 / 6) and hz[bands.any(0)].max() < 150 * 2 ** (14 / 3 + 1 / 6)


def test_follows_pystoi_on_graded_noise():
    pystoi = pytest.importorskip("pystoi")
    rng = np.random.default_rng(int(torch.randint(0, 10**6, ())))
    clean = np.stack([SyntheticMixtures(3, 2.0, seed=int(rng.integers(10**6)))[i][1].numpy() for i in range(3)])
    clean = clean.astype(np.float64)
    ours, ref = [], []
    for snr in (-5, 0, 5, 10, 20):
        noise = rng.standard_normal(clean.shape)
        noise *= np.sqrt((clean**2).mean(-1, keepdims=True) / (noise**2).mean(-1, keepdims=True) / 10 ** (snr / 10))
        noisy = clean + noise
        ours.append(short_time_intelligibility(torch.tensor(noisy), torch.tensor(clean)).numpy())
        ref.append([pystoi.stoi(c, n, 16000) for c, n in zip(clean, noisy)])
    ours, ref = np.array(ours), np.array(ref)  # [SNR, clip]
    # over 30 seeds of these synthetic voices: correlation 0.78-0.99, mean difference at most 0.04, every SNR
    # step raising the mean (real training speech: benchmarks/speech_stoi_agreement.py)
    assert (np.diff(ours.mean(1)) > 0).all()
    assert np.corrcoef(ours.ravel(), ref.ravel())[0, 1] > 0.7
    assert np.abs(ours - ref).mean() < 0.06
    same = torch.tensor(clean)
    assert torch.allclose(short_time_intelligibility(same, same), torch.ones(3, dtype=torch.float32), atol=1e-4)


def test_gradient_reaches_the_estimate_and_raises_intelligibility():
    _, clean = SyntheticMixtures(2, 1.0, seed=3)[0]
    clean = clean[None].double()
    estimate = (clean + 0.3 * clean.std() * torch.randn_like(clean)).requires_grad_(True)
    loss = negative_stoi(estimate, clean)
    loss.backward()
    assert estimate.grad is not None and torch.isfinite(estimate.grad).all() and estimate.grad.abs().sum() > 0
    stepped = (estimate - 1e-3 * estimate.grad / estimate.grad.abs().max()).detach()
    assert negative_stoi(stepped, clean) < loss.detach()


def test_bad_input_is_named():
    x = torch.randn(2, 16000)
    with pytest.raises(ValueError, match=r"\[B, L\]"):
        short_time_intelligibility(x, x[:1])
    short = FRAME + (SEGMENT_FRAMES - 1) * HOP - 1
    with pytest.raises(ValueError, match="at least"):
        short_time_intelligibility(x[:, :short], x[:, :short])
