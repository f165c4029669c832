"""The ground truth: binary-code attention as an explicit T×T similarity matrix (O(T²)); works in float64."""

from __future__ import annotations

import torch


def naive_hash_attn(
    hq: torch.Tensor, hk: torch.Tensor, v: torch.Tensor, causal: bool, normalizer: str, bias: float
) -> torch.Tensor:
    """Quadratic form of :func:`linseq.ops.hashing.hash_attn`.

    hq, hk: ``[B,T,H,b]`` codes; v: ``[B,T,H,V]``. ``sim_ij = h(q_i)·h(k_j) + c`` (c = ``bias``) over the allowed
    keys (``j <= i`` when causal). ``"consistent"``: ``o_i = Σ_j sim_ij v_j / Σ_j sim_ij``. ``"reference"`` (the
    EcoFormer code): numerator ``Σ_j (h(q_i)·h(k_j)) v_j + c·v_i``, same denominator. Returns ``[B,T,H,V]``.
    """
    acc = torch.float64 if v.dtype == torch.float64 else torch.float32
    qf, kf, vf = hq.to(acc), hk.to(acc), v.to(acc)
    T = hq.shape[1]
    dots = torch.einsum("bihr,bjhr->bhij", qf, kf)  # [B,H,T,T]
    allowed = torch.ones(T, T, dtype=torch.bool, device=v.device)
    if causal:
        allowed = allowed.tril()
    sim = torch.where(allowed, dots + bias, torch.zeros((), dtype=acc, device=v.device))
    den = sim.sum(-1)  # [B,H,T]
    if normalizer == "consistent":
        num = torch.einsum("bhij,bjhv->bihv", sim, vf)
    else:
        masked_dots = torch.where(allowed, dots, torch.zeros((), dtype=acc, device=v.device))
        num = torch.einsum("bhij,bjhv->bihv", masked_dots, vf) + bias * vf
    o = num / den.transpose(1, 2)[..., None]
    return o.to(v.dtype)
