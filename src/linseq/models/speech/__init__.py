"""Speech enhancement: FullSubNet and Fast FullSubNet (compressed cRM), streaming, complexity counts.

Model core only; data pools, training, metrics and the ``linseq enhance`` command come later (docs/speech.md).
"""

from linseq.models.speech.complexity import count_macs, count_parameters
from linseq.models.speech.fast_fullsubnet import FastFullSubNet
from linseq.models.speech.fullsubnet import FullSubNet, SpeechMaskModel
from linseq.models.speech.signal import (
    apply_crm, build_crm, compress, cumulative_norm, decompress, istft, mel_filterbank, stft,
)
from linseq.models.speech.streaming import StreamingEnhancer


def enhance_spectrum(model: SpeechMaskModel, noisy):
    """Offline: complex noisy spectrum ``[B, 257, T]`` -> enhanced complex spectrum ``[B, 257, T]``."""
    return apply_crm(model(noisy.abs()), noisy)


__all__ = [
    "FastFullSubNet", "FullSubNet", "SpeechMaskModel", "StreamingEnhancer", "apply_crm", "build_crm", "compress",
    "count_macs", "count_parameters", "cumulative_norm", "decompress", "enhance_spectrum", "istft",
    "mel_filterbank", "stft",
]
