"""Energy model of one attention forward pass: counts of float multiplies and additions, priced in picojoules.

``E = 3.7 pJ × #mul + 0.9 pJ × #add`` — 45 nm float32 figures used by EcoFormer's ``get_energy.py``
(shared/research/ecoformer_flora.md §1.5). Counts are per sequence of N tokens and sum over heads; the q/k/v and
output projections are the same for both attentions and are left out. Assumptions: an ``exp``, a reciprocal or a
square root counts as one multiply; comparisons (sign, max) are free; multiplying by a ±1 code is an addition
or subtraction.
"""

from __future__ import annotations

PJ_PER_MUL = 3.7  # pJ, 45 nm float32 multiply (EcoFormer get_energy.py)
PJ_PER_ADD = 0.9  # pJ, 45 nm float32 add


def _counts_softmax(N: int, d: int) -> tuple[int, int]:
    mul = N * N * d + N * N  # q·k, scale
    add = N * N * (d - 1)
    mul += N * N + N + N * N  # exp, reciprocal of the row sum, normalise
    add += N * N + N * (N - 1)  # subtract the row max, row sum
    mul += N * N * d  # P V
    add += N * (N - 1) * d
    return mul, add


def _counts_hash_one_side(N: int, d: int, m: int, b: int) -> tuple[int, int]:
    mul = N * d + N + N * d  # L2 normalisation: squares, rsqrt, scaling
    add = N * (d - 1)
    mul += N * m * d + N * m  # x·a (||a||² precomputed), ×2 folded into the scale
    add += N * m * d + N * (d - 1)  # dot-product accumulation, ||x||² sum
    add += 2 * N * m + N * m  # ||x||² + ||a||² − 2x·a, σ² mean
    mul += 2 * N * m + 1  # divide by 2σ², exp, one reciprocal
    add += N * m  # centring
    mul += N * b * m  # hyperplanes
    add += N * b * (m - 1)
    return mul, add


def attention_energy(
    seq_len: int,
    head_dim: int,
    num_heads: int = 1,
    *,
    kind: str = "softmax",
    nbits: int = 16,
    num_anchors: int = 25,
    shared_qk: bool = True,
    normalizer: str = "consistent",
) -> dict[str, float]:
    """Multiplies, additions and energy of one attention forward pass over ``seq_len`` tokens.

    kind: ``"softmax"`` (``softmax(QKᵀ/√d) V``) or ``"ecoformer"`` (kernel hash of q and k — once when shared —
    then ``h(Q)(h(K)ᵀV)`` with its normaliser, where every product with a code is an addition).
    Returns ``{"mul", "add", "energy_pj"}`` summed over heads.
    """
    for name, val in (("seq_len", seq_len), ("head_dim", head_dim), ("num_heads", num_heads), ("nbits", nbits),
                      ("num_anchors", num_anchors)):
        if isinstance(val, bool) or not isinstance(val, int) or val < 1:
            raise ValueError(f"{name} must be a positive int; got {val!r}")
    if kind not in ("softmax", "ecoformer"):
        raise ValueError(f"kind must be 'softmax' or 'ecoformer'; got {kind!r}")
    N, d, m, b = seq_len, head_dim, num_anchors, nbits
    if kind == "softmax":
        mul, add = _counts_softmax(N, d)
    else:
        hm, ha = _counts_hash_one_side(N, d, m, b)
        sides = 1 if shared_qk else 2
        mul, add = sides * hm, sides * ha
        add += N * b * d + N * b  # Σ_j h_j v_jᵀ and Σ_j h_j (signed accumulations)
        add += N * b * d + N * b  # h_iᵀ S and h_iᵀ z
        add += N  # + N·c in the normaliser
        if normalizer == "consistent":
            add += N * d + N * d  # Σ_j v_j, then + c·Σ_j v_j per row
            mul += d + 1  # c·Σ_j v_j once, N·c once
        else:
            mul += N * d + 1  # c·v_i
            add += N * d
        mul += N + N * d  # reciprocal of the normaliser, scaling
    mul, add = mul * num_heads, add * num_heads
    return {"mul": float(mul), "add": float(add), "energy_pj": PJ_PER_MUL * mul + PJ_PER_ADD * add}
