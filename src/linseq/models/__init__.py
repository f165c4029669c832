"""Complete models built on linseq.layers.

``linseq.models.lm``: the Hugging Face compatible causal LM (needs ``transformers``; importing this package registers
it with ``AutoConfig`` / ``AutoModelForCausalLM`` when transformers is installed, and skips it silently otherwise).
"""

try:
    from linseq.models import lm  # noqa: F401  (registers model_type "linseq_lm" with the Auto classes)
    from linseq.models.lm import LinseqForCausalLM, LinseqLMConfig  # noqa: F401
except ModuleNotFoundError as _err:  # transformers is an optional dependency
    if _err.name is None or not _err.name.startswith("transformers"):
        raise

__all__ = ["LinseqForCausalLM", "LinseqLMConfig", "lm"]
