import shutil

import numpy as np
import pytest
import torch

from linseq.data.speech import SpeechMixer, mix_at_snr
from linseq.data.speech.audio import fftconvolve
from linseq.data.speech.mixer import EQ_FREQS_HZ, resample_to, shape_spectrum, smooth_lengths

SR = 16_000


def _db(x):
    return 20 * np.log10(np.sqrt(np.mean(np.asarray(x, np.float64) ** 2)))


def test_items_have_the_right_shape_dtype_and_levels(tiny_pools):
    ds = SpeechMixer(tiny_pools, "train", segment_seconds=1.0, seed=3, num_items=12)
    assert len(ds) == 12
    for i in range(len(ds)):
        noisy, clean = ds[i]
        assert isinstance(noisy, torch.Tensor) and noisy.dtype == torch.float32 and clean.dtype == torch.float32
        assert noisy.shape == clean.shape == (SR,)
        assert torch.isfinite(noisy).all() and torch.isfinite(clean).all()
        assert noisy.abs().max() <= 0.99 + 1e-6
        _, _, info = ds.mix(i)
        assert -5 <= info["snr_db"] <= 20 and -35 <= info["level_dbfs"] < -15
        if noisy.abs().max() < 0.98:  # the clipping guard did not rescale
            assert abs(_db(noisy.numpy()) - info["level_dbfs"]) < 0.01


def test_snr_of_the_mixture_matches_the_draw_without_reverb(tiny_pools):
    ds = SpeechMixer(tiny_pools, "train", segment_seconds=1.5, seed=0, num_items=20, reverb_proportion=0.0)
    for i in range(len(ds)):
        noisy, clean, info = ds.mix(i)
        assert info["reverb"] is False and info["rir"] is None
        n = noisy.astype(np.float64) - clean
        snr = 10 * np.log10(np.sum(clean.astype(np.float64) ** 2) / np.sum(n ** 2))
        assert abs(snr - info["snr_db"]) < 0.05, (snr, info)


def test_items_are_deterministic_per_seed_epoch_index(tiny_pools):
    a = SpeechMixer(tiny_pools, "train", segment_seconds=1.0, seed=5, num_items=8)
    b = SpeechMixer(tiny_pools, "train", segment_seconds=1.0, seed=5, num_items=8)
    for i in (0, 3, 7):
        assert all(torch.equal(x, y) for x, y in zip(a[i], b[i]))
    x0 = a[2][0]
    a.set_epoch(1)
    assert not torch.equal(x0, a[2][0])
    a.set_epoch(0)
    assert torch.equal(x0, a[2][0])
    c = SpeechMixer(tiny_pools, "train", segment_seconds=1.0, seed=6, num_items=8)
    assert not torch.equal(x0, c[2][0])


def test_dataloader_workers_give_the_same_items(tiny_pools):
    ds = SpeechMixer(tiny_pools, "train", segment_seconds=0.5, seed=1, num_items=6)
    ds.set_epoch(2)
    loader = torch.utils.data.DataLoader(ds, batch_size=3, num_workers=2, shuffle=False)
    noisy = torch.cat([b[0] for b in loader])
    assert torch.equal(noisy, torch.stack([ds[i][0] for i in range(6)]))


def test_set_epoch_reaches_persistent_workers(tiny_pools):
    ds = SpeechMixer(tiny_pools, "train", segment_seconds=0.25, seed=4, num_items=4)
    loader = torch.utils.data.DataLoader(ds, batch_size=2, num_workers=2, persistent_workers=True)
    for epoch in (0, 1):
        ds.set_epoch(epoch)
        got = torch.cat([b[1] for b in loader])
        assert torch.equal(got, torch.stack([ds[i][1] for i in range(4)]))
    assert ds.epoch == 1


