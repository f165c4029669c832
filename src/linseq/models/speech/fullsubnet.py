"""FullSubNet (Hao, Su, Horaud, Li, ICASSP 2021): full-band model, then per-frequency sub-band model -> compressed cRM.

Sizes as in the paper's recipe: full-band LSTM 257->512->512 + Linear(512, 257) + ReLU; sub-band unit per
frequency over ±15 noisy bins plus the full-band output bin (32 inputs), LSTM 32->384->384 + Linear(384, 2);
5,637,635 parameters with LSTMs. Look-ahead: ``look_ahead`` zero frames are appended and the first
``look_ahead`` outputs dropped, so output frame t sees input frames ≤ t + look_ahead.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from linseq.models.speech.sequence import SequenceStage
from linseq.models.speech.signal import EPS, FRAMES_PER_SECOND, NUM_FREQS, check_finite, offline_norm, unfold_freq

NORMS = ("cumulative", "offline")
NormCarry = tuple  # (running sum [N] or None, running count)


def norm_chunk(x: torch.Tensor, kind: str, carry: NormCarry | None) -> tuple[torch.Tensor, NormCarry | None]:
    """Normalise ``x [N, C, T]``: cumulative (carrying running sums across chunks) or offline (whole utterance)."""
    if kind == "offline":
        if carry is not None:
            raise ValueError("norm='offline' needs the whole utterance; streaming requires norm='cumulative'")
        return offline_norm(x), None
    N, C, T = x.shape
    total, count = (None, 0) if carry is None else carry
    csum = torch.cumsum(x.sum(dim=1), dim=-1)  # [N, T]
    if total is not None:
        csum = csum + total[:, None]
    counts = (count + C * torch.arange(1, T + 1, device=x.device)).to(x.dtype)
    return x / (csum / counts + EPS)[:, None, :], (csum[:, -1], count + C * T)


class SpeechMaskModel(nn.Module):
    """Shared driver: offline ``forward`` and frame-by-frame ``step`` over the same chunk computation ``_run``."""

    num_freqs = NUM_FREQS
    look_ahead: int
    norm: str

    def _check_mag(self, mag: torch.Tensor, frame: bool = False) -> None:
        if not torch.is_tensor(mag) or not mag.is_floating_point():
            raise TypeError(f"mag must be a real floating-point tensor; got {getattr(mag, 'dtype', type(mag))}")
        want = f"[B, {self.num_freqs}]" if frame else f"[B, {self.num_freqs}, T]"
        if mag.dim() != (2 if frame else 3) or mag.shape[1] != self.num_freqs or (not frame and mag.shape[2] < 1):
            raise ValueError(f"mag must be a noisy magnitude spectrogram {want}; got {tuple(mag.shape)}")
        check_finite("mag", mag)

    def forward(self, mag: torch.Tensor) -> torch.Tensor:
        """Offline: noisy magnitude ``[B, 257, T]`` -> compressed cRM ``[B, 2, 257, T]``."""
        self._check_mag(mag)
        padded = nn.functional.pad(mag, (0, self.look_ahead))
        out, _ = self._run(padded, None)
        return out[..., self.look_ahead:]

    def init_state(self) -> dict[str, Any]:
        """Empty streaming state (sizes follow the first frame)."""
        return {"t": 0}

    def step(self, mag_frame: torch.Tensor, state: dict[str, Any]) -> tuple[torch.Tensor, dict[str, Any]]:
        """One frame of the (look-ahead padded) stream: ``[B, 257]`` -> ``([B, 2, 257], state)``.

        The output belongs to the frame fed ``look_ahead`` steps earlier; :class:`StreamingEnhancer` does the
        bookkeeping. Requires ``norm="cumulative"``.
        """
        if self.norm != "cumulative":
            raise ValueError(f"streaming requires norm='cumulative'; this model has norm={self.norm!r}")
        self._check_mag(mag_frame, frame=True)
        out, state = self._run(mag_frame[..., None], state)
        return out[..., 0], state

    def step_chunk(self, mag: torch.Tensor, state: dict[str, Any]) -> tuple[torch.Tensor, dict[str, Any]]:
        """Several consecutive frames of the (look-ahead padded) stream at once: ``[B, 257, T]`` ->
        ``([B, 2, 257, T], state)``; equal to ``T`` calls of :meth:`step`, faster. Requires ``norm="cumulative"``."""
        if self.norm != "cumulative":
            raise ValueError(f"streaming requires norm='cumulative'; this model has norm={self.norm!r}")
        self._check_mag(mag)
        return self._run(mag, state)

    def _run(self, mag: torch.Tensor, state: dict[str, Any] | None) -> tuple[torch.Tensor, dict[str, Any] | None]:
        raise NotImplementedError

    def macs_per_frame(self) -> dict[str, float]:
        raise NotImplementedError

    @staticmethod
    def frames_per_second() -> float:
        return FRAMES_PER_SECOND


def gather_bins(x: torch.Tensor, bins: torch.Tensor) -> torch.Tensor:
    """Select frequency bins per sample: ``x [B, C, F, T]``, ``bins [B, F_g]`` -> ``[B, C, F_g, T]``."""
    idx = bins[:, None, :, None].expand(-1, x.shape[1], -1, x.shape[3])
    return torch.gather(x, 2, idx)


class FullSubNet(SpeechMaskModel):
    """FullSubNet predicting the compressed cRM from the noisy magnitude.

    Args:
        sequence_model: ``"lstm"`` (published) or ``"lightning"`` (linseq LightningAttention layers).
        look_ahead: future frames seen by each output frame (default 2 = 32 ms).
        norm: ``"cumulative"`` (causal, streamable; default) or ``"offline"`` (the paper's utterance mean).
        sb_num_neighbors, fb_hidden_size, sb_hidden_size: 15, 512, 384 as published.

    Shapes: ``forward(mag [B, 257, T]) -> [B, 2, 257, T]``.
    """

    def __init__(
        self, sequence_model: str = "lstm", look_ahead: int = 2, norm: str = "cumulative", sb_num_neighbors: int = 15,
        fb_hidden_size: int = 512, sb_hidden_size: int = 384,
    ) -> None:
        super().__init__()
        if norm not in NORMS:
            raise ValueError(f"norm must be one of {NORMS}; got {norm!r}")
        if not isinstance(look_ahead, int) or look_ahead < 0:
            raise ValueError(f"look_ahead must be an int >= 0; got {look_ahead!r}")
        self.sequence_model, self.look_ahead, self.norm = sequence_model, look_ahead, norm
        self.sb_num_neighbors = sb_num_neighbors
        F_ = self.num_freqs
        self.fb_model = SequenceStage(F_, fb_hidden_size, 2, F_, "relu", sequence_model)
        self.sb_model = SequenceStage(2 * sb_num_neighbors + 2, sb_hidden_size, 2, 2, None, sequence_model)

    def forward_drop_band(self, mag: torch.Tensor, groups: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
        """Training with drop-band (FullSubNet recipe, ``num_groups_in_drop_band=2``): the full-band model sees every
        bin, but sample ``b`` runs the sub-band model only on bins ``f ≡ b (mod groups)`` among the first
        ``F - F % groups`` bins, which divides the sub-band work by ``groups``.

        ``mag [B, 257, T]`` -> ``(mask [B, 2, F_g, T], bins [B, F_g])`` with ``F_g = (F - F % groups) // groups``;
        compare with the target gathered at ``bins`` (:func:`gather_bins`). ``groups=1`` is plain :meth:`forward`.
        """
        self._check_mag(mag)
        if not isinstance(groups, int) or groups < 1:
            raise ValueError(f"groups must be an int >= 1; got {groups!r}")
        B, F_, _ = mag.shape
        usable = F_ - F_ % groups if groups > 1 else F_
        offsets = torch.arange(B, device=mag.device) % groups
        bins = offsets[:, None] + groups * torch.arange(usable // groups, device=mag.device)[None, :]  # [B, F_g]
        padded = nn.functional.pad(mag, (0, self.look_ahead))
        out, _ = self._run(padded, None, bins=bins)
        return out[..., self.look_ahead:], bins

    def _run(
        self, mag: torch.Tensor, state: dict[str, Any] | None, bins: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, dict[str, Any] | None]:
        st = state or {}
        B, F_, T = mag.shape
        fb_in, norm_fb = norm_chunk(mag, self.norm, st.get("norm_fb") if state is not None else None)
        fb_out, fb_state = self.fb_model(fb_in.transpose(1, 2), st.get("fb"))  # [B, T, F]
        sb_in = torch.cat([unfold_freq(mag, self.sb_num_neighbors), fb_out.transpose(1, 2)[:, :, None]], dim=2)
        if bins is not None:  # drop-band: keep the selected bins of each sample
            sb_in = torch.gather(sb_in, 1, bins[:, :, None, None].expand(-1, -1, *sb_in.shape[2:]))
            F_ = bins.shape[1]
        sb_in = sb_in.reshape(B * F_, -1, T)  # [B*F, 32, T]
        sb_in, norm_sb = norm_chunk(sb_in, self.norm, st.get("norm_sb") if state is not None else None)
        sb_out, sb_state = self.sb_model(sb_in.transpose(1, 2), st.get("sb"))  # [B*F, T, 2]
        out = sb_out.reshape(B, F_, T, 2).permute(0, 3, 1, 2)
        if state is None:
            return out, None
        return out, {"t": st.get("t", 0) + T, "fb": fb_state, "sb": sb_state, "norm_fb": norm_fb, "norm_sb": norm_sb}

    def init_state(self) -> dict[str, Any]:
        return {"t": 0, "fb": None, "sb": None, "norm_fb": None, "norm_sb": None}

    def macs_per_frame(self) -> dict[str, float]:
        """Multiply-accumulates per STFT frame of each part (sub-band: all 257 units)."""
        return {
            "full_band": float(self.fb_model.macs_per_step()),
            "sub_band": float(self.num_freqs * self.sb_model.macs_per_step()),
        }
