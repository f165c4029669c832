"""`linseq enhance` and `linseq speech` end to end on tiny checkpoints and generated audio."""

import json

import numpy as np
import pytest
import soundfile as sf

from linseq.cli.main import main
from linseq.experiments.speech_enhancement import checkpoint as ckpt_mod
from linseq.experiments.speech_enhancement.checkpoint import save_speech_checkpoint
from linseq.experiments.speech_enhancement.synthetic import synthetic_pair
from linseq.models.speech import FastFullSubNet


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("ck") / "tiny"
    save_speech_checkpoint(path, FastFullSubNet(shrink_size=2, sb_hidden_size=8).eval(), {"step": 0},
                           dtype=__import__("torch").float16)
    return path


def _write(path, rate, channels, seconds=1.3, subtype="PCM_16"):
    rng = np.random.default_rng()
    x = np.stack([synthetic_pair(rng, int(seconds * rate))[0] for _ in range(channels)], axis=1)
    sf.write(path, x if channels > 1 else x[:, 0], rate, subtype=subtype)
    return x


@pytest.mark.parametrize("channels", [1, 2])
def test_enhance_keeps_rate_length_channels(tmp_path, tiny_checkpoint, channels, capsys):
    src = tmp_path / "in.wav"
    _write(src, 44100, channels)
    out = tmp_path / "out.wav"
    assert main(["enhance", str(src), "-o", str(out), "--checkpoint", str(tiny_checkpoint), "--no-progress"]) == 0
    a, b = sf.info(str(src)), sf.info(str(out))
    assert (b.samplerate, b.channels, b.frames, b.subtype) == (a.samplerate, a.channels, a.frames, a.subtype)
    y, _ = sf.read(out)
    assert np.isfinite(y).all() and np.abs(y).max() > 0
    assert f"wrote {out}" in capsys.readouterr().out


def test_enhance_many_into_folder_16k_flac(tmp_path, tiny_checkpoint):
    a, b = tmp_path / "a.flac", tmp_path / "b.wav"
    _write(a, 16000, 1)
    _write(b, 22050, 1, subtype="FLOAT")
    assert main(["enhance", str(a), str(b), "-o", str(tmp_path / "out"), "--checkpoint", str(tiny_checkpoint),
                 "--no-progress", "--block-seconds", "0.3"]) == 0
    for f in (a, b):
        assert sf.info(str(tmp_path / "out" / f.name)).frames == sf.info(str(f)).frames


def test_enhance_attenuation_limit_zero_returns_the_input_and_a_negative_one_is_refused(tmp_path, tiny_checkpoint,
                                                                                        capsys):
    src, out = tmp_path / "in.wav", tmp_path / "out.wav"
    _write(src, 16000, 1, subtype="FLOAT")
    args = ["enhance", str(src), "-o", str(out), "--checkpoint", str(tiny_checkpoint), "--no-progress"]
    assert main(args + ["--attenuation-limit", "0"]) == 0
    x, _ = sf.read(src)
    y, _ = sf.read(out)
    cut = len(x) - len(x) % 256  # the last partial hop is divided by a window tail: looser there
    np.testing.assert_allclose(y[:cut], x[:cut], atol=1e-5)
    capsys.readouterr()
    assert main(args + ["--attenuation-limit", "-3"]) == 2
    err = capsys.readouterr().err
    assert "attenuation limit must be a finite number of dB >= 0; got -3" in err and len(err.strip().splitlines()) == 1


def test_enhance_errors_are_one_line(tmp_path, tiny_checkpoint, capsys, monkeypatch):
    ck = ["--checkpoint", str(tiny_checkpoint)]
    assert main(["enhance", str(tmp_path / "missing.wav"), "-o", str(tmp_path / "o.wav")] + ck) == 2
    assert "missing.wav: no such file" in capsys.readouterr().err
    bad = tmp_path / "text.wav"
    bad.write_text("not audio")
    assert main(["enhance", str(bad), "-o", str(tmp_path / "o.wav")] + ck) == 2
    err = capsys.readouterr().err
    assert "not an audio file" in err and len(err.strip().splitlines()) == 1
    good = tmp_path / "g.wav"
    _write(good, 16000, 1)
    assert main(["enhance", str(good), "-o", str(tmp_path / "o.wav"), "--checkpoint", str(tmp_path / "none")]) == 2
    assert "no checkpoint at" in capsys.readouterr().err
    monkeypatch.setattr(ckpt_mod, "SHIPPED", tmp_path / "no_weights")
    assert main(["enhance", str(good), "-o", str(tmp_path / "o.wav")]) == 2
    assert "shipped Fast FullSubNet checkpoint is missing" in capsys.readouterr().err