def test_reverberant_clean_is_the_target(tiny_pools):
    ds = SpeechMixer(tiny_pools, "train", segment_seconds=1.0, seed=2, num_items=6, reverb_proportion=1.0)
    pool = ds.pool
    ids = [u[0] for u in pool.utterances]
    rir_ids = [r["id"] for r in pool.rirs]
    for i in range(len(ds)):
        noisy, clean, info = ds.mix(i)
        assert info["reverb"] is True
        x = pool.utterance(ids.index(info["utterance"]))
        dry = np.pad(x, (0, max(0, SR - len(x))))[info["clean_start"]:info["clean_start"] + SR].astype(np.float64)
        wet = fftconvolve(dry, pool.rir(rir_ids.index(info["rir"])).astype(np.float64))[:SR]
        corr = lambda a, b: abs(np.dot(a, b)) / np.sqrt(np.dot(a, a) * np.dot(b, b))  # noqa: E731
        assert corr(clean, wet) > 0.9999
        assert corr(clean, dry) < 0.99


def test_mix_at_snr_recipe_and_clipping_guard():
    rng = np.random.default_rng()
    clean, noise = rng.standard_normal(8000), rng.standard_normal(8000)
    noisy, target = mix_at_snr(clean, noise, 10, -25)
    assert abs(_db(noisy) + 25) < 1e-3
    assert abs(10 * np.log10(np.sum(target ** 2) / np.sum((noisy - target) ** 2)) - 10) < 1e-3
    spiky = np.zeros(8000)
    spiky[100] = 1.0  # crest factor far above what -15 dBFS RMS allows: the guard must rescale
    noisy, target = mix_at_snr(spiky, noise * 0, 20, -15)
    assert np.max(np.abs(noisy)) == pytest.approx(0.99, abs=1e-6)
    with pytest.raises(ValueError, match="same length"):
        mix_at_snr(clean, noise[:10], 0, -25)


def test_mixer_argument_errors(tiny_pools):
    with pytest.raises(ValueError, match="split must be one of"):
        SpeechMixer(tiny_pools, "valid")
    with pytest.raises(ValueError, match="segment_seconds"):
        SpeechMixer(tiny_pools, segment_seconds=0)
    with pytest.raises(ValueError, match="noise_sampling"):
        SpeechMixer(tiny_pools, noise_sampling="x")
    with pytest.raises(ValueError, match=r"snr_range must be \(low, high\) in dB with low <= high; got \(5, 1\)"):
        SpeechMixer(tiny_pools, snr_range=(5, 1))
    with pytest.raises(IndexError):
        SpeechMixer(tiny_pools, num_items=3).mix(3)


def test_train_cli_passes_snr_range_and_extra_noise_to_the_mixers(tiny_pools):
    import argparse

    from linseq.cli.speech import _datasets
    from linseq.experiments.speech_enhancement.training import TrainConfig

    cfg = TrainConfig.from_preset("ci", snr_range=(30, 30), val_items=2, extra_noise=("textures",))
    train, val, data = _datasets(argparse.Namespace(data=str(tiny_pools), preset="ci"), cfg)
    assert data == str(tiny_pools) and train.snr_range == (30, 30) and len(val) == 2
    assert "textures" in train._families
    assert {train.mix(i)[2]["snr_db"] for i in range(6)} == {30}
    default, _, _ = _datasets(argparse.Namespace(data=str(tiny_pools), preset="ci"), TrainConfig.from_preset("ci"))
    assert default.snr_range == (-5, 20) and "textures" not in default._families  # the recipe's
    with pytest.raises(ValueError, match="snr_range must be"):
        _datasets(argparse.Namespace(data=str(tiny_pools), preset="ci"), TrainConfig.from_preset("ci", snr_range=(5, 1)))


