"""linseq's causal LM as Hugging Face modules: Lightning (TransNormerLLM), softmax and EcoFormer layers in any
pattern, with a generation cache of constant size per Lightning layer (and per EcoFormer layer in hash mode)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from transformers import GenerationMixin, PreTrainedModel
from transformers.cache_utils import Cache
from transformers.modeling_outputs import BaseModelOutputWithPast, CausalLMOutputWithPast

from linseq.layers import GLU, EcoAttention, EcoCache, KVCache, LightningAttention, SoftmaxAttention, make_norm
from linseq.models.lm.configuration import LinseqLMConfig

try:  # transformers >= 5: init functions that leave weights loaded from a checkpoint alone
    from transformers import initialization as _init
except ImportError:  # pragma: no cover - transformers 4.x
    _init = nn.init


class LinseqCache(Cache):
    """Generation cache: a ``[B, H, head_dim, head_dim]`` float32 state per Lightning layer (its size does not
    depend on the sequence length), a growing :class:`linseq.layers.KVCache` per softmax layer and an
    :class:`linseq.layers.EcoCache` per EcoFormer layer (constant size in hash mode)."""

    is_compileable = False

    def __init__(self, mixer_types: list[str]) -> None:
        super().__init__(layers=[])
        self.mixer_types = list(mixer_types)
        self.states: list[torch.Tensor | None] = [None] * len(mixer_types)
        self.kv: list[KVCache | EcoCache | None] = [
            KVCache() if t == "softmax" else EcoCache() if t == "eco" else None for t in mixer_types
        ]
        self.seen_tokens = 0

    def __len__(self) -> int:
        return len(self.mixer_types)

    def __repr__(self) -> str:
        return f"LinseqCache(layers={len(self)}, seen_tokens={self.seen_tokens}, bytes={self.nbytes()})"

    def get_seq_length(self, layer_idx: int = 0) -> int:
        """Number of tokens the cache has absorbed."""
        return self.seen_tokens

    def get_max_cache_shape(self, layer_idx: int = 0) -> int:
        return -1

    def get_mask_sizes(self, *args, **kwargs):  # masks are built inside the layers
        raise NotImplementedError("LinseqCache builds no attention masks")

    def nbytes(self) -> int:
        """Bytes held by the cache (Lightning states plus allocated key/value capacity)."""
        total = sum(s.numel() * s.element_size() for s in self.states if s is not None)
        return total + sum(kv.nbytes() for kv in self.kv if kv is not None)

    def select_batch(self, index: torch.Tensor) -> None:
        """Keep or reorder batch rows ``index [B']``."""
        self.states = [s[index] if s is not None else None for s in self.states]
        for kv in self.kv:
            if kv is not None:
                kv.select_batch(index)

    def reorder_cache(self, beam_idx: torch.LongTensor) -> None:
        self.select_batch(beam_idx)

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        self.select_batch(indices)

    def batch_repeat_interleave(self, repeats: int) -> None:
        if self.seen_tokens:
            self.select_batch(torch.arange(self.batch_size()).repeat_interleave(repeats))

    def batch_size(self) -> int | None:
        """Rows held (None before the first forward)."""
        sizes = [s.shape[0] for s in self.states if s is not None]
        sizes += [kv.batch_size for kv in self.kv if kv is not None and kv.batch_size is not None]
        return sizes[0] if sizes else None

    def crop(self, max_length: int) -> None:
        raise NotImplementedError("a Lightning state cannot be rolled back; assisted decoding is not supported")

    def reset(self) -> None:
        self.__init__(self.mixer_types)


class LinseqBlock(nn.Module):
    """Pre-norm block: ``x += Mixer(Norm(x)); x += GLU(Norm(x))``. ``[B, T, D] -> [B, T, D]``."""

    def __init__(self, config: LinseqLMConfig, layer_idx: int) -> None:
        super().__init__()
        self.layer_idx = layer_idx
        self.mixer_type = config.mixer_types[layer_idx]
        d = config.hidden_size
        self.attn_norm = make_norm(config.norm, d, config.norm_eps)
        if self.mixer_type == "linear":
            self.attn = LightningAttention(
                d, config.num_attention_heads, config.head_dim, layer_idx=layer_idx,
                num_layers=config.num_hidden_layers, feature_map=config.feature_map, decay=config.decay,
                output_gate=config.output_gate, norm=config.attn_norm, norm_eps=config.norm_eps,
                backend=config.attn_backend,
            )
        elif self.mixer_type == "eco":
            self.attn = EcoAttention(
                d, config.num_attention_heads, head_dim=config.head_dim, nbits=config.eco_nbits,
                num_anchors=config.eco_num_anchors, topk=config.eco_topk, shared_qk=config.eco_shared_qk,
                causal=True, normalizer=config.eco_normalizer, mode=config.eco_mode,
                fit_iterations=config.eco_fit_iterations, bias=False,
            )
        else:
            self.attn = SoftmaxAttention(
                d, config.num_attention_heads, config.head_dim,
                max_position_embeddings=config.max_position_embeddings, rope_theta=config.rope_theta,
            )
        self.mlp_norm = make_norm(config.norm, d, config.norm_eps)
        self.mlp = GLU(d, config.intermediate_size, config.glu_activation)

    def forward(self, x: torch.Tensor, cache: LinseqCache | None) -> torch.Tensor:
        h = self.attn_norm(x)
        if self.mixer_type == "linear":
            state = cache.states[self.layer_idx] if cache is not None else None
            y, new_state = self.attn(h, state, output_state=cache is not None)
            if cache is not None:
                cache.states[self.layer_idx] = new_state
        else:  # softmax and eco layers update their cache object in place
            y = self.attn(h, cache.kv[self.layer_idx] if cache is not None else None)
        x = x + y
        return x + self.mlp(self.mlp_norm(x))


class LinseqPreTrainedModel(PreTrainedModel):
    config_class = LinseqLMConfig
    base_model_prefix = "model"
    _no_split_modules = ["LinseqBlock"]
    _is_stateful = True

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        std = self.config.initializer_range
        if isinstance(module, nn.Linear):
            _init.normal_(module.weight, mean=0.0, std=std)
            if module.bias is not None:
                _init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            _init.normal_(module.weight, mean=0.0, std=std)
        elif isinstance(module, nn.LayerNorm):
            _init.ones_(module.weight)
            _init.zeros_(module.bias)
        elif hasattr(module, "weight") and "RMSNorm" in type(module).__name__:
            _init.ones_(module.weight)
        if isinstance(module, LightningAttention):
            if module.decay == "learned":
                _init.copy_(module.decay_param, _learned_decay_init(module))
            elif module.decay == "gate":
                _init.constant_(module.gate_proj.bias, 4.0)

    @classmethod
    def _supports_default_dynamic_cache(cls) -> bool:
        return False  # forward() builds its own LinseqCache


def _learned_decay_init(module: LightningAttention) -> torch.Tensor:
    rate = (-module.schedule_log_decay()).double().clamp_min(1e-8)
    return torch.log(torch.expm1(rate)).to(module.decay_param.dtype)


class LinseqModel(LinseqPreTrainedModel):
    """Embeddings, blocks and the final norm: ``input_ids [B, T] -> hidden [B, T, D]``."""

    def __init__(self, config: LinseqLMConfig) -> None:
        super().__init__(config)
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size)
        self.layers = nn.ModuleList(LinseqBlock(config, i) for i in range(config.num_hidden_layers))
        self.norm = make_norm(config.norm, config.hidden_size, config.norm_eps)
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.embed_tokens

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.embed_tokens = value

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        past_key_values: LinseqCache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        use_cache: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> BaseModelOutputWithPast:
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("pass exactly one of input_ids [B, T] and inputs_embeds [B, T, D]")
        if inputs_embeds is None:
            if input_ids.dim() != 2:
                raise ValueError(f"input_ids must have shape [B, T]; got {tuple(input_ids.shape)}")
            inputs_embeds = self.embed_tokens(input_ids)
        if attention_mask is not None and attention_mask.dim() == 2 and not bool(attention_mask.all()):
            raise ValueError(
                "attention_mask has padded positions; Lightning layers carry a state through every token, so "
                "batch only prompts of equal length (padding is not supported)"
            )
        use_cache = self.config.use_cache if use_cache is None else use_cache
        if past_key_values is not None and not isinstance(past_key_values, LinseqCache):
            raise TypeError(f"past_key_values must be a LinseqCache; got {type(past_key_values).__name__}")
        if use_cache and past_key_values is None:
            past_key_values = LinseqCache(self.config.mixer_types)
        cache = past_key_values if use_cache or past_key_values is not None else None
        T = inputs_embeds.shape[1]
        total = T + (cache.seen_tokens if cache is not None else 0)
        if self.config.has_softmax and total > self.config.max_position_embeddings:
            raise ValueError(
                f"sequence of {total} tokens exceeds max_position_embeddings="
                f"{self.config.max_position_embeddings} of this model's softmax layers"
            )
        x = inputs_embeds
        for block in self.layers:
            x = block(x, cache)
        if cache is not None:
            cache.seen_tokens += T
        return BaseModelOutputWithPast(last_hidden_state=self.norm(x), past_key_values=cache)


