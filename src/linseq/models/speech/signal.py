"""Signal chain shared by FullSubNet and Fast FullSubNet: STFT, compressed cRM, cumulative norm, mel filterbank.

Conventions (FullSubNet, Hao et al. ICASSP 2021, numbers from the paper/recipe; code is ours):
16 kHz audio, STFT n_fft 512 / hop 256 with a periodic Hann window, one-sided (F = 257 bins).
``torch.stft`` runs with ``center=True`` and reflect padding, so frame ``t`` is centred on sample ``t * 256``
and a signal of ``L`` samples gives ``1 + L // 256`` frames; :func:`istft` inverts it exactly given ``length``.
Spectra are complex tensors ``[B, F, T]``; masks are real tensors ``[B, 2, F, T]`` (real, imaginary).
"""

from __future__ import annotations

import math

import torch

SAMPLE_RATE = 16000
N_FFT = 512
HOP_LENGTH = 256
NUM_FREQS = N_FFT // 2 + 1
FRAMES_PER_SECOND = SAMPLE_RATE / HOP_LENGTH  # 62.5
CRM_K = 10.0
CRM_C = 0.1
EPS = float(torch.finfo(torch.float32).eps)


def check_finite(name: str, x: torch.Tensor) -> None:
    """Raise ValueError if ``x`` holds NaN or ±inf."""
    if not torch.is_tensor(x):
        raise TypeError(f"{name} must be a torch.Tensor; got {type(x).__name__}")
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name} must be finite; got NaN or inf in a tensor of shape {tuple(x.shape)}")


def check_sample_rate(sample_rate: int) -> None:
    """The models are defined at 16 kHz only; resample before calling them."""
    if sample_rate != SAMPLE_RATE:
        raise ValueError(f"sample_rate must be {SAMPLE_RATE} Hz; got {sample_rate!r} (resample the audio first)")


