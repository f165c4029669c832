"""Tiled PyTorch Lightning attention (Lightning Attention-2's algorithm): masked decayed attention inside each
block of ``chunk_size`` tokens, a carried ``K^T V`` state between blocks. Any device; autograd for every input."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from linseq.ops.lightning.packing import (
    pack_from_batch,
    packed_log_decay_to_batch,
    per_token_log_decay,
    unpack_to_batch,
)

DEFAULT_CHUNK_SIZE = 64


def chunk_lightning_attn(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    log_decay: torch.Tensor | None,
    scale: float,
    initial_state: torch.Tensor | None,
    output_final_state: bool,
    cu_seqlens: torch.Tensor | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Same function as :func:`linseq.ops.lightning_attn` (shapes as there), in blocks of ``chunk_size`` tokens.

    Packed sequences (``cu_seqlens``) are zero-padded into a batch: zero keys and values with zero log decay
    leave the state unchanged, so each sequence's final state is exact.
    """
    if cu_seqlens is not None:
        offsets = cu_seqlens.tolist()
        o, final = _chunk_dense(
            unpack_to_batch(q, offsets), unpack_to_batch(k, offsets), unpack_to_batch(v, offsets),
            packed_log_decay_to_batch(log_decay, q, offsets), scale, initial_state, chunk_size,
        )
        return pack_from_batch(o, offsets), (final if output_final_state else None)
    o, final = _chunk_dense(q, k, v, log_decay, scale, initial_state, chunk_size)
    return o, (final if output_final_state else None)


def _chunk_dense(q, k, v, log_decay, scale, initial_state, C):
    B, T, H, K = q.shape
    V = v.shape[-1]
    acc = torch.float64 if q.dtype == torch.float64 else torch.float32
    N = -(-T // C)
    pad = N * C - T
    g = per_token_log_decay(log_decay, B, T, H, acc, q.device)

    def blocks(x: torch.Tensor) -> torch.Tensor:  # [B,T,H,D] -> [B,H,N,C,D], zero-padded along T
        x = F.pad(x.to(acc), (0, 0, 0, 0, 0, pad))
        return x.view(B, N, C, H, -1).permute(0, 3, 1, 2, 4)

    qb, kb, vb = blocks(q), blocks(k), blocks(v)
    gb = F.pad(g, (0, 0, 0, pad)).view(B, N, C, H).permute(0, 3, 1, 2)  # [B,H,N,C]
    G = torch.cumsum(gb, dim=-1)  # log decay from the block start to each position, inclusive
    G_last = G[..., -1:]  # [B,H,N,1]

    # inside each block: [(Q Kᵀ) ⊙ D] V with D_ij = exp(G_i - G_j) for j <= i
    causal = torch.ones(C, C, dtype=torch.bool, device=q.device).tril()
    diff = (G[..., :, None] - G[..., None, :]).masked_fill(~causal, float("-inf"))
    scores = (qb @ kb.transpose(-1, -2)) * torch.exp(diff) * scale  # [B,H,N,C,C]
    o = scores @ vb  # [B,H,N,C,V]

    # across blocks: the state entering block n, decayed to each query position
    q_decayed = qb * (torch.exp(G)[..., None] * scale)
    k_to_end = kb * torch.exp(G_last - G)[..., None]
    state = (
        torch.zeros(B, H, K, V, dtype=acc, device=q.device) if initial_state is None else initial_state.to(acc)
    )
    inter = []
    for n in range(N):
        inter.append(q_decayed[:, :, n] @ state)
        state = torch.exp(G_last[:, :, n])[..., None] * state + k_to_end[:, :, n].transpose(-1, -2) @ vb[:, :, n]
    o = o + torch.stack(inter, dim=2)
    o = o.permute(0, 2, 3, 1, 4).reshape(B, N * C, H, V)[:, :T]
    return o.to(q.dtype), state