class LinseqForCausalLM(LinseqPreTrainedModel, GenerationMixin):
    """Causal LM head on :class:`LinseqModel`: ``input_ids [B, T] -> logits [B, T, vocab]`` (float32 when
    computed under autocast as well: the head runs in the weights' dtype)."""

    def __init__(self, config: LinseqLMConfig) -> None:
        super().__init__(config)
        self.model = LinseqModel(config)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.model.embed_tokens

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.model.embed_tokens = value

    def get_output_embeddings(self) -> nn.Linear:
        return self.lm_head

    def set_output_embeddings(self, value: nn.Linear) -> None:
        self.lm_head = value

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        past_key_values: LinseqCache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        return_dict: bool | None = None,
        logits_to_keep: int = 0,
        **kwargs,
    ) -> CausalLMOutputWithPast:
        """``labels [B, T]`` (use -100 to ignore) are shifted inside: position t predicts token t+1."""
        out = self.model(
            input_ids=input_ids, attention_mask=attention_mask, past_key_values=past_key_values,
            inputs_embeds=inputs_embeds, use_cache=use_cache,
        )
        hidden = out.last_hidden_state
        if logits_to_keep:
            hidden = hidden[:, -logits_to_keep:]
        logits = self.lm_head(hidden)
        loss = None
        if labels is not None:
            loss = F.cross_entropy(
                logits[:, :-1].float().reshape(-1, logits.shape[-1]), labels[:, 1:].reshape(-1), ignore_index=-100
            )
        return CausalLMOutputWithPast(loss=loss, logits=logits, past_key_values=out.past_key_values)

    def prepare_inputs_for_generation(
        self,
        input_ids: torch.LongTensor,
        past_key_values: LinseqCache | None = None,
        attention_mask: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        use_cache: bool = True,
        **kwargs,
    ) -> dict:
        """Feed only the tokens the cache has not absorbed yet (all of them on the first call)."""
        seen = past_key_values.seen_tokens if isinstance(past_key_values, LinseqCache) else 0
        inputs = {"past_key_values": past_key_values, "use_cache": use_cache}
        if inputs_embeds is not None and seen == 0:
            inputs["inputs_embeds"] = inputs_embeds
        else:
            inputs["input_ids"] = input_ids[:, seen:] if seen else input_ids
        return inputs


def count_parameters(model: nn.Module) -> int:
    """Number of parameters (embeddings included)."""
    return sum(p.numel() for p in model.parameters())
