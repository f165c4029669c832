"""Root-mean-square norms over the last dimension: RMSNorm (learnable gain) and SRMSNorm (no gain, TransNormerLLM)."""

from __future__ import annotations

import torch
from torch import nn


def rms_normalize(x: torch.Tensor, eps: float) -> torch.Tensor:
    """``x / sqrt(mean(x², -1) + eps)`` computed in float32 (float64 stays float64), returned in ``x``'s dtype.
    Any shape ``[..., D]``."""
    xf = x if x.dtype == torch.float64 else x.float()
    return (xf * torch.rsqrt(xf.pow(2).mean(dim=-1, keepdim=True) + eps)).to(x.dtype)


class SRMSNorm(nn.Module):
    """Simple RMSNorm of TransNormerLLM: ``x·rsqrt(mean(x²)+eps)`` with no learnable gain. ``[..., D] -> [..., D]``."""

    def __init__(self, dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        if not isinstance(dim, int) or dim < 1:
            raise ValueError(f"dim must be a positive int; got {dim!r}")
        self.dim, self.eps = dim, eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return rms_normalize(x, self.eps)

    def extra_repr(self) -> str:
        return f"{self.dim}, eps={self.eps}"


class RMSNorm(nn.Module):
    """RMSNorm (Zhang & Sennrich, 2019) with a learnable per-channel gain, initialised to one. ``[..., D] -> [..., D]``."""

    def __init__(self, dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        if not isinstance(dim, int) or dim < 1:
            raise ValueError(f"dim must be a positive int; got {dim!r}")
        self.dim, self.eps = dim, eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return rms_normalize(x, self.eps) * self.weight.to(x.dtype)

    def reset_parameters(self) -> None:
        nn.init.ones_(self.weight)

    def extra_repr(self) -> str:
        return f"{self.dim}, eps={self.eps}"


def make_norm(kind: str, dim: int, eps: float = 1e-6) -> nn.Module:
    """``"srms"`` -> :class:`SRMSNorm`, ``"rms"`` -> :class:`RMSNorm`, ``"layer"`` -> ``nn.LayerNorm``."""
    if kind == "srms":
        return SRMSNorm(dim, eps)
    if kind == "rms":
        return RMSNorm(dim, eps)
    if kind == "layer":
        return nn.LayerNorm(dim, eps=eps)
    raise ValueError(f"norm kind must be one of 'srms', 'rms', 'layer'; got {kind!r}")
