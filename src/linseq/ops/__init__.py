"""Pure tensor functions (no nn.Module). Each op lives in its own folder with naive / chunk / triton forms."""

from linseq.ops.lightning import lightning_attn, tnl_log_decay

__all__ = ["lightning_attn", "tnl_log_decay"]
