"""Lightning Attention-2: causal linear attention with per-head or per-token decay.

Public entry point: :func:`lightning_attn`. Backends: ``naive`` (the definition, O(T²)), ``chunk`` (tiled
PyTorch), ``recurrent`` (token by token; fused Triton step on CUDA for decoding), ``triton`` (fused GPU kernels).
"""

from __future__ import annotations

import torch

from linseq.ops.lightning.checks import BACKENDS, check_lightning_args, triton_usable
from linseq.ops.lightning.chunk import chunk_lightning_attn
from linseq.ops.lightning.decay import alibi_slopes, tnl_log_decay
from linseq.ops.lightning.naive import naive_lightning_attn
from linseq.ops.lightning.recurrent import recurrent_lightning_attn

__all__ = ["lightning_attn", "tnl_log_decay", "alibi_slopes", "BACKENDS", "resolve_backend"]


def resolve_backend(backend: str, device: torch.device, dtype: torch.dtype) -> str:
    """The backend ``"auto"`` stands for on ``device``: Triton on CUDA when it is installed, chunk elsewhere."""
    if backend != "auto":
        return backend
    if device.type == "cuda" and dtype != torch.float64 and triton_usable(device):
        return "triton"
    return "chunk"


def lightning_attn(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    log_decay: torch.Tensor | None = None,
    *,
    scale: float | None = None,
    initial_state: torch.Tensor | None = None,
    output_final_state: bool = False,
    cu_seqlens: torch.Tensor | None = None,
    backend: str = "auto",
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Causal linear attention with decay (Lightning Attention-2).

    ``o_t = scale · Σ_{s≤t} exp(Σ_{r=s+1..t} log_decay_r) (q_t·k_s) v_s  +  scale · exp(Σ_{r≤t} log_decay_r) q_t·S0``

    Args:
        q: queries ``[B, T, H, K]``; float32, bfloat16 or float16 (float64 too for the PyTorch backends).
        k: keys ``[B, T, H, K]``, same dtype and device as q.
        v: values ``[B, T, H, V]``.
        log_decay: ``log λ <= 0``, shape ``[H]`` (one decay per head, as in Lightning Attention-2 and
            TransNormerLLM; see :func:`tnl_log_decay`) or ``[B, T, H]`` (per token, a data-dependent gate).
            None means no decay (plain causal linear attention). Both shapes are differentiable.
        scale: multiplies ``q·k``; defaults to ``K ** -0.5`` as in fla. Lightning Attention-2 / TransNormerLLM
            semantics use ``scale=1.0``.
        initial_state: ``[N, H, K, V]`` state before the first token (N = B, or the number of packed
            sequences); any float dtype, used in float32.
        output_final_state: also return the state after the last token, ``[N, H, K, V]`` float32.
        cu_seqlens: int32/int64 offsets ``[N+1]`` of packed variable-length sequences along T (B must be 1);
            the state restarts at each sequence start.
        backend: ``"auto"`` (Triton on CUDA, chunk elsewhere), ``"triton"``, ``"chunk"``, ``"recurrent"``,
            ``"naive"``. All compute the same function.

    Returns:
        ``(o, final_state)``: o ``[B, T, H, V]`` in q's dtype; final_state ``[N, H, K, V]`` float32 or None.

    Raises:
        ValueError / TypeError naming the bad argument, before any kernel runs.
    """
    check_lightning_args(q, k, v, log_decay, scale, initial_state, cu_seqlens, backend)
    scale = float(q.shape[-1] ** -0.5 if scale is None else scale)
    backend = resolve_backend(backend, q.device, q.dtype)
    if backend == "triton":
        from linseq.ops.lightning.triton import triton_lightning_attn

        return triton_lightning_attn(q, k, v, log_decay, scale, initial_state, output_final_state, cu_seqlens)
    fn = {"chunk": chunk_lightning_attn, "recurrent": recurrent_lightning_attn, "naive": naive_lightning_attn}[backend]
    o, final = fn(q, k, v, log_decay, scale, initial_state, output_final_state, cu_seqlens)
    if final is not None and final.dtype != torch.float64:
        final = final.float()
    return o, final
