"""Classical baseline: spectral gating with a soft mask and a minimum-statistics noise estimate (no learning).

Per STFT bin (same 512/256 Hann STFT as the models, 16 kHz):

1. Noise power ``N[f, t]``: the power spectrum is smoothed over time (``P̄_t = a P̄_{t-1} + (1 - a) |Y_t|²``,
   a = 0.85) and over 3 neighbouring bins; the noise estimate is the minimum of ``P̄`` over a centred window of
   ``window_s`` seconds (1.5 s) times a bias factor (1.0), which tracks slowly changing noise because speech
   has pauses (minimum statistics, after Martin 2001, simplified and offline). ``noise="quietest"`` instead takes, for the
   whole clip, the mean power of the 10 % quietest frames (offline, for stationary noise).
2. Soft mask: decision-directed a-priori SNR (Ephraim & Malah 1984),
   ``ξ_t = a G_{t-1}² |Y_{t-1}|² / N_t + (1 - a) max(|Y_t|² / N_t - 1, 0)`` with a = 0.9, Wiener gain
   ``G = ξ / (1 + ξ)``, floored at ``floor_db`` (-10 dB) so that the residual noise stays natural instead of
   "musical".
3. ``Ŝ = G · Y``, inverse STFT to the input length.

The defaults (floor -10 dB, a = 0.9, bias 1.0) were picked among a handful of settings on 16 mixtures of the
*training* split (SNR 0-25 dB): WB-PESQ 1.61 -> 1.79, SI-SDR 11.2 -> 13.4 dB, STOI 0.843 -> 0.838. Written for this
library; no ``noisereduce`` dependency.
"""

from __future__ import annotations

import numpy as np
import torch

from linseq.models.speech.signal import FRAMES_PER_SECOND, check_sample_rate, istft, stft


def noise_psd(power: np.ndarray, method: str = "minimum", window_s: float = 1.5, smooth: float = 0.85,
              bias: float = 1.5, quantile: float = 0.1) -> np.ndarray:
    """Noise power estimate ``[F, T]`` from the noisy power spectrogram ``power [F, T]``."""
    F_, T = power.shape
    if method == "quietest":
        energy = power.sum(axis=0)
        k = max(1, int(round(quantile * T)))
        quiet = np.argsort(energy)[:k]
        return np.repeat(power[:, quiet].mean(axis=1, keepdims=True), T, axis=1)
    if method != "minimum":
        raise ValueError(f"method must be 'minimum' or 'quietest'; got {method!r}")
    padded = np.pad(power, ((1, 1), (0, 0)), mode="edge")
    p = (padded[:-2] + padded[1:-1] + padded[2:]) / 3.0  # 3-bin frequency smoothing
    smoothed = np.empty_like(p)
    acc = p[:, 0].copy()
    for t in range(T):
        acc = smooth * acc + (1 - smooth) * p[:, t]
        smoothed[:, t] = acc
    h = max(1, int(round(window_s * FRAMES_PER_SECOND / 2)))
    # minimum over a centred window of 2h+1 frames (offline: a clip that starts with speech still gets a noise
    # estimate from the pause after it); edge padding keeps the window inside the clip
    padded = np.pad(smoothed, ((0, 0), (h, h)), mode="edge")
    return bias * np.lib.stride_tricks.sliding_window_view(padded, 2 * h + 1, axis=1).min(axis=-1)


def spectral_gate(wave: np.ndarray | torch.Tensor, sample_rate: int = 16000, noise: str = "minimum",
                  floor_db: float = -10.0, dd_alpha: float = 0.9, bias: float = 1.0, window_s: float = 1.5
                  ) -> np.ndarray:
    """Enhance one 16 kHz signal ``wave [L]`` (numpy or torch) -> float32 numpy ``[L]``."""
    check_sample_rate(sample_rate)
    x = torch.as_tensor(np.asarray(wave, dtype=np.float32))
    if x.dim() != 1:
        raise ValueError(f"wave must be a 1-D signal [L]; got shape {tuple(x.shape)}")
    spec = stft(x[None])[0].numpy().astype(np.complex128)  # [F, T]
    power = np.abs(spec) ** 2
    N = np.maximum(noise_psd(power, noise, window_s=window_s, bias=bias), 1e-12)
    floor = 10.0 ** (floor_db / 20.0)
    gain = np.empty(power.shape)
    prev = np.zeros(power.shape[0])  # G_{t-1}² |Y_{t-1}|²
    for t in range(power.shape[1]):
        post = power[:, t] / N[:, t]
        xi = dd_alpha * prev / N[:, t] + (1 - dd_alpha) * np.maximum(post - 1.0, 0.0)
        g = np.maximum(xi / (1.0 + xi), floor)
        gain[:, t] = g
        prev = g**2 * power[:, t]
    enhanced = torch.from_numpy((gain * spec).astype(np.complex64))[None]
    return istft(enhanced, length=x.shape[0])[0].numpy()
