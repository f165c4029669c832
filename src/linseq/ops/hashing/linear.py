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
    hq: torch.Tensor,
    hk: torch.Tensor,
    v: torch.Tensor,
    normalizer: str,
    bias: float,
    lightning_backend: str = "auto",
    initial_state: torch.Tensor | None = None,
    output_final_state: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Causal form through :func:`linseq.ops.lightning_attn` (``log_decay=None``, ``scale=1.0``) on augmented codes
    ``q' = [h_q, a]``, ``k' = [h_k, e]``, ``v' = [v, 1]``, whose state ``Σ_j k'_j v'_jᵀ`` is ``[B, H, b+1, V+1]``.

    consistent (a = 1, e = c): ``q'·k' = h_q·h_k + c``, so the output's first V columns are the numerator and the
    last one the normaliser ``Σ_{j<=i} (h_q·h_k + c)``.
    reference (a = 0, e = 1): the output is ``Σ_{j<=i} h_q·h_k [v_j, 1]``; then ``+ c·v_i`` in the numerator and
    ``+ c·n_i`` in the normaliser, where ``n_i`` (visible keys) continues the count kept in the state's corner.

    initial_state (``[B, H, b+1, V+1]`` float32) continues earlier tokens; returns ``(o, final_state or None)``.
    """
    B, T, H, nbits = hq.shape
    # float32 throughout (float64 for float64 input): the normaliser reaches T·(2b+1), beyond float16's range
    acc = torch.float64 if v.dtype == torch.float64 else torch.float32
    ones = torch.ones(B, T, H, 1, dtype=acc, device=v.device)
    hq_, hk_, vf = hq.to(acc), hk.to(acc), v.to(acc)
    v_aug = torch.cat([vf, ones], dim=-1)  # [B,T,H,V+1]
    if acc == torch.float64 and lightning_backend == "auto":
        lightning_backend = "chunk"  # the Lightning op's "auto" takes no float64 (Triton); its PyTorch forms do
    elif lightning_backend == "auto" and T == 1:
        lightning_backend = "recurrent"  # one decoding step: a state update, no kernel launch per block
    consistent = normalizer == "consistent"
    q_aug = torch.cat([hq_, ones if consistent else torch.zeros_like(ones)], dim=-1)
    k_aug = torch.cat([hk_, ones * bias if consistent else ones], dim=-1)
    o, final = lightning_attn(
        q_aug, k_aug, v_aug, None, scale=1.0, initial_state=initial_state,
        output_final_state=output_final_state, backend=lightning_backend,
    )
    if consistent:
        num, den = o[..., :-1], o[..., -1:]
    else:
        count = torch.arange(1, T + 1, dtype=acc, device=v.device)[None, :, None, None]
        if initial_state is not None:
            count = count + initial_state[:, :, nbits, -1].to(acc)[:, None, :, None]
        num = o[..., :-1] + bias * vf
        den = o[..., -1:] + bias * count
    return (num / den).to(v.dtype), final
