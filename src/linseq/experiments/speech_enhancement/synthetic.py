"""Tiny synthetic noisy/clean pairs for tests and the ``ci`` preset when no speech pools are built.

"Speech" here is a crude stand-in: bursts of harmonic tones (random pitch 90-300 Hz with a gliding contour, 8-20
harmonics with a falling spectral tilt) shaped by syllable-like envelopes, with pauses; noise is white, pink or
brown at an SNR drawn from -5..20 dB. Good enough to check that training lowers the loss and that the pipeline
runs end to end; not for reporting quality.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

SAMPLE_RATE = 16000


def _voice(rng: np.random.Generator, n: int) -> np.ndarray:
    t = np.arange(n) / SAMPLE_RATE
    out = np.zeros(n)
    pos = int(rng.integers(0, SAMPLE_RATE // 5))
    while pos < n:
        dur = int(rng.uniform(0.12, 0.4) * SAMPLE_RATE)
        seg = slice(pos, min(n, pos + dur))
        m = seg.stop - seg.start
        f0 = rng.uniform(90, 300) * (1 + 0.15 * np.sin(2 * np.pi * rng.uniform(0.5, 3) * t[:m]))
        phase = 2 * np.pi * np.cumsum(f0) / SAMPLE_RATE
        harmonics = int(rng.integers(8, 21))
        tilt = rng.uniform(0.6, 0.9)
        burst = sum(tilt**k * np.sin((k + 1) * phase + rng.uniform(0, 2 * np.pi)) for k in range(harmonics))
        env = np.sin(np.pi * np.arange(m) / max(m, 1)) ** 2
        out[seg] += burst * env
        pos += dur + int(rng.uniform(0.03, 0.3) * SAMPLE_RATE)
    return out


def _noise(rng: np.random.Generator, n: int) -> np.ndarray:
    white = rng.standard_normal(n)
    color = rng.integers(0, 3)
    if color == 0:
        return white
    spec = np.fft.rfft(white)
    f = np.arange(spec.size) + 1.0
    spec /= f ** (0.5 if color == 1 else 1.0)
    return np.fft.irfft(spec, n)


def synthetic_pair(rng: np.random.Generator, num_samples: int, snr_db: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """One ``(noisy, clean)`` float32 pair of ``num_samples`` samples at 16 kHz, clean at about -25 dBFS RMS."""
    clean = _voice(rng, num_samples)
    noise = _noise(rng, num_samples)
    clean *= 10 ** (-25 / 20) / (np.sqrt(np.mean(clean**2)) + 1e-8)
    snr = rng.uniform(-5, 20) if snr_db is None else snr_db
    noise *= np.sqrt(np.mean(clean**2)) / (np.sqrt(np.mean(noise**2)) + 1e-8) / 10 ** (snr / 20)
    return (clean + noise).astype(np.float32), clean.astype(np.float32)


class SyntheticMixtures(Dataset):
    """``num_items`` synthetic ``(noisy [L], clean [L])`` float32 tensor pairs of ``seconds``; item i is fixed by
    ``(seed, epoch, i)``; ``set_epoch`` gives new mixtures, as the real mixer does."""

    def __init__(self, num_items: int = 256, seconds: float = 1.0, seed: int = 0) -> None:
        if num_items < 1 or seconds <= 0.02:
            raise ValueError(f"num_items must be >= 1 and seconds > 0.02; got {num_items} and {seconds}")
        self.num_items, self.num_samples, self.seed, self.epoch = num_items, int(seconds * SAMPLE_RATE), seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.num_items

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        if not 0 <= i < self.num_items:
            raise IndexError(i)
        rng = np.random.default_rng([self.seed, self.epoch, i])
        noisy, clean = synthetic_pair(rng, self.num_samples)
        return torch.from_numpy(noisy), torch.from_numpy(clean)
