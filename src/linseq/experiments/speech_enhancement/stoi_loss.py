"""A differentiable short-time intelligibility term for training: STOI's computation (Taal et al., 2011) on torch
tensors, at the model's 16 kHz.

What STOI measures, kept here: 15 one-third-octave band envelopes from 150 Hz (25 ms frames), compared over
384 ms segments (30 frames) by the correlation of the clean envelope with the processed one after it is scaled to
the clean segment's energy and clipped at 15 dB above it (β = −15 dB). Changed for a loss on batches of equal-length
training segments:
- no resampling to 10 kHz: 16 kHz frames of 400 samples, hop 200, FFT 512 (same 25 ms / 12.5 ms, same bands);
- silent frames are not cut out and spliced; a segment counts only when its clean energy lies within 40 dB of
  the clip's loudest frame (the mask depends on the clean wave alone, so it carries no gradient).
So the value is close to, not equal to, ``pystoi.stoi`` (a test checks their agreement on graded degradations).
"""

from __future__ import annotations

import functools

import torch

SAMPLE_RATE = 16_000
FRAME, HOP, N_FFT = 400, 200, 512
NUM_BANDS, LOWEST_CENTRE_HZ = 15, 150.0
SEGMENT_FRAMES = 30
CLIP_DB = -15.0  # β: the processed envelope is clipped at (1 + 10^(−β/20)) × the clean one
DYNAMIC_RANGE_DB = 40.0


def third_octave_matrix(n_fft: int = N_FFT, sample_rate: int = SAMPLE_RATE, num_bands: int = NUM_BANDS) -> torch.Tensor:
    """``[num_bands, n_fft // 2 + 1]`` 0/1 matrix: which FFT bins fall in each one-third-octave band (centres
    150 · 2^(k/3) Hz, edges at centre · 2^(∓1/6)); STOI uses the first 15."""
    freqs = torch.arange(n_fft // 2 + 1, dtype=torch.float64) * sample_rate / n_fft
    centres = LOWEST_CENTRE_HZ * 2.0 ** (torch.arange(num_bands, dtype=torch.float64) / 3)
    low, high = centres * 2.0 ** (-1 / 6), centres * 2.0 ** (1 / 6)
    return ((freqs[None, :] >= low[:, None]) & (freqs[None, :] < high[:, None])).float()


@functools.lru_cache(maxsize=8)
def _bands_on(device: torch.device) -> torch.Tensor:
    """:func:`third_octave_matrix` on ``device``, built once per device (it is read every training step)."""
    return third_octave_matrix().to(device)


def _band_envelopes(wave: torch.Tensor, bands: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Band envelopes ``[B, NUM_BANDS, M]`` and frame energies ``[B, M]`` of waves ``[B, L]``."""
    window = torch.hann_window(FRAME, periodic=False, device=wave.device, dtype=wave.dtype)
    spec = torch.stft(wave, N_FFT, HOP, FRAME, window, center=False, return_complex=True)  # [B, F, M]
    power = spec.real.square() + spec.imag.square()
    envelopes = torch.sqrt(torch.einsum("jf,bfm->bjm", bands.to(power.dtype), power) + 1e-12)
    return envelopes, power.sum(1)


def short_time_intelligibility(estimate: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """STOI-like intelligibility of ``estimate`` against ``reference``, waves ``[B, L]`` at 16 kHz with
    L ≥ 400 + 29 · 200 samples (0.39 s); returns ``[B]`` in [−1, 1] (1: the same envelopes). Differentiable in
    ``estimate``."""
    if estimate.shape != reference.shape or estimate.dim() != 2:
        raise ValueError(f"estimate and reference must both be [B, L]; got {tuple(estimate.shape)} and "
                         f"{tuple(reference.shape)}")
    min_len = FRAME + (SEGMENT_FRAMES - 1) * HOP
    if estimate.shape[-1] < min_len:
        raise ValueError(f"waves need at least {min_len} samples (one {SEGMENT_FRAMES}-frame segment); "
                         f"got {estimate.shape[-1]}")
    bands = _bands_on(estimate.device)
    x, energy = _band_envelopes(reference.float(), bands)
    y, _ = _band_envelopes(estimate.float(), bands)
    x_seg = x.unfold(-1, SEGMENT_FRAMES, 1)  # [B, J, S, N]
    y_seg = y.unfold(-1, SEGMENT_FRAMES, 1)
    scale = x_seg.norm(dim=-1, keepdim=True) / (y_seg.norm(dim=-1, keepdim=True) + 1e-12)
    y_seg = torch.minimum(y_seg * scale, x_seg * (1 + 10 ** (-CLIP_DB / 20)))
    xc = x_seg - x_seg.mean(-1, keepdim=True)
    yc = y_seg - y_seg.mean(-1, keepdim=True)
    corr = (xc * yc).sum(-1) / (xc.norm(dim=-1) * yc.norm(dim=-1) + 1e-12)  # [B, J, S]
    frame_db = 10 * torch.log10(energy + 1e-12)
    seg_db = 10 * torch.log10(energy.unfold(-1, SEGMENT_FRAMES, 1).mean(-1) + 1e-12)  # [B, S]
    loud = (seg_db >= frame_db.amax(-1, keepdim=True) - DYNAMIC_RANGE_DB).float()
    weights = loud / loud.sum(-1, keepdim=True).clamp_min(1.0)
    return (corr.mean(1) * weights).sum(-1)


def negative_stoi(estimate: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Loss: minus the batch mean of :func:`short_time_intelligibility` (scalar, in [−1, 1])."""
    return -short_time_intelligibility(estimate, reference).mean()
