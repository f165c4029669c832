"""linseq's causal LM: Hugging Face config + model classes, registered with the Auto classes on import.

After ``import linseq.models`` (or this module), ``AutoModelForCausalLM.from_pretrained(dir)`` loads a checkpoint
written by ``save_pretrained`` or by ``linseq train``.
"""

from transformers import AutoConfig, AutoModel, AutoModelForCausalLM

from linseq.models.lm.configuration import LinseqLMConfig, mixer_pattern
from linseq.models.lm.modeling import (
    LinseqBlock,
    LinseqCache,
    LinseqForCausalLM,
    LinseqModel,
    LinseqPreTrainedModel,
    count_parameters,
)
from linseq.models.lm.presets import PRESETS, preset_config


def register_with_transformers() -> None:
    """Make ``AutoConfig`` / ``AutoModel`` / ``AutoModelForCausalLM`` know ``model_type="linseq_lm"`` (idempotent)."""
    try:
        AutoConfig.register(LinseqLMConfig.model_type, LinseqLMConfig)
    except ValueError:  # already registered
        pass
    for auto, cls in ((AutoModel, LinseqModel), (AutoModelForCausalLM, LinseqForCausalLM)):
        try:
            auto.register(LinseqLMConfig, cls)
        except ValueError:
            pass


register_with_transformers()

__all__ = [
    "LinseqBlock",
    "LinseqCache",
    "LinseqForCausalLM",
    "LinseqLMConfig",
    "LinseqModel",
    "LinseqPreTrainedModel",
    "PRESETS",
    "count_parameters",
    "mixer_pattern",
    "preset_config",
    "register_with_transformers",
]
