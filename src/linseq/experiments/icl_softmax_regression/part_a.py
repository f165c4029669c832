"""Part A driver: checks the identities in float64 over many random instances and measures the shifts against
the paper's bound ``M·‖Δ‖`` (``M = n^{1.5} e^{10R²}``) and the Jacobian bound ``½‖A‖₂‖Δx‖`` / ``½‖x‖₂‖ΔA‖₂``.

Each instance draws a task (norm bound R), a start point ``‖x₀‖ ≤ R``, and a step size such that the logit change
``‖A Δx‖_∞`` (or ``‖ΔA x‖_∞``) is log-uniform in [1e-4, 1]; the paper's small-step condition is ``< 0.01``.
"""

from __future__ import annotations

import math

import torch

from linseq.experiments.icl_softmax_regression.identities import (
    attention_gd_logits,
    data_shift_target,
    gd_logits,
    paper_log10_constant,
    self_attention_residual,
    softmax_jacobian,
    softmax_regression_gradient,
    softmax_regression_loss,
    softmax_unit,
    weight_shift_target,
)
from linseq.experiments.icl_softmax_regression.tasks import SoftmaxRegressionTasks

F64 = torch.float64
PAPER_SMALL_STEP = 0.01  # the paper's condition ‖A Δx‖_∞ < 0.01 (research note §1.2)


def _log_uniform(gen: torch.Generator, B: int, lo: float, hi: float) -> torch.Tensor:
    u = torch.rand(B, generator=gen, dtype=F64)
    return 10.0 ** (math.log10(lo) + u * (math.log10(hi) - math.log10(lo)))


def _spectral_norm(M: torch.Tensor) -> torch.Tensor:
    return torch.linalg.matrix_norm(M, ord=2)


def _random_start(gen: torch.Generator, B: int, d: int, R: float) -> torch.Tensor:
    direction = torch.randn(B, d, generator=gen, dtype=F64)
    radius = R * torch.rand(B, 1, generator=gen, dtype=F64)
    return direction / direction.norm(dim=-1, keepdim=True) * radius


def check_gradient(A: torch.Tensor, x: torch.Tensor, b: torch.Tensor) -> float:
    """Max relative error of the closed-form gradient ``AᵀJ(f − b)`` against autograd over a batch."""
    x = x.detach().requires_grad_(True)
    (auto,) = torch.autograd.grad(softmax_regression_loss(A, x, b).sum(), x)
    closed = softmax_regression_gradient(A, x.detach(), b)
    return float(((closed - auto).norm(dim=-1) / auto.norm(dim=-1).clamp_min(1e-300)).max())


def weight_shift_instances(tasks, B: int, gen: torch.Generator) -> dict[str, torch.Tensor]:
    """One GD step per instance; returns per-instance tensors ``[B]``: identity error, shift ‖b̃ − b‖, bounds."""
    batch = tasks.sample(B)
    A, b, R = batch.A, batch.b, tasks.R
    x0 = _random_start(gen, B, tasks.d, R)
    g = softmax_regression_gradient(A, x0, b)
    target = _log_uniform(gen, B, 1e-4, 1.0)  # desired ‖A Δx‖_∞
    Ag_inf = (A @ g.unsqueeze(-1)).squeeze(-1).abs().amax(-1).clamp_min(1e-300)
    lr = target / Ag_inf
    x1 = x0 - lr[:, None] * g
    dx = x1 - x0
    b_tilde = weight_shift_target(A, x0, x1, b)
    identity_err = (softmax_regression_loss(A, x1, b) - softmax_regression_loss(A, x0, b_tilde)).abs()
    A_dx = (A @ dx.unsqueeze(-1)).squeeze(-1)
    # first-order check of the Jacobian: f(x₁) − f(x₀) = J(f₀) A Δx + O(‖AΔx‖²)
    f0 = softmax_unit(A, x0)
    df = softmax_unit(A, x1) - f0
    lin = (softmax_jacobian(f0) @ A_dx.unsqueeze(-1)).squeeze(-1)
    return {
        "identity_err": identity_err,
        "shift": (b_tilde - b).norm(dim=-1),
        "jacobian_bound": 0.5 * _spectral_norm(A) * dx.norm(dim=-1),
        "sharp_bound": 0.5 * A_dx.norm(dim=-1),
        "log10_paper_bound": paper_log10_constant(tasks.n, R) + torch.log10(dx.norm(dim=-1)),
        "small_step": A_dx.abs().amax(-1) < PAPER_SMALL_STEP,
        "first_order_rel_err": (df - lin).norm(dim=-1) / lin.norm(dim=-1).clamp_min(1e-300),
        "logit_step": A_dx.abs().amax(-1),
    }


def data_shift_instances(tasks, B: int, gen: torch.Generator) -> dict[str, torch.Tensor]:
    """One softmax self-attention layer with a residual per instance, ``A₁ = A + c·softmax(…)AW_v``."""
    batch = tasks.sample(B)
    A, b, R, d = batch.A, batch.b, tasks.R, tasks.d
    x = _random_start(gen, B, d, R)
    W = [torch.randn(d, d, generator=gen, dtype=F64) / math.sqrt(d) for _ in range(3)]
    delta = self_attention_residual(A, *W) - A  # [B,n,d]
    target = _log_uniform(gen, B, 1e-4, 1.0)  # desired ‖ΔA x‖_∞
    dz_inf = (delta @ x.unsqueeze(-1)).squeeze(-1).abs().amax(-1).clamp_min(1e-300)
    dA = delta * (target / dz_inf)[:, None, None]
    A1 = A + dA
    b_hat = data_shift_target(A, A1, x, b)
    identity_err = (softmax_regression_loss(A1, x, b) - softmax_regression_loss(A, x, b_hat)).abs()
    dA_x = (dA @ x.unsqueeze(-1)).squeeze(-1)
    dA_norm = _spectral_norm(dA)
    return {
        "identity_err": identity_err,
        "shift": (b_hat - b).norm(dim=-1),
        "jacobian_bound": 0.5 * x.norm(dim=-1) * dA_norm,
        "sharp_bound": 0.5 * dA_x.norm(dim=-1),
        "log10_paper_bound": paper_log10_constant(tasks.n, R) + torch.log10(dA_norm),
        "small_step": dA_x.abs().amax(-1) < PAPER_SMALL_STEP,
        "logit_step": dA_x.abs().amax(-1),
    }


