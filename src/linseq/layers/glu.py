"""Gated linear unit channel mixer: TransNormerLLM's SGLU (no activation) or SwiGLU."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

GLU_ACTIVATIONS = ("none", "silu", "gelu")


class GLU(nn.Module):
    """``down(act(gate(x)) ⊙ up(x))``, ``[B, T, D] -> [B, T, D]``.

    Args:
        dim: model width D.
        hidden_dim: inner width.
        activation: ``"none"`` is TransNormerLLM's SGLU (``l3(l1(x) ⊙ l2(x))``); ``"silu"`` is SwiGLU; ``"gelu"`` GeGLU.
        bias: add biases to the three projections.
    """

    def __init__(self, dim: int, hidden_dim: int, activation: str = "none", bias: bool = False) -> None:
        super().__init__()
        if activation not in GLU_ACTIVATIONS:
            raise ValueError(f"activation must be one of {GLU_ACTIVATIONS}; got {activation!r}")
        for name, value in (("dim", dim), ("hidden_dim", hidden_dim)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int; got {value!r}")
        self.activation = activation
        self.gate_proj = nn.Linear(dim, hidden_dim, bias=bias)
        self.up_proj = nn.Linear(dim, hidden_dim, bias=bias)
        self.down_proj = nn.Linear(hidden_dim, dim, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = self.gate_proj(x)
        if self.activation == "silu":
            gate = F.silu(gate)
        elif self.activation == "gelu":
            gate = F.gelu(gate)
        return self.down_proj(gate * self.up_proj(x))
