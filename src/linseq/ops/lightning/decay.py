"""Decay schedules for Lightning Attention: ALiBi slopes and the TransNormerLLM / MiniMax-01 layer factor."""

from __future__ import annotations

import math

import torch


def alibi_slopes(num_heads: int) -> torch.Tensor:
    """ALiBi head slopes ``s_h`` (Press et al., 2022), float64, shape ``[H]``.

    For a power-of-two ``H`` the slopes are ``2^(-8(h+1)/H)``. Otherwise ALiBi takes the slopes of the closest
    smaller power of two ``P`` and appends every other slope of the ``2P`` set, as its reference code does.
    """
    if not isinstance(num_heads, int) or num_heads < 1:
        raise ValueError(f"num_heads must be a positive int; got {num_heads!r}")

    def power_of_two_slopes(n: int) -> list[float]:
        return [2.0 ** (-8.0 * (i + 1) / n) for i in range(n)]

    if num_heads & (num_heads - 1) == 0:
        slopes = power_of_two_slopes(num_heads)
    else:
        closest = 2 ** math.floor(math.log2(num_heads))
        slopes = power_of_two_slopes(closest)
        slopes += power_of_two_slopes(2 * closest)[0::2][: num_heads - closest]
    return torch.tensor(slopes, dtype=torch.float64)


def tnl_log_decay(num_heads: int, layer_idx: int, num_layers: int) -> torch.Tensor:
    """Per-head log decay of TransNormerLLM and MiniMax-01, float32, shape ``[H]``, all ``<= 0``.

    ``λ_h = exp(-s_h · (1 - l/(L-1) + 1e-5))`` with ALiBi slopes ``s_h``; ``l`` is the 0-based layer index and
    ``L`` the number of layers (for ``L == 1`` the factor is ``1 + 1e-5``). Returns ``log λ_h``. The last layer
    decays almost not at all; the first layer decays most.
    """
    if not isinstance(num_layers, int) or num_layers < 1:
        raise ValueError(f"num_layers must be a positive int; got {num_layers!r}")
    if not isinstance(layer_idx, int) or not 0 <= layer_idx < num_layers:
        raise ValueError(f"layer_idx must be an int in [0, {num_layers}); got {layer_idx!r}")
    factor = 1.0 - (layer_idx / (num_layers - 1) if num_layers > 1 else 0.0) + 1e-5
    return (-alibi_slopes(num_heads) * factor).to(torch.float32)
