"""Fast FullSubNet (Hao & Li, arXiv 2212.09019): mel-domain full-band and sub-band models with time down-sampling.

Sizes as in the paper's recipe (6,842,895 parameters with LSTMs):
- F_l2m: 64-band HTK mel of the noisy magnitude -> norm -> LSTM 64->384 -> LSTM 384->257 -> Linear(257, 64) -> ReLU.
- S: per mel band (64 units, shared weights): ±5 noisy mel bands (reflect padded) ++ F_l2m output band = 12
  features -> causal time down-sampling by m -> norm -> LSTM 12->384 -> LSTM 384->384 -> Linear(384, 1) -> ReLU
  -> zero-order-hold up-sampling.
- F_m2l: concat(F_l2m output, S output) = 128 -> LSTM 128->512 -> LSTM 512->512 -> Linear(512, 514) -> cRM.

Down-sampling (causal): step 0 is frame 0 alone; step k ≥ 1 is the mean of frames (k-1)m+1 .. km; output frame t
takes step ⌊t/m⌋, which is complete at frame ⌊t/m⌋·m ≤ t. So the sub-band model runs once every m frames and
streaming is exact for every m. Unlike the reference, the trailing partial block is never computed (no output
frame uses it); with ``norm="offline"`` this drops it from the band mean as well.
"""

from __future__ import annotations

from typing import Any

import torch

from linseq.models.speech.fullsubnet import NORMS, SpeechMaskModel, norm_chunk
from linseq.models.speech.sequence import SequenceStage
from linseq.models.speech.signal import mel_filterbank, unfold_freq


