"""Part B models: one-layer softmax / linear self-attention over in-context tokens, and one step of GD.

Tokens (see :meth:`TaskBatch.context_tokens`): context ``e_j = [a_j ; n·b_j − 1]``, query ``e'_i = [a'_i ; 0]``,
``D = d + 1``. Queries attend to the context only (never to each other), one head, a residual, and the logit of
query i is the label coordinate of the layer output. The prediction is ``softmax(z)`` over the m query rows,
scored against ``b' = softmax(A' x*)`` with ``½‖p − b'‖²`` — the same loss as the softmax-regression problem.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from linseq.experiments.icl_softmax_regression.identities import gd_step_from_zero
from linseq.experiments.icl_softmax_regression.tasks import TaskBatch


class _OneLayerAttention(nn.Module):
    def __init__(self, d: int, init_scale: float, generator: torch.Generator | None = None) -> None:
        super().__init__()
        D = d + 1

        def weight() -> nn.Parameter:
            return nn.Parameter(torch.randn(D, D, generator=generator) * init_scale)

        self.W_q, self.W_k, self.W_v, self.W_o = weight(), weight(), weight(), weight()

    def _mix(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError

    def logits(self, context: torch.Tensor, query: torch.Tensor) -> torch.Tensor:
        """``context [B,n,D]``, ``query [B,m,D]`` → query logits ``[B,m]``."""
        q = query @ self.W_q.T  # [B,m,D]
        k = context @ self.W_k.T  # [B,n,D]
        v = context @ self.W_v.T  # [B,n,D]
        out = self._mix(q, k, v) @ self.W_o.T  # [B,m,D]
        return out[..., -1] + query[..., -1]  # residual; the label coordinate is the logit

    def forward(self, tasks: TaskBatch) -> torch.Tensor:
        """Query logits ``[B,m]`` for a task batch."""
        return self.logits(tasks.context_tokens(), tasks.query_tokens())


class LinearSelfAttention(_OneLayerAttention):
    """``z_i = [W_o (1/n) Σ_j (q_i·k_j) v_j]_label`` — von Oswald et al.'s LSA layer (no softmax, no norm, no bias)."""

    def _mix(self, q, k, v):
        kv = k.transpose(-1, -2) @ v / k.shape[1]  # [B,D,D]: the linear-attention state, averaged over context
        return q @ kv


class SoftmaxSelfAttention(_OneLayerAttention):
    """``z_i = [W_o Σ_j softmax_j(τ q_i·k_j / √D) v_j]_label``, τ = ``temperature`` (fixed, not trained)."""

    def __init__(self, d: int, init_scale: float, temperature: float = 1.0, generator: torch.Generator | None = None) -> None:
        super().__init__(d, init_scale, generator)
        self.temperature = float(temperature)
        self.last_score_spread: float = float("nan")

    def scores(self, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        """Attention logits ``[B,m,n]``."""
        return (q @ k.transpose(-1, -2)) * (self.temperature / math.sqrt(q.shape[-1]))

    def _mix(self, q, k, v):
        s = self.scores(q, k)  # [B,m,n]
        # the spread of the attention logits over keys: small spread = the linear (GD-like) regime of note §1.3
        self.last_score_spread = float(s.detach().std(dim=-1).mean())
        return torch.softmax(s, dim=-1) @ v


class OneStepGD(nn.Module):
    """One GD step on the context loss from x₀ = 0 with step η, then the logits ``A' x₁`` of the query rows."""

    def __init__(self, lr: float) -> None:
        super().__init__()
        self.lr = float(lr)

    def weights(self, tasks: TaskBatch) -> torch.Tensor:
        """``x₁ [B,d]``."""
        return gd_step_from_zero(tasks.A, tasks.b, self.lr)

    def forward(self, tasks: TaskBatch) -> torch.Tensor:
        return (tasks.A_query @ self.weights(tasks).unsqueeze(-1)).squeeze(-1)


def query_loss(logits: torch.Tensor, b_query: torch.Tensor) -> torch.Tensor:
    """Per-task ``½‖softmax(z) − b'‖²`` (softmax over the m query rows). ``[B,m]``, ``[B,m]`` → ``[B]``."""
    return 0.5 * (torch.softmax(logits, dim=-1) - b_query).pow(2).sum(-1)


def fit_gd_learning_rate(tasks: TaskBatch, log10_lo: float = -2.0, log10_hi: float = 7.0, points: int = 91) -> float:
    """η minimising the mean query loss of :class:`OneStepGD` on ``tasks``: a log-grid then a golden-section
    refinement in log η. Returns η (> 0)."""
    with torch.no_grad():
        x_unit = gd_step_from_zero(tasks.A, tasks.b, 1.0)  # x₁ is linear in η
        z_unit = (tasks.A_query @ x_unit.unsqueeze(-1)).squeeze(-1)

        def mean_loss(log_lr: float) -> float:
            return float(query_loss(z_unit * 10.0**log_lr, tasks.b_query).mean())

        grid = torch.linspace(log10_lo, log10_hi, points).tolist()
        values = [mean_loss(g) for g in grid]
        best = min(range(points), key=values.__getitem__)
        lo, hi = grid[max(best - 1, 0)], grid[min(best + 1, points - 1)]
        ratio = (math.sqrt(5) - 1) / 2
        for _ in range(40):
            a, b = hi - ratio * (hi - lo), lo + ratio * (hi - lo)
            if mean_loss(a) < mean_loss(b):
                hi = b
            else:
                lo = a
        return 10.0 ** ((lo + hi) / 2)


def query_sensitivity(model: nn.Module, tasks: TaskBatch) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits ``z [B,m]`` and sensitivities ``∂z_i/∂a'_i [B,m,d]`` (autograd w.r.t. the query rows; a query's
    logit depends on its own row only, so one backward of Σz gives every row's gradient)."""
    A_query = tasks.A_query.detach().requires_grad_(True)
    probe = TaskBatch(A=tasks.A, b=tasks.b, A_query=A_query, b_query=tasks.b_query, x_star=tasks.x_star)
    with torch.enable_grad():
        z = model(probe)
        (grad,) = torch.autograd.grad(z.sum(), A_query)
    return z.detach(), grad


class ConstructedSoftmaxGD(nn.Module):
    """GD's linear-attention construction with the linear kernel replaced by a softmax at temperature τ:
    ``z_i = (η/τ) Σ_j softmax_j(τ⟨a'_i, a_j⟩)(b_j − 1/n)``. As τ → 0 this tends to one GD step from x₀ = 0
    (the values are centred, so the 1 in exp(s) ≈ 1 + s cancels; research note §1.3); it departs as τ grows."""

    def __init__(self, lr: float, temperature: float) -> None:
        super().__init__()
        self.lr, self.temperature = float(lr), float(temperature)

    def scores(self, tasks: TaskBatch) -> torch.Tensor:
        """``τ⟨a'_i, a_j⟩`` ``[B,m,n]``."""
        return self.temperature * (tasks.A_query @ tasks.A.transpose(-1, -2))

    def forward(self, tasks: TaskBatch) -> torch.Tensor:
        weights = torch.softmax(self.scores(tasks), dim=-1)  # over the n context rows
        centred = (tasks.b - 1.0 / tasks.n).unsqueeze(-1)  # [B,n,1]
        return (self.lr / self.temperature) * (weights @ centred).squeeze(-1)
