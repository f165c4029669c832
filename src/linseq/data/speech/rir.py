"""Room impulse responses of shoebox rooms, simulated in numpy (no pyroomacoustics).

The model is a hybrid, standard in room-acoustics simulation:

* **Early part** (``t ≤ early_ms``): the image-source method for a rectangular room (Allen & Berkley, 1979).
  Every image source within ``c·t_early`` of the microphone contributes ``β^k / (4π d)`` at delay ``d / c``, with
  ``k`` the number of wall reflections and ``β = sqrt(1 - α)`` the pressure reflection coefficient of walls whose
  uniform absorption ``α`` follows from the requested RT60 through Eyring's formula
  ``RT60 = 0.161 V / (-S ln(1 - α))``. Delays are fractional (Hann-windowed sinc, 32 taps).
* **Late part**: Gaussian noise with the energy the image sources would deliver on average,
  ``c / (4π V fs) · 10^(-6 t / RT60_band)`` per sample, in octave bands whose RT60 shortens towards high
  frequencies (air and wall absorption), its level matched to the image sources' energy in the 25 ms before the
  cross-fade. Early and late parts are cross-faded over 10 ms.

A RIR is fully determined by ``(dims, source, mic, rt60, seed)``, so the pools store these parameters instead of
audio and the mixer re-simulates each RIR on first use (a few ms).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from linseq.data.speech.audio import SAMPLE_RATE

__all__ = ["SPEED_OF_SOUND", "simulate_rir", "sample_rir_params", "estimate_rt60", "rir_from_params"]

SPEED_OF_SOUND = 343.0
# octave band centres (Hz) and their RT60 relative to the requested (mid-frequency, 500 Hz - 1 kHz) RT60
_BANDS = np.array([125.0, 250.0, 500.0, 1000.0, 2000.0, 4000.0, 8000.0])
_BAND_RT60 = np.array([1.25, 1.2, 1.14, 1.08, 1.02, 0.96, 0.9])
_SINC_HALF = 16


def _axis_images(length: float, src: float, mic: float, reach: float) -> tuple[np.ndarray, np.ndarray]:
    """Image coordinates along one axis relative to the microphone, and their reflection counts."""
    n_max = int(math.ceil(reach / (2 * length))) + 1
    n = np.arange(-n_max, n_max + 1)
    coords, refl = [], []
    for p in (0, 1):
        coords.append((1 - 2 * p) * src + 2 * n * length - mic)
        refl.append(np.abs(n - p) + np.abs(n))
    return np.concatenate(coords), np.concatenate(refl)


def simulate_rir(dims: tuple[float, float, float] | list[float], source: tuple[float, float, float] | list[float],
                 mic: tuple[float, float, float] | list[float], rt60: float, seed: int = 0,
                 sample_rate: int = SAMPLE_RATE, early_ms: float = 80.0, max_seconds: float = 2.0) -> np.ndarray:
    """Impulse response from ``source`` to ``mic`` (metres) in a shoebox room of size ``dims`` (metres) with
    mid-frequency reverberation time ``rt60`` (seconds).

    Returns ``[T]`` float32 normalised to peak 1, ``T ≈ (early_ms/1000 + max band RT60) · sample_rate`` samples
    (at most ``max_seconds``); sample 0 is the moment the source emits, so the direct path arrives after
    ``distance / 343 m/s``.
    """
    dims = np.asarray(dims, dtype=np.float64)
    src = np.asarray(source, dtype=np.float64)
    mic_ = np.asarray(mic, dtype=np.float64)
    if dims.shape != (3,) or src.shape != (3,) or mic_.shape != (3,):
        raise ValueError(f"dims, source and mic must be 3 coordinates each; got {dims.shape}, {src.shape}, {mic_.shape}")
    if np.any(dims <= 0) or np.any(src <= 0) or np.any(src >= dims) or np.any(mic_ <= 0) or np.any(mic_ >= dims):
        raise ValueError(f"source {src.tolist()} and mic {mic_.tolist()} must lie inside the room {dims.tolist()}")
    if not 0.05 <= rt60 <= 10.0:
        raise ValueError(f"rt60 must be in [0.05, 10] seconds; got {rt60}")
    c, fs = SPEED_OF_SOUND, float(sample_rate)
    rng = np.random.default_rng([int(seed), 0x726972])
    volume = float(np.prod(dims))
    surface = 2.0 * (dims[0] * dims[1] + dims[0] * dims[2] + dims[1] * dims[2])
    alpha = 1.0 - math.exp(-24 * math.log(10) * volume / (c * surface * rt60))  # Eyring, inverted
    beta = math.sqrt(1.0 - alpha)

    band_rt60 = rt60 * _BAND_RT60 * np.where(_BANDS >= 2000, rng.uniform(0.93, 1.07, len(_BANDS)), 1.0)
    t_early = early_ms / 1000.0
    length = int(min(max_seconds, t_early + float(band_rt60.max())) * fs)
    early_len = int(t_early * fs)
    length = max(length, early_len + 2 * _SINC_HALF + 1)

    # --- early part: image sources up to t_early
    reach = c * t_early
    ax = [_axis_images(dims[i], src[i], mic_[i], reach) for i in range(3)]
    dx, kx = ax[0]
    dy, ky = ax[1]
    dz, kz = ax[2]
    dist = np.sqrt(dx[:, None, None] ** 2 + dy[None, :, None] ** 2 + dz[None, None, :] ** 2)
    refl = kx[:, None, None] + ky[None, :, None] + kz[None, None, :]
    keep = dist <= reach
    dist, refl = dist[keep], refl[keep]
    amp = beta ** refl / (4 * math.pi * dist)
    delay = dist / c * fs
    t0 = np.floor(delay).astype(np.int64)
    frac = delay - t0
    taps = np.arange(-_SINC_HALF + 1, _SINC_HALF + 1)
    x = taps[None, :] - frac[:, None]
    w = np.sinc(x) * (0.5 + 0.5 * np.cos(np.pi * x / _SINC_HALF))
    idx = t0[:, None] + taps[None, :]
    ok = (idx >= 0) & (idx < length)
    early = np.bincount(idx[ok], weights=(amp[:, None] * w)[ok], minlength=length)

    # --- late part: band-wise exponentially decaying Gaussian noise with the image-source energy density
    t = np.arange(length) / fs
    white = rng.standard_normal(length)
    spec = np.fft.rfft(white)
    f = np.fft.rfftfreq(length, 1.0 / fs)
    lb = np.log2(np.clip(f, _BANDS[0], _BANDS[-1]))
    centres = np.log2(_BANDS)
    late = np.zeros(length)
    for b in range(len(_BANDS)):
        weight = np.interp(lb, centres, np.eye(len(_BANDS))[b])  # triangular; weights sum to 1 over bands
        band = np.fft.irfft(spec * np.sqrt(weight), length)
        late += band * 10 ** (-3.0 * t / band_rt60[b])
    late *= math.sqrt(c / (4 * math.pi * volume * fs))
    # image sources decay a little slower than the statistical estimate (the mean of β^k exceeds β^(mean k)), so
    # the late level is matched to the image-source energy just before the cross-fade
    w0, w1 = max(0, early_len - int(0.035 * fs)), early_len - int(0.010 * fs)
    if w1 - w0 > 16:
        e_late = float(np.mean(late[w0:w1] ** 2))
        e_early = float(np.mean(early[w0:w1] ** 2))
        if e_late > 0 and e_early > 0:
            late *= float(np.clip(math.sqrt(e_early / e_late), 0.5, 2.0))

    # --- power-complementary cross-fade over the 10 ms before t_early
    fade_len = int(0.010 * fs)
    u = np.clip((np.arange(length) - (early_len - fade_len)) / fade_len, 0.0, 1.0)
    h = early * np.cos(0.5 * np.pi * u) + late * np.sin(0.5 * np.pi * u)
    tail = min(int(0.02 * fs), length // 4)
    h[-tail:] *= np.linspace(1.0, 0.0, tail)
    h /= np.max(np.abs(h))
    return h.astype(np.float32)


def rir_from_params(params: dict[str, Any], sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Simulate the RIR of one pool entry ``{"dims", "source", "mic", "rt60", "seed"}``: ``[T]`` float32."""
    try:
        return simulate_rir(params["dims"], params["source"], params["mic"], float(params["rt60"]),
                            seed=int(params["seed"]), sample_rate=sample_rate)
    except KeyError as e:
        raise ValueError(f"a RIR entry needs 'dims', 'source', 'mic', 'rt60' and 'seed'; got {sorted(params)}") from e


