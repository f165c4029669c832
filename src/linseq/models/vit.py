"""A small transformer classifier for images (Pathfinder-style pixel sequences) and token sequences (ListOps),
with softmax, Lightning (linear) or EcoFormer attention behind one interface: ``[B, T, D] -> [B, T, D]``.

``TinyViT`` embeds an image ``[B, H, W]`` (uint8 or float in [0, 1]) by patches (``patch_size=1``: one token per
pixel, as LRA's Pathfinder); ``TokenClassifier`` embeds token ids ``[B, T]`` (0 = padding). Both add learned
positions, run pre-norm blocks and mean-pool over (non-padding) tokens into a linear head.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from linseq.layers.ecoformer import EcoAttention
from linseq.ops.lightning import lightning_attn, tnl_log_decay

__all__ = ["ATTENTIONS", "SoftmaxAttention", "LightningAttention", "make_attention", "TinyViT", "TokenClassifier"]

ATTENTIONS = ("softmax", "lightning", "ecoformer")


class SoftmaxAttention(nn.Module):
    """Multi-head softmax attention (PyTorch SDPA), ``[B,T,D] -> [B,T,D]``."""

    def __init__(self, dim: int, num_heads: int, causal: bool = False) -> None:
        super().__init__()
        self.num_heads, self.causal = num_heads, causal
        self.q_proj, self.k_proj, self.v_proj = (nn.Linear(dim, dim) for _ in range(3))
        self.o_proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, D = x.shape
        q, k, v = (p(x).view(B, T, self.num_heads, -1).transpose(1, 2) for p in (self.q_proj, self.k_proj, self.v_proj))
        o = F.scaled_dot_product_attention(q, k, v, is_causal=self.causal)
        return self.o_proj(o.transpose(1, 2).reshape(B, T, D))


class LightningAttention(nn.Module):
    """TransNormer-style linear attention on :func:`linseq.ops.lightning_attn`: SiLU feature maps, per-head decay
    (``tnl_log_decay``), ``scale=1``, RMS-normalised output. Non-causal use sums a forward and a backward scan."""

    def __init__(self, dim: int, num_heads: int, causal: bool = False, layer_idx: int = 0, num_layers: int = 1,
                 backend: str = "auto") -> None:
        super().__init__()
        self.num_heads, self.causal, self.backend = num_heads, causal, backend
        self.q_proj, self.k_proj, self.v_proj = (nn.Linear(dim, dim) for _ in range(3))
        self.norm = nn.RMSNorm(dim // num_heads)
        self.o_proj = nn.Linear(dim, dim)
        self.register_buffer("log_decay", tnl_log_decay(num_heads, layer_idx, num_layers))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, D = x.shape
        q, k, v = (p(x).view(B, T, self.num_heads, -1) for p in (self.q_proj, self.k_proj, self.v_proj))
        q, k = F.silu(q), F.silu(k)
        dh = q.shape[-1]
        o, _ = lightning_attn(q, k, v, self.log_decay.to(q.dtype), scale=dh**-0.5, backend=self.backend)
        if not self.causal:
            ob, _ = lightning_attn(q.flip(1), k.flip(1), v.flip(1), self.log_decay.to(q.dtype), scale=dh**-0.5,
                                   backend=self.backend)
            o = o + ob.flip(1)
        return self.o_proj(self.norm(o).reshape(B, T, D))


def make_attention(kind: str, dim: int, num_heads: int, *, causal: bool = False, layer_idx: int = 0,
                   num_layers: int = 1, **eco_kwargs) -> nn.Module:
    """An attention module of ``kind`` in ``ATTENTIONS``; extra keyword arguments go to :class:`EcoAttention`
    (``lightning_backend`` goes to :class:`LightningAttention`)."""
    backend = eco_kwargs.pop("lightning_backend", "auto")
    if kind == "softmax":
        return SoftmaxAttention(dim, num_heads, causal)
    if kind == "lightning":
        return LightningAttention(dim, num_heads, causal, layer_idx, num_layers, backend)
    if kind == "ecoformer":
        return EcoAttention(dim, num_heads, causal=causal, **eco_kwargs)
    raise ValueError(f"attention must be one of {ATTENTIONS}; got {kind!r}")


class _Block(nn.Module):
    def __init__(self, dim: int, attn: nn.Module, mlp_ratio: int = 2, dropout: float = 0.0) -> None:
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = attn
        self.mlp = nn.Sequential(nn.Linear(dim, mlp_ratio * dim), nn.GELU(), nn.Linear(mlp_ratio * dim, dim))
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop(self.attn(self.norm1(x)))
        return x + self.drop(self.mlp(self.norm2(x)))


class _Encoder(nn.Module):
    def __init__(self, dim, depth, num_heads, attention, max_len, num_classes, dropout, eco_kwargs):
        super().__init__()
        if attention not in ATTENTIONS:
            raise ValueError(f"attention must be one of {ATTENTIONS}; got {attention!r}")
        self.pos = nn.Parameter(torch.randn(1, max_len, dim) * 0.02)
        self.blocks = nn.ModuleList(
            _Block(dim, make_attention(attention, dim, num_heads, layer_idx=i, num_layers=depth, **dict(eco_kwargs)),
                   dropout=dropout)
            for i in range(depth)
        )
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)

    def encode(self, h: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        h = h + self.pos[:, : h.shape[1]]
        for blk in self.blocks:
            h = blk(h)
        h = self.norm(h)
        if mask is None:
            return self.head(h.mean(1))
        m = mask.to(h.dtype)[..., None]
        return self.head((h * m).sum(1) / m.sum(1).clamp_min(1))


class TinyViT(_Encoder):
    """Image classifier: ``[B, H, W]`` (or ``[B, C, H, W]``) → logits ``[B, num_classes]``.

    Args: image_size, patch_size (1 = a token per pixel), in_chans, dim, depth, num_heads, attention
    (``"softmax"``, ``"lightning"``, ``"ecoformer"``), num_classes, dropout, eco_kwargs (for EcoAttention).
    """

    def __init__(self, *, image_size: int = 32, patch_size: int = 1, in_chans: int = 1, dim: int = 64, depth: int = 2,
                 num_heads: int = 2, attention: str = "softmax", num_classes: int = 2, dropout: float = 0.0,
                 eco_kwargs: dict | None = None) -> None:
        if image_size % patch_size:
            raise ValueError(f"image_size must be divisible by patch_size; got {image_size} and {patch_size}")
        n_tokens = (image_size // patch_size) ** 2
        super().__init__(dim, depth, num_heads, attention, n_tokens, num_classes, dropout, eco_kwargs or {})
        self.image_size, self.patch_size, self.in_chans = image_size, patch_size, in_chans
        self.embed = nn.Conv2d(in_chans, dim, patch_size, stride=patch_size)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.ndim == 3:
            images = images[:, None]
        if images.ndim != 4 or images.shape[1] != self.in_chans or images.shape[-1] != self.image_size:
            raise ValueError(f"images must be [B,{self.in_chans},{self.image_size},{self.image_size}] or [B,H,W]; "
                             f"got {tuple(images.shape)}")
        x = images.float() / 255.0 if images.dtype == torch.uint8 else images.float()
        h = self.embed(x).flatten(2).transpose(1, 2)  # [B, T, D]
        return self.encode(h, None)


class TokenClassifier(_Encoder):
    """Sequence classifier over token ids ``[B, T]`` (0 = padding) → logits ``[B, num_classes]``."""

    def __init__(self, *, vocab_size: int, max_len: int, dim: int = 64, depth: int = 2, num_heads: int = 2,
                 attention: str = "softmax", num_classes: int = 10, dropout: float = 0.0,
                 eco_kwargs: dict | None = None) -> None:
        super().__init__(dim, depth, num_heads, attention, max_len, num_classes, dropout, eco_kwargs or {})
        self.embed = nn.Embedding(vocab_size, dim, padding_idx=0)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        if tokens.ndim != 2 or tokens.dtype not in (torch.int64, torch.int32):
            raise ValueError(f"tokens must be int [B,T]; got {tokens.dtype} {tuple(tokens.shape)}")
        return self.encode(self.embed(tokens), tokens != 0)