def test_extra_noise_families_join_training_mixtures_only(tiny_pools):
    plain = SpeechMixer(tiny_pools, segment_seconds=0.5, seed=3)
    mixer = SpeechMixer(tiny_pools, segment_seconds=0.5, seed=3, extra_noise_families=("tones", "sweeps"),
                        extra_noise_per_family=2)
    assert set(mixer._families) == set(plain._families) | {"tones", "sweeps"}
    assert len(mixer.pool.noise_clips) == len(plain.pool.noise_clips) + 4
    drawn = {c for i in range(60) for c in mixer.mix(i)[2]["noise_clips"]}
    assert any(c.startswith("extra-tones/") for c in drawn) and any(c.startswith("extra-sweeps/") for c in drawn)
    again = SpeechMixer(tiny_pools, segment_seconds=0.5, seed=3, extra_noise_families=("tones", "sweeps"),
                        extra_noise_per_family=2)
    assert np.array_equal(mixer[5][0].numpy(), again[5][0].numpy())  # recipes fixed by the seed
    with pytest.raises(ValueError, match="must be among"):
        SpeechMixer(tiny_pools, extra_noise_families=("hum",))
    with pytest.raises(ValueError, match="for training mixtures"):
        SpeechMixer(tiny_pools, split="test", extra_noise_families=("tones",))
    with pytest.raises(ValueError, match="already in split"):
        mixer.pool.add_generated([{"id": "extra-tones/000", "family": "tones", "seconds": 1.0, "seed": 1}])


def test_a_mixer_sharing_decoded_files_gives_the_same_items(tiny_pools, tmp_path):
    train = SpeechMixer(tiny_pools, "train", segment_seconds=1.0, seed=2, num_items=4).preload()
    shared = SpeechMixer(tiny_pools, "train", segment_seconds=1.5, seed=9, num_items=4).share_decoded(train)
    alone = SpeechMixer(tiny_pools, "train", segment_seconds=1.5, seed=9, num_items=4)
    assert shared.pool._audio is train.pool._audio and len(train.pool._audio) > 0
    for i in range(4):
        assert all(torch.equal(x, y) for x, y in zip(shared[i], alone[i]))
    copy = shutil.copytree(tiny_pools, tmp_path / "copy")
    with pytest.raises(ValueError, match="different folders"):
        alone.share_decoded(SpeechMixer(copy, "train", num_items=1))


def test_validation_mixtures_depend_on_val_seed_not_on_the_training_seed(tiny_pools):
    """Runs that continue each other with a new --seed validate on the same clips (scores compare across the
    chain); --val-seed picks other clips. Checked for the pools and for the synthetic data."""
    import argparse

    from linseq.cli.speech import _datasets
    from linseq.experiments.speech_enhancement.training import TrainConfig

    def val_set(data, **overrides):
        cfg = TrainConfig.from_preset("ci", val_items=2, **overrides)
        return _datasets(argparse.Namespace(data=data, preset="ci"), cfg)[1]

    def same(a, b):
        return all(np.array_equal(x, y) for pa, pb in zip(a, b) for x, y in zip(pa, pb))

    for data in (str(tiny_pools), "synthetic"):
        first = val_set(data, seed=3)
        assert same(first, val_set(data, seed=4))
        assert not same(first, val_set(data, seed=3, val_seed=5))


def test_clean_proportion_leaves_the_noise_out_of_that_share_and_keeps_the_other_mixtures(tiny_pools):
    base = SpeechMixer(tiny_pools, "train", segment_seconds=1.0, seed=4, num_items=40)
    some = SpeechMixer(tiny_pools, "train", segment_seconds=1.0, seed=4, num_items=40, clean_proportion=0.5)
    some.share_decoded(base)
    flags = []
    for i in range(40):
        n0, c0, info0 = base.mix(i)
        n1, c1, info1 = some.mix(i)
        flags.append(info1["clean_only"])
        assert not info0["clean_only"]
        if info1["clean_only"]:  # input is the target itself, at the level the mixture would have had
            np.testing.assert_array_equal(n1, c1)
            assert not np.array_equal(n0, c0)
            assert abs(np.sqrt(np.mean(n1.astype(np.float64) ** 2)) / 10 ** (info1["level_dbfs"] / 20) - 1) < 0.05 \
                or np.abs(n1).max() > 0.98  # the clipping guard may lower it
        else:  # the same draws as without the option
            np.testing.assert_array_equal(n1, n0)
            np.testing.assert_array_equal(c1, c0)
    assert 8 <= sum(flags) <= 32
    with pytest.raises(ValueError, match="clean_proportion"):
        SpeechMixer(tiny_pools, "train", clean_proportion=1.0)


