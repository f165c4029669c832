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


def _squared_anchor_distances(x: torch.Tensor, anchors: torch.Tensor) -> torch.Tensor:
    """``||x_t − a_j||²`` as ``[B, T, H, m]`` in float32 (float64 for float64 x), clamped at 0 against rounding."""
    acc = torch.float64 if x.dtype == torch.float64 else torch.float32
    xf, af = x.to(acc), anchors.to(acc)
    d = (xf * xf).sum(-1, keepdim=True) + (af * af).sum(-1)[None, None] - 2.0 * torch.einsum("bthc,hmc->bthm", xf, af)
    return d.clamp_min(0.0)


def _rbf(d: torch.Tensor, sigma2: torch.Tensor, mvec: torch.Tensor | None) -> torch.Tensor:
    k = torch.exp(-d / (2.0 * sigma2.clamp_min(torch.finfo(d.dtype).tiny)))
    return k if mvec is None else k - mvec.to(d.dtype)[None, None]


def rbf_features(
    x: torch.Tensor, anchors: torch.Tensor, mvec: torch.Tensor | None = None, causal: bool = False
) -> torch.Tensor:
    """Centred RBF kernel features ``k(x_t, a_j) - mvec_j``.

    x: ``[B, T, H, C]``; anchors: ``[H, m, C]``; mvec: ``[H, m]`` or None (no centring).
    ``d_tj = ||x_t − a_j||²``, ``σ² = mean_{t,j} d_tj`` per (B, H), ``k = exp(−d / (2σ²))``. With ``causal`` the
    bandwidth of token t is the running mean over tokens ``<= t`` (the whole-sequence mean would let future tokens
    change past codes); :func:`causal_rbf_features` does the same with a carried state.
    Returns ``[B, T, H, m]`` in float32 (float64 for float64 input).
    """
    if causal:
        return causal_rbf_features(x, anchors, mvec)[0]
    d = _squared_anchor_distances(x, anchors)
    return _rbf(d, d.mean(dim=(1, 3), keepdim=True), mvec)  # σ² [B,1,H,1]


def causal_rbf_features(
    x: torch.Tensor,
    anchors: torch.Tensor,
    mvec: torch.Tensor | None = None,
    bandwidth_state: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Causal :func:`rbf_features` that continues earlier tokens (for decoding chunk by chunk or token by token).

    bandwidth_state: ``[B, H, 2]`` float32 (float64 for float64 x) holding, for the tokens seen so far, the sum of
    their per-token mean squared anchor distances and their count; None for the start of a sequence.
    Returns ``(features [B, T, H, m], new bandwidth_state [B, H, 2])``; processing a sequence in pieces with the
    state gives the same features as one call.
    """
    d = _squared_anchor_distances(x, anchors)  # [B,T,H,m]
    B, T, H, _ = d.shape
    running = d.mean(dim=3).cumsum(1)  # [B,T,H]
    count = torch.arange(1, T + 1, dtype=d.dtype, device=d.device)[None, :, None]
    if bandwidth_state is not None:
        past = bandwidth_state.to(d.dtype)
        running = running + past[:, None, :, 0]
        count = count + past[:, None, :, 1]
    sigma2 = (running / count)[..., None]  # [B,T,H,1]
    new_state = torch.stack([running[:, -1], count.expand(B, T, H)[:, -1]], dim=-1)  # [B,H,2]
    return _rbf(d, sigma2, mvec), new_state


def hash_codes(features: torch.Tensor, hyperplanes: torch.Tensor) -> torch.Tensor:
    """``sign(A · k̄)`` with the straight-through gradient. features ``[B,T,H,m]``, hyperplanes ``[H,b,m]``
    (detached, as in the reference: back-propagation fits the projections to the hash, not the hash itself).
    Returns ``[B,T,H,b]`` ±1 in the features' dtype."""
    y = torch.einsum("bthm,hrm->bthr", features, hyperplanes.detach().to(features.dtype))
    return sign_ste(y)
