"""benchmarks/merge_speech_evals.py: a chained model's row names each run's learning rate and, where they differ
from the recipe, its mixtures."""

import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def _merger():
    spec = importlib.util.spec_from_file_location("merge_speech_evals", ROOT / "benchmarks" / "merge_speech_evals.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_run_descriptions_name_mixtures_that_differ_from_the_recipe(tmp_path):
    mod = _merger()
    recipe = {"lr": 1e-3, "snr_range": [-5, 20], "extra_noise": [], "seed": 0, "batch_size": 72}
    wider = {"lr": 8e-4, "lr_schedule": "cosine", "lr_min": 1e-5, "warmup_steps": 300, "snr_range": [-5, 30],
             "extra_noise": ["tones", "sweeps"], "seed": 5, "batch_size": 72}
    assert mod._schedule(recipe) == "constant 0.001"
    assert mod._schedule(wider) == ("cosine 0.0008 -> 1e-05, 300 warm-up steps "
                                    "(SNR -5 to 30 dB, extra noise: tones, sweeps)")
    paths = []
    for i, (cfg, step) in enumerate([(recipe, 100), (wider, 250)]):
        paths.append(tmp_path / f"m{i}.json")
        paths[-1].write_text(json.dumps({"config": cfg, "best": {"step": step, "score": 0.5}, "parameters": 10}))
    t = mod.chained_training(paths)
    assert t["steps"] == 350 and t["steps_per_run"] == [100, 250] and t["seeds"] == [0, 5]
    assert t["schedules"][0] == "constant 0.001" and "SNR -5 to 30 dB" in t["schedules"][1]