def test_shape_spectrum_applies_the_gain_curve_at_its_control_points_and_between_them():
    t = np.arange(16000) / 16000.0
    tone = lambda hz: np.sin(2 * np.pi * hz * t)  # noqa: E731  (bin-aligned: whole cycles in one second)
    np.testing.assert_allclose(shape_spectrum(tone(300), np.zeros(4)), tone(300), atol=1e-12)
    np.testing.assert_allclose(shape_spectrum(tone(300), np.full(4, -6.0)), tone(300) * 10 ** (-6 / 20), atol=1e-12)
    gains = np.array([3.0, -4.0, 5.0, -2.0])
    for hz, db in zip(EQ_FREQS_HZ, gains):
        np.testing.assert_allclose(shape_spectrum(tone(hz), gains), tone(hz) * 10 ** (db / 20), atol=1e-9)
    # 1000 Hz lies halfway between 500 and 2000 Hz in log frequency: the mean of their gains
    np.testing.assert_allclose(shape_spectrum(tone(1000), gains), tone(1000) * 10 ** (0.5 / 20), atol=1e-9)
    np.testing.assert_allclose(shape_spectrum(tone(60), gains), tone(60) * 10 ** (3 / 20), atol=1e-9)  # flat below
    with pytest.raises(ValueError, match="one gain per frequency"):
        shape_spectrum(tone(300), np.zeros(3))


def test_speech_eq_colours_input_and_target_alike_and_keeps_the_other_draws(tiny_pools):
    base = SpeechMixer(tiny_pools, "train", segment_seconds=1.0, seed=4, num_items=30, reverb_proportion=0.5)
    eq = SpeechMixer(tiny_pools, "train", segment_seconds=1.0, seed=4, num_items=30, reverb_proportion=0.5,
                     speech_eq_db=6.0)
    eq.share_decoded(base)
    checked = 0
    for i in range(30):
        n0, c0, info0 = base.mix(i)
        n1, c1, info1 = eq.mix(i)
        assert info0["eq_gains_db"] is None
        gains = np.asarray(info1["eq_gains_db"])
        assert gains.shape == (4,) and np.all(np.abs(gains) <= 6.0) and np.ptp(gains) > 0
        assert {k: v for k, v in info1.items() if k != "eq_gains_db"} == {k: v for k, v in info0.items()
                                                                           if k != "eq_gains_db"}
        assert not np.allclose(c1, c0)
        if not info0["reverb"]:  # the target is the base target coloured by the curve, up to the level scaling
            s = shape_spectrum(c0.astype(np.float64), np.asarray(info1["eq_gains_db"]))
            k = float(c1 @ s / (s @ s))
            assert np.abs(c1 - k * s).max() < 2e-3 * np.abs(c1).max()  # gains rounded to 1e-3 dB in info
            checked += 1
    assert checked >= 5
    with pytest.raises(ValueError, match="speech_eq_db"):
        SpeechMixer(tiny_pools, "train", speech_eq_db=-1.0)


