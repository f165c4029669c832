"""Exponential moving average (EMA) of a model's weights during training.

Averaging the weights of several runs continued from one checkpoint (``linseq speech average``) beat each run on
STOI twice; an EMA does a similar averaging within one run, over the last ~1/(1 − decay) steps. The average lives
in a copy of the model, so validation and the ``best/`` checkpoint use it directly.

Step ``s`` (counted from 0 in the run) uses ``min(decay, (1 + s) / (10 + s))``, so a run from random weights is
not held at its start; a run continued from a checkpoint starts its average at that checkpoint.
"""

from __future__ import annotations

import copy

import torch

from linseq.models.speech import SpeechMaskModel


class WeightEMA:
    """``ema.model`` holds the moving average of ``model``'s floating-point parameters and buffers (a copy of the
    model: same dtype and device); other buffers are copied. Call :meth:`update` after every optimizer step."""

    def __init__(self, model: SpeechMaskModel, decay: float):
        if not 0.0 < decay < 1.0:
            raise ValueError(f"ema decay must be in (0, 1); got {decay}")
        self.decay = decay
        self.model = copy.deepcopy(model).requires_grad_(False)

    def decay_at(self, step: int) -> float:
        """The decay used at run step ``step`` (0-based)."""
        return min(self.decay, (1 + step) / (10 + step))

    @torch.no_grad()
    def update(self, model: SpeechMaskModel, step: int) -> None:
        """Move the average toward ``model``'s current weights by the decay of ``step``."""
        ours, theirs = self.model.state_dict(), model.state_dict()
        floats = [(ours[k], v) for k, v in theirs.items() if v.is_floating_point()]
        torch._foreach_lerp_([a for a, _ in floats], [b.detach() for _, b in floats], 1.0 - self.decay_at(step))
        for k, v in theirs.items():
            if not v.is_floating_point():
                ours[k].copy_(v)
