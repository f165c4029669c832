"""Seeded generator of in-context softmax-regression tasks.

One task is a "document" ``A ∈ ℝ^{n×d}`` with its target ``b = softmax(A x*) ∈ Δ^{n-1}`` (softmax over the n rows),
plus ``m`` query rows ``A' ∈ ℝ^{m×d}`` whose target ``b' = softmax(A' x*)`` a model must predict from the
context alone. The weight ``x*`` is hidden and drawn afresh for every task.

Law (research note §1.6, kept rotation invariant so that the optimal one-layer linear attention is one GD step):
  rows of A and A' ~ N(0, I/d), so a row has norm ≈ 1;
  x* ~ N(0, σ_x² I), so a logit a·x* has standard deviation ≈ σ_x;
  if ``R`` is set, A and A' are rescaled so that ``‖A‖₂ ≤ R`` and x* so that ``‖x*‖₂ ≤ R`` (the paper's norm bound);
  with ``noise = σ > 0`` the context target is ``b ∝ softmax(A x*) ⊙ exp(σ ε)``, ε ~ N(0, 1), renormalised.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class TaskBatch:
    """A batch of B tasks. ``A [B,n,d]``, ``b [B,n]`` (rows sum to 1), ``A_query [B,m,d]``, ``b_query [B,m]``,
    ``x_star [B,d]``."""

    A: torch.Tensor
    b: torch.Tensor
    A_query: torch.Tensor
    b_query: torch.Tensor
    x_star: torch.Tensor

    @property
    def n(self) -> int:
        return self.A.shape[1]

    def context_tokens(self) -> torch.Tensor:
        """Context tokens ``[a_j ; n·b_j − 1]`` ``[B,n,d+1]``. The label coordinate is centred (it sums to 0 over
        the context) and O(1): a fixed affine re-coding of b, the same for every task."""
        return torch.cat([self.A, (self.n * self.b - 1.0).unsqueeze(-1)], dim=-1)

    def query_tokens(self) -> torch.Tensor:
        """Query tokens ``[a'_i ; 0]`` ``[B,m,d+1]`` (the label is unknown)."""
        zeros = self.A_query.new_zeros(self.A_query.shape[:-1] + (1,))
        return torch.cat([self.A_query, zeros], dim=-1)


def _clip_spectral_norm(M: torch.Tensor, R: float) -> torch.Tensor:
    """Rescale each ``M[b]`` (``[B,r,d]``) so that its spectral norm is at most R."""
    gram = M.transpose(-1, -2) @ M  # [B,d,d]
    norm = torch.linalg.eigvalsh(gram)[..., -1].clamp_min(0).sqrt()  # [B]
    factor = torch.clamp(R / norm.clamp_min(1e-30), max=1.0)
    return M * factor[:, None, None]


class SoftmaxRegressionTasks:
    """Sampler of in-context softmax-regression tasks (see the module docstring for the law).

    Args:
        n: context rows per task (the paper's document length), ≥ 2.
        d: dimension (the paper's embedding size), ≥ 1.
        m: query rows per task, ≥ 2 (the prediction is a softmax over them).
        R: norm bound on ``‖A‖₂``, ``‖A'‖₂`` and ``‖x*‖₂``; None for no bound.
        noise: σ of the multiplicative log-normal noise on the context target b; 0 for none.
        sigma_x: standard deviation of the entries of x* (so of a logit a·x*).
        seed: seed of the private generator; two samplers with the same arguments give the same tasks.
        dtype, device: of the sampled tensors.
    """

    def __init__(
        self,
        n: int,
        d: int,
        m: int,
        R: float | None = None,
        noise: float = 0.0,
        sigma_x: float = 1.0,
        seed: int = 0,
        dtype: torch.dtype = torch.float32,
        device: str | torch.device = "cpu",
    ) -> None:
        for name, value, low in (("n", n, 2), ("d", d, 1), ("m", m, 2)):
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise ValueError(f"{name} must be an int >= {low}; got {value!r}")
        if R is not None and not (R > 0):
            raise ValueError(f"R must be positive or None; got {R!r}")
        if not (noise >= 0) or not (sigma_x > 0):
            raise ValueError(f"noise must be >= 0 and sigma_x > 0; got noise={noise!r}, sigma_x={sigma_x!r}")
        if dtype not in (torch.float32, torch.float64):
            raise TypeError(f"dtype must be torch.float32 or torch.float64; got {dtype}")
        self.n, self.d, self.m, self.R, self.noise, self.sigma_x = n, d, m, R, float(noise), float(sigma_x)
        self.dtype, self.device = dtype, torch.device(device)
        self.generator = torch.Generator(device=self.device).manual_seed(int(seed))

    def _randn(self, *shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=self.generator, dtype=self.dtype, device=self.device)

    def sample(self, batch: int) -> TaskBatch:
        """Draw ``batch`` independent tasks."""
        if not isinstance(batch, int) or batch < 1:
            raise ValueError(f"batch must be a positive int; got {batch!r}")
        B, n, d, m = batch, self.n, self.d, self.m
        A = self._randn(B, n, d) / d**0.5
        A_query = self._randn(B, m, d) / d**0.5
        x_star = self._randn(B, d) * self.sigma_x
        if self.R is not None:
            A = _clip_spectral_norm(A, self.R)
            A_query = _clip_spectral_norm(A_query, self.R)
            x_norm = x_star.norm(dim=-1, keepdim=True)
            x_star = x_star * torch.clamp(self.R / x_norm.clamp_min(1e-30), max=1.0)
        logits = A @ x_star.unsqueeze(-1)  # [B,n,1]
        logits = logits.squeeze(-1)
        if self.noise > 0:
            logits = logits + self.noise * self._randn(B, n)
        b = torch.softmax(logits, dim=-1)  # over the n context rows
        b_query = torch.softmax((A_query @ x_star.unsqueeze(-1)).squeeze(-1), dim=-1)  # over the m query rows
        return TaskBatch(A=A, b=b, A_query=A_query, b_query=b_query, x_star=x_star)
