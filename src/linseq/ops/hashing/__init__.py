"""EcoFormer's kernelized hashing and binary-code attention (Liu et al., NeurIPS 2022).

Public functions:

- :func:`kernel_hash` — ``h(x) = sign(A · (k(x, anchors) − mvec))`` with an RBF kernel whose bandwidth is the mean
  squared distance to the anchors; straight-through gradient to ``x``.
- :func:`hash_attn` — attention from binary codes, non-causal ``h(Q)(h(K)ᵀV)`` or causal via prefix sums
  (the Lightning op with no decay), with two normalisers (``"consistent"``, ``"reference"``).
- :func:`similarity_labels`, :func:`fit_hash_bits`, :func:`hash_agreement` — self-supervised fitting of the
  hyperplanes from the model's own attention map, and the measure of how well codes match it.
- :func:`attention_energy` — multiplies, additions and picojoules of one attention forward pass.
"""

from __future__ import annotations

import math

import torch

from linseq.ops.hashing.energy import PJ_PER_ADD, PJ_PER_MUL, attention_energy
from linseq.ops.hashing.fitting import fit_hash_bits, hash_agreement, similarity_labels
from linseq.ops.hashing.kernel import causal_rbf_features, hash_codes, rbf_features, sign_ste
from linseq.ops.hashing.linear import causal_hash_attn, noncausal_hash_attn
from linseq.ops.hashing.naive import naive_hash_attn

__all__ = [
    "kernel_hash",
    "hash_attn",
    "similarity_labels",
    "fit_hash_bits",
    "hash_agreement",
    "attention_energy",
    "rbf_features",
    "causal_rbf_features",
    "hash_codes",
    "sign_ste",
    "NORMALIZERS",
    "PJ_PER_MUL",
    "PJ_PER_ADD",
]

NORMALIZERS = ("consistent", "reference")
HASH_BACKENDS = ("auto", "linear", "naive")
_DTYPES = (torch.float32, torch.bfloat16, torch.float16, torch.float64)


def _require_tensor(name: str, value: object) -> torch.Tensor:
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor; got {type(value).__name__}")
    if value.dtype not in _DTYPES:
        raise TypeError(f"{name} must be float32, bfloat16, float16 or float64; got {value.dtype}")
    return value


def kernel_hash(
    x: torch.Tensor,
    anchors: torch.Tensor,
    hyperplanes: torch.Tensor,
    mvec: torch.Tensor | None = None,
    *,
    causal: bool = False,
) -> torch.Tensor:
    """Binary codes of ``x`` by the kernelized hash.

    Args:
        x: ``[B, T, H, C]`` vectors to hash (EcoFormer L2-normalises them first; this function does not).
        anchors: ``[H, m, C]`` anchor points per head.
        hyperplanes: ``[H, b, m]`` hyperplanes in the kernel space (detached: no gradient flows to them).
        mvec: ``[H, m]`` centring vector (mean kernel value at fitting time), or None for no centring.
        causal: the RBF bandwidth of token t uses tokens ``<= t`` only (EcoFormer, non-causal, uses all tokens).

    Returns:
        ``[B, T, H, b]`` codes, exactly ±1, in float32 (float64 for float64 x); the gradient reaches ``x``
        through the clipped straight-through estimator.
    """
    _require_tensor("x", x)
    _require_tensor("anchors", anchors)
    _require_tensor("hyperplanes", hyperplanes)
    if x.ndim != 4:
        raise ValueError(f"x must be 4-D [B,T,H,C]; got shape {tuple(x.shape)}")
    B, T, H, C = x.shape
    if anchors.ndim != 3 or anchors.shape[0] != H or anchors.shape[2] != C:
        raise ValueError(f"anchors must be [H,m,C] = [{H}, m, {C}]; got {tuple(anchors.shape)}")
    m = anchors.shape[1]
    if hyperplanes.ndim != 3 or hyperplanes.shape[0] != H or hyperplanes.shape[2] != m:
        raise ValueError(f"hyperplanes must be [H,b,m] = [{H}, b, {m}]; got {tuple(hyperplanes.shape)}")
    if mvec is not None:
        _require_tensor("mvec", mvec)
        if tuple(mvec.shape) != (H, m):
            raise ValueError(f"mvec must be [H,m] = [{H}, {m}]; got {tuple(mvec.shape)}")
    for name, t in (("anchors", anchors), ("hyperplanes", hyperplanes), ("mvec", mvec)):
        if t is not None and t.device != x.device:
            raise ValueError(f"{name} must be on {x.device} like x; got {t.device}")
    return hash_codes(rbf_features(x, anchors, mvec, causal), hyperplanes)


