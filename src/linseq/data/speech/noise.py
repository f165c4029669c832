"""Generated noise families (numpy only), realised on demand from small JSON recipes.

A *recipe* is ``{"id", "family", "seconds", "seed", "params"}``; :func:`realise_noise` turns it into the same
float32 signal every time, so a recipe behaves like a stored noise file that costs no bytes. Families:

=================  ==============================================================================================
``white``          Gaussian white noise
``pink``/``brown``  power spectral density ∝ f^exponent with exponent near -1 / -2 (``blue`` +1, ``violet`` +2)
``speech_shaped``  white noise shaped by a long-term speech spectrum (``ltas_db`` at :data:`LTAS_FREQS`)
``am_modulated``   coloured noise with sinusoidal amplitude modulation (0.5-8 Hz)
``bursty``         coloured noise gated on and off at random (bursts of tens to hundreds of ms)
``clicks``         Poisson-timed decaying impulses over a faint noise floor
``fan``            band-limited noise plus a weak blade-pass tone and harmonics, slowly modulated
``hum``            mains hum: 50 or 60 Hz and harmonics over a faint pink floor
``engine``         harmonic engine sound (25-90 Hz firing rate, drifting rpm) plus brown rumble
``tones``          tonal events (1-4 partials, 150 Hz-3 kHz, attack/decay envelopes, some vibrato) at random times
``sweeps``         tones gliding up and down between two frequencies (0.3-3 s per glide), with a few harmonics
``textures``       band-pass noise whose centre frequency and level wander slowly, with sparse crackle
=================  ==============================================================================================

The last three are not in any pools split: :class:`~linseq.data.speech.mixer.SpeechMixer` adds them to training
mixtures on request (``extra_noise_families``), for variety beyond the training split's families.

Every generator returns ``[T]`` float32 peak-normalised to 0.9 (the mixer re-normalises anyway).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from linseq.data.speech.audio import SAMPLE_RATE

__all__ = [
    "EXTRA_FAMILIES", "GENERATED_FAMILIES", "LTAS_FREQS", "colored_noise", "generate_noise", "noise_recipes",
    "random_noise_params", "realise_noise", "long_term_spectrum_db",
]

GENERATED_FAMILIES = (
    "white", "pink", "brown", "blue", "violet", "speech_shaped", "am_modulated", "bursty", "clicks", "fan", "hum",
    "engine", "tones", "sweeps", "textures",
)
EXTRA_FAMILIES = ("tones", "sweeps", "textures")  # training-time extras (SpeechMixer), in no pools split
_EXPONENTS = {"white": 0.0, "pink": -1.0, "brown": -2.0, "blue": 1.0, "violet": 2.0}
# frequencies (Hz) at which a long-term average speech spectrum is stored: 32 log-spaced points, 50 Hz - 8 kHz
LTAS_FREQS = tuple(float(f) for f in np.round(np.geomspace(50.0, 8000.0, 32), 1))


def _shape_white(n: int, rng: np.random.Generator, gain_of_f, sample_rate: int) -> np.ndarray:
    """White Gaussian noise [n] filtered in the frequency domain by the amplitude response ``gain_of_f(f)``."""
    w = rng.standard_normal(n)
    spec = np.fft.rfft(w)
    f = np.fft.rfftfreq(n, 1.0 / sample_rate)
    spec *= gain_of_f(f)
    return np.fft.irfft(spec, n)


def colored_noise(n: int, exponent: float, rng: np.random.Generator, sample_rate: int = SAMPLE_RATE,
                  f_min: float = 20.0) -> np.ndarray:
    """Gaussian noise [n] whose power spectral density is ∝ f^exponent above ``f_min`` (Hz; flat below it, no DC).

    exponent 0 = white, -1 = pink, -2 = brown (red), +1 = blue, +2 = violet.
    """
    def gain(f):
        g = np.power(np.maximum(f, f_min), exponent / 2.0)
        g[0] = 0.0
        return g

    return _shape_white(n, rng, gain, sample_rate)


def _peak(x: np.ndarray, peak: float = 0.9) -> np.ndarray:
    m = float(np.max(np.abs(x))) if x.size else 0.0
    return (x * (peak / m) if m > 0 else x).astype(np.float32)


def _smooth_gate(gate: np.ndarray, ramp: int) -> np.ndarray:
    if ramp <= 1:
        return gate
    k = np.hanning(2 * ramp + 1)
    k /= k.sum()
    return np.convolve(gate, k, mode="same")


def long_term_spectrum_db(signals: list[np.ndarray], sample_rate: int = SAMPLE_RATE, n_fft: int = 1024) -> list[float]:
    """Long-term average power spectrum of ``signals`` in dB (max 0 dB), sampled at :data:`LTAS_FREQS`."""
    acc = np.zeros(n_fft // 2 + 1)
    count = 0
    win = np.hanning(n_fft)
    for x in signals:
        x = np.asarray(x, dtype=np.float64)
        if len(x) < n_fft:
            continue
        frames = np.lib.stride_tricks.sliding_window_view(x, n_fft)[:: n_fft // 2]
        acc += np.sum(np.abs(np.fft.rfft(frames * win, axis=1)) ** 2, axis=0)
        count += len(frames)
    if count == 0:
        raise ValueError("long_term_spectrum_db needs at least one signal longer than n_fft samples")
    f = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
    db = 10 * np.log10(np.interp(LTAS_FREQS, f, acc / count) + 1e-20)
    return [round(float(v), 2) for v in db - db.max()]


def _default_ltas_db() -> list[float]:
    # a generic long-term speech spectrum: rising to ~500 Hz, then about -8 dB per octave
    f = np.asarray(LTAS_FREQS)
    db = np.where(f < 500, -12 * np.log2(500 / f) / np.log2(500 / 50), -8 * np.log2(f / 500))
    return [float(v) for v in db]


def generate_noise(family: str, num_samples: int, rng: np.random.Generator, sample_rate: int = SAMPLE_RATE,
                   **params: Any) -> np.ndarray:
    """Generate ``num_samples`` of one noise ``family`` (see the module doc) with ``params`` (defaults are drawn
    from ``rng`` when missing). Returns ``[num_samples]`` float32, peak 0.9."""
    if family not in GENERATED_FAMILIES:
        raise ValueError(f"family must be one of {GENERATED_FAMILIES}; got {family!r}")
    if num_samples <= 0:
        raise ValueError(f"num_samples must be positive; got {num_samples}")
    n, sr = int(num_samples), int(sample_rate)
    t = np.arange(n) / sr
    p = {**random_noise_params(family, rng), **params}

    if family in _EXPONENTS:
        x = colored_noise(n, p["exponent"], rng, sr)
    elif family == "speech_shaped":
        ltas = np.asarray(p["ltas_db"], dtype=np.float64) + p["tilt_db_per_octave"] * np.log2(np.asarray(LTAS_FREQS) / 1000)
        lf = np.log(np.asarray(LTAS_FREQS))

        def gain(f):
            g = 10 ** (np.interp(np.log(np.maximum(f, 1.0)), lf, ltas) / 20)
            g[0] = 0.0
            return g

        x = _shape_white(n, rng, gain, sr)
    elif family == "am_modulated":
        x = colored_noise(n, p["exponent"], rng, sr)
        x *= (1 + p["depth"] * np.sin(2 * np.pi * p["rate_hz"] * t + p["phase"])) / (1 + p["depth"])
    elif family == "bursty":
        x = colored_noise(n, p["exponent"], rng, sr)
        gate = np.empty(n)
        i, on = 0, bool(rng.integers(2))
        while i < n:
            d = int(sr * rng.exponential(p["on_s"] if on else p["off_s"])) + 1
            gate[i:i + d] = 1.0 if on else 10 ** (p["floor_db"] / 20)
            i += d
            on = not on
        x *= _smooth_gate(gate, int(0.005 * sr))
    elif family == "clicks":
        x = colored_noise(n, 0.0, rng, sr) * 10 ** (p["floor_db"] / 20)
        num = rng.poisson(p["rate_hz"] * n / sr)
        tau = max(1, int(p["decay_ms"] * sr / 1000))
        shape = np.exp(-np.arange(8 * tau) / tau)
        for pos in rng.integers(0, n, size=num):
            seg = shape[: n - pos] * rng.standard_normal(min(len(shape), n - pos)) * rng.uniform(0.3, 1.0)
            x[pos:pos + len(seg)] += seg
    elif family == "fan":
        lo, hi = p["band_hz"]

        def gain(f):
            g = 1.0 / (1 + (lo / np.maximum(f, 1.0)) ** 4) / (1 + (f / hi) ** 4)
            g[0] = 0.0
            return g

        x = _shape_white(n, rng, gain, sr)
        x /= np.sqrt(np.mean(x * x)) + 1e-12
        tone = sum(np.sin(2 * np.pi * k * p["blade_hz"] * t + rng.uniform(0, 2 * np.pi)) * k ** -1.5
                   for k in range(1, 6))
        x += tone * 10 ** (p["tone_db"] / 20)
        x *= 1 + 0.1 * np.sin(2 * np.pi * p["wobble_hz"] * t + rng.uniform(0, 2 * np.pi))
    elif family == "hum":
        x = np.zeros(n)
        for k in range(1, p["harmonics"] + 1):
            amp = k ** -p["decay"] * (p["odd_boost"] if k % 2 else 1.0)
            x += amp * np.sin(2 * np.pi * k * p["mains_hz"] * t + rng.uniform(0, 2 * np.pi))
        x /= np.sqrt(np.mean(x * x)) + 1e-12
        x += _unit(colored_noise(n, -1.0, rng, sr)) * 10 ** (p["floor_db"] / 20)
    elif family == "engine":
        # rpm drifts as a smoothed random walk of ±drift around the base firing rate
        steps = max(2, int(n / sr * 10) + 2)
        walk = np.cumsum(rng.standard_normal(steps))
        walk = (walk - walk.mean()) / (np.abs(walk - walk.mean()).max() + 1e-12)
        f0 = p["firing_hz"] * (1 + p["drift"] * np.interp(np.linspace(0, steps - 1, n), np.arange(steps), walk))
        phase = 2 * np.pi * np.cumsum(f0) / sr
        x = np.zeros(n)
        for k in range(1, 21):
            x += k ** -1.0 * rng.uniform(0.5, 1.0) * np.sin(k * phase + rng.uniform(0, 2 * np.pi))
        x = _unit(x) + _unit(colored_noise(n, -2.0, rng, sr)) * 10 ** (p["rumble_db"] / 20)
    elif family == "tones":
        x = _unit(colored_noise(n, -1.0, rng, sr)) * 10 ** (p["floor_db"] / 20)
        for _ in range(max(1, rng.poisson(p["events_per_s"] * n / sr))):
            dur = int(sr * rng.uniform(*p["event_s"]))
            start = int(rng.integers(0, max(1, n - dur // 2)))
            seg = np.arange(min(dur, n - start)) / sr
            f0 = rng.uniform(150, 3000)
            ratios = [1.0] + sorted(rng.uniform(1.2, 4.0, size=int(rng.integers(0, 4))).tolist())
            vib = rng.uniform(0, p["vibrato"]) * np.sin(2 * np.pi * rng.uniform(3, 8) * seg)
            env = np.minimum(1.0, seg / rng.uniform(0.003, 0.05)) * np.exp(-seg / rng.uniform(0.05, 0.8))
            tone = sum(r ** -1.0 * np.sin(2 * np.pi * f0 * r * (seg + vib / (2 * np.pi * f0)) + rng.uniform(0, 6.283))
                       for r in ratios if f0 * r < sr / 2)
            x[start:start + len(seg)] += env * tone * rng.uniform(0.3, 1.0)
    elif family == "sweeps":
        lo = p["low_hz"]
        hi = lo * p["ratio"]
        pos = np.abs(((t / p["glide_s"]) % 2.0) - 1.0)  # triangle wave 0..1: up, then down
        f = lo * (hi / lo) ** pos
        phase = 2 * np.pi * np.cumsum(f) / sr
        x = sum(k ** -1.5 * np.sin(k * phase) for k in range(1, 4) if k * hi < sr / 2)
        x = _unit(x) + _unit(colored_noise(n, -1.0, rng, sr)) * 10 ** (p["floor_db"] / 20)
    elif family == "textures":
        steps = max(2, int(n / sr * 4) + 2)  # control points 4 per second, smoothed random walks
        ctrl = np.linspace(0, steps - 1, n)

        def walk() -> np.ndarray:
            return np.interp(ctrl, np.arange(steps), np.cumsum(rng.standard_normal(steps)) / np.sqrt(steps))

        centre = p["centre_hz"] * np.exp(0.6 * walk())
        x = np.zeros(n)
        hop = 1024  # band-pass frame by frame around the centre of its time; square-root Hann windows on both
        win = np.sqrt(np.hanning(2 * hop + 1)[:-1])  # sides overlap-add to a constant at 50 % overlap
        f = np.fft.rfftfreq(2 * hop, 1.0 / sr)
        for i in range(0, n, hop):
            c = centre[min(i + hop, n - 1)]
            band = np.exp(-0.5 * (np.log(np.maximum(f, 1.0) / c) / p["width_oct"]) ** 2)
            frame = np.fft.irfft(np.fft.rfft(rng.standard_normal(2 * hop) * win) * band, 2 * hop) * win
            x[i:i + 2 * hop] += frame[: len(x[i:i + 2 * hop])]
        x = _unit(x) * np.exp(0.5 * walk())
        num = rng.poisson(p["crackle_per_s"] * n / sr)
        for q in rng.integers(0, n, size=num):
            x[q] += rng.standard_normal() * rng.uniform(1.0, 4.0)
    return _peak(x)


def _unit(x: np.ndarray) -> np.ndarray:
    return x / (np.sqrt(np.mean(x * x)) + 1e-12)


def random_noise_params(family: str, rng: np.random.Generator) -> dict[str, Any]:
    """Draw the parameters of one recipe of ``family`` (JSON-serialisable)."""
    u = lambda a, b: round(float(rng.uniform(a, b)), 3)  # noqa: E731
    if family in _EXPONENTS:
        return {"exponent": round(_EXPONENTS[family] + (u(-0.15, 0.15) if family != "white" else 0.0), 3)}
    if family == "speech_shaped":
        return {"ltas_db": _default_ltas_db(), "tilt_db_per_octave": u(-1.5, 1.5)}
    if family == "am_modulated":
        return {"exponent": u(-2.0, 0.0), "rate_hz": u(0.5, 8.0), "depth": u(0.3, 1.0), "phase": u(0, 6.283)}
    if family == "bursty":
        return {"exponent": u(-2.0, 0.5), "on_s": u(0.05, 0.6), "off_s": u(0.1, 1.0), "floor_db": u(-40, -15)}
    if family == "clicks":
        return {"rate_hz": u(1.0, 20.0), "decay_ms": u(0.5, 5.0), "floor_db": u(-45, -25)}
    if family == "fan":
        lo = u(80, 400)
        return {"band_hz": [lo, u(max(1000, 3 * lo), 5000)], "blade_hz": u(40, 250), "tone_db": u(-25, -8),
                "wobble_hz": u(0.1, 1.0)}
    if family == "hum":
        return {"mains_hz": round(float(rng.choice([50.0, 60.0])) * u(0.998, 1.002), 3),
                "harmonics": int(rng.integers(3, 16)), "decay": u(0.5, 2.0), "odd_boost": u(1.0, 3.0),
                "floor_db": u(-40, -20)}
    if family == "engine":
        return {"firing_hz": u(25, 90), "drift": u(0.02, 0.15), "rumble_db": u(-15, 0)}
    if family == "tones":
        return {"events_per_s": u(0.5, 4.0), "event_s": [0.05, u(0.2, 1.5)], "vibrato": u(0.0, 0.02),
                "floor_db": u(-40, -20)}
    if family == "sweeps":
        return {"low_hz": u(300, 1500), "ratio": u(1.3, 3.0), "glide_s": u(0.3, 3.0), "floor_db": u(-40, -20)}
    if family == "textures":
        return {"centre_hz": u(300, 4000), "width_oct": u(0.3, 1.5), "crackle_per_s": u(0.0, 30.0)}
    raise ValueError(f"family must be one of {GENERATED_FAMILIES}; got {family!r}")


def noise_recipes(families: tuple[str, ...], per_family: int, rng: np.random.Generator, prefix: str = "gen",
                  ltas_db: list[float] | None = None) -> list[dict[str, Any]]:
    """``per_family`` recipes of each family, ids ``<prefix>-<family>/<k:03d>``, 6-10 s each, all drawn from
    ``rng``; ``speech_shaped`` recipes take ``ltas_db`` as their spectrum when given."""
    out = []
    for fam in families:
        for k in range(per_family):
            params = random_noise_params(fam, rng)
            if fam == "speech_shaped" and ltas_db is not None:
                params["ltas_db"] = ltas_db
            out.append({"id": f"{prefix}-{fam}/{k:03d}", "family": fam, "seconds": round(float(rng.uniform(6, 10)), 1),
                        "seed": int(rng.integers(2**31)), "params": params})
    return out


def realise_noise(recipe: dict[str, Any], sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """The signal of one recipe ``{"family", "seconds", "seed", "params"}``: ``[round(seconds·sr)]`` float32,
    identical on every call."""
    try:
        family, seconds, seed = recipe["family"], float(recipe["seconds"]), int(recipe["seed"])
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f"a noise recipe needs 'family', 'seconds' and 'seed'; got {recipe!r}") from e
    rng = np.random.default_rng([seed, 0x6E6F697365])
    return generate_noise(family, int(round(seconds * sample_rate)), rng, sample_rate, **recipe.get("params", {}))
