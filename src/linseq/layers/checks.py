"""Argument checks shared by the attention layers."""

from __future__ import annotations


def resolve_head_dim(hidden_size: int, num_heads: int, head_dim: int | None) -> int:
    """The per-head width: ``head_dim`` if given, else ``hidden_size // num_heads`` (which must divide)."""
    for name, value in (("hidden_size", hidden_size), ("num_heads", num_heads)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive int; got {value!r}")
    if head_dim is None:
        if hidden_size % num_heads:
            raise ValueError(f"hidden_size ({hidden_size}) must be divisible by num_heads ({num_heads})")
        head_dim = hidden_size // num_heads
    return head_dim
