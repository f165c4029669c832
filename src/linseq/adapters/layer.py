"""FLoRA layers: a frozen base module plus a Tucker-factored weight update, with merge / unmerge.

``ΔW = s · G ×_1 U_1 ×_2 U_2 ... ×_N U_N``; modes follow PyTorch's weight layout (see :class:`FloraConfig`).
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "FloraLayer",
    "FloraLinear",
    "FloraConv",
    "FloraEmbedding",
    "tucker_to_tensor",
    "flora_param_count",
    "resolve_ranks",
    "wrapper_for",
]


def tucker_to_tensor(core: torch.Tensor, factors: Sequence[torch.Tensor]) -> torch.Tensor:
    """Dense tensor of a Tucker decomposition.

    Args:
        core: ``G [r_1, ..., r_N]``.
        factors: N matrices ``U_i [d_i, r_i]``.

    Returns:
        ``G ×_1 U_1 ... ×_N U_N`` of shape ``[d_1, ..., d_N]``, in the core's dtype.
    """
    out = core
    for mode, factor in enumerate(factors):
        # mode product: contract mode `mode` of out [.., r_i, ..] with factor [d_i, r_i] -> [.., d_i, ..]
        out = torch.tensordot(factor, out.movedim(mode, 0), dims=([1], [0])).movedim(0, mode)
    return out


def flora_param_count(shape: Sequence[int], ranks: Sequence[int]) -> int:
    """Trainable parameters of one FLoRA adapter on a weight of ``shape``: ``Π r_i + Σ d_i r_i``."""
    if len(shape) != len(ranks):
        raise ValueError(f"shape and ranks need one entry per mode; got shape {tuple(shape)} and ranks {tuple(ranks)}")
    return math.prod(ranks) + sum(d * r for d, r in zip(shape, ranks))


def resolve_ranks(
    shape: Sequence[int], r: int | tuple[int, ...], spatial_r: int | None, n_spatial: int, module_name: str
) -> tuple[int, ...]:
    """Per-mode ranks for a weight of ``shape`` whose last ``n_spatial`` modes are kernel modes.

    An int ``r`` is a ceiling per mode (capped by the mode's size; ``spatial_r`` replaces it on kernel modes).
    A tuple is taken as is and must fit: one entry per mode, none larger than its mode.
    """
    shape = tuple(int(d) for d in shape)
    if isinstance(r, int):
        n_channel = len(shape) - n_spatial
        spatial = r if spatial_r is None else spatial_r
        return tuple(min(r, d) for d in shape[:n_channel]) + tuple(min(spatial, d) for d in shape[n_channel:])
    if len(r) != len(shape):
        raise ValueError(
            f"ranks {r} for module {module_name!r} need one entry per mode of its weight {shape} "
            f"({len(shape)} modes); give an int to apply one rank to all modes"
        )
    too_big = [(i, ri, d) for i, (ri, d) in enumerate(zip(r, shape)) if ri > d]
    if too_big:
        i, ri, d = too_big[0]
        raise ValueError(
            f"rank {ri} for mode {i} of module {module_name!r} is larger than the mode (size {d}, weight {shape}); "
            "ranks must not exceed their mode's size"
        )
    return tuple(r)


def _adapter_dtype(weight: torch.Tensor) -> torch.dtype:
    # Half-precision bases keep float32 adapters (as PEFT's autocast_adapter_dtype does): small cores train badly in bf16.
    return torch.float32 if weight.dtype in (torch.float16, torch.bfloat16) else weight.dtype


class FloraLayer(nn.Module):
    """Base of the FLoRA wrappers: holds ``base_layer`` (frozen) and the adapter ``flora_core`` / ``flora_factors``.

    Subclasses implement ``forward``; merging adds ``delta_weight()`` to ``base_layer.weight`` in place.
    """

    n_spatial: int = 0

    def __init__(
        self,
        base_layer: nn.Module,
        ranks: Sequence[int],
        scale: float = 1.0,
        dropout: float = 0.0,
        init: str = "orthogonal",
    ) -> None:
        super().__init__()
        self.base_layer = base_layer
        weight = base_layer.weight
        shape = tuple(weight.shape)
        if len(ranks) != len(shape):
            raise ValueError(f"ranks {tuple(ranks)} need one entry per mode of the weight {shape}")
        self.ranks = tuple(int(r) for r in ranks)
        self.scale = float(scale)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        dtype = _adapter_dtype(weight)
        # The core starts at zero so ΔW = 0: a fresh adapter leaves the model's outputs unchanged.
        self.flora_core = nn.Parameter(torch.zeros(self.ranks, dtype=dtype, device=weight.device))
        self.flora_factors = nn.ParameterList(
            [nn.Parameter(torch.empty(d, r, dtype=dtype, device=weight.device)) for d, r in zip(shape, self.ranks)]
        )
        self.init_factors(init)
        self.merged = False
        self.adapter_enabled = True

    @torch.no_grad()
    def init_factors(self, init: str) -> None:
        """``"orthogonal"``: orthonormal columns (then ``||ΔW||_F = s·||G||_F``); ``"kaiming"``: kaiming-normal
        with a=sqrt(3), the reference code's choice."""
        for factor in self.flora_factors:
            if init == "orthogonal":
                nn.init.orthogonal_(factor)
            elif init == "kaiming":
                nn.init.kaiming_normal_(factor, a=math.sqrt(3))
            else:
                raise ValueError(f"init must be 'orthogonal' or 'kaiming'; got {init!r}")

    @property
    def weight_shape(self) -> tuple[int, ...]:
        return tuple(self.base_layer.weight.shape)

    def num_adapter_params(self) -> int:
        return self.flora_core.numel() + sum(f.numel() for f in self.flora_factors)

    def delta_weight(self) -> torch.Tensor:
        """``ΔW = s · G ×_1 U_1 ... ×_N U_N``, shaped like ``base_layer.weight``, in the adapter's dtype."""
        return self.scale * tucker_to_tensor(self.flora_core, list(self.flora_factors))

    @torch.no_grad()
    def merge(self, safe_merge: bool = False) -> None:
        """Add ΔW into the base weight, after which forward costs exactly the base layer's forward.

        With ``safe_merge`` the sum is checked for NaN/Inf before the weight is touched.
        """
        if self.merged:
            return
        weight = self.base_layer.weight
        merged = weight + self.delta_weight().to(weight.dtype)
        if safe_merge and not torch.isfinite(merged).all():
            raise ValueError(f"merging the adapter into a {type(self.base_layer).__name__} gives NaN/Inf weights")
        weight.copy_(merged)
        self.merged = True

    @torch.no_grad()
    def unmerge(self) -> None:
        """Subtract ΔW from the base weight again (exact up to floating-point rounding)."""
        if not self.merged:
            return
        weight = self.base_layer.weight
        weight.sub_(self.delta_weight().to(weight.dtype))
        self.merged = False

    def _adapter_active(self) -> bool:
        return self.adapter_enabled and not self.merged

    def extra_repr(self) -> str:
        return f"ranks={self.ranks}, scale={self.scale}, merged={self.merged}, enabled={self.adapter_enabled}"


class FloraLinear(FloraLayer):
    """nn.Linear + FLoRA. Modes ``[out, in]``: ``ΔW = s · U_out G U_inᵀ``, applied factor by factor
    (``x U_in Gᵀ U_outᵀ``), never materialised in forward."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        result = self.base_layer(x)
        if not self._adapter_active():
            return result
        u_out, u_in = self.flora_factors
        h = self.dropout(x).to(u_in.dtype) @ u_in  # [..., r_in]
        h = h @ self.flora_core.t()  # [..., r_out]
        h = h @ u_out.t()  # [..., out]
        return result + (self.scale * h).to(result.dtype)


class FloraConv(FloraLayer):
    """nn.Conv1d/2d/3d + FLoRA. Modes ``[out, in/groups, *kernel]``, so grouped and depthwise convolutions work;
    ΔW runs through the base layer's own convolution (same stride, padding, padding mode, dilation, groups)."""

    def __init__(self, base_layer: nn.Module, *args, **kwargs) -> None:
        self.n_spatial = base_layer.weight.dim() - 2
        super().__init__(base_layer, *args, **kwargs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        base = self.base_layer
        if not self._adapter_active():
            return base(x)
        delta = self.delta_weight().to(base.weight.dtype)
        if isinstance(self.dropout, nn.Identity):
            # One convolution with W + ΔW: same result as base(x) + conv(x, ΔW), half the work.
            return base._conv_forward(x, base.weight + delta, base.bias)
        return base(x) + base._conv_forward(self.dropout(x), delta, None)


class FloraEmbedding(FloraLayer):
    """nn.Embedding + FLoRA. Modes ``[num_embeddings, embedding_dim]``: a looked-up row of ``U_vocab`` goes
    through ``G`` and ``U_dimᵀ``; the full ΔW is only built when merging."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        result = self.base_layer(x)
        if not self._adapter_active():
            return result
        u_vocab, u_dim = self.flora_factors
        h = F.embedding(x, u_vocab)  # [..., r_vocab]
        h = h @ self.flora_core @ u_dim.t()  # [..., dim]
        return result + (self.scale * h).to(result.dtype)


def wrapper_for(module: nn.Module) -> type[FloraLayer] | None:
    """The FLoRA wrapper class for ``module``, or None when its type is not supported."""
    if isinstance(module, nn.modules.linear.NonDynamicallyQuantizableLinear):
        return None  # nn.MultiheadAttention reads out_proj.weight directly; a wrapper would be bypassed
    if isinstance(module, nn.Linear):
        return FloraLinear
    if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
        return FloraConv
    if isinstance(module, nn.Embedding):
        return FloraEmbedding
    return None
