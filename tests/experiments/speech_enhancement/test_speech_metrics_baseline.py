"""Metrics sanity (SI-SDR, PESQ, STOI), the spectral-gating baseline, block resampling == whole-signal resampling."""

import json

import numpy as np
import pytest
import torch

from linseq.experiments.speech_enhancement import metrics
from linseq.experiments.speech_enhancement.audio import BlockResampler
from linseq.experiments.speech_enhancement.baseline import spectral_gate
from linseq.experiments.speech_enhancement.synthetic import synthetic_pair


def _snr(clean, est):
    return 10 * np.log10(np.sum(clean**2) / np.sum((est - clean) ** 2))


def test_si_sdr_identical_scaled_and_noise():
    rng = np.random.default_rng()
    x = rng.standard_normal(16000)
    assert metrics.si_sdr(x, x) > 100
    assert metrics.si_sdr(x, 0.3 * x) > 100  # scale invariant
    assert metrics.si_sdr(x, rng.standard_normal(16000)) < -15
    noisy = x + 0.1 * rng.standard_normal(16000)
    assert 19 < metrics.si_sdr(x, noisy) < 21


def test_metric_errors():
    with pytest.raises(ValueError, match="same length"):
        metrics.si_sdr(np.ones(10), np.ones(11))
    with pytest.raises(ValueError, match="1-D"):
        metrics.si_sdr(np.ones((2, 10)), np.ones((2, 10)))
    with pytest.raises(ValueError, match="metrics must be among"):
        metrics.compute_metrics(np.ones(10), np.ones(10), ["MOS"])


def test_missing_package_gives_install_hint(monkeypatch):
    monkeypatch.setattr(metrics, "has_package", lambda name: False)
    with pytest.raises(metrics.MissingMetricPackage, match="pip install 'pesq'"):
        metrics.compute_metrics(np.ones(10), np.ones(10), ["WB_PESQ"])
    assert metrics.available_metrics() == ["SI_SDR"]
    score, definition = metrics.selection_score({"SI_SDR": 10.0})
    assert score == 0.5 and "SI_SDR" in definition


@pytest.mark.skipif(not (metrics.has_package("pesq") and metrics.has_package("pystoi")), reason="pesq/pystoi missing")
def test_pesq_stoi_rank_clean_above_noisy():
    noisy, clean = synthetic_pair(np.random.default_rng(), 16000 * 3, snr_db=0.0)
    ref = metrics.compute_metrics(clean, clean)
    deg = metrics.compute_metrics(clean, noisy)
    for m in ("WB_PESQ", "NB_PESQ", "STOI", "SI_SDR"):
        assert ref[m] > deg[m], m
    assert ref["WB_PESQ"] > 4.0 and ref["STOI"] > 0.99
    score, definition = metrics.selection_score(deg)
    assert definition.startswith("(STOI + (WB_PESQ") and 0 < score < 1


def test_parallel_evaluator_matches_serial():
    rng = np.random.default_rng()
    pairs = [synthetic_pair(rng, 8000)[::-1] for _ in range(3)]
    serial = metrics.evaluate_pairs(pairs, ["SI_SDR"])
    parallel = metrics.evaluate_pairs(pairs, ["SI_SDR"], workers=2)
    assert serial == parallel
    assert metrics.mean_metrics(serial)["n"] == 3


def test_baseline_improves_snr_of_tone_in_noise():
    rng = np.random.default_rng()
    t = np.arange(3 * 16000) / 16000
    clean = 0.3 * np.sin(2 * np.pi * 440 * t) * (np.sin(2 * np.pi * 1.5 * t) > 0)
    noisy = (clean + 0.05 * rng.standard_normal(t.size)).astype(np.float32)
    for noise in ("minimum", "quietest"):
        out = spectral_gate(noisy, noise=noise)
        assert out.shape == noisy.shape and out.dtype == np.float32
        assert _snr(clean, out) > _snr(clean, noisy) + 3, noise