def test_resample_to_scales_frequencies_by_the_length_ratio():
    t = np.arange(1200) / 16000
    y = resample_to(np.sin(2 * np.pi * 500 * t), 1000)  # 1200 samples squeezed into 1000: 1.2x faster
    assert y.shape == (1000,)
    peak_hz = np.argmax(np.abs(np.fft.rfft(y))) * 16000 / 1000
    assert abs(peak_hz - 600) <= 16
    np.testing.assert_allclose(np.sqrt(np.mean(y ** 2)), np.sqrt(0.5), rtol=0.05)  # the level is kept
    with pytest.raises(ValueError, match="n >= 1"):
        resample_to(np.ones(4), 0)


def test_speed_perturb_resamples_the_drawn_crop_and_leaves_it_off_by_default(tiny_pools):
    base = SpeechMixer(tiny_pools, "train", segment_seconds=0.5, seed=3, num_items=24, reverb_proportion=0.0)
    fast = SpeechMixer(tiny_pools, "train", segment_seconds=0.5, seed=3, num_items=24, reverb_proportion=0.0,
                       speed_perturb=0.2)
    fast.share_decoded(base)
    ids = {uid: k for k, (uid, _, _) in enumerate(base.pool.utterances)}
    speeds = []
    for i in range(24):
        assert base.mix(i)[2]["speed"] == 1.0
        _, clean, info = fast.mix(i)
        np.testing.assert_array_equal(clean, fast.mix(i)[1])  # deterministic per index
        speeds.append(info["speed"])
        utt = base.pool.utterance(ids[info["utterance"]]).astype(np.float64)
        n = int(round(fast.segment * info["speed"]))
        assert smooth_lengths(n, n).tolist() == [n]  # an FFT-friendly crop length
        crop = np.pad(utt, (0, max(0, n - len(utt))))[info["clean_start"]:info["clean_start"] + n]
        if info["clean_only"] or np.abs(crop).max() == 0:
            continue
        ref = resample_to(crop, fast.segment)
        k = float(clean @ ref / (ref @ ref))  # the target is that resampled crop, up to the level scaling
        assert np.abs(clean - k * ref).max() < 1e-3 * np.abs(clean).max() + 1e-6
    assert all(0.8 <= s <= 1.2 for s in speeds) and np.ptp(speeds) > 0.1
    with pytest.raises(ValueError, match="speed_perturb"):
        SpeechMixer(tiny_pools, "train", speed_perturb=0.5)


def test_smooth_lengths_are_the_integers_without_prime_factors_above_eleven():
    def largest_prime_factor(n: int) -> int:
        f, largest = 2, 1
        while n > 1:
            while n % f == 0:
                n, largest = n // f, f
            f += 1
        return largest

    got = smooth_lengths(40_000, 41_000).tolist()
    assert got == [n for n in range(40_000, 41_001) if largest_prime_factor(n) <= 11] and len(got) > 5
    assert smooth_lengths(49_152, 49_152).tolist() == [49_152] and smooth_lengths(49_153, 49_153).size == 0


def test_train_cli_gives_speed_perturb_to_the_training_mixer_only(tiny_pools):
    import argparse

    from linseq.cli.speech import _datasets
    from linseq.experiments.speech_enhancement.training import TrainConfig

    args = argparse.Namespace(data=str(tiny_pools), preset="ci")
    train, val, _ = _datasets(args, TrainConfig.from_preset("ci", val_items=2, speed_perturb=0.15))
    speeds = [train.mix(i)[2]["speed"] for i in range(8)]
    assert train.speed_perturb == 0.15 and all(0.85 <= s <= 1.15 for s in speeds) and len(set(speeds)) > 1
    plain, plain_val, _ = _datasets(args, TrainConfig.from_preset("ci", val_items=2))
    assert plain.speed_perturb == 0.0
    for (noisy, clean), (noisy0, clean0) in zip(val, plain_val):  # validation mixtures are left as they were
        np.testing.assert_array_equal(noisy, noisy0)
        np.testing.assert_array_equal(clean, clean0)
    with pytest.raises(ValueError, match="speed_perturb must be in"):
        TrainConfig.from_preset("ci", speed_perturb=0.4).check()
