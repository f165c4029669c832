"""The Hugging Face causal LM: cached decoding == full forward, save/load through the Auto classes, generate()."""

import json

import pytest
import torch

transformers = pytest.importorskip("transformers")

from transformers import AutoConfig, AutoModelForCausalLM  # noqa: E402

import linseq.models  # noqa: E402,F401  (registers the Auto classes)
from linseq.models.lm import LinseqCache, LinseqForCausalLM, LinseqLMConfig, mixer_pattern  # noqa: E402


def _config(pattern, **kw):
    return LinseqLMConfig(
        hidden_size=32, num_hidden_layers=3, num_attention_heads=4, intermediate_size=48,
        attn_pattern=pattern, softmax_every=2, max_position_embeddings=64, **kw,
    )


def test_mixer_patterns_cover_all_linear_hybrid_and_all_softmax():
    assert mixer_pattern("linear", 4) == ["linear"] * 4
    assert mixer_pattern("softmax", 3) == ["softmax"] * 3
    assert mixer_pattern("eco", 2) == ["eco"] * 2
    hybrid = mixer_pattern("hybrid", 16)
    assert [i for i, t in enumerate(hybrid) if t == "softmax"] == [7, 15]  # MiniMax-01: every 8th layer
    assert mixer_pattern("hybrid", 4) == ["linear", "linear", "linear", "softmax"]


@pytest.mark.parametrize(
    "pattern, decay, eco_mode",
    [("linear", "tnl", None), ("linear", "gate", None), ("hybrid", "learned", None), ("softmax", "tnl", None),
     ("eco", "tnl", "hash"), ("eco", "tnl", "softmax")],
)
def test_cached_step_by_step_logits_equal_the_full_forward(pattern, decay, eco_mode):
    extra = {} if eco_mode is None else dict(eco_mode=eco_mode, eco_nbits=8, mixer_types=["eco", "linear", "eco"],
                                             attn_backend="chunk")
    model = LinseqForCausalLM(_config(pattern, decay=decay, **extra)).eval()
    if eco_mode is not None:  # float64: a float32 rounding difference could flip a hash bit between the two paths
        model.double()
    ids = torch.randint(0, 256, (2, 19))
    with torch.no_grad():
        full = model(ids, use_cache=False).logits
        cache = LinseqCache(model.config.mixer_types)
        steps = [model(ids[:, :7], past_key_values=cache, use_cache=True).logits]
        steps += [model(ids[:, t : t + 1], past_key_values=cache, use_cache=True).logits for t in range(7, 19)]
    torch.testing.assert_close(torch.cat(steps, 1), full, rtol=1e-5, atol=1e-5)
    assert cache.get_seq_length() == 19


def test_linear_cache_size_does_not_grow_with_length_but_softmax_cache_does():
    sizes = {}
    for pattern in ("linear", "softmax"):
        model = LinseqForCausalLM(_config(pattern)).eval()
        cache = LinseqCache(model.config.mixer_types)
        with torch.no_grad():
            model(torch.randint(0, 256, (1, 8)), past_key_values=cache)
            first = cache.nbytes()
            model(torch.randint(0, 256, (1, 40)), past_key_values=cache)
        sizes[pattern] = (first, cache.nbytes())
    assert sizes["linear"][0] == sizes["linear"][1] == 3 * 4 * 8 * 8 * 4  # L·H·K·V float32
    assert sizes["softmax"][1] > sizes["softmax"][0]


@pytest.mark.parametrize("pattern", ["hybrid", "eco"])
def test_save_pretrained_writes_safetensors_and_auto_class_loads_identical_model(tmp_path, pattern):
    model = LinseqForCausalLM(_config(pattern, decay="learned", eco_nbits=8)).eval()
    if pattern == "eco":  # fitted hashes (anchors, centring, hyperplanes) are buffers that must travel too
        with torch.no_grad():
            model(torch.randint(0, 256, (2, 12)))
        assert all(bool(layer.attn.fitted) for layer in model.model.layers)
    model.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").is_file()
    assert json.loads((tmp_path / "config.json").read_text())["model_type"] == "linseq_lm"
    assert isinstance(AutoConfig.from_pretrained(tmp_path), LinseqLMConfig)
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    assert type(loaded) is LinseqForCausalLM
    for (name, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=name)
    ids = torch.randint(0, 256, (1, 11))
    with torch.no_grad():
        torch.testing.assert_close(loaded(ids).logits, model(ids).logits)


@pytest.mark.parametrize("pattern", ["linear", "hybrid", "eco"])
def test_generate_greedy_equals_argmax_of_uncached_forward(pattern):
    model = LinseqForCausalLM(_config(pattern, eco_nbits=8)).eval()
    if pattern == "eco":
        with torch.no_grad():
            model(torch.randint(0, 256, (2, 12)))  # fit the hashes once, not on the first prompt
    prompt = torch.randint(0, 256, (2, 5))
    out = model.generate(prompt, max_new_tokens=9, do_sample=False)
    expected = prompt
    with torch.no_grad():
        for _ in range(9):
            nxt = model(expected, use_cache=False).logits[:, -1].argmax(-1, keepdim=True)
            expected = torch.cat([expected, nxt], 1)
    assert torch.equal(out, expected)


def test_generate_samples_with_top_k_and_top_p():
    model = LinseqForCausalLM(_config("linear")).eval()
    out = model.generate(torch.randint(0, 256, (1, 4)), max_new_tokens=6, do_sample=True, top_k=10, top_p=0.9)
    assert out.shape == (1, 10)


def test_sequence_longer_than_softmax_limit_is_one_clear_error():
    model = LinseqForCausalLM(_config("hybrid")).eval()
    with pytest.raises(ValueError, match="max_position_embeddings=64"):
        model(torch.randint(0, 256, (1, 65)))
    LinseqForCausalLM(_config("linear"))(torch.randint(0, 256, (1, 65)))  # no limit without softmax layers


def test_padding_mask_is_refused():
    model = LinseqForCausalLM(_config("linear"))
    mask = torch.ones(2, 6, dtype=torch.long)
    mask[0, 0] = 0
    with pytest.raises(ValueError, match="padding"):
        model(torch.randint(0, 256, (2, 6)), attention_mask=mask)


def test_bad_pattern_is_rejected():
    with pytest.raises(ValueError, match="mixer_types"):
        LinseqLMConfig(num_hidden_layers=2, mixer_types=["linear", "conv"])
    with pytest.raises(ValueError, match="eco_mode"):
        LinseqLMConfig(attn_pattern="eco", eco_mode="binary")


def test_eco_layers_train_in_hash_mode_with_gradients_to_their_projections():
    model = LinseqForCausalLM(_config("eco", eco_nbits=8))
    ids = torch.randint(0, 256, (2, 17))
    with torch.no_grad():
        model(ids)  # fits the hashes
    for layer in model.model.layers:
        layer.attn.hyperplanes.mul_(0.05)  # pre-sign values inside the straight-through window
    model(ids, labels=ids).loss.backward()
    for layer in model.model.layers:
        assert layer.attn.q_proj.weight.grad.abs().sum() > 0 and layer.attn.v_proj.weight.grad.abs().sum() > 0