def construction_errors(tasks, B: int, gen: torch.Generator) -> dict[str, float]:
    """Max abs difference between GD's query logits and the linear-attention construction, from x₀ = 0 and from
    a random x₀, and of the attention state against the GD weight ``(x₁ − x₀)/η``."""
    batch = tasks.sample(B)
    A, b, Aq = batch.A, batch.b, batch.A_query
    out = {}
    for name, x0 in (("from_zero", None), ("from_x0", _random_start(gen, B, tasks.d, tasks.R))):
        lr = float(_log_uniform(gen, 1, 1e-1, 1e3))
        z_att, state = attention_gd_logits(A, b, Aq, lr, x0)
        z_gd = gd_logits(A, b, Aq, lr, x0)
        x_start = A.new_zeros(B, tasks.d) if x0 is None else x0
        x1 = x_start - lr * softmax_regression_gradient(A, x_start, b)
        scale = z_gd.abs().amax().clamp_min(1e-300)
        out[f"logits_rel_err_{name}"] = float((z_att - z_gd).abs().amax() / scale)
        out[f"state_rel_err_{name}"] = float(((x_start + lr * state) - x1).abs().amax() / x1.abs().amax())
    return out


def _summary(rec: dict[str, torch.Tensor], n: int, R: float) -> dict:
    ratio = rec["shift"] / rec["jacobian_bound"]
    sharp = rec["shift"] / rec["sharp_bound"]
    log10_loose = rec["log10_paper_bound"] - torch.log10(rec["shift"].clamp_min(1e-300))
    small = rec["small_step"]
    return {
        "n": n,
        "R": R,
        "instances": int(ratio.numel()),
        "small_step_instances": int(small.sum()),
        "max_identity_err": float(rec["identity_err"].max()),
        "max_ratio_to_jacobian_bound": float(ratio.max()),
        "median_ratio_to_jacobian_bound": float(ratio.median()),
        "max_ratio_to_sharp_bound": float(sharp.max()),
        "median_ratio_to_sharp_bound": float(sharp.median()),
        "log10_paper_constant": paper_log10_constant(n, R),
        "min_log10_paper_looseness": float(log10_loose.min()),
        "median_log10_paper_looseness": float(log10_loose.median()),
        "min_log10_paper_looseness_small_steps": float(log10_loose[small].min()) if bool(small.any()) else None,
        "max_first_order_rel_err_small_steps": (
            float(rec["first_order_rel_err"][small].max()) if "first_order_rel_err" in rec and bool(small.any()) else None
        ),
    }


def _points(rec: dict[str, torch.Tensor], keep: int) -> dict[str, list]:
    """A few hundred instances per setting for the scatter plot (rounded to keep the JSON small)."""
    sl = slice(0, keep)
    return {
        "shift": [float(f"{v:.5g}") for v in rec["shift"][sl].tolist()],
        "jacobian_bound": [float(f"{v:.5g}") for v in rec["jacobian_bound"][sl].tolist()],
        "sharp_bound": [float(f"{v:.5g}") for v in rec["sharp_bound"][sl].tolist()],
        "log10_paper_bound": [round(v, 3) for v in rec["log10_paper_bound"][sl].tolist()],
        "small_step": rec["small_step"][sl].tolist(),
    }


def run_part_a(
    n_values: tuple[int, ...] = (25, 200),
    d: int = 20,
    R_values: tuple[float, ...] = (1.0, 2.0, 4.0),
    instances: int = 1000,
    seed: int = 0,
    plot_points: int = 200,
) -> dict:
    """All of Part A in float64. ``instances`` per (n, R) setting for each of the weight and the data shift.

    Returns ``{"gradient_max_rel_err", "construction": {...}, "weight_shift": [per-setting summary],
    "data_shift": [...], "points": {...}}``.
    """
    gen = torch.Generator().manual_seed(seed)
    out: dict = {"d": d, "instances_per_setting": instances, "weight_shift": [], "data_shift": [], "points": {}}
    grad_err, construction = 0.0, {}
    for i, n in enumerate(n_values):
        for j, R in enumerate(R_values):
            tasks = SoftmaxRegressionTasks(n, d, m=max(2, n // 4), R=R, seed=seed * 7919 + 31 * i + j, dtype=F64)
            batch = tasks.sample(min(instances, 256))
            grad_err = max(grad_err, check_gradient(batch.A, _random_start(gen, batch.A.shape[0], d, R), batch.b))
            w = weight_shift_instances(tasks, instances, gen)
            a = data_shift_instances(tasks, instances, gen)
            out["weight_shift"].append(_summary(w, n, R))
            out["data_shift"].append(_summary(a, n, R))
            out["points"][f"n={n},R={R:g}"] = {"weight": _points(w, plot_points), "data": _points(a, plot_points)}
            for k, v in construction_errors(tasks, 64, gen).items():
                construction[k] = max(construction.get(k, 0.0), v)
    out["gradient_max_rel_err"] = grad_err
    out["construction"] = construction
    return out