class FastFullSubNet(SpeechMaskModel):
    """Fast FullSubNet predicting the compressed cRM from the noisy magnitude.

    Args:
        shrink_size: time down-sampling factor m of the sub-band model (paper: 1, 2, 8; any int ≥ 1 works).
        sequence_model: ``"lstm"`` (published) or ``"lightning"``.
        look_ahead: future frames per output frame (default 2).
        norm: ``"cumulative"`` (default, streamable) or ``"offline"``.
        num_mels, num_neighbors, sb_hidden_size: 64, 5, 384 as published.

    Shapes: ``forward(mag [B, 257, T]) -> [B, 2, 257, T]``.
    """

    def __init__(
        self, shrink_size: int = 2, sequence_model: str = "lstm", look_ahead: int = 2, norm: str = "cumulative",
        num_mels: int = 64, num_neighbors: int = 5, sb_hidden_size: int = 384,
    ) -> None:
        super().__init__()
        if norm not in NORMS:
            raise ValueError(f"norm must be one of {NORMS}; got {norm!r}")
        if not isinstance(shrink_size, int) or shrink_size < 1:
            raise ValueError(f"shrink_size must be an int >= 1; got {shrink_size!r}")
        if not isinstance(look_ahead, int) or look_ahead < 0:
            raise ValueError(f"look_ahead must be an int >= 0; got {look_ahead!r}")
        self.shrink_size, self.sequence_model = shrink_size, sequence_model
        self.look_ahead, self.norm = look_ahead, norm
        self.num_mels, self.num_neighbors = num_mels, num_neighbors
        self.register_buffer("mel_fb", mel_filterbank(self.num_freqs, num_mels), persistent=False)  # [257, 64]
        self.encoder = torch.nn.ModuleList([
            SequenceStage(num_mels, 384, 1, 0, None, sequence_model),
            SequenceStage(384, 257, 1, num_mels, "relu", sequence_model),
        ])
        self.sub_band = SequenceStage(2 * num_neighbors + 2, sb_hidden_size, 2, 1, "relu", sequence_model)
        self.decoder = SequenceStage(2 * num_mels, 512, 2, 2 * self.num_freqs, None, sequence_model)

    def _downsample(
        self, x: torch.Tensor, t0: int, carry: torch.Tensor | None
    ) -> tuple[torch.Tensor, int, torch.Tensor | None]:
        """Complete down-sampled steps inside a chunk.

        ``x [N, C, T]`` holds frames ``t0 .. t0+T-1``; ``carry [N, C]`` the sum of the current block's frames before
        ``t0``. Returns ``(steps [N, C, K], index of the first step, new carry)``.
        """
        m = self.shrink_size
        N, C, T = x.shape
        g = torch.arange(t0, t0 + T, device=x.device)
        block = (g + m - 1) // m  # block id of each frame; frame 0 -> 0
        b0 = int(block[0])
        sums = torch.zeros(N, C, int(block[-1]) - b0 + 1, device=x.device, dtype=x.dtype)
        sums.index_add_(2, block - b0, x)
        if carry is not None:
            sums[:, :, 0] += carry
        first_complete = b0  # block b0 ends at frame b0*m >= t0: inside this chunk or later
        last_frame = t0 + T - 1
        last_complete = last_frame // m  # block ending at or before the last frame (block k ends at frame k*m)
        steps = sums[:, :, : last_complete - first_complete + 1]
        counts = torch.full((steps.shape[-1],), float(m), device=x.device, dtype=x.dtype)
        if first_complete == 0 and counts.numel():
            counts[0] = 1.0
        steps = steps / counts
        new_carry = sums[:, :, -1] if last_frame % m != 0 else None
        return steps, first_complete, new_carry

    def _run(self, mag: torch.Tensor, state: dict[str, Any] | None) -> tuple[torch.Tensor, dict[str, Any] | None]:
        st = state or {}
        streaming = state is not None
        B, F_, T = mag.shape
        t0 = st.get("t", 0)
        mel = torch.einsum("fm,bft->bmt", self.mel_fb.to(mag.dtype), mag)  # [B, 64, T]
        enc_in, norm_enc = norm_chunk(mel, self.norm, st.get("norm_enc") if streaming else None)
        h, s1 = self.encoder[0](enc_in.transpose(1, 2), st.get("enc0"))
        enc_out, s2 = self.encoder[1](h, st.get("enc1"))  # [B, T, 64]
        enc_out = enc_out.transpose(1, 2)  # [B, 64, T]
        sb_in = torch.cat([unfold_freq(mel, self.num_neighbors), enc_out[:, :, None]], dim=2)  # [B, 64, 12, T]
        Mb, C = self.num_mels, sb_in.shape[2]
        steps, k0, ds_carry = self._downsample(sb_in.reshape(B * Mb, C, T), t0, st.get("ds_carry"))
        held = st.get("held")
        sb_state, norm_sb = st.get("sb"), st.get("norm_sb")
        if steps.shape[-1]:
            steps, norm_sb = norm_chunk(steps, self.norm, norm_sb if streaming else None)
            sb_out, sb_state = self.sub_band(steps.transpose(1, 2), sb_state)  # [B*64, K, 1]
            sb_out = sb_out[..., 0]
        else:
            sb_out = mag.new_zeros(B * Mb, 0)
        if held is not None:
            sb_out = torch.cat([held[:, None], sb_out], dim=1)
            k0 -= 1
        idx = torch.arange(t0, t0 + T, device=mag.device) // self.shrink_size - k0
        bo = sb_out[:, idx].reshape(B, Mb, T)  # zero-order hold
        dec_in = torch.cat([enc_out, bo], dim=1).transpose(1, 2)  # [B, T, 128]
        dec_out, s_dec = self.decoder(dec_in, st.get("dec"))  # [B, T, 514]
        out = dec_out.reshape(B, T, 2, F_).permute(0, 2, 3, 1)
        if not streaming:
            return out, None
        return out, {
            "t": t0 + T, "enc0": s1, "enc1": s2, "dec": s_dec, "sb": sb_state, "norm_enc": norm_enc,
            "norm_sb": norm_sb, "ds_carry": ds_carry, "held": sb_out[:, -1],
        }

    def init_state(self) -> dict[str, Any]:
        return {"t": 0}

    def macs_per_frame(self) -> dict[str, float]:
        """Multiply-accumulates per STFT frame; the sub-band part runs 64 units every ``shrink_size`` frames."""
        return {
            "mel": float(self.num_freqs * self.num_mels),
            "F_l2m": float(sum(s.macs_per_step() for s in self.encoder)),
            "S": self.num_mels * self.sub_band.macs_per_step() / self.shrink_size,
            "F_m2l": float(self.decoder.macs_per_step()),
        }
