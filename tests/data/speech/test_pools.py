import json
import shutil

import numpy as np
import pytest

from linseq.data.speech import SpeechMixer, load_manifest, load_split, pools_summary, write_pools_from_arrays
from linseq.data.speech.pools import format_summary


def test_manifest_and_summary(tiny_pools):
    m = load_manifest(tiny_pools)
    assert m["format"] == "linseq-speech-pools" and m["sample_rate"] == 16_000
    s = pools_summary(tiny_pools)
    assert s["train"]["speakers"] == 3 and s["test"]["speakers"] == 2
    assert s["train"]["utterances"] == 9 and s["test"]["rirs"] == 2 and s["train"]["rooms"] == 2
    assert s["train"]["noise_clips_per_family"] == {"clicks": 1, "pink": 1, "recorded": 3}
    assert 0 < s["total_mib"] < 1
    assert "train" in format_summary(s)


def test_split_pool_decodes_what_was_written(tmp_path, fake_pools_factory):
    out = fake_pools_factory(tmp_path / "p", seed=4, codec="flac")
    pool = load_split(out, "test")
    assert pool.speakers == ["spkX", "spkY"] and pool.families == ["hum", "tones"]
    for i in range(len(pool.utterances)):
        x = pool.utterance(i)
        assert x.dtype == np.float32 and 1.2 * 16_000 <= len(x) <= 4.0 * 16_000
    # flac is lossless up to 16-bit rounding: the tone clip comes back exactly
    tone = pool.noise(0)
    ref = 0.5 * np.sin(2 * np.pi * 300 * np.arange(len(tone)) / 16_000)
    assert np.max(np.abs(tone - ref)) < 1e-4
    assert len(pool.noise(len(pool.noise_clips) - 1)) == 40_000  # the 2.5 s hum recipe


def test_missing_and_corrupt_pools_give_clear_errors(tmp_path, tiny_pools):
    with pytest.raises(FileNotFoundError, match="does not exist.*build-data"):
        SpeechMixer(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no manifest.json"):
        load_manifest(tmp_path / "empty")
    bad = tmp_path / "bad"
    shutil.copytree(tiny_pools, bad)
    (bad / "manifest.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        SpeechMixer(bad)
    (bad / "manifest.json").write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(ValueError, match="not a linseq-speech-pools manifest"):
        load_manifest(bad)
    shutil.rmtree(bad)
    shutil.copytree(tiny_pools, bad)
    victim = next((bad / "speech" / "train").iterdir())
    victim.write_bytes(victim.read_bytes()[:100])
    with pytest.raises(ValueError, match="corrupt.*bytes"):
        SpeechMixer(bad)
    victim.unlink()
    with pytest.raises(ValueError, match="incomplete.*missing"):
        SpeechMixer(bad)


def test_writer_validates_and_refuses_to_clobber(tmp_path, tiny_pools, fake_pools_factory):
    with pytest.raises(FileExistsError):
        fake_pools_factory(tiny_pools)
    a = np.zeros(100, np.float32)
    with pytest.raises(ValueError, match="unknown splits"):
        write_pools_from_arrays(tmp_path / "x", {"dev": []})
    with pytest.raises(ValueError, match="no noise"):
        write_pools_from_arrays(tmp_path / "x", {"train": [{"id": "a", "speaker": "s", "source": "s", "audio": a}]})
    with pytest.raises(ValueError, match="duplicate"):
        write_pools_from_arrays(tmp_path / "x", {"train": [{"id": "a", "speaker": "s", "source": "s", "audio": a}] * 2},
                                generated_noise={"train": [{"id": "g", "family": "white", "seconds": 1, "seed": 0}]})
    with pytest.raises(ValueError, match="NaN"):
        write_pools_from_arrays(tmp_path / "x", {"train": [{"id": "a", "speaker": "s", "source": "s",
                                                            "audio": a + np.nan}]},
                                generated_noise={"train": [{"id": "g", "family": "white", "seconds": 1, "seed": 0}]})
    assert not (tmp_path / "x").exists()
    assert not [p for p in tmp_path.iterdir() if "partial" in p.name]  # failed writes leave nothing behind


def test_threaded_preload_gives_what_lazy_decoding_gives(tiny_pools):
    eager = load_split(tiny_pools, "train").preload()
    lazy = load_split(tiny_pools, "train")
    assert len(eager._audio) > 1 and not lazy._audio
    for i in range(len(lazy.utterances)):
        np.testing.assert_array_equal(eager.utterance(i), lazy.utterance(i))
    for i in range(len(lazy.noise_clips)):
        np.testing.assert_array_equal(eager.noise(i), lazy.noise(i))
