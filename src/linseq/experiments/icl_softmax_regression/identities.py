"""Part A: the exact identities behind "in-context learning ≈ weight shifting" for softmax regression.

Notation (Li, Song, Xia, Yu, Zhou, arXiv 2304.13276; research note §1.1–1.3):
  f(x) = softmax(A x) over the n rows of A ``[n,d]``;  L(x; A, b) = ½‖f(x) − b‖²;
  J(f) = diag(f) − f fᵀ, the Jacobian of the softmax at logits A x (symmetric PSD, ‖J‖₂ ≤ ½).

Every function takes leading batch dimensions ``[...]`` and works in float32 or float64.
"""

from __future__ import annotations

import math

import torch

from linseq.ops import lightning_attn


def softmax_unit(A: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``f = softmax(A x)`` over the n rows. ``A [...,n,d]``, ``x [...,d]`` → ``[...,n]`` (sums to 1)."""
    return torch.softmax((A @ x.unsqueeze(-1)).squeeze(-1), dim=-1)


def softmax_jacobian(f: torch.Tensor) -> torch.Tensor:
    """``J = diag(f) − f fᵀ``, the Jacobian ∂softmax(z)/∂z at ``f = softmax(z)``. ``f [...,n]`` → ``[...,n,n]``."""
    return torch.diag_embed(f) - f.unsqueeze(-1) * f.unsqueeze(-2)


def softmax_regression_loss(A: torch.Tensor, x: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``L = ½‖softmax(A x) − b‖²``. ``A [...,n,d]``, ``x [...,d]``, ``b [...,n]`` → ``[...]``."""
    return 0.5 * (softmax_unit(A, x) - b).pow(2).sum(-1)


def softmax_regression_gradient(A: torch.Tensor, x: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Closed-form ``∇ₓL = Aᵀ J(f) (f − b)``. Shapes as in :func:`softmax_regression_loss`; returns ``[...,d]``."""
    f = softmax_unit(A, x)
    Jc = (softmax_jacobian(f) @ (f - b).unsqueeze(-1)).squeeze(-1)  # [...,n]
    return (A.transpose(-1, -2) @ Jc.unsqueeze(-1)).squeeze(-1)


def weight_shift_target(A: torch.Tensor, x0: torch.Tensor, x1: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``b̃ = b − (f(x₁) − f(x₀))``: with it ``L(x₁; A, b) = L(x₀; A, b̃)`` exactly. Returns ``[...,n]``."""
    return b - (softmax_unit(A, x1) - softmax_unit(A, x0))


def data_shift_target(A0: torch.Tensor, A1: torch.Tensor, x: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``b̂ = b − (f(A₁, x) − f(A₀, x))``: with it ``L(x; A₁, b) = L(x; A₀, b̂)`` exactly. Returns ``[...,n]``."""
    return b - (softmax_unit(A1, x) - softmax_unit(A0, x))


def self_attention_residual(A: torch.Tensor, W_q: torch.Tensor, W_k: torch.Tensor, W_v: torch.Tensor) -> torch.Tensor:
    """One softmax self-attention layer on the rows of A with a residual:
    ``A + softmax(A W_q (A W_k)ᵀ / √d) A W_v`` (softmax over keys). ``A [...,n,d]``, ``W_* [d,d]`` → ``[...,n,d]``."""
    d = A.shape[-1]
    scores = (A @ W_q) @ (A @ W_k).transpose(-1, -2) / math.sqrt(d)  # [...,n,n]
    return A + torch.softmax(scores, dim=-1) @ (A @ W_v)


def paper_log10_constant(n: int, R: float) -> float:
    """``log10 M`` with the paper's ``M = n^{1.5} exp(10 R²)`` (as reported; research note §1.2)."""
    return 1.5 * math.log10(n) + 10.0 * R * R / math.log(10.0)


def gd_step_from_zero(A: torch.Tensor, b: torch.Tensor, lr: float | torch.Tensor) -> torch.Tensor:
    """One GD step on L from x₀ = 0: ``x₁ = (η/n) Aᵀ(b − 1/n)`` (valid when b sums to 1). Returns ``[...,d]``."""
    n = A.shape[-2]
    lr = torch.as_tensor(lr, dtype=A.dtype, device=A.device)
    return (lr[..., None] / n) * (A.transpose(-1, -2) @ (b - 1.0 / n).unsqueeze(-1)).squeeze(-1)


def gd_value(f0: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """The attention value for a GD step from a general x₀: ``v = J(f₀)(b − f₀)``, i.e.
    ``v_j = f₀_j(b_j − f₀_j) − f₀_j ⟨f₀, b − f₀⟩``. ``[...,n]`` → ``[...,n]``."""
    r = b - f0
    return f0 * r - f0 * (f0 * r).sum(-1, keepdim=True)


def attention_gd_logits(
    A: torch.Tensor,
    b: torch.Tensor,
    A_query: torch.Tensor,
    lr: float,
    x0: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The query logits of one GD step, computed by ONE causal linear-attention layer (``linseq.lightning_attn``).

    The sequence is the n context tokens followed by the m query tokens, one head. Keys are the rows (context
    ``a_j``, queries ``a'_i``), queries the same rows, values ``v_j = J(f₀)(b − f₀)`` on the context and 0 on the
    queries, scale η. A query at position n+i then reads ``η Σ_j ⟨a'_i, a_j⟩ v_j`` (the earlier queries carry value
    0), and a residual adds ``a'_i·x₀``; this equals ``a'_i·x₁`` with ``x₁ = x₀ − η∇L(x₀)``.
    From x₀ = 0 the value is ``(b − 1/n)/n``: the construction of research note §1.3.

    Args: ``A [B,n,d]``, ``b [B,n]``, ``A_query [B,m,d]``, ``lr`` = η, ``x0 [B,d]`` or None (zero).
    Returns: ``(logits [B,m], state [B,d])``; the state after reading the context is ``Aᵀv``, so ``x₁ = x₀ + η·state``.
    """
    B, n, d = A.shape
    if x0 is None:
        x0 = A.new_zeros(B, d)
    v_ctx = gd_value(softmax_unit(A, x0), b)  # [B,n]
    rows = torch.cat([A, A_query], dim=1)  # [B,n+m,d]
    values = torch.cat([v_ctx, A_query.new_zeros(A_query.shape[:2])], dim=1)  # [B,n+m]
    backend = "naive" if A.dtype == torch.float64 else "auto"
    q = rows.unsqueeze(2)  # [B,T,1,d]
    o, _ = lightning_attn(q, q, values[..., None, None], scale=float(lr), backend=backend)
    _, state = lightning_attn(
        q[:, :n], q[:, :n], values[:, :n, None, None], scale=1.0, output_final_state=True, backend=backend
    )
    logits = o[:, n:, 0, 0] + (A_query @ x0.unsqueeze(-1)).squeeze(-1)
    return logits, state[:, 0, :, 0].to(A.dtype)


def gd_logits(A: torch.Tensor, b: torch.Tensor, A_query: torch.Tensor, lr: float, x0: torch.Tensor | None = None) -> torch.Tensor:
    """Query logits ``A' x₁`` of one explicit GD step ``x₁ = x₀ − η∇L(x₀)``. Shapes as in :func:`attention_gd_logits`."""
    if x0 is None:
        x0 = A.new_zeros(A.shape[0], A.shape[-1])
    x1 = x0 - lr * softmax_regression_gradient(A, x0, b)
    return (A_query @ x1.unsqueeze(-1)).squeeze(-1)
