"""LightningAttention, SoftmaxAttention, norms and GLU: parallel vs recurrent, cached vs full, bad input."""

import pytest
import torch

from linseq.layers import GLU, KVCache, LightningAttention, RMSNorm, SoftmaxAttention, SRMSNorm
from linseq.ops import tnl_log_decay


def _layer(decay="tnl", **kw):
    D = int(torch.randint(3, 6, ()).item()) * 8  # width 24..40, heads of odd-ish size
    return LightningAttention(D, 4, layer_idx=1, num_layers=3, decay=decay, backend="chunk", **kw).double(), D


@pytest.mark.parametrize("decay", ["tnl", "learned", "gate", "none"])
def test_parallel_and_recurrent_modes_give_the_same_output_and_state(decay):
    layer, D = _layer(decay)
    x = torch.randn(2, 37, D, dtype=torch.float64)  # 37: not a multiple of the chunk
    y_par, s_par = layer(x, output_state=True, mode="parallel")
    y_rec, s_rec = layer(x, output_state=True, mode="recurrent")
    torch.testing.assert_close(y_par, y_rec, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(s_par, s_rec.to(s_par.dtype), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("output_gate", ["linear", "sigmoid", "none"])
def test_token_by_token_decoding_with_carried_state_equals_one_parallel_pass(output_gate):
    layer, D = _layer("gate", output_gate=output_gate, norm="rms")
    layer = layer.float()
    layer.backend = "auto"
    x = torch.randn(3, 19, D)
    full, _ = layer(x)
    prefix, state = layer(x[:, :6], output_state=True)
    steps = [prefix]
    for t in range(6, 19):
        y, state = layer(x[:, t : t + 1], state, output_state=True)  # T=1, backend auto -> recurrent
        steps.append(y)
    torch.testing.assert_close(torch.cat(steps, 1), full, rtol=1e-4, atol=1e-5)
    assert state.shape == layer.state_shape(3) and state.dtype == torch.float32


def test_default_decay_is_the_exact_tnl_schedule():
    layer = LightningAttention(32, 4, layer_idx=2, num_layers=5)
    x = torch.randn(1, 3, 32)
    torch.testing.assert_close(layer.log_decay(x), tnl_log_decay(4, 2, 5), rtol=0, atol=0)


def test_learned_decay_starts_at_the_schedule_and_receives_gradients():
    layer = LightningAttention(32, 4, layer_idx=0, num_layers=4, decay="learned")
    torch.testing.assert_close(layer.log_decay(torch.zeros(1, 1, 32)), tnl_log_decay(4, 0, 4), rtol=1e-5, atol=1e-7)
    y, _ = layer(torch.randn(2, 9, 32))
    y.square().sum().backward()
    assert layer.decay_param.grad is not None and layer.decay_param.grad.abs().sum() > 0


def test_lightning_output_is_norm_of_attention_times_gate():
    """Check the block's algebra against a direct computation with the naive op."""
    from linseq.ops import lightning_attn

    layer = LightningAttention(16, 2, output_gate="linear", backend="chunk").double()
    x = torch.randn(2, 7, 16, dtype=torch.float64)
    q, k, v, u = layer.qkvu_proj(x).view(2, 7, 4, 2, 8).unbind(2)
    o, _ = lightning_attn(torch.nn.functional.silu(q), torch.nn.functional.silu(k), v, tnl_log_decay(2, 0, 1).double(),
                          scale=1.0, backend="naive")
    o = o.reshape(2, 7, 16)
    expected = layer.out_proj(o / (o.pow(2).mean(-1, keepdim=True) + 1e-6).sqrt() * u.reshape(2, 7, 16))
    torch.testing.assert_close(layer(x)[0], expected, rtol=1e-9, atol=1e-9)


def test_softmax_attention_with_kv_cache_matches_full_causal_pass():
    D = 32
    layer = SoftmaxAttention(D, 4, max_position_embeddings=64)
    x = torch.randn(2, 23, D)
    full = layer(x)
    cache = KVCache()
    parts = [layer(x[:, :5], cache), layer(x[:, 5:9], cache)]  # a multi-token chunk after a cached prefix
    parts += [layer(x[:, t : t + 1], cache) for t in range(9, 23)]
    torch.testing.assert_close(torch.cat(parts, 1), full, rtol=1e-5, atol=1e-5)
    assert cache.length == 23


def test_softmax_attention_refuses_sequences_beyond_its_limit():
    layer = SoftmaxAttention(16, 2, max_position_embeddings=8)
    with pytest.raises(ValueError, match="max_position_embeddings=8"):
        layer(torch.randn(1, 9, 16))


def test_norms_and_glu_shapes_and_scale():
    x = torch.randn(2, 5, 12) * 7
    y = SRMSNorm(12)(x)
    torch.testing.assert_close(y.pow(2).mean(-1), torch.ones(2, 5), rtol=1e-4, atol=1e-4)
    norm = RMSNorm(12)
    torch.testing.assert_close(norm(x), y)
    assert GLU(12, 20, "silu")(x).shape == x.shape


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(hidden_size=30, num_heads=4), "divisible"),
        (dict(hidden_size=32, num_heads=4, decay="fast"), "decay"),
        (dict(hidden_size=32, num_heads=4, feature_map="tanh"), "feature_map"),
        (dict(hidden_size=32, num_heads=4, layer_idx=3, num_layers=2), "layer_idx"),
    ],
)
def test_bad_lightning_arguments_name_the_argument(kwargs, match):
    with pytest.raises(ValueError, match=match):
        LightningAttention(**kwargs)


def test_lightning_rejects_wrong_input_width():
    with pytest.raises(ValueError, match=r"\[B, T, 32\]"):
        LightningAttention(32, 4)(torch.randn(2, 3, 16))
