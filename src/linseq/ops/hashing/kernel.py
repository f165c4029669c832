"""The kernelized hash of EcoFormer: RBF features against anchors, centring, hyperplanes, sign (straight-through).

Follows the reference code's ``KernelSH.forward`` (see shared/research/ecoformer_flora.md §1.2): the bandwidth
``σ²`` is the mean squared distance to the anchors, computed per (batch element, head) from the current input,
also at inference; the centring vector ``mvec`` is frozen when the hash is fitted.
"""

from __future__ import annotations

import torch


class _SignSTE(torch.autograd.Function):
    """``sign`` forward (``sign(0) = +1``, so codes are exactly ±1); backward passes the gradient where ``|y| <= 1``
    (the clipped straight-through estimator of the reference ``BinaryQuantizer``)."""

    @staticmethod
    def forward(ctx, y: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(y)
        return torch.where(y >= 0, torch.ones_like(y), -torch.ones_like(y))

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        (y,) = ctx.saved_tensors
        return grad * (y.abs() <= 1).to(grad.dtype)


def sign_ste(y: torch.Tensor) -> torch.Tensor:
    """±1 codes of ``y`` with a clipped straight-through gradient. Any shape; same shape and dtype out."""
    return _SignSTE.apply(y)


def rbf_features(
    x: torch.Tensor, anchors: torch.Tensor, mvec: torch.Tensor | None = None, causal: bool = False
) -> torch.Tensor:
    """Centred RBF kernel features ``k(x_t, a_j) - mvec_j``.

    x: ``[B, T, H, C]``; anchors: ``[H, m, C]``; mvec: ``[H, m]`` or None (no centring).
    ``d_tj = ||x_t − a_j||²``, ``σ² = mean_{t,j} d_tj`` per (B, H), ``k = exp(−d / (2σ²))``. With ``causal`` the
    bandwidth of token t is the running mean over tokens ``<= t`` (the whole-sequence mean would let future tokens
    change past codes).
    Returns ``[B, T, H, m]`` in float32 (float64 for float64 input).
    """
    acc = torch.float64 if x.dtype == torch.float64 else torch.float32
    xf, af = x.to(acc), anchors.to(acc)
    # ||x||² + ||a||² − 2 x·a, clamped at 0 against rounding
    d = (xf * xf).sum(-1, keepdim=True) + (af * af).sum(-1)[None, None] - 2.0 * torch.einsum("bthc,hmc->bthm", xf, af)
    d = d.clamp_min(0.0)  # [B,T,H,m]
    if causal:
        count = torch.arange(1, x.shape[1] + 1, dtype=acc, device=x.device)[None, :, None, None]
        sigma2 = d.mean(dim=3, keepdim=True).cumsum(1) / count  # [B,T,H,1]
    else:
        sigma2 = d.mean(dim=(1, 3), keepdim=True)  # [B,1,H,1]
    sigma2 = sigma2.clamp_min(torch.finfo(acc).tiny)
    k = torch.exp(-d / (2.0 * sigma2))
    if mvec is not None:
        k = k - mvec.to(acc)[None, None]
    return k


def hash_codes(features: torch.Tensor, hyperplanes: torch.Tensor) -> torch.Tensor:
    """``sign(A · k̄)`` with the straight-through gradient. features ``[B,T,H,m]``, hyperplanes ``[H,b,m]``
    (detached, as in the reference: back-propagation fits the projections to the hash, not the hash itself).
    Returns ``[B,T,H,b]`` ±1 in the features' dtype."""
    y = torch.einsum("bthm,hrm->bthr", features, hyperplanes.detach().to(features.dtype))
    return sign_ste(y)