def sample_rir_params(rng: np.random.Generator, room_id: str, positions: int,
                      dims_low: tuple[float, float, float] = (3.0, 3.0, 2.5),
                      dims_high: tuple[float, float, float] = (10.0, 8.0, 4.0),
                      rt60_range: tuple[float, float] = (0.2, 1.3),
                      distance_range: tuple[float, float] = (0.5, 3.0)) -> list[dict[str, Any]]:
    """Draw one room (size, RT60) and ``positions`` source/microphone pairs in it.

    Sources stand 0.5 m or more from the walls at 1.0-2.0 m height; microphones sit ``distance_range`` metres from
    their source at 0.8-1.8 m height, 0.3 m or more from the walls. Returns JSON-ready dicts with
    ``id, room, dims, rt60, source, mic, distance, seed``.
    """
    dims = [round(float(rng.uniform(lo, hi)), 2) for lo, hi in zip(dims_low, dims_high)]
    rt60 = round(float(rng.uniform(*rt60_range)), 3)
    out = []
    for p in range(positions):
        for _ in range(1000):
            src = [float(rng.uniform(0.5, dims[0] - 0.5)), float(rng.uniform(0.5, dims[1] - 0.5)),
                   float(rng.uniform(1.0, min(2.0, dims[2] - 0.3)))]
            d = float(rng.uniform(*distance_range))
            mz = float(rng.uniform(0.8, min(1.8, dims[2] - 0.3)))
            horiz2 = d * d - (mz - src[2]) ** 2
            if horiz2 <= 0:
                continue
            az = float(rng.uniform(0, 2 * math.pi))
            mic = [src[0] + math.sqrt(horiz2) * math.cos(az), src[1] + math.sqrt(horiz2) * math.sin(az), mz]
            if 0.3 <= mic[0] <= dims[0] - 0.3 and 0.3 <= mic[1] <= dims[1] - 0.3:
                break
        else:  # pragma: no cover - a 3 m wide room always fits 0.5 m; kept as a guard
            raise RuntimeError(f"could not place a source/mic pair in room {dims}")
        out.append({
            "id": f"{room_id}_p{p}", "room": room_id, "dims": dims, "rt60": rt60,
            "source": [round(v, 3) for v in src], "mic": [round(v, 3) for v in mic], "distance": round(d, 3),
            "seed": int(rng.integers(2**31)),
        })
    return out


def estimate_rt60(h: np.ndarray, sample_rate: int = SAMPLE_RATE, fit_db: tuple[float, float] = (-5.0, -25.0)) -> float:
    """RT60 (seconds) of impulse response ``h`` [T] from the slope of its Schroeder energy decay curve between
    ``fit_db`` (default: T20 extrapolated to 60 dB)."""
    e = np.cumsum(np.asarray(h, dtype=np.float64)[::-1] ** 2)[::-1]
    edc = 10 * np.log10(e / e[0] + 1e-30)
    hi, lo = fit_db
    sel = np.flatnonzero((edc <= hi) & (edc >= lo))
    if sel.size < 2:
        raise ValueError("impulse response too short to fit its decay")
    t = sel / sample_rate
    slope = np.polyfit(t, edc[sel], 1)[0]
    return float(-60.0 / slope)
