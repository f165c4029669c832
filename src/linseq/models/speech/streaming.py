"""Frame-by-frame enhancement with carried state; equals offline processing of the whole input.

The model sees input frame t together with frames up to t + look_ahead. :class:`StreamingEnhancer` feeds one noisy
STFT frame per :meth:`~StreamingEnhancer.step` and returns the enhanced frame ``look_ahead`` frames later
(``None`` while the look-ahead buffer fills); :meth:`~StreamingEnhancer.flush` feeds the zero frames that offline
processing appends and returns the last ``look_ahead`` enhanced frames. Algorithmic latency: the 32 ms window plus
``look_ahead`` × 16 ms. Waveform-level overlap-add (iSTFT per frame) is left to the caller.
"""

from __future__ import annotations

from collections import deque

import torch

from linseq.models.speech.fullsubnet import SpeechMaskModel
from linseq.models.speech.signal import apply_crm


class StreamingEnhancer:
    """Carry a model's state across frames: ``step(noisy [B, 257] complex) -> enhanced [B, 257] complex or None``.

    ``return_mask=True`` makes step/flush return the compressed cRM frame ``[B, 2, 257]`` instead.
    Requires a model built with ``norm="cumulative"``. Works for every ``shrink_size`` of Fast FullSubNet.
    """

    def __init__(self, model: SpeechMaskModel, return_mask: bool = False) -> None:
        if not isinstance(model, SpeechMaskModel):
            raise TypeError(f"model must be a FullSubNet or FastFullSubNet; got {type(model).__name__}")
        if model.norm != "cumulative":
            raise ValueError(f"streaming requires norm='cumulative'; the model has norm={model.norm!r}")
        self.model, self.return_mask = model, return_mask
        self.reset()

    def reset(self) -> None:
        """Start a new stream."""
        self.state = self.model.init_state()
        self.pending: deque[torch.Tensor] = deque()  # noisy frames whose enhanced frame is not out yet
        self.fed = 0  # frames fed to the model, look-ahead zeros included

    @torch.no_grad()
    def _feed(self, mag: torch.Tensor) -> torch.Tensor | None:
        mask, self.state = self.model.step(mag, self.state)
        self.fed += 1
        if self.fed <= self.model.look_ahead or not self.pending:
            return None  # still filling the look-ahead: this output belongs to no real frame
        noisy = self.pending.popleft()
        if self.return_mask:
            return mask
        return apply_crm(mask[..., None], noisy[..., None])[..., 0]

    def step(self, noisy_frame: torch.Tensor) -> torch.Tensor | None:
        """Feed one complex noisy frame ``[B, 257]``; get the enhanced frame from ``look_ahead`` frames ago."""
        if not torch.is_complex(noisy_frame) or noisy_frame.dim() != 2:
            raise ValueError(f"noisy_frame must be a complex tensor [B, 257]; got {noisy_frame.dtype} "
                             f"{tuple(noisy_frame.shape)}")
        self.pending.append(noisy_frame)
        return self._feed(noisy_frame.abs())

    def flush(self) -> list[torch.Tensor]:
        """End of stream: feed ``look_ahead`` zero frames; returns the remaining enhanced frames, oldest first."""
        out = []
        if self.pending:
            zero = torch.zeros_like(self.pending[0].real)
            for _ in range(self.model.look_ahead):
                y = self._feed(zero)
                if y is not None:
                    out.append(y)
        self.reset()
        return out
