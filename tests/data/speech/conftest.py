"""Tiny synthetic pools for the speech-data tests (no apt, ffmpeg or network)."""

from __future__ import annotations

import numpy as np
import pytest

from linseq.data.speech import write_pools_from_arrays
from linseq.data.speech.rir import sample_rir_params

SR = 16_000


def fake_utterance(rng: np.random.Generator, seconds: float) -> np.ndarray:
    """A voiced-speech-like signal: harmonics of a gliding f0 under a 4 Hz syllable envelope."""
    n = int(seconds * SR)
    t = np.arange(n) / SR
    f0 = rng.uniform(100, 250) * (1 + 0.1 * np.sin(2 * np.pi * rng.uniform(0.5, 2) * t))
    phase = 2 * np.pi * np.cumsum(f0) / SR
    x = sum(np.sin(k * phase) / k for k in range(1, 12))
    env = np.clip(np.sin(2 * np.pi * rng.uniform(3, 5) * t + rng.uniform(0, 6)), 0, None) ** 0.5
    return (0.5 * x * env / np.max(np.abs(x))).astype(np.float32)


def make_pools(path, seed: int = 0, codec: str = "opus"):
    rng = np.random.default_rng(seed)
    speech = {"train": [], "test": []}
    for split, speakers in (("train", ["spkA", "spkB", "spkC"]), ("test", ["spkX", "spkY"])):
        for spk in speakers:
            for k in range(3):
                speech[split].append({"id": f"{spk}/{k}", "speaker": spk, "source": f"fake-{spk}",
                                      "language": "xx", "audio": fake_utterance(rng, rng.uniform(1.2, 4.0))})
    noise = {
        "train": [{"id": f"rec/{k}", "family": "recorded", "source": "rec", "audio":
                   (0.3 * rng.standard_normal(int(rng.uniform(0.5, 2.5) * SR))).astype(np.float32)} for k in range(3)],
        "test": [{"id": f"tone/{k}", "family": "tones", "source": "tones", "audio":
                  (0.5 * np.sin(2 * np.pi * (300 + 100 * k) * np.arange(int(1.5 * SR)) / SR)).astype(np.float32)}
                 for k in range(2)],
    }
    generated = {
        "train": [{"id": "gen/pink0", "family": "pink", "seconds": 2.0, "seed": 1, "params": {"exponent": -1.0}},
                  {"id": "gen/clicks0", "family": "clicks", "seconds": 1.5, "seed": 2, "params": {}}],
        "test": [{"id": "gen/hum0", "family": "hum", "seconds": 2.5, "seed": 3, "params": {}}],
    }
    rirs = {"train": sample_rir_params(np.random.default_rng([seed, 1]), "train-room0", 2)
            + sample_rir_params(np.random.default_rng([seed, 2]), "train-room1", 1),
            "test": sample_rir_params(np.random.default_rng([seed, 3]), "test-room0", 2)}
    return write_pools_from_arrays(path, speech, noise, generated, rirs, meta={"fake": True}, codec=codec)


@pytest.fixture(scope="session")
def tiny_pools(tmp_path_factory):
    pytest.importorskip("soundfile")
    return make_pools(tmp_path_factory.mktemp("pools") / "speech_pools")


@pytest.fixture
def fake_pools_factory():
    """``make(path, seed=0, codec="opus")`` writes a fresh tiny pools folder and returns its path."""
    pytest.importorskip("soundfile")
    return make_pools
