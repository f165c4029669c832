"""Token-by-token form: ``S_t = exp(g_t)·S_{t-1} + k_tᵀv_t``, ``o_t = scale·q_t S_t``. Used for decoding.

On CUDA without autograd the step runs as one fused Triton kernel per call (see ``triton/decode.py``);
elsewhere, and whenever gradients are needed, as a PyTorch loop over tokens.
"""

from __future__ import annotations

import torch

from linseq.ops.lightning.packing import (
    pack_from_batch,
    packed_log_decay_to_batch,
    per_token_log_decay,
    unpack_to_batch,
)


def recurrent_lightning_attn(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    log_decay: torch.Tensor | None,
    scale: float,
    initial_state: torch.Tensor | None,
    output_final_state: bool,
    cu_seqlens: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Same function as :func:`linseq.ops.lightning_attn`, computed one token at a time (shapes as there)."""
    needs_grad = torch.is_grad_enabled() and any(
        t is not None and t.requires_grad for t in (q, k, v, log_decay, initial_state)
    )
    if q.is_cuda and not needs_grad and q.dtype != torch.float64 and max(q.shape[-1], v.shape[-1]) <= 256:
        from linseq.ops.lightning.triton.decode import fused_recurrent_forward

        return fused_recurrent_forward(q, k, v, log_decay, scale, initial_state, output_final_state, cu_seqlens)
    if cu_seqlens is not None:
        offsets = cu_seqlens.tolist()
        g = packed_log_decay_to_batch(log_decay, q, offsets)
        o, final = _recurrent_loop(
            unpack_to_batch(q, offsets), unpack_to_batch(k, offsets), unpack_to_batch(v, offsets),
            g, scale, initial_state,
        )
        return pack_from_batch(o, offsets), (final if output_final_state else None)
    o, final = _recurrent_loop(q, k, v, log_decay, scale, initial_state)
    return o, (final if output_final_state else None)


def _recurrent_loop(q, k, v, log_decay, scale, initial_state):
    B, T, H, K = q.shape
    V = v.shape[-1]
    acc = torch.float64 if q.dtype == torch.float64 else torch.float32
    g = per_token_log_decay(log_decay, B, T, H, acc, q.device)
    state = (
        torch.zeros(B, H, K, V, dtype=acc, device=q.device) if initial_state is None else initial_state.to(acc)
    )
    outs = []
    for t in range(T):
        kt, vt = k[:, t].to(acc), v[:, t].to(acc)  # [B,H,K], [B,H,V]
        state = torch.exp(g[:, t])[..., None, None] * state + kt[..., :, None] * vt[..., None, :]
        outs.append(torch.einsum("bhk,bhkv->bhv", q[:, t].to(acc), state) * scale)
    o = torch.stack(outs, dim=1).to(q.dtype)
    return o, state
