"""Sampling text from the causal LM token by token with the constant-size cache (used by ``linseq generate``)."""

from __future__ import annotations

from typing import Iterator

import torch

from linseq.models.lm.modeling import LinseqCache, LinseqForCausalLM


def sample_token(
    logits: torch.Tensor,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Draw one token per row from ``logits [B, V]``: ``[B]`` int64. ``temperature == 0`` is greedy;
    ``top_k`` keeps the k most likely tokens; ``top_p`` keeps the smallest set whose probability reaches p."""
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0; got {temperature}")
    if top_k is not None and top_k < 0:
        raise ValueError(f"top_k must be >= 0; got {top_k}")
    if top_p is not None and not 0.0 < top_p <= 1.0:
        raise ValueError(f"top_p must be in (0, 1]; got {top_p}")
    logits = logits.float()
    if temperature == 0:
        return logits.argmax(dim=-1)
    logits = logits / temperature
    if top_k:
        kth = torch.topk(logits, min(top_k, logits.shape[-1]), dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None and top_p < 1.0:
        sorted_logits, order = torch.sort(logits, descending=True, dim=-1)
        probs = sorted_logits.softmax(dim=-1)
        drop = probs.cumsum(dim=-1) - probs > top_p  # mass before this token already reaches p
        sorted_logits = sorted_logits.masked_fill(drop, float("-inf"))
        logits = torch.full_like(logits, float("-inf")).scatter(-1, order, sorted_logits)
    probs = logits.softmax(dim=-1)
    return torch.multinomial(probs.cpu(), 1, generator=generator).squeeze(-1).to(logits.device)


@torch.no_grad()
def stream_generate(
    model: LinseqForCausalLM,
    prompt_ids: list[int],
    max_new_tokens: int = 200,
    temperature: float = 0.8,
    top_k: int | None = None,
    top_p: float | None = None,
    seed: int | None = None,
) -> Iterator[int]:
    """Yield sampled token ids one at a time after ``prompt_ids``: one parallel pass over the prompt fills the cache
    (a constant-size state per Lightning layer), then one recurrent step per token.

    Raises ValueError when the prompt does not fit a softmax layer's ``max_position_embeddings``; generation stops
    at that limit."""
    if not prompt_ids:
        raise ValueError("prompt must contain at least one token")
    if max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be >= 0; got {max_new_tokens}")
    config = model.config
    limit = config.max_position_embeddings if config.has_softmax else None
    if limit is not None and len(prompt_ids) > limit:
        raise ValueError(
            f"prompt of {len(prompt_ids)} tokens is longer than this model's softmax-attention limit "
            f"max_position_embeddings={limit}"
        )
    device = next(model.parameters()).device
    generator = torch.Generator().manual_seed(seed) if seed is not None else None
    cache = LinseqCache(config.mixer_types)
    ids = torch.tensor([prompt_ids], dtype=torch.long, device=device)
    logits = model(input_ids=ids, past_key_values=cache, use_cache=True, logits_to_keep=1).logits[:, -1]
    for i in range(max_new_tokens):
        token = sample_token(logits, temperature, top_k, top_p, generator)
        yield int(token)
        if i + 1 == max_new_tokens or (limit is not None and cache.seen_tokens >= limit):
            return
        logits = model(input_ids=token.view(1, 1), past_key_values=cache, use_cache=True).logits[:, -1]
