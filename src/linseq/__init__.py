"""linseq: linear-time sequence modeling for PyTorch.

The layers below depend only on the ones above them in this list:
``ops`` (pure tensor functions) -> ``layers`` -> ``models`` / ``adapters`` -> ``experiments`` -> ``cli``.
"""

__version__ = "0.1.0"

from linseq import ops  # noqa: E402,F401
from linseq.hf_registration import install as _install_hf_registration  # noqa: E402
from linseq.ops import lightning_attn, tnl_log_decay  # noqa: E402,F401

_install_hf_registration()

__all__ = ["ops", "lightning_attn", "tnl_log_decay", "__version__"]
