"""Parameter and multiply-accumulate (MAC) counts, from the layer shapes.

Counted: every matrix product of the LSTM gates (``4h(in + h)`` per step), linear layers (``in · out``), the mel
filterbank (dense ``257 · 64``) and, for Lightning layers, the projections plus the recurrent state update and
read-out (``2 · H · Dh²`` per step). Not counted: element-wise work (gate non-linearities, normalisation, mask
application) and the STFT. Rates assume 16 kHz audio with hop 256, i.e. 62.5 frames per second; Fast FullSubNet's
sub-band model runs every ``shrink_size`` frames (the extra step for frame 0 is ignored).
"""

from __future__ import annotations

from torch import nn

from linseq.models.speech.fullsubnet import SpeechMaskModel


def count_parameters(model: nn.Module) -> dict[str, int]:
    """Trainable parameters per top-level child and in total."""
    out = {name: sum(p.numel() for p in child.parameters()) for name, child in model.named_children()}
    out["total"] = sum(p.numel() for p in model.parameters())
    return out


def count_macs(model: SpeechMaskModel) -> dict[str, float]:
    """MACs per second of audio, per part and ``"total"``; ``"total_per_frame"`` is per STFT frame."""
    if not isinstance(model, SpeechMaskModel):
        raise TypeError(f"model must be a FullSubNet or FastFullSubNet; got {type(model).__name__}")
    per_frame = model.macs_per_frame()
    fps = model.frames_per_second()
    out = {name: v * fps for name, v in per_frame.items()}
    out["total"] = sum(per_frame.values()) * fps
    out["total_per_frame"] = sum(per_frame.values())
    return out
