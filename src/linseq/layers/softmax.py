"""Causal softmax attention (PyTorch SDPA) with rotary positions and a growing key/value cache."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from linseq.layers.checks import resolve_head_dim


def rotary_cos_sin(
    positions: torch.Tensor, head_dim: int, theta: float = 10000.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rotary tables for integer ``positions [T]``: ``cos, sin`` of shape ``[T, head_dim]`` float32
    (RoFormer, Su et al. 2021; the rotate-half layout of GPT-NeoX and Llama)."""
    inv_freq = 1.0 / theta ** (torch.arange(0, head_dim, 2, device=positions.device, dtype=torch.float32) / head_dim)
    angles = positions.float()[:, None] * inv_freq[None, :]  # [T, head_dim/2]
    angles = torch.cat([angles, angles], dim=-1)
    return angles.cos(), angles.sin()


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate ``x [B, H, T, Dh]`` by the tables ``[T, Dh]``; computed in float32, returned in x's dtype."""
    xf = x if x.dtype == torch.float64 else x.float()
    x1, x2 = xf.chunk(2, dim=-1)
    rotated = torch.cat([-x2, x1], dim=-1)
    return (xf * cos + rotated * sin).to(x.dtype)


def causal_sdpa(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, past: int) -> torch.Tensor:
    """Causal softmax attention of ``T`` new queries ``q [B, H, T, Dh]`` over ``past + T`` keys and values
    ``[B, H, past+T, Dh]`` (the cached prefix first): query i sees keys up to ``past + i``. Returns ``[B, H, T, Dh]``."""
    T = q.shape[2]
    if past == 0:
        return F.scaled_dot_product_attention(q, k, v, is_causal=True)
    if T == 1:
        return F.scaled_dot_product_attention(q, k, v)
    mask = torch.ones(T, past + T, dtype=torch.bool, device=q.device).tril(diagonal=past)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)


class KVCache:
    """Keys and values seen so far by one softmax layer, ``[B, H, capacity, Dh]``; capacity doubles as it fills,
    so appending one token costs O(1) amortised copies."""

    def __init__(self) -> None:
        self.keys: torch.Tensor | None = None
        self.values: torch.Tensor | None = None
        self.length = 0

    def append(self, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Add ``k, v [B, H, T, Dh]``; return views of all keys and values ``[B, H, length, Dh]``."""
        T = k.shape[2]
        need = self.length + T
        if self.keys is None or need > self.keys.shape[2] or self.keys.dtype != k.dtype:
            capacity = max(need, 2 * (self.keys.shape[2] if self.keys is not None else 0), 16)
            new_k = k.new_empty(k.shape[0], k.shape[1], capacity, k.shape[3])
            new_v = v.new_empty(v.shape[0], v.shape[1], capacity, v.shape[3])
            if self.keys is not None and self.length:
                new_k[:, :, : self.length] = self.keys[:, :, : self.length]
                new_v[:, :, : self.length] = self.values[:, :, : self.length]
            self.keys, self.values = new_k, new_v
        self.keys[:, :, self.length : need] = k
        self.values[:, :, self.length : need] = v
        self.length = need
        return self.keys[:, :, :need], self.values[:, :, :need]

    @property
    def batch_size(self) -> int | None:
        """Rows held (None before the first append)."""
        return None if self.keys is None else self.keys.shape[0]

    def select_batch(self, index: torch.Tensor) -> None:
        """Keep (or reorder) the batch rows ``index`` (for beam search)."""
        if self.keys is not None:
            self.keys, self.values = self.keys[index], self.values[index]

    def nbytes(self) -> int:
        """Bytes allocated for keys and values (capacity, not length)."""
        if self.keys is None:
            return 0
        return self.keys.numel() * self.keys.element_size() * 2


class SoftmaxAttention(nn.Module):
    """Multi-head causal softmax attention with rotary positions, through ``F.scaled_dot_product_attention``.

    Args:
        hidden_size: model width D.
        num_heads: H.
        head_dim: per-head width (default ``D // H``, must be even for rotary).
        max_position_embeddings: the longest sequence (prompt plus generated tokens) this layer accepts.
        rope_theta: rotary base.

    Shapes: ``x [B, T, D] -> y [B, T, D]``; the cache grows by ``2·H·head_dim`` values per token.
    """

    def __init__(
        self,
        hidden_size: int,
        num_heads: int,
        head_dim: int | None = None,
        *,
        max_position_embeddings: int = 4096,
        rope_theta: float = 10000.0,
        bias: bool = False,
    ) -> None:
        super().__init__()
        head_dim = resolve_head_dim(hidden_size, num_heads, head_dim)
        if head_dim % 2:
            raise ValueError(f"head_dim must be even for rotary positions; got {head_dim}")
        self.hidden_size, self.num_heads, self.head_dim = hidden_size, num_heads, head_dim
        self.max_position_embeddings, self.rope_theta = max_position_embeddings, rope_theta
        inner = num_heads * head_dim
        self.qkv_proj = nn.Linear(hidden_size, 3 * inner, bias=bias)
        self.out_proj = nn.Linear(inner, hidden_size, bias=bias)

    def forward(self, x: torch.Tensor, cache: KVCache | None = None) -> torch.Tensor:
        """``x [B, T, D] -> y [B, T, D]``. With ``cache``, x continues the cached tokens and is appended to it.

        Raises ValueError when the cached plus new tokens exceed ``max_position_embeddings``."""
        if x.dim() != 3 or x.shape[-1] != self.hidden_size:
            raise ValueError(f"x must have shape [B, T, {self.hidden_size}]; got {tuple(x.shape)}")
        B, T, _ = x.shape
        past = cache.length if cache is not None else 0
        if past + T > self.max_position_embeddings:
            raise ValueError(
                f"sequence of {past + T} tokens exceeds the softmax attention limit "
                f"max_position_embeddings={self.max_position_embeddings}"
            )
        q, k, v = self.qkv_proj(x).view(B, T, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        cos, sin = rotary_cos_sin(torch.arange(past, past + T, device=x.device), self.head_dim, self.rope_theta)
        q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)  # [B,H,T,Dh]
        if cache is not None:
            k, v = cache.append(k, v)  # [B,H,past+T,Dh]
        o = causal_sdpa(q, k, v, past)
        return self.out_proj(o.transpose(1, 2).reshape(B, T, -1))
