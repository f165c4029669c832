"""Small numpy audio helpers shared by the pool builder, the mixer and the test set.

All signals are 1-D float arrays at the pools' sample rate (16 kHz) unless a function says otherwise. Levels are in
dB relative to full scale (dBFS, full scale = 1.0). ``soundfile`` is imported lazily, so importing this module
needs only numpy.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import numpy as np

SAMPLE_RATE = 16_000
EPS = float(np.finfo(np.float32).eps)

__all__ = [
    "SAMPLE_RATE", "require_soundfile", "read_audio", "write_audio", "encode_audio", "rms", "dbfs",
    "frame_energies_db", "trim_silence", "activity", "is_clipped", "fftconvolve", "next_fast_len",
]


def require_soundfile() -> Any:
    """Import ``soundfile`` or raise one clear ImportError naming the fix."""
    try:
        import soundfile
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError(
            "speech audio I/O needs the 'soundfile' package (pip install soundfile; offline: pip install --no-index "
            "--find-links .whl soundfile cffi pycparser)"
        ) from e
    return soundfile


def read_audio(path: str | os.PathLike | io.BytesIO, dtype: str = "float32") -> tuple[np.ndarray, int]:
    """Read an audio file as ``(samples, sample_rate)``; multichannel files are averaged to mono ``[T]``."""
    sf = require_soundfile()
    x, sr = sf.read(path, dtype=dtype, always_2d=True)
    if x.shape[1] == 1:
        return x[:, 0], int(sr)
    if np.issubdtype(x.dtype, np.integer):
        return x.mean(axis=1).round().astype(x.dtype), int(sr)
    return x.mean(axis=1).astype(x.dtype), int(sr)


def encode_audio(x: np.ndarray, sample_rate: int = SAMPLE_RATE, fmt: str = "opus", opus_level: float = 0.92) -> bytes:
    """Encode mono ``x`` ([T] float in [-1, 1]) as bytes.

    ``fmt``: ``"opus"`` (Ogg/Opus; ``opus_level`` is libsndfile's compression level in [0, 1]: 0.92 gives about
    26 kbit/s at 16 kHz, 0.90 about 31), ``"flac"`` (16-bit FLAC) or ``"wav"`` (16-bit PCM).
    """
    sf = require_soundfile()
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 1:
        raise ValueError(f"audio must be 1-D [T]; got shape {x.shape}")
    buf = io.BytesIO()
    if fmt == "opus":
        try:
            f = sf.SoundFile(buf, "w", sample_rate, 1, format="OGG", subtype="OPUS", compression_level=opus_level)
        except TypeError as e:  # soundfile < 0.13 has no compression_level
            raise ImportError(f"writing Opus needs soundfile>=0.13 (found {sf.__version__})") from e
        with f:
            f.write(x)
    elif fmt == "flac":
        sf.write(buf, np.clip(x, -1.0, 32767 / 32768), sample_rate, format="FLAC", subtype="PCM_16")
    elif fmt == "wav":
        sf.write(buf, np.clip(x, -1.0, 32767 / 32768), sample_rate, format="WAV", subtype="PCM_16")
    else:
        raise ValueError(f"fmt must be 'opus', 'flac' or 'wav'; got {fmt!r}")
    return buf.getvalue()


def write_audio(path: str | os.PathLike, x: np.ndarray, sample_rate: int = SAMPLE_RATE, fmt: str | None = None,
                opus_level: float = 0.92) -> Path:
    """Atomically write mono ``x`` to ``path``; the format follows the suffix (.opus/.ogg, .flac, .wav)."""
    from linseq.io import atomic_write_bytes

    path = Path(path)
    if fmt is None:
        fmt = {".opus": "opus", ".ogg": "opus", ".flac": "flac", ".wav": "wav"}.get(path.suffix.lower())
        if fmt is None:
            raise ValueError(f"cannot tell the audio format from the suffix of {path}; use .opus, .flac or .wav")
    return atomic_write_bytes(path, encode_audio(x, sample_rate, fmt, opus_level))


def rms(x: np.ndarray) -> float:
    """Root mean square of ``x`` (0 for an empty array)."""
    x = np.asarray(x, dtype=np.float64)
    return float(np.sqrt(np.mean(x * x))) if x.size else 0.0


def dbfs(x: np.ndarray) -> float:
    """RMS level of ``x`` in dBFS."""
    return 20.0 * float(np.log10(rms(x) + EPS))


def frame_energies_db(x: np.ndarray, sample_rate: int = SAMPLE_RATE, frame_ms: float = 20.0) -> np.ndarray:
    """Per-frame RMS level in dBFS of non-overlapping ``frame_ms`` frames: ``[ceil(T / frame)]``."""
    n = max(1, int(round(sample_rate * frame_ms / 1000)))
    x = np.asarray(x, dtype=np.float64)
    pad = (-len(x)) % n
    frames = np.pad(x, (0, pad)).reshape(-1, n)
    return 10.0 * np.log10(np.mean(frames * frames, axis=1) + 1e-12)


def trim_silence(x: np.ndarray, sample_rate: int = SAMPLE_RATE, threshold_db: float = 40.0,
                 frame_ms: float = 20.0, keep_ms: float = 60.0) -> np.ndarray:
    """Cut leading and trailing frames quieter than the loudest frame minus ``threshold_db``, keeping ``keep_ms``
    of margin. Returns a view of ``x`` (empty if ``x`` is silent)."""
    if len(x) == 0:
        return x
    e = frame_energies_db(x, sample_rate, frame_ms)
    active = np.flatnonzero(e > max(e.max() - threshold_db, -80.0))
    if active.size == 0:
        return x[:0]
    n = int(round(sample_rate * frame_ms / 1000))
    keep = int(round(sample_rate * keep_ms / 1000))
    start = max(0, active[0] * n - keep)
    stop = min(len(x), (active[-1] + 1) * n + keep)
    return x[start:stop]


def activity(x: np.ndarray, sample_rate: int = SAMPLE_RATE, threshold_db: float = 35.0, frame_ms: float = 20.0) -> float:
    """Fraction of ``frame_ms`` frames within ``threshold_db`` of the loudest frame (and above -65 dBFS), in [0, 1]."""
    if len(x) == 0:
        return 0.0
    e = frame_energies_db(x, sample_rate, frame_ms)
    return float(np.mean(e > max(e.max() - threshold_db, -65.0)))


def is_clipped(x: np.ndarray, level: float = 0.999, max_fraction: float = 1e-4, run: int = 3) -> bool:
    """True if ``x`` looks clipped: more than ``max_fraction`` of the samples at or above ``level`` in magnitude,
    or ``run`` consecutive samples there."""
    x = np.asarray(x)
    if np.issubdtype(x.dtype, np.integer):
        x = x.astype(np.float32) / 32768.0
    hot = np.abs(x) >= level
    if not hot.any():
        return False
    if hot.mean() > max_fraction:
        return True
    if run <= 1:
        return True
    h = hot.astype(np.int8)
    c = np.convolve(h, np.ones(run, dtype=np.int8), mode="valid")
    return bool((c >= run).any())


def next_fast_len(n: int) -> int:
    """Smallest 2^a·3^b·5^c ≥ n (a fast FFT size)."""
    if n <= 16:
        return max(1, n)
    best = 1 << (n - 1).bit_length()
    f5 = 1
    while f5 < best:
        f35 = f5
        while f35 < best:
            f = f35
            while f < n:
                f *= 2
            best = min(best, f)
            f35 *= 3
        f5 *= 5
    return best


def fftconvolve(x: np.ndarray, h: np.ndarray) -> np.ndarray:
    """Full linear convolution of 1-D ``x`` [N] and ``h`` [M] through the FFT: ``[N + M - 1]``, float64 inside,
    the dtype of ``x`` out."""
    n = len(x) + len(h) - 1
    m = next_fast_len(n)
    y = np.fft.irfft(np.fft.rfft(x, m) * np.fft.rfft(h, m), m)[:n]
    return y.astype(np.result_type(x.dtype, np.float32), copy=False)
