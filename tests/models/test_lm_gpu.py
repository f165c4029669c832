"""The LM on CUDA with the default (Triton) Lightning backend: cached decoding, bf16 training step."""

import pytest
import torch

pytest.importorskip("transformers")

from linseq.models.lm import LinseqCache, LinseqForCausalLM, LinseqLMConfig  # noqa: E402

pytestmark = pytest.mark.gpu


def _model(pattern, dtype=torch.float32):
    config = LinseqLMConfig(hidden_size=256, num_hidden_layers=4, num_attention_heads=4, attn_pattern=pattern,
                            softmax_every=2, max_position_embeddings=2048)
    return LinseqForCausalLM(config).to("cuda", dtype).eval()


@pytest.mark.parametrize("pattern", ["linear", "hybrid"])
def test_cached_decoding_equals_full_forward_on_cuda(pattern):
    model = _model(pattern)
    ids = torch.randint(0, 256, (2, 300), device="cuda")
    with torch.no_grad():
        full = model(ids, use_cache=False).logits
        cache = LinseqCache(model.config.mixer_types)
        steps = [model(ids[:, :257], past_key_values=cache).logits]
        steps += [model(ids[:, t : t + 1], past_key_values=cache).logits for t in range(257, 300)]
    got = torch.cat(steps, 1)
    rel = (got - full).norm() / full.norm()
    assert rel < 2e-3, rel  # Triton chunked vs recurrent decode kernels; TF32 matmuls allowed


def test_bf16_autocast_training_step_has_finite_gradients():
    model = _model("hybrid").train()
    ids = torch.randint(0, 256, (2, 1025), device="cuda")
    with torch.autocast("cuda", dtype=torch.bfloat16):
        out = model(ids[:, :-1], labels=ids[:, :-1], use_cache=False)
    out.loss.backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
