"""Fused Triton kernels for Lightning attention: forward, backward, decoding step, and their autograd glue."""

from linseq.ops.lightning.triton.function import triton_lightning_attn

__all__ = ["triton_lightning_attn"]
