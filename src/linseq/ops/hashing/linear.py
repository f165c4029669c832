"""Binary-code attention in time linear in T.

Non-causal: ``h(Q) (h(K)ᵀ V)`` with sums over all keys. Causal: the same sums as prefix sums, computed by the
Lightning op with no decay and ``scale=1.0`` — the codes are augmented so that one call yields both the numerator
and the normaliser (see :func:`causal_hash_attn`).
"""

from __future__ import annotations

import torch

from linseq.ops.lightning import lightning_attn


def noncausal_hash_attn(hq: torch.Tensor, hk: torch.Tensor, v: torch.Tensor, normalizer: str, bias: float) -> torch.Tensor:
    """``o_i = [h_iᵀ(Σ_j h_j v_jᵀ) + c·Σ_j v_j] / [h_iᵀ Σ_j h_j + T·c]`` (consistent) or with ``c·v_i`` in the
    numerator (reference). hq, hk ``[B,T,H,b]``; v ``[B,T,H,V]`` → ``[B,T,H,V]``. The state is ``[B,H,b,V]``."""
    acc = torch.float64 if v.dtype == torch.float64 else torch.float32
    qf, kf, vf = hq.to(acc), hk.to(acc), v.to(acc)
    T = hq.shape[1]
    kv = torch.einsum("bthr,bthv->bhrv", kf, vf)  # [B,H,b,V], signed accumulations only
    z = kf.sum(1)  # [B,H,b]
    num = torch.einsum("bthr,bhrv->bthv", qf, kv)
    den = torch.einsum("bthr,bhr->bth", qf, z) + bias * T
    if normalizer == "consistent":
        num = num + bias * vf.sum(1, keepdim=True)
    else:
        num = num + bias * vf
    return (num / den[..., None]).to(v.dtype)


def causal_hash_attn(
    hq: torch.Tensor, hk: torch.Tensor, v: torch.Tensor, normalizer: str, bias: float, lightning_backend: str = "auto"
) -> torch.Tensor:
    """Causal form through :func:`linseq.ops.lightning_attn` (``log_decay=None``, ``scale=1.0``).

    consistent: ``q' = [h_q, 1]``, ``k' = [h_k, c]``, ``v' = [v, 1]`` so that ``q'·k' = h_q·h_k + c`` and the last
    output column is the normaliser ``Σ_{j<=i} (h_q·h_k + c)``.
    reference: ``q' = h_q``, ``k' = h_k``, ``v' = [v, 1]``; then ``+ c·v_i`` in the numerator and ``+ c·i`` (i = number
    of visible keys) in the normaliser.
    """
    B, T, H, _ = hq.shape
    # float32 throughout (float64 for float64 input): the normaliser reaches T·(2b+1), beyond float16's range
    acc = torch.float64 if v.dtype == torch.float64 else torch.float32
    ones = torch.ones(B, T, H, 1, dtype=acc, device=v.device)
    hq_, hk_, vf = hq.to(acc), hk.to(acc), v.to(acc)
    v_aug = torch.cat([vf, ones], dim=-1)  # [B,T,H,V+1]
    if acc == torch.float64 and lightning_backend == "auto":
        lightning_backend = "chunk"  # the Lightning op's "auto" takes no float64 (Triton); its PyTorch forms do
    if normalizer == "consistent":
        q_aug = torch.cat([hq_, ones], dim=-1)
        k_aug = torch.cat([hk_, ones * bias], dim=-1)
        o, _ = lightning_attn(q_aug, k_aug, v_aug, None, scale=1.0, backend=lightning_backend)
        num, den = o[..., :-1], o[..., -1:]
    else:
        o, _ = lightning_attn(hq_, hk_, v_aug, None, scale=1.0, backend=lightning_backend)
        count = torch.arange(1, T + 1, dtype=acc, device=v.device)[None, :, None, None]
        num = o[..., :-1] + bias * vf
        den = o[..., -1:] + bias * count
    return (num / den).to(v.dtype)
