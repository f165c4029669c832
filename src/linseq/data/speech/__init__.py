"""Offline speech-enhancement data: pools built from Debian packages, an on-the-fly mixer, a DNS-2020-shaped test set.

* :func:`build_pools` (``python -m linseq.data.speech.build OUT_DIR``): speech, noise and RIR pools, ≤ 40 MiB.
* :class:`SpeechMixer`: a ``torch.utils.data.Dataset`` of ``(noisy, clean)`` pairs following FullSubNet's recipe.
* :func:`build_test_set` / :func:`load_test_set`: 150 ``no_reverb`` + 150 ``with_reverb`` 10 s clips.
* :func:`write_pools_from_arrays`: the pools writer, for tests and custom data.

Importing this package needs only numpy and torch; ``soundfile`` is needed to read or write audio, and the builder
also needs apt, ffmpeg and espeak-ng (each missing piece is named in the error).
"""

from linseq.data.speech.audio import SAMPLE_RATE
from linseq.data.speech.mixer import SpeechMixer, mix_at_snr
from linseq.data.speech.noise import GENERATED_FAMILIES, generate_noise, realise_noise
from linseq.data.speech.pools import (
    SPLITS, SplitPool, format_summary, load_manifest, load_split, pools_summary, write_pools_from_arrays,
)
from linseq.data.speech.rir import estimate_rt60, simulate_rir
from linseq.data.speech.testset import TEST_SUBSETS, build_test_set, load_test_set




def __getattr__(name: str):
    # imported on first use, so `python -m linseq.data.speech.build` does not find its module half-imported
    if name == "build_pools":
        from linseq.data.speech.build import build_pools

        return build_pools
    raise AttributeError(f"module 'linseq.data.speech' has no attribute {name!r}")


__all__ = [
    "SAMPLE_RATE", "SPLITS", "TEST_SUBSETS", "GENERATED_FAMILIES", "SpeechMixer", "SplitPool", "build_pools",
    "build_test_set", "load_test_set", "load_split", "load_manifest", "pools_summary", "format_summary",
    "write_pools_from_arrays", "mix_at_snr", "generate_noise", "realise_noise", "simulate_rir", "estimate_rt60",
]
