"""Adapters: FLoRA (Tucker-factored weight updates for 2-D to 5-D parameters) with a PEFT-like lifecycle.

LoRA is not re-implemented here: use Hugging Face PEFT for it. FLoRA follows the same verbs::

    from linseq.adapters import FloraConfig, get_flora_model, FloraModel
    model = get_flora_model(base, FloraConfig(r=8, target_modules="all-conv", modules_to_save=["head"]))
    model.print_trainable_parameters()
    ...train...
    model.save_pretrained("out/adapter")          # adapter_config.json + adapter_model.safetensors
    plain = model.merge_and_unload()               # same outputs, no adapter cost
    again = FloraModel.from_pretrained(fresh_base, "out/adapter")
"""

from linseq.adapters.config import FloraConfig
from linseq.adapters.layer import (
    FloraConv,
    FloraEmbedding,
    FloraLayer,
    FloraLinear,
    flora_param_count,
    resolve_ranks,
    tucker_to_tensor,
)
from linseq.adapters.model import (
    CONFIG_NAME,
    WEIGHTS_NAME,
    FloraModel,
    ModulesToSaveWrapper,
    get_flora_model,
    inject_flora,
)

__all__ = [
    "FloraConfig",
    "FloraModel",
    "FloraLayer",
    "FloraLinear",
    "FloraConv",
    "FloraEmbedding",
    "ModulesToSaveWrapper",
    "get_flora_model",
    "inject_flora",
    "flora_param_count",
    "resolve_ranks",
    "tucker_to_tensor",
    "CONFIG_NAME",
    "WEIGHTS_NAME",
]