def hash_attn(
    hq: torch.Tensor,
    hk: torch.Tensor,
    v: torch.Tensor,
    *,
    causal: bool = False,
    normalizer: str = "consistent",
    bias: float | None = None,
    backend: str = "auto",
    lightning_backend: str = "auto",
    initial_state: torch.Tensor | None = None,
    output_final_state: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Attention from binary codes, linear in T.

    Similarity ``sim_ij = h(q_i)·h(k_j) + c`` with ``c = bias`` (default ``b + 1``, so ``sim >= 1``).

    - ``normalizer="consistent"``: ``o_i = Σ_j sim_ij v_j / Σ_j sim_ij`` — a convex combination of values.
    - ``normalizer="reference"``: as the EcoFormer code writes it, ``o_i = [Σ_j h_i·h_j v_j + c·v_i] / Σ_j sim_ij``
      (the token's own value instead of ``c·Σ_j v_j``; acts like a self/residual term).

    Sums run over all keys, or over ``j <= i`` when ``causal``.

    Args:
        hq: query codes ``[B, T, H, b]`` (±1; from :func:`kernel_hash`).
        hk: key codes ``[B, T, H, b]``.
        v: values ``[B, T, H, V]``; float32, bfloat16, float16 or float64.
        causal: prefix sums (through :func:`linseq.ops.lightning_attn` with ``log_decay=None``, ``scale=1.0``).
        normalizer: ``"consistent"`` or ``"reference"``.
        bias: the constant ``c`` > 0; None for ``b + 1``.
        backend: ``"auto"``/``"linear"`` (O(T·b·V)) or ``"naive"`` (explicit T×T matrix, the reference).
        lightning_backend: passed to the Lightning op in the causal linear form.
        initial_state: causal only: ``[B, H, b+1, V+1]`` float32 prefix sums of earlier tokens (from a previous
            call's ``output_final_state``), so a sequence can be processed in pieces or decoded token by token.
        output_final_state: causal only: also return that state after the last token.

    Returns:
        ``(o, state)``: o ``[B, T, H, V]`` in v's dtype (accumulated in float32); state ``[B, H, b+1, V+1]`` float32
        when ``output_final_state``, else None.
    """
    for name, t in (("hq", hq), ("hk", hk), ("v", v)):
        _require_tensor(name, t)
        if t.ndim != 4:
            raise ValueError(f"{name} must be 4-D [B,T,H,D]; got shape {tuple(t.shape)}")
    if hq.shape != hk.shape:
        raise ValueError(f"hq and hk must have the same shape [B,T,H,b]; got hq {tuple(hq.shape)} and hk {tuple(hk.shape)}")
    if v.shape[:3] != hq.shape[:3]:
        raise ValueError(f"v must be [B,T,H,V] with the B, T, H of hq; got hq {tuple(hq.shape)} and v {tuple(v.shape)}")
    if hk.device != hq.device or v.device != hq.device:
        raise ValueError(f"hq, hk and v must be on one device; got {hq.device}, {hk.device}, {v.device}")
    if min(hq.shape) < 1 or v.shape[-1] < 1:
        raise ValueError(f"hq and v must have non-empty dimensions; got hq {tuple(hq.shape)} and v {tuple(v.shape)}")
    if not isinstance(causal, bool):
        raise TypeError(f"causal must be a bool; got {type(causal).__name__}")
    if normalizer not in NORMALIZERS:
        raise ValueError(f"normalizer must be one of {NORMALIZERS}; got {normalizer!r}")
    if backend not in HASH_BACKENDS:
        raise ValueError(f"backend must be one of {HASH_BACKENDS}; got {backend!r}")
    nbits = hq.shape[-1]
    if bias is None:
        bias = float(nbits + 1)
    if isinstance(bias, bool) or not isinstance(bias, (int, float)) or not math.isfinite(bias) or bias <= 0:
        raise ValueError(f"bias must be a finite number > 0 (None for b + 1); got {bias!r}")
    bias = float(bias)
    if bias <= nbits:
        # h_q·h_k >= −b, so c <= b allows zero or negative similarities and a normaliser that can vanish.
        raise ValueError(f"bias must exceed the number of bits b={nbits} so that every similarity is positive; got {bias}")
    if initial_state is not None or output_final_state:
        if not causal:
            raise ValueError("initial_state and output_final_state need causal=True (a non-causal sum has no prefix)")
        if backend == "naive":
            raise ValueError("initial_state and output_final_state need backend='auto' or 'linear', not 'naive'")
    if initial_state is not None:
        B, _, H, _ = hq.shape
        want = (B, H, nbits + 1, v.shape[-1] + 1)
        if not isinstance(initial_state, torch.Tensor) or tuple(initial_state.shape) != want:
            got = tuple(initial_state.shape) if isinstance(initial_state, torch.Tensor) else type(initial_state).__name__
            raise ValueError(f"initial_state must be [B,H,b+1,V+1] = {list(want)}; got {got}")
        if initial_state.dtype not in (torch.float32, torch.float64) or initial_state.device != v.device:
            raise ValueError(
                f"initial_state must be float32 on {v.device}; got {initial_state.dtype} on {initial_state.device}"
            )
    if backend == "naive":
        return naive_hash_attn(hq, hk, v, causal, normalizer, bias), None
    if causal:
        return causal_hash_attn(hq, hk, v, normalizer, bias, lightning_backend, initial_state, output_final_state)
    return noncausal_hash_attn(hq, hk, v, normalizer, bias), None
