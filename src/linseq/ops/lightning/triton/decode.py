"""Fused recurrent step for decoding: all tokens of a call in one launch, the state never leaves the chip."""

from __future__ import annotations

import torch

from linseq.ops.lightning.triton.function import _pow2
from linseq.ops.lightning.triton.kernels import lightning_decode_kernel


def fused_recurrent_forward(q, k, v, log_decay, scale, initial_state, output_final_state, cu_seqlens):
    """Inference-only recurrent form (no autograd). Shapes as in :func:`linseq.ops.lightning_attn`.

    Decoding calls this once per layer and token, so the host work is kept small (measured per call on a 2-core CPU
    with the launch stubbed: 33 µs before, 13 now; benchmarks/results/lightning/NOTES.md)."""
    B, T, H, K = q.shape
    V = v.shape[-1]
    N = B if cu_seqlens is None else cu_seqlens.numel() - 1
    BK = _pow2(K)
    BV = min(_pow2(V), 32 if K > 64 else 64)
    decay = 0 if log_decay is None else (1 if log_decay.ndim == 1 else 2)
    qf = q.reshape(B * T, H, K).contiguous()
    kf = k.reshape(B * T, H, K).contiguous()
    vf = v.reshape(B * T, H, V).contiguous()
    o = torch.empty_like(vf)
    final = q.new_empty(N, H, K, V, dtype=torch.float32) if output_final_state else None
    h0 = initial_state.float().contiguous() if initial_state is not None else None
    ld = log_decay.float().contiguous() if decay == 1 else None
    g = log_decay.float().contiguous() if decay == 2 else None
    lightning_decode_kernel[(-(-V // BV), N * H)](  # ceil division without triton.cdiv (see _pow2)
        qf, kf, vf, g, ld, h0, o, final, cu_seqlens, scale, T=T, H=H, K=K, V=V, BK=BK, BV=BV,
        DECAY=decay, HAS_H0=h0 is not None, STORE_STATE=output_final_state, IS_VARLEN=cu_seqlens is not None,
        num_warps=4 if BK * BV >= 4096 else 2,
    )
    return o.view(B, T, H, V), final
