"""The ground truth: Lightning attention written as its definition, an explicit decayed T×T attention matrix.

O(T²) memory and time; works in float64. Every other backend is tested against this one.
"""

from __future__ import annotations

import torch

from linseq.ops.lightning.packing import per_token_log_decay


def naive_lightning_attn(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    log_decay: torch.Tensor | None,
    scale: float,
    initial_state: torch.Tensor | None,
    output_final_state: bool,
    cu_seqlens: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``o_t = scale·Σ_{s≤t} exp(G_t−G_s)(q_t·k_s)v_s + scale·exp(G_t) q_t·S0`` with ``G_t = Σ_{r≤t} log_decay_r``.

    q, k: ``[B,T,H,K]``; v: ``[B,T,H,V]``; log_decay: ``[H]``, ``[B,T,H]`` or None; initial_state ``[N,H,K,V]``.
    Computes in float64 for float64 inputs and float32 otherwise. Returns ``(o [B,T,H,V], final [N,H,K,V])``.
    """
    if cu_seqlens is not None:
        offsets = cu_seqlens.tolist()
        outs, finals = [], []
        for i, (a, b) in enumerate(zip(offsets[:-1], offsets[1:])):
            g_i = log_decay if log_decay is None or log_decay.ndim == 1 else log_decay[:, a:b]
            h0 = None if initial_state is None else initial_state[i : i + 1]
            o_i, s_i = _naive_dense(q[:, a:b], k[:, a:b], v[:, a:b], g_i, scale, h0)
            outs.append(o_i)
            finals.append(s_i)
        o = torch.cat(outs, dim=1)
        final = torch.cat(finals, dim=0)
    else:
        o, final = _naive_dense(q, k, v, log_decay, scale, initial_state)
    return o, (final if output_final_state else None)


def _naive_dense(q, k, v, log_decay, scale, initial_state):
    B, T, H, K = q.shape
    V = v.shape[-1]
    acc = torch.float64 if q.dtype == torch.float64 else torch.float32
    if T == 0:  # an empty packed sequence: no output, the state passes through
        final = torch.zeros(B, H, K, V, dtype=acc, device=q.device) if initial_state is None else initial_state.to(acc)
        return v.new_zeros(B, 0, H, V), final
    qf, kf, vf = q.to(acc), k.to(acc), v.to(acc)
    g = per_token_log_decay(log_decay, B, T, H, acc, q.device)
    G = torch.cumsum(g, dim=1).transpose(1, 2)  # [B,H,T]
    diff = G[:, :, :, None] - G[:, :, None, :]  # [B,H,T(t),T(s)] = G_t - G_s
    causal = torch.ones(T, T, dtype=torch.bool, device=q.device).tril()
    decay = torch.where(causal, torch.exp(diff.masked_fill(~causal, 0.0)), torch.zeros((), dtype=acc, device=q.device))
    scores = torch.einsum("bthk,bshk->bhts", qf, kf) * decay * scale
    o = torch.einsum("bhts,bshv->bthv", scores, vf)
    # state after the last token: Σ_s exp(G_T - G_s) k_sᵀ v_s (+ exp(G_T) S0)
    to_end = torch.exp(G[:, :, -1:] - G)  # [B,H,T]
    final = torch.einsum("bhs,bshk,bshv->bhkv", to_end, kf, vf)
    if initial_state is not None:
        h0 = initial_state.to(acc)
        o = o + scale * torch.einsum("bthk,bhkv->bthv", qf * torch.exp(G).transpose(1, 2)[..., None], h0)
        final = final + torch.exp(G[:, :, -1])[..., None, None] * h0
    return o.to(q.dtype), final
