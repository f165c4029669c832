"""benchmarks/merge_speech_evals.py: a chained model's row names each run's learning rate and, where they differ
from the recipe, its mixtures and loss."""

import json
from pathlib import Path

import pytest

def test_run_descriptions_name_mixtures_that_differ_from_the_recipe(tmp_path, load_script):
    mod = load_script("benchmarks/merge_speech_evals.py")
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
    assert mod._schedule({**recipe, "sisdr_weight": 5e-4}) == "constant 0.001 (loss + 0.0005 × (−SI-SDR))"
    assert mod._schedule({**recipe, "sisdr_weight": 5e-4, "stoi_weight": 0.05}) == \
        "constant 0.001 (loss + 0.0005 × (−SI-SDR) + 0.05 × (−STOI))"
    assert mod._schedule({**recipe, "stoi_weight": 0.05}) == "constant 0.001 (loss + 0.05 × (−STOI))"
    assert mod._schedule({**recipe, "clean_proportion": 0.1}) == "constant 0.001 (10 % without noise)"
    assert "noise)" not in mod._schedule({**recipe, "clean_proportion": 0.0})
    assert mod._schedule({**recipe, "speech_eq_db": 6.0}) == "constant 0.001 (speech coloured ±6 dB)"
    assert "coloured" not in mod._schedule({**recipe, "speech_eq_db": 0.0})
    assert mod._schedule({**recipe, "speed_perturb": 0.1}) == "constant 0.001 (speech speed ±10 %)"
    assert "speed" not in mod._schedule({**recipe, "speed_perturb": 0.0})
    assert "SI-SDR" not in mod._schedule({**recipe, "sisdr_weight": 0.0})
    assert mod._schedule({**recipe, "ema_decay": 0.999}) == "constant 0.001 (weight EMA 0.999)"
    assert "EMA" not in mod._schedule({**recipe, "ema_decay": 0.0})


