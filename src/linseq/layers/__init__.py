"""nn.Modules built on linseq.ops: attention token mixers, norms and channel mixers.

Exports are listed explicitly; each layer family lives in its own module.
"""

from linseq.layers.ecoformer import EcoAttention, EcoCache, fit_model_hashes, set_attention_mode
from linseq.layers.glu import GLU
from linseq.layers.lightning import LightningAttention, apply_feature_map
from linseq.layers.norms import RMSNorm, SRMSNorm, make_norm, rms_normalize
from linseq.layers.softmax import KVCache, SoftmaxAttention, apply_rotary, rotary_cos_sin

__all__ = [
    "EcoAttention",
    "EcoCache",
    "GLU",
    "KVCache",
    "LightningAttention",
    "RMSNorm",
    "SRMSNorm",
    "SoftmaxAttention",
    "apply_feature_map",
    "apply_rotary",
    "fit_model_hashes",
    "make_norm",
    "rms_normalize",
    "rotary_cos_sin",
    "set_attention_mode",
]
