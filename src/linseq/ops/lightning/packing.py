"""Conversions shared by the PyTorch backends: decay expansion and packed (cu_seqlens) <-> padded batches."""

from __future__ import annotations

import torch


def per_token_log_decay(
    log_decay: torch.Tensor | None, batch: int, seq_len: int, heads: int, dtype: torch.dtype, device: torch.device
) -> torch.Tensor:
    """``log_decay`` of shape ``[H]``, ``[B,T,H]`` or None as a ``[B,T,H]`` tensor of ``dtype``."""
    if log_decay is None:
        return torch.zeros(batch, seq_len, heads, dtype=dtype, device=device)
    if log_decay.ndim == 1:
        return log_decay.to(dtype).view(1, 1, heads).expand(batch, seq_len, heads)
    return log_decay.to(dtype)


def unpack_to_batch(x: torch.Tensor, offsets: list[int]) -> torch.Tensor:
    """``x [1, T, ...]`` holding packed sequences -> ``[N, T_max, ...]`` zero-padded at the end."""
    lengths = [b - a for a, b in zip(offsets[:-1], offsets[1:])]
    t_max = max(max(lengths), 1)
    out = x.new_zeros((len(lengths), t_max) + tuple(x.shape[2:]))
    for i, (a, b) in enumerate(zip(offsets[:-1], offsets[1:])):
        out[i, : b - a] = x[0, a:b]
    return out


def pack_from_batch(x: torch.Tensor, offsets: list[int]) -> torch.Tensor:
    """Inverse of :func:`unpack_to_batch`: ``[N, T_max, ...]`` -> ``[1, T, ...]``."""
    parts = [x[i, : b - a] for i, (a, b) in enumerate(zip(offsets[:-1], offsets[1:]))]
    return torch.cat(parts, dim=0).unsqueeze(0)


def packed_log_decay_to_batch(
    log_decay: torch.Tensor | None, q: torch.Tensor, offsets: list[int]
) -> torch.Tensor | None:
    """Packed ``log_decay`` (``[H]`` or ``[1,T,H]``) -> per token ``[N,T_max,H]``, zero (no decay) in the padding,
    so that a padded sequence's final state equals its state at its true end."""
    if log_decay is None:
        return None
    _, T, H, _ = q.shape
    g = log_decay.view(1, 1, H).expand(1, T, H) if log_decay.ndim == 1 else log_decay
    return unpack_to_batch(g, offsets)
