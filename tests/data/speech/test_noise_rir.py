import numpy as np
import pytest

from linseq.data.speech.noise import GENERATED_FAMILIES, colored_noise, generate_noise, realise_noise
from linseq.data.speech.rir import estimate_rt60, sample_rir_params, simulate_rir

SR = 16_000


def _psd_slope(x: np.ndarray, lo: float = 100.0, hi: float = 6000.0) -> float:
    """Slope of the averaged periodogram in log10(power) per log10(frequency) between lo and hi Hz."""
    n = 2048
    frames = x[: len(x) // n * n].reshape(-1, n) * np.hanning(n)
    p = np.mean(np.abs(np.fft.rfft(frames, axis=1)) ** 2, axis=0)
    f = np.fft.rfftfreq(n, 1 / SR)
    sel = (f >= lo) & (f <= hi)
    return float(np.polyfit(np.log10(f[sel]), np.log10(p[sel]), 1)[0])


@pytest.mark.parametrize("exponent", [-2.0, -1.0, 0.0, 1.0])
def test_colored_noise_spectral_slope(exponent):
    x = colored_noise(SR * 8, exponent, np.random.default_rng())
    assert abs(_psd_slope(x) - exponent) < 0.12


def test_pink_and_brown_families_have_their_slopes():
    rng = np.random.default_rng()
    assert abs(_psd_slope(generate_noise("pink", SR * 8, rng, exponent=-1.0)) + 1.0) < 0.12
    assert abs(_psd_slope(generate_noise("brown", SR * 8, rng, exponent=-2.0)) + 2.0) < 0.12


@pytest.mark.parametrize("family", GENERATED_FAMILIES)
def test_every_family_generates_finite_peak_normalised_audio(family):
    x = generate_noise(family, 12_345, np.random.default_rng())
    assert x.shape == (12_345,) and x.dtype == np.float32
    assert np.all(np.isfinite(x)) and abs(np.max(np.abs(x)) - 0.9) < 1e-5
    assert np.std(x) > 1e-3


def test_hum_is_tonal_at_mains_frequency():
    x = generate_noise("hum", SR * 4, np.random.default_rng(), mains_hz=50.0, harmonics=3, decay=1.0,
                       odd_boost=1.0, floor_db=-40.0)
    p = np.abs(np.fft.rfft(x)) ** 2
    f = np.fft.rfftfreq(len(x), 1 / SR)
    assert abs(f[np.argmax(p)] - 50.0) < 0.5


def test_recipe_is_reproducible_and_validated():
    r = {"id": "a", "family": "bursty", "seconds": 1.25, "seed": 7, "params": {}}
    a, b = realise_noise(r), realise_noise(dict(r))
    assert len(a) == 20_000 and np.array_equal(a, b)
    assert not np.array_equal(a, realise_noise({**r, "seed": 8}))
    with pytest.raises(ValueError, match="family must be one of"):
        generate_noise("purple", 100, np.random.default_rng())
    with pytest.raises(ValueError, match="needs 'family'"):
        realise_noise({"family": "pink"})


def test_rir_rt60_matches_request():
    rng = np.random.default_rng()
    ratios = []
    for k in range(6):
        p = sample_rir_params(rng, f"r{k}", 1)[0]
        h = simulate_rir(p["dims"], p["source"], p["mic"], p["rt60"], seed=p["seed"])
        assert h.dtype == np.float32 and np.all(np.isfinite(h)) and np.max(np.abs(h)) == pytest.approx(1.0)
        ratios.append(estimate_rt60(h) / p["rt60"])
    assert 0.85 < np.mean(ratios) < 1.15, ratios
    assert min(ratios) > 0.65 and max(ratios) < 1.35, ratios


def test_rir_direct_path_delay_and_room_constraints():
    dims, src, mic = (6.0, 5.0, 3.0), (2.0, 2.0, 1.5), (4.0, 2.0, 1.5)
    h = simulate_rir(dims, src, mic, 0.5, seed=1)
    # the direct path (2 m) arrives after 2 / 343 s and is the first significant sample
    first = int(np.flatnonzero(np.abs(h) > 0.2)[0])
    assert abs(first - 2.0 / 343.0 * SR) <= 2
    assert np.array_equal(h, simulate_rir(dims, src, mic, 0.5, seed=1))
    with pytest.raises(ValueError, match="inside the room"):
        simulate_rir(dims, (7.0, 2.0, 1.5), mic, 0.5)
    with pytest.raises(ValueError, match="rt60"):
        simulate_rir(dims, src, mic, 0.0)
    for p in sample_rir_params(np.random.default_rng(), "room", 5):
        d = np.linalg.norm(np.subtract(p["source"], p["mic"]))
        assert 0.5 - 1e-3 <= d <= 3.0 + 1e-3 and abs(d - p["distance"]) < 1e-2
        assert all(0 < c < L for c, L in zip(p["mic"], p["dims"]))
        assert 3.0 <= p["dims"][0] <= 10.0 and 3.0 <= p["dims"][1] <= 8.0 and 2.5 <= p["dims"][2] <= 4.0
        assert 0.2 <= p["rt60"] <= 1.3


def test_sweeps_glide_between_their_two_frequencies():
    sr = 16000
    x = generate_noise("sweeps", 4 * sr, np.random.default_rng(0), low_hz=500.0, ratio=2.0, glide_s=1.0,
                       floor_db=-60.0)
    peaks = []
    for start in range(0, len(x) - 1024, 1024):
        spec = np.abs(np.fft.rfft(x[start:start + 1024] * np.hanning(1024)))
        peaks.append(np.argmax(spec) * sr / 1024)
    assert 450 <= min(peaks) <= 600 and 850 <= max(peaks) <= 1050  # the fundamental covers 500-1000 Hz