@pytest.mark.parametrize("rates", [(44100, 16000), (16000, 44100), (48000, 16000), (16000, 16000)])
def test_block_resampler_equals_whole_signal(rates):
    from scipy.signal import resample_poly

    rin, rout = rates
    rng = np.random.default_rng()
    L = int(rng.integers(30000, 60000))
    x = rng.standard_normal((L, 2))
    g = np.gcd(rin, rout)
    ref = resample_poly(x, rout // g, rin // g, axis=0)
    r, outs, i = BlockResampler(rin, rout), [], 0
    while i < L:
        n = int(rng.integers(1, 20000))
        outs.append(r.process(x[i:i + n]))
        i += n
    outs.append(r.flush())
    y = np.concatenate(outs)
    assert y.shape == ref.shape
    np.testing.assert_allclose(y, ref, atol=1e-12)


def test_render_speech_table_from_results_json(tmp_path, load_script, monkeypatch):
    mod = load_script("benchmarks/render_speech_table.py")
    sub = {"WB_PESQ": 2.5, "NB_PESQ": 3.1, "STOI": 0.93, "SI_SDR": 14.2, "n": 150}
    summary = {
        "minutes": 5.0, "meta": {"device": "GPU", "date": "2026-11-23", "commit": "abc"}, "failures": {},
        "evals": {"fast_m2": {"label": "Fast FullSubNet m=2", "subsets": {"with_reverb": sub, "no_reverb": sub},
                              "missing_metrics": []},
                  "noisy": {"label": "Noisy", "subsets": {"no_reverb": {"SI_SDR": 9.0, "n": 150}}, "missing_metrics": []}},
        "training": {"fast_m2": {"steps": 1234, "batch_size": 72}},
        "complexity": {"rows": [{"model": "Fast FullSubNet m=2", "parameters": 6842895, "gmac_per_s": 3.89,
                                 "rtf_gpu": 0.0012}]},
    }
    for name in ("run_b", "run_a"):  # rows merged later keep the order they were merged in, not the alphabet's
        summary["evals"][name] = {"label": f"later {name}", "subsets": {"no_reverb": sub}, "missing_metrics": []}
    text = mod.render(summary)
    assert text.index("| Noisy |") < text.index("| Fast FullSubNet m=2 | 2.500 | 3.100 | 93.00 | 14.20 |")
    assert text.index("| Fast FullSubNet m=2 | 2.500") < text.index("| later run_b |") < text.index("| later run_a |")
    assert "| Fast FullSubNet m=2 | 6,842,895 | 3.89 | — | — | 0.0012 | 1,234 (72) |" in text
    doc = tmp_path / "doc.md"
    doc.write_text(f"intro\n{mod.BEGIN}\nold\n{mod.END}\nafter\n")
    mod.replace_block(doc, "new table")
    assert doc.read_text() == f"intro\n{mod.BEGIN}\nnew table\n{mod.END}\nafter\n"
    assert mod.plot_results(summary, tmp_path / "p.png").stat().st_size > 5000
    chained = {"steps_per_run": [100, 200], "seeds": [1, 2], "schedules": ["constant 0.001"] * 2}
    summary["training"] = {"run_a": chained, "run_b": {**chained, "averaged_runs": ["a.json", "b.json"]}}
    text = mod.render(summary)
    assert "later run_a: each run started from the previous run's best checkpoint" in text
    assert "later run_b:" not in text  # a mean of runs from one checkpoint is no chain; its label says what it is
    assert mod._plot_label("Spectral gating (baseline)", "baseline") == "Spectral gating"
    assert mod._plot_label("Fast FullSubNet m=2 (Lightning), " + "long description " * 6, "fast_soup") == "fast_soup"
    assert "**Shipped**" not in text  # nothing shipped: no headline table
    full = {"with_reverb": sub, "no_reverb": sub}
    summary["evals"]["noisy"]["subsets"] = {s: {**sub, "STOI": 0.92, "SI_SDR": 13.0} for s in full}
    summary["evals"]["run_b"]["subsets"] = full
    text = mod.render(summary, shipped="run_b")
    head = text.split("Every evaluated model")[0]
    assert "| **Shipped**: later run_b, `run_b` | 2.500 |" in head
    assert "| Fast FullSubNet m=2, 5 min | 2.500 |" in head and "later run_a" not in head
    assert "| shipped − noisy | +0.000 | +0.000 | +1.00 | +1.20 |" in head
    assert mod.plot_results(summary, tmp_path / "p.png", shipped="run_b").stat().st_size > 5000
    assert "95 % interval" not in head  # no paired intervals for these weights
    monkeypatch.setattr(mod, "ROOT", tmp_path)
    monkeypatch.setattr(mod, "RESULTS", tmp_path / "speech" / "results.json")
    band = {"low": -0.001, "high": 0.004}
    (tmp_path / "speech" / "soup").mkdir(parents=True)
    (tmp_path / "speech" / "soup" / "paired_ci_vs_noisy.json").write_text(json.dumps(
        {"weights_sha256": "ab" * 32, "noisy": "eval_noisy.json", "resamples": 1000,
         "table": {s: {m: band for m in sub} for s in full}}))
    assert "95 % interval" not in mod.render(summary, shipped="run_b")  # other weights than the row's
    summary["evals"]["run_b"]["weights_sha256"] = "ab" * 32
    text = mod.render(summary, shipped="run_b")
    assert "| 95 % interval of the shipped − noisy mean over clips (paired bootstrap) | [-0.001, +0.004] |" in text
    assert "[-0.10, +0.40] |" in text and "`speech/soup/paired_ci_vs_noisy.json`" in text


def test_speech_breakdown_averages_differences_per_group(load_script):
    mod = load_script("benchmarks/speech_breakdown.py")
    manifest = {"clips": [
        {"name": "a", "subset": "no_reverb", "noise_families": ["hum", "music"], "snr_db": 3, "source_kind": "espeak"},
        {"name": "b", "subset": "with_reverb", "noise_families": ["hum"], "snr_db": 22, "source_kind": "asterisk"}]}
    noisy = {("no_reverb", "a"): {"SI_SDR": 3.0}, ("with_reverb", "b"): {"SI_SDR": 22.0}}
    evals = {"m": {"per_clip": [{"name": "a", "subset": "no_reverb", "SI_SDR": 7.0},
                                {"name": "b", "subset": "with_reverb", "SI_SDR": 20.0}]}}
    table = mod.breakdown(evals, noisy, manifest, ["SI_SDR"])["SI_SDR"]
    assert table["noise: hum"] == {"n": 2, "m": 1.0}  # (+4 − 2) / 2
    assert table["noise: music"] == {"n": 1, "m": 4.0} and table["SNR NR 00-04 dB"]["m"] == 4.0
    assert table["SNR WR 20-24 dB"] == {"n": 1, "m": -2.0} and table["speech: asterisk"]["m"] == -2.0
    assert table["speech: asterisk, WR SNR >= 15 dB"] == {"n": 1, "m": -2.0}
    assert table["speech: espeak, NR SNR < 15 dB"] == {"n": 1, "m": 4.0}
    text = mod.markdown({"SI_SDR": table}, {"m": "Model"})
    assert "| noise: hum | 2 | +1.00 |" in text


def test_paired_intervals_pair_clips_by_name_and_cover_the_mean(load_script):
    mod = load_script("benchmarks/speech_paired_ci.py")
    rng = np.random.default_rng()
    gain = rng.normal(0.5, 1.0, size=60)
    clips = [{"name": f"c{i}", "subset": s} for s in ("with_reverb", "no_reverb") for i in range(30)]
    noisy = {"per_clip": [{**c, "SI_SDR": float(v)} for c, v in zip(clips, rng.normal(10, 3, size=60))]}
    model = {"per_clip": [{**c, "SI_SDR": n["SI_SDR"] + g} for c, n, g in zip(clips, noisy["per_clip"], gain)][::-1]}
    table = mod.paired_table(model, noisy, ["SI_SDR"], resamples=2000)
    for k, subset in enumerate(("with_reverb", "no_reverb")):
        row, part = table[subset]["SI_SDR"], gain[30 * k:30 * (k + 1)]
        assert row["n"] == 30 and row["mean"] == pytest.approx(part.mean())
        assert row["low"] < row["mean"] < row["high"] and row["improved"] == pytest.approx((part > 0).mean())
        half = 1.96 * part.std(ddof=1) / np.sqrt(30)  # the bootstrap interval is near the normal one
        assert row["high"] - row["low"] == pytest.approx(2 * half, rel=0.3)
    assert mod.bootstrap_interval(np.full(10, 0.25), 200) == (0.25, 0.25)
    with pytest.raises(ValueError, match="clip 'c0' of subset 'with_reverb' has no noisy value"):
        mod.paired_table(model, {"per_clip": noisy["per_clip"][1:]}, ["SI_SDR"], resamples=100)
    assert "| with_reverb | SI_SDR | 30 |" in mod.markdown(table, "m")


def test_docs_speech_block_is_the_rendering_of_the_committed_results(load_script):
    mod = load_script("benchmarks/render_speech_table.py")
    summary, cpu = mod.load()
    block = mod.DOCS.read_text().split(mod.BEGIN, 1)[1].split(mod.END, 1)[0].strip()
    assert block == mod.render(summary, cpu, shipped=mod.shipped_row()).strip(), "docs/speech.md is stale: run python docs/build_readme.py"


def test_enhance_waves_gives_each_clip_the_same_result_in_any_batch():
    from linseq.experiments.speech_enhancement.evaluate import enhance_waves
    from linseq.models.speech import FastFullSubNet

    torch.manual_seed(0)
    model = FastFullSubNet(shrink_size=2, sb_hidden_size=16, sequence_model="lightning").eval()
    rng = np.random.default_rng()
    waves = [0.1 * rng.standard_normal(n).astype(np.float32) for n in (3001, 3001, 2500, 3001)]
    one = enhance_waves(model, waves, torch.device("cpu"))  # the CPU default: one clip at a time
    three = enhance_waves(model, waves, torch.device("cpu"), batch=3)
    for w, a, b in zip(waves, one, three):
        assert a.shape == w.shape
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
