"""Configuration of linseq's causal language model (a Hugging Face ``PretrainedConfig``)."""

from __future__ import annotations

from transformers import PretrainedConfig

from linseq.layers.ecoformer import MODES as ECO_MODES

MIXER_TYPES = ("linear", "softmax", "eco")
PATTERNS = ("linear", "hybrid", "softmax", "eco")


def mixer_pattern(pattern: str, num_layers: int, softmax_every: int = 8) -> list[str]:
    """Token-mixer type of each layer for a named pattern.

    ``"linear"``: every layer Lightning. ``"softmax"``: every layer softmax. ``"eco"``: every layer EcoFormer
    (:class:`linseq.layers.EcoAttention`, causal binary-code attention). ``"hybrid"``: softmax at every
    ``softmax_every``-th layer (1-based; layers 8, 16, ... as in MiniMax-01, arXiv 2501.08313), the rest Lightning;
    a stack shorter than ``softmax_every`` gets its last layer as softmax so that it is still a hybrid.
    """
    if pattern not in PATTERNS:
        raise ValueError(f"pattern must be one of {PATTERNS}; got {pattern!r}")
    if not isinstance(num_layers, int) or num_layers < 1:
        raise ValueError(f"num_layers must be a positive int; got {num_layers!r}")
    if pattern != "hybrid":
        return [pattern] * num_layers
    if not isinstance(softmax_every, int) or softmax_every < 1:
        raise ValueError(f"softmax_every must be a positive int; got {softmax_every!r}")
    types = ["softmax" if (i + 1) % softmax_every == 0 else "linear" for i in range(num_layers)]
    if "softmax" not in types:
        types[-1] = "softmax"
    return types


class LinseqLMConfig(PretrainedConfig):
    """Decoder-only LM of pre-norm blocks ``x += Mixer(Norm(x)); x += GLU(Norm(x))`` (TransNormerLLM layout).

    Args:
        vocab_size: number of token ids (256 for the byte-level tokenizer).
        hidden_size, num_hidden_layers, num_attention_heads: width D, depth L, heads H.
        head_dim: per-head width (default D // H).
        intermediate_size: GLU inner width (default 8/3·D rounded up to a multiple of 64).
        glu_activation: ``"none"`` (TransNormerLLM SGLU), ``"silu"`` (SwiGLU) or ``"gelu"``.
        mixer_types: per-layer ``"linear"`` (Lightning) / ``"softmax"`` / ``"eco"`` (EcoFormer); default built from
            ``attn_pattern``.
        attn_pattern: ``"linear"``, ``"hybrid"``, ``"softmax"`` or ``"eco"`` (see :func:`mixer_pattern`).
        softmax_every: period of softmax layers in the hybrid pattern (8 as in MiniMax-01).
        feature_map, decay, output_gate, attn_norm: options of :class:`linseq.layers.LightningAttention`.
        norm: block and final norm, ``"srms"`` (TransNormerLLM), ``"rms"`` or ``"layer"``.
        max_position_embeddings: longest sequence a softmax layer accepts (Lightning layers have no limit).
        rope_theta: rotary base of softmax layers.
        initializer_range: std of the normal init of linear and embedding weights.
        eco_nbits, eco_num_anchors, eco_topk, eco_shared_qk, eco_normalizer, eco_fit_iterations: options of the
            ``"eco"`` layers (:class:`linseq.layers.EcoAttention`; EcoFormer's 16 bits, 25 anchors, top-10 labels).
        eco_mode: ``"hash"`` (binary codes, linear time, constant-size cache) or ``"softmax"`` (the same weights as
            plain attention: the first phase of EcoFormer's schedule); ``linseq train`` switches it.
        attn_backend: Lightning backend for multi-token calls (``"auto"``: Triton on CUDA, chunk elsewhere).
        use_cache: return a :class:`LinseqCache` from forward by default (generation).
    """

    model_type = "linseq_lm"

    def __init__(
        self,
        vocab_size: int = 256,
        hidden_size: int = 256,
        num_hidden_layers: int = 4,
        num_attention_heads: int = 4,
        head_dim: int | None = None,
        intermediate_size: int | None = None,
        glu_activation: str = "none",
        mixer_types: list[str] | None = None,
        attn_pattern: str = "linear",
        softmax_every: int = 8,
        feature_map: str = "silu",
        decay: str = "tnl",
        output_gate: str = "linear",
        attn_norm: str = "srms",
        norm: str = "srms",
        norm_eps: float = 1e-6,
        max_position_embeddings: int = 4096,
        rope_theta: float = 10000.0,
        initializer_range: float = 0.02,
        eco_nbits: int = 16,
        eco_num_anchors: int = 25,
        eco_topk: int = 10,
        eco_shared_qk: bool = True,
        eco_normalizer: str = "consistent",
        eco_fit_iterations: int = 100,
        eco_mode: str = "hash",
        attn_backend: str = "auto",
        tie_word_embeddings: bool = False,
        use_cache: bool = True,
        **kwargs,
    ) -> None:
        if head_dim is None:
            if hidden_size % num_attention_heads:
                raise ValueError(
                    f"hidden_size ({hidden_size}) must be divisible by num_attention_heads ({num_attention_heads})"
                )
            head_dim = hidden_size // num_attention_heads
        if intermediate_size is None:
            intermediate_size = -(-(8 * hidden_size // 3) // 64) * 64
        if mixer_types is None:
            mixer_types = mixer_pattern(attn_pattern, num_hidden_layers, softmax_every)
        mixer_types = list(mixer_types)
        if len(mixer_types) != num_hidden_layers or any(t not in MIXER_TYPES for t in mixer_types):
            raise ValueError(
                f"mixer_types must list {num_hidden_layers} entries from {MIXER_TYPES}; got {mixer_types!r}"
            )
        if eco_mode not in ECO_MODES:
            raise ValueError(f"eco_mode must be one of {ECO_MODES}; got {eco_mode!r}")
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.num_hidden_layers = num_hidden_layers
        self.num_attention_heads = num_attention_heads
        self.head_dim = head_dim
        self.intermediate_size = intermediate_size
        self.glu_activation = glu_activation
        self.mixer_types = mixer_types
        self.attn_pattern = attn_pattern
        self.softmax_every = softmax_every
        self.feature_map = feature_map
        self.decay = decay
        self.output_gate = output_gate
        self.attn_norm = attn_norm
        self.norm = norm
        self.norm_eps = norm_eps
        self.max_position_embeddings = max_position_embeddings
        self.rope_theta = rope_theta
        self.initializer_range = initializer_range
        self.eco_nbits = eco_nbits
        self.eco_num_anchors = eco_num_anchors
        self.eco_topk = eco_topk
        self.eco_shared_qk = eco_shared_qk
        self.eco_normalizer = eco_normalizer
        self.eco_fit_iterations = eco_fit_iterations
        self.eco_mode = eco_mode
        self.attn_backend = attn_backend
        self.use_cache = use_cache
        super().__init__(tie_word_embeddings=tie_word_embeddings, **kwargs)

    @property
    def has_softmax(self) -> bool:
        """True when at least one layer is softmax attention (and so the sequence length is limited)."""
        return "softmax" in self.mixer_types