def _window(device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    return torch.hann_window(N_FFT, periodic=True, device=device, dtype=dtype)


def stft(wave: torch.Tensor, sample_rate: int = SAMPLE_RATE) -> torch.Tensor:
    """Complex STFT: ``wave [B, L]`` (or ``[L]``) -> ``[B, 257, 1 + L // 256]`` (center=True, reflect pad)."""
    check_sample_rate(sample_rate)
    check_finite("wave", wave)
    if wave.dim() == 1:
        wave = wave[None]
    if wave.dim() != 2:
        raise ValueError(f"wave must have shape [B, L] or [L]; got {tuple(wave.shape)}")
    if not wave.is_floating_point():
        raise TypeError(f"wave must be a floating-point tensor; got {wave.dtype}")
    if wave.shape[-1] <= N_FFT // 2:
        raise ValueError(f"wave must have more than {N_FFT // 2} samples (reflect padding); got {wave.shape[-1]}")
    return torch.stft(
        wave, N_FFT, HOP_LENGTH, N_FFT, window=_window(wave.device, wave.dtype), center=True,
        pad_mode="reflect", return_complex=True,
    )


def istft(spec: torch.Tensor, length: int | None = None) -> torch.Tensor:
    """Inverse of :func:`stft`: complex ``[B, 257, T]`` -> ``[B, length]`` (default ``(T - 1) * 256``)."""
    if not torch.is_complex(spec) or spec.dim() != 3 or spec.shape[1] != NUM_FREQS:
        raise ValueError(f"spec must be a complex tensor [B, {NUM_FREQS}, T]; got {spec.dtype} {tuple(spec.shape)}")
    window = _window(spec.device, spec.real.dtype)
    return torch.istft(spec, N_FFT, HOP_LENGTH, N_FFT, window=window, center=True, length=length)


def _check_spec(name: str, spec: torch.Tensor) -> None:
    if not torch.is_complex(spec) or spec.dim() != 3:
        raise ValueError(f"{name} must be a complex tensor [B, F, T]; got {spec.dtype} {tuple(spec.shape)}")
    check_finite(name, torch.view_as_real(spec))


def compress(x: torch.Tensor, K: float = CRM_K, C: float = CRM_C) -> torch.Tensor:
    """``K (1 - e^{-C x}) / (1 + e^{-C x})`` (= K tanh(C x / 2)), with ``x`` clamped at -100 as FullSubNet does."""
    e = torch.exp(-C * x.clamp_min(-100.0))
    return K * (1 - e) / (1 + e)


def decompress(m: torch.Tensor, K: float = CRM_K, C: float = CRM_C, clip: float = 9.9) -> torch.Tensor:
    """Inverse of :func:`compress` after clamping to ``[-clip, clip]`` (``clip < K`` keeps the log finite)."""
    if not 0 < clip < K:
        raise ValueError(f"clip must be in (0, K={K}); got {clip}")
    m = m.clamp(-clip, clip)
    return -torch.log((K - m) / (K + m)) / C


def build_crm(noisy: torch.Tensor, clean: torch.Tensor, compressed: bool = True) -> torch.Tensor:
    """Complex ideal ratio mask ``M = S / Y``: complex ``[B, F, T]`` x2 -> ``[B, 2, F, T]`` (compressed by default).

    ``M_r = (Y_r S_r + Y_i S_i) / (|Y|² + eps)``, ``M_i = (Y_r S_i - Y_i S_r) / (|Y|² + eps)``.
    """
    _check_spec("noisy", noisy)
    _check_spec("clean", clean)
    if noisy.shape != clean.shape:
        raise ValueError(
            f"noisy and clean must have the same shape; got {tuple(noisy.shape)} and {tuple(clean.shape)}"
        )
    den = noisy.real**2 + noisy.imag**2 + EPS
    mr = (noisy.real * clean.real + noisy.imag * clean.imag) / den
    mi = (noisy.real * clean.imag - noisy.imag * clean.real) / den
    mask = torch.stack([mr, mi], dim=1)
    return compress(mask) if compressed else mask


def apply_crm(mask: torch.Tensor, noisy: torch.Tensor, compressed: bool = True, clip: float = 9.9) -> torch.Tensor:
    """Enhanced spectrum ``M ⊙ Y``: real mask ``[B, 2, F, T]`` and complex ``[B, F, T]`` -> complex ``[B, F, T]``."""
    _check_spec("noisy", noisy)
    if mask.dim() != 4 or mask.shape[1] != 2 or mask.shape[0] != noisy.shape[0] or mask.shape[2:] != noisy.shape[1:]:
        raise ValueError(
            f"mask must have shape [B, 2, F, T] matching noisy {tuple(noisy.shape)}; got {tuple(mask.shape)}"
        )
    if compressed:
        mask = decompress(mask, clip=clip)
    mr, mi = mask[:, 0], mask[:, 1]
    return torch.complex(mr * noisy.real - mi * noisy.imag, mr * noisy.imag + mi * noisy.real)


def cumulative_norm(x: torch.Tensor, eps: float = EPS) -> torch.Tensor:
    """Causal normalisation: ``x [N, C, T]`` divided at frame t by the mean over all C features and frames ≤ t."""
    N, C, T = x.shape
    csum = torch.cumsum(x.sum(dim=1), dim=-1)  # [N, T]
    count = torch.arange(1, T + 1, device=x.device, dtype=x.dtype) * C
    return x / (csum / count + eps)[:, None, :]


def offline_norm(x: torch.Tensor, eps: float = EPS) -> torch.Tensor:
    """Utterance-level normalisation (paper default, not causal): ``x [N, C, T]`` divided by its mean over C and T."""
    return x / (x.mean(dim=(1, 2), keepdim=True) + eps)


def normalize(x: torch.Tensor, kind: str) -> torch.Tensor:
    """Dispatch ``"cumulative"`` / ``"offline"`` over ``x [N, C, T]``."""
    return cumulative_norm(x) if kind == "cumulative" else offline_norm(x)


class CumulativeNormState:
    """Running sums for :func:`cumulative_norm` one frame at a time: ``step(x [N, C]) -> [N, C]``."""

    def __init__(self) -> None:
        self.total: torch.Tensor | None = None
        self.count = 0

    def step(self, x: torch.Tensor, eps: float = EPS) -> torch.Tensor:
        s = x.sum(dim=1)
        self.total = s if self.total is None else self.total + s
        self.count += x.shape[1]
        return x / (self.total / self.count + eps)[:, None]


def mel_filterbank(
    n_freqs: int = NUM_FREQS, n_mels: int = 64, sample_rate: int = SAMPLE_RATE, f_min: float = 0.0,
    f_max: float | None = None,
) -> torch.Tensor:
    """Triangular HTK-scale filterbank without area normalisation, ``[n_freqs, n_mels]`` float32.

    Same definition as ``torchaudio.transforms.MelScale`` defaults (mel_scale="htk", norm=None); ``mel = fb.T @ mag``.
    """
    f_max = sample_rate / 2 if f_max is None else f_max

    def hz2mel(f: float) -> float:
        return 2595.0 * math.log10(1.0 + f / 700.0)

    freqs = torch.linspace(0, sample_rate // 2, n_freqs, dtype=torch.float64)
    m_pts = torch.linspace(hz2mel(f_min), hz2mel(f_max), n_mels + 2, dtype=torch.float64)
    f_pts = 700.0 * (10 ** (m_pts / 2595.0) - 1.0)
    f_diff = f_pts[1:] - f_pts[:-1]
    slopes = f_pts[None, :] - freqs[:, None]  # [n_freqs, n_mels + 2]
    down = -slopes[:, :-2] / f_diff[:-1]
    up = slopes[:, 2:] / f_diff[1:]
    return torch.clamp(torch.minimum(down, up), min=0.0).float()


def unfold_freq(x: torch.Tensor, num_neighbors: int) -> torch.Tensor:
    """Sub-band context: ``x [N, F, ...]`` -> ``[N, F, 2n+1, ...]`` with reflect padding at the band edges."""
    if num_neighbors == 0:
        return x[:, :, None]
    F_ = x.shape[1]
    offsets = torch.arange(-num_neighbors, num_neighbors + 1, device=x.device)
    idx = offsets[None, :] + torch.arange(F_, device=x.device)[:, None]
    idx = idx.abs()  # reflect at 0
    idx = torch.where(idx > F_ - 1, 2 * (F_ - 1) - idx, idx)  # reflect at F-1
    return x[:, idx]  # [N, F, 2n+1, ...]
