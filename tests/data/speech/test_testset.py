import hashlib
import json

import numpy as np
import pytest

from linseq.data.speech import build_test_set, load_split, load_test_set


def _hashes(root):
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_test_set_is_deterministic_dns_shaped_and_from_the_test_pools(tmp_path, tiny_pools):
    a = build_test_set(tiny_pools, tmp_path / "a", seed=1, num_per_subset=3, seconds=2.0, progress=False)
    b = build_test_set(tiny_pools, tmp_path / "b", seed=1, num_per_subset=3, seconds=2.0, progress=False)
    ha, hb = _hashes(a), _hashes(b)
    assert {k: v for k, v in ha.items() if k != "manifest.json"} == {k: v for k, v in hb.items() if k != "manifest.json"}
    assert sorted(k for k in ha if k.endswith(".flac")) == sorted(
        f"{s}/{kind}/{kind}_fileid_{i}.flac" for s in ("no_reverb", "with_reverb") for kind in ("noisy", "clean")
        for i in range(3))
    m = json.loads((a / "manifest.json").read_text())
    test = load_split(tiny_pools, "test")
    train = load_split(tiny_pools, "train")
    test_noise = {c for c, _ in test.noise_clips}
    test_rirs = {r["id"] for r in test.rirs}
    for c in m["clips"]:
        assert c["speaker"] in test.speakers and c["speaker"] not in train.speakers
        assert set(c["noise_clips"]) <= test_noise
        assert 0 <= c["snr_db"] <= 25 and -35 <= c["level_dbfs"] < -15
        assert (c["rir"] in test_rirs) == (c["subset"] == "with_reverb")
    items = list(load_test_set(a))
    assert [(n, s) for n, s, _, _ in items] == [(f"fileid_{i}", s) for s in ("no_reverb", "with_reverb") for i in range(3)]
    for name, subset, noisy, clean in items:
        assert noisy.shape == clean.shape == (32_000,) and noisy.dtype == np.float32
        assert np.max(np.abs(noisy)) <= 0.99 + 1e-4
        c = next(c for c in m["clips"] if c["name"] == name and c["subset"] == subset)
        snr = 10 * np.log10(np.sum(clean.astype(np.float64) ** 2) / np.sum((noisy - clean).astype(np.float64) ** 2))
        assert abs(snr - c["snr_db"]) < 0.3  # 16-bit quantisation of quiet clips costs a little
    assert len(list(load_test_set(a, subsets=("with_reverb",)))) == 3


def test_rerun_is_a_no_op_and_other_arguments_need_overwrite(tmp_path, tiny_pools):
    out = build_test_set(tiny_pools, tmp_path / "t", seed=2, num_per_subset=2, seconds=1.0, progress=False)
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*")}
    build_test_set(tiny_pools, out, seed=2, num_per_subset=2, seconds=1.0, progress=False)
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*")} == before
    with pytest.raises(FileExistsError, match="overwrite=True"):
        build_test_set(tiny_pools, out, seed=3, num_per_subset=2, seconds=1.0, progress=False)
    build_test_set(tiny_pools, out, seed=3, num_per_subset=2, seconds=1.0, progress=False, overwrite=True)
    assert json.loads((out / "manifest.json").read_text())["params"]["seed"] == 3


def test_load_test_set_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a speech test set"):
        list(load_test_set(tmp_path))