@pytest.mark.skipif(not (ckpt_mod.SHIPPED / "model.safetensors").is_file(), reason="no Fast FullSubNet has shipped")
def test_enhance_with_the_shipped_model_removes_white_noise(tmp_path, capsys):
    from linseq.data.speech import mix_at_snr
    from linseq.experiments.speech_enhancement.metrics import si_sdr
    from linseq.experiments.speech_enhancement.synthetic import _voice

    rng = np.random.default_rng()
    noisy, clean = mix_at_snr(_voice(rng, 2 * 16000), rng.standard_normal(2 * 16000), snr_db=5, level_dbfs=-25)
    noisy = noisy.astype(np.float32)
    sf.write(tmp_path / "noisy.wav", noisy, 16000, subtype="FLOAT")
    assert main(["enhance", str(tmp_path / "noisy.wav"), "-o", str(tmp_path / "out.wav"), "--no-progress"]) == 0
    assert "shipped Fast FullSubNet" in capsys.readouterr().out
    out, rate = sf.read(tmp_path / "out.wav", dtype="float32")
    assert rate == 16000 and out.shape == noisy.shape
    gain = si_sdr(clean, out) - si_sdr(clean, noisy)
    assert gain > 5.0, f"the shipped model raised SI-SDR by only {gain:.2f} dB on white noise at 5 dB"


def test_speech_train_eval_rtf(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["speech", "train", "--preset", "ci", "--data", "synthetic", "--steps", "2", "--val-every", "2",
                 "--val-items", "1", "--out", str(run), "--device", "cpu", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "trained 2 steps" in out and "outside the training budget: data" in out
    timing = json.loads((run / "metrics.json").read_text())["timing"]
    assert set(timing) == {"before_loop_s", "first_step_s", "after_loop_s"} and min(timing.values()) >= 0
    test_set = tmp_path / "test_set"
    rng = np.random.default_rng()
    for subset in ("with_reverb", "no_reverb"):
        for kind in ("noisy", "clean"):
            (test_set / subset / kind).mkdir(parents=True)
        noisy, clean = synthetic_pair(rng, 16000 * 2)
        sf.write(test_set / subset / "noisy" / "c0.flac", noisy, 16000)
        sf.write(test_set / subset / "clean" / "c0.flac", clean, 16000)
    results = tmp_path / "results"
    for system in (str(run), "noisy", "baseline"):
        assert main(["speech", "eval", "--checkpoint", system, "--test-set", str(test_set), "--out", str(results),
                     "--workers", "1", "--no-progress", "--device", "cpu"]) == 0
    data = json.loads((results / "eval_run.json").read_text())
    assert set(data["subsets"]) == {"with_reverb", "no_reverb"} and data["label"] == "Fast FullSubNet m=2"
    assert data["weights_sha256"] == ckpt_mod.weights_sha256(run)  # ties the row to the exact weights
    assert "SI_SDR" in data["subsets"]["no_reverb"]
    noisy = json.loads((results / "eval_noisy.json").read_text())
    assert noisy["weights_sha256"] is None
    assert noisy["subsets"]["no_reverb"]["SI_SDR"] < 25
    assert (results / "eval_baseline.md").read_text().startswith("| system |")
    assert main(["speech", "eval", "--checkpoint", str(tmp_path / "nope"), "--test-set", str(test_set)]) == 2
    capsys.readouterr()
    assert main(["speech", "rtf", "--no-cpu", "--no-gpu", "--out", str(tmp_path / "rtf"), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "| FullSubNet | 5,637,635 | 29.46 |" in out and "Fast FullSubNet m=8" in out
    assert json.loads((tmp_path / "rtf" / "complexity.json").read_text())["rows"][1]["parameters"] == 6_842_895


def test_help_has_examples(capsys):
    for argv in (["enhance", "--help"], ["speech", "--help"], ["speech", "train", "--help"]):
        with pytest.raises(SystemExit):
            main(argv)
        assert "example" in capsys.readouterr().out


@pytest.mark.parametrize("flag, bad, message, good", [
    ("--clean-proportion", "1.5", "clean_proportion must be in [0, 1)", "0.1"),
    ("--speech-eq-db", "25", "speech_eq_db must be in [0, 20] dB", "6"),
    ("--speed-perturb", "0.5", "speed_perturb must be in [0, 0.3]", "0.1"),
])
def test_train_refuses_bad_mixture_options_in_one_line(tmp_path, capsys, flag, bad, message, good):
    base = ["speech", "train", "--preset", "ci", "--steps", "1", "--out", str(tmp_path / "r"), "--no-progress"]
    assert main(base + ["--data", "synthetic", flag, bad]) == 2
    assert message in capsys.readouterr().err
    assert main(base + ["--data", "synthetic", flag, good]) == 2
    err = capsys.readouterr().err
    assert f"{flag} needs real pools" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "r").exists()  # refused before any training output