def _write(path: Path, data: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return path


def _subsets(wb: float) -> dict:
    return {"with_reverb": {"WB_PESQ": wb, "STOI": 0.9, "n": 150}, "no_reverb": {"WB_PESQ": wb - 0.5, "STOI": 0.94, "n": 150}}


def test_an_evaluation_on_rebuilt_pools_merges_only_with_a_matching_noisy_check(tmp_path, load_script):
    """Same clips, another pools hash: refused without --rebuilt-noisy, refused when the noisy input moved by more
    than the tolerance there, accepted (and said so in its source) when it agrees."""
    mod = load_script("benchmarks/merge_speech_evals.py")
    manifest = {"format": "linseq-speech-testset", "params": {"seed": 1, "pools_manifest_sha256": "aaa"},
                "pools_dir": "/x", "clips": [{"name": "c0", "snr": 3}]}
    run_manifest = _write(tmp_path / "run" / "test_set_manifest.json", manifest)
    later = tmp_path / "later"
    _write(later / "test_set_manifest.json", {**manifest, "params": {"seed": 1, "pools_manifest_sha256": "bbb"},
                                              "pools_dir": "/y"})
    model = _write(later / "eval" / "eval_model.json", {"label": "Model", "subsets": _subsets(2.9), "meta": {}})
    run = {"evals": {"noisy": {"label": "Noisy", "subsets": _subsets(2.6)}}}
    with pytest.raises(SystemExit, match="rebuilt-noisy"):
        mod.merge(json.loads(json.dumps(run)), [model], run_manifest)
    moved = _write(later / "eval" / "eval_noisy_moved.json", {"subsets": _subsets(2.62)})
    with pytest.raises(SystemExit, match="differs"):
        mod.merge(json.loads(json.dumps(run)), [model], run_manifest, rebuilt_noisy=moved)
    agrees = _write(later / "eval" / "eval_noisy.json", {"subsets": _subsets(2.605)})
    merged = mod.merge(json.loads(json.dumps(run)), [model], run_manifest, rebuilt_noisy=agrees)
    assert merged["evals"]["model"]["label"] == "Model" and "rebuilt" in merged["eval_sources"]["model"]
    other_clips = _write(later / "test_set_manifest.json", {**manifest, "clips": [{"name": "c0", "snr": 4}],
                                                            "params": {"seed": 1, "pools_manifest_sha256": "bbb"}})
    assert other_clips.is_file()
    with pytest.raises(SystemExit, match="differs"):
        mod.merge(json.loads(json.dumps(run)), [model], run_manifest, rebuilt_noisy=agrees)


def test_an_averaged_row_must_average_exactly_the_named_rows_checkpoints(load_script):
    mod = load_script("benchmarks/merge_speech_evals.py")
    run = {"evals": {"a": {"weights_sha256": "aa"}, "b": {"weights_sha256": "bb"}, "c": {"weights_sha256": "cc"},
                     "noisy": {"weights_sha256": None}}}
    soup = {"model_config": {"averaged_from": [{"weights_sha256": "bb"}, {"weights_sha256": "aa"}]}}
    assert mod.averaged_suffix(run, soup, ["a", "b"]) == ", mean weights of the checkpoints of a, b (`linseq speech average`)"
    with pytest.raises(SystemExit, match="not the checkpoints of rows"):
        mod.averaged_suffix(run, soup, ["a", "c"])
    with pytest.raises(SystemExit, match="not the checkpoints of rows"):
        mod.averaged_suffix(run, soup, ["a", "b", "c"])
    with pytest.raises(SystemExit, match="no evaluated weights recorded"):
        mod.averaged_suffix(run, soup, ["a", "noisy"])
    with pytest.raises(SystemExit, match="not an average"):
        mod.averaged_suffix(run, {"model_config": {"model": "fast_fullsubnet"}}, ["a", "b"])


def test_a_mean_of_unevaluated_runs_is_checked_against_the_best_weights_each_run_recorded(tmp_path, load_script):
    mod = load_script("benchmarks/merge_speech_evals.py")
    run = {"evals": {"base": {"weights_sha256": "b0"}}}
    cfg = {"lr": 5e-4, "seed": 0, "batch_size": 72, "max_minutes": 5.4, "init_weights_sha256": "b0"}
    metrics = [_write(tmp_path / f"m{i}.json", {"config": {**cfg, "seed": 18 + i}, "meta": {"device": "H100"},
                                                "best": {"step": 100 * (i + 1), "weights_sha256": h}})
               for i, h in enumerate(["aa", "bb"])]
    soup = {"model_config": {"averaged_from": [{"weights_sha256": "bb"}, {"weights_sha256": "aa"}]}}
    suffix, entry = mod.averaged_runs(run, soup, metrics, "base")
    assert suffix == (", mean weights of 2 runs from the checkpoint of base (seeds 18, 19; 5.4, 5.4 min on H100, "
                      "100, 200 steps; constant 0.0005), not evaluated alone (`linseq speech average`)")
    assert entry["steps_per_run"] == [100, 200] and entry["after_checked_by_hash"] is True
    assert mod.averaged_runs(run, soup, metrics, None)[1].get("after_row") is None
    with pytest.raises(SystemExit, match="not these runs' best checkpoints"):
        mod.averaged_runs(run, soup, metrics[:1], None)
    other_parent = _write(tmp_path / "o.json", {"config": {**cfg, "init_weights_sha256": "zz"},
                                                "best": {"step": 5, "weights_sha256": "bb"}})
    with pytest.raises(SystemExit, match="other weights than row 'base'"):
        mod.averaged_runs(run, soup, [metrics[0], other_parent], "base")
    unrecorded = _write(tmp_path / "u.json", {"config": cfg, "best": {"step": 5}})
    with pytest.raises(SystemExit, match="recorded no best.weights_sha256"):
        mod.averaged_runs(run, soup, [metrics[0], unrecorded], None)
    no_start = _write(tmp_path / "n.json", {"config": {"lr": 5e-4}, "best": {"step": 5, "weights_sha256": "bb"}})
    with pytest.raises(SystemExit, match="recorded no starting weights"):
        mod.averaged_runs(run, soup, [metrics[0], no_start], "base")


def test_a_run_after_a_row_is_checked_against_that_rows_weights_where_it_recorded_them(load_script):
    mod = load_script("benchmarks/merge_speech_evals.py")
    run = {"evals": {"soup": {"weights_sha256": "ss"}, "noisy": {"weights_sha256": None}}}
    assert mod.parent_checked(run, "soup", {"init_weights_sha256": "ss"}) is True
    assert mod.parent_checked(run, "soup", {"init_from": "/somewhere"}) is False  # a run from before the record
    with pytest.raises(SystemExit, match="other weights than row 'soup'"):
        mod.parent_checked(run, "soup", {"init_weights_sha256": "tt"})
    with pytest.raises(SystemExit, match="no evaluated weights recorded for row 'noisy'"):
        mod.parent_checked(run, "noisy", {"init_weights_sha256": "ss"})
    with pytest.raises(SystemExit, match="no evaluated weights recorded for row 'gone'"):
        mod.parent_checked(run, "gone", {})


def test_stored_manifests_are_kept_once_and_read_back_through_their_checked_references(tmp_path, load_script):
    store_mod = load_script("benchmarks/store_speech_manifests.py")
    merge_mod = load_script("benchmarks/merge_speech_evals.py")
    manifest = {"format": "linseq-speech-testset", "params": {"seed": 1}, "clips": [{"name": "c0", "snr": 3}]}
    other = {**manifest, "clips": [{"name": "c1", "snr": 9}]}
    root, store = tmp_path / "speech", tmp_path / "speech" / "test_set_manifests"
    for folder, content in (("run_a", manifest), ("run_b/x", manifest), ("run_c", other)):
        _write(root / folder / "test_set_manifest.json", content)
    changed = store_mod.store_manifests(root, store)
    assert len(changed) == 3 and len(list(store.glob("*.json"))) == 2
    assert not list(root.glob("run_*/**/test_set_manifest.json"))
    assert store_mod.store_manifests(root, store) == []  # again: nothing to do
    reference = root / "run_b" / "x" / "test_set_manifest.sha256"
    assert merge_mod.read_manifest(reference) == manifest
    assert merge_mod.read_manifest(root / "run_c" / "test_set_manifest.sha256") == other
    # an evaluation beside a reference merges against the run's reference like against its JSON
    model = _write(root / "run_b" / "x" / "eval" / "eval_model.json", {"label": "M", "subsets": _subsets(2.9)})
    merged = merge_mod.merge({"evals": {}}, [model], root / "run_a" / "test_set_manifest.sha256")
    assert merged["evals"]["model"]["label"] == "M"
    with pytest.raises(SystemExit, match="differs"):
        merge_mod.merge({"evals": {}}, [model], root / "run_c" / "test_set_manifest.sha256")
    stored = store / reference.read_text().split()[0]
    stored.with_suffix(".json").write_text(json.dumps(other))  # edited after storing: refused
    with pytest.raises(SystemExit, match="does not have the recorded SHA-256"):
        merge_mod.read_manifest(reference)
    stored.with_suffix(".json").unlink()
    with pytest.raises(SystemExit, match="is missing"):
        merge_mod.read_manifest(reference)
