"""The gate that decides whether a trained model may ship as `linseq enhance`'s default, and (once one ships) that
the shipped weights are the ones the committed results measured and that they beat the noisy input."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from linseq.experiments.speech_enhancement.checkpoint import (
    SHIPPED, load_speech_model, save_speech_checkpoint, weights_sha256,
)
from linseq.models.speech import FastFullSubNet

ROOT = Path(__file__).resolve().parents[3]


def _row(base, delta, sha=None):
    subsets = {s: {m: v + delta for m, v in base.items()} for s in ("with_reverb", "no_reverb")}
    return {"label": "x", "subsets": subsets, "weights_sha256": sha, "meta": {"commit": "abc"}}


def test_only_a_row_that_beats_noisy_everywhere_with_the_measured_weights_ships(tmp_path, load_script):
    mod = load_script("benchmarks/ship_speech_model.py")
    ckpt = save_speech_checkpoint(tmp_path / "ck", FastFullSubNet(shrink_size=2, sb_hidden_size=8).eval(),
                                  {"step": 0}, dtype=torch.float16)
    sha = weights_sha256(ckpt)
    base = {"WB_PESQ": 2.0, "NB_PESQ": 2.8, "STOI": 0.94, "SI_SDR": 12.0}
    good = _row(base, 0.01, sha)
    short = _row(base, 0.01, sha)
    short["subsets"]["with_reverb"]["STOI"] = 0.9399
    results = tmp_path / "results.json"
    results.write_text(json.dumps({"evals": {"noisy": _row(base, 0.0), "good": good, "short": short,
                                             "other": _row(base, 0.01, "0" * 64)}}))
    dest = tmp_path / "weights" / "fast_fullsubnet"
    with pytest.raises(ValueError, match=r"with_reverb STOI: 0.9399 does not beat noisy 0.9400") as err:
        mod.ship(results, "short", ckpt, dest)
    assert "no_reverb" not in str(err.value)
    with pytest.raises(ValueError, match="is not the checkpoint row 'other' measured"):
        mod.ship(results, "other", ckpt, dest)
    with pytest.raises(ValueError, match="no row 'missing'"):
        mod.ship(results, "missing", ckpt, dest)
    assert not dest.exists()
    prov = mod.ship(results, "good", ckpt, dest)
    assert sorted(p.name for p in dest.iterdir()) == ["config.json", "model.safetensors", "provenance.json"]
    assert prov["weights_sha256"] == weights_sha256(dest) == sha
    assert prov["margin_over_noisy"]["no_reverb"]["SI_SDR"] == pytest.approx(0.01)
    model, config = load_speech_model(dest)
    assert config["model"] == "fast_fullsubnet" and isinstance(model, FastFullSubNet)
    _check_shipped(mod, dest, results)


def _check_shipped(mod, folder, results_path):
    """What must hold of a shipped model (``mod``: benchmarks/ship_speech_model.py): its weights are the ones its
    provenance names, the results row they come from records the same weights and beats the noisy input
    everywhere, and the model runs."""
    from linseq.experiments.speech_enhancement.evaluate import enhance_waves

    prov = json.loads((folder / "provenance.json").read_text())
    assert weights_sha256(folder) == prov["weights_sha256"]
    evals = json.loads(Path(results_path).read_text())["evals"]
    row = evals[prov["row"]]
    assert row["weights_sha256"] == prov["weights_sha256"]
    assert mod.shortfalls(row, evals["noisy"]) == []
    model, _ = load_speech_model(folder)
    wave = np.random.default_rng().standard_normal(16000).astype(np.float32) * 0.05
    (out,) = enhance_waves(model, [wave], torch.device("cpu"))
    assert out.shape == wave.shape and np.isfinite(out).all()


@pytest.mark.skipif(not (SHIPPED / "model.safetensors").is_file(), reason="no Fast FullSubNet has shipped yet")
def test_the_shipped_model_is_the_measured_one_and_beats_noisy(load_script):
    results = ROOT / "benchmarks" / "results" / "speech" / "results.json"
    _check_shipped(load_script("benchmarks/ship_speech_model.py"), SHIPPED, results)
