"""Specifications of linseq.layers.ecoformer.EcoAttention."""

import pytest
import torch
from torch import nn

from linseq.layers.ecoformer import EcoAttention, EcoCache, fit_model_hashes, set_attention_mode


def _layer(**kw):
    kw.setdefault("fit_iterations", 5)
    kw.setdefault("nbits", 8)
    kw.setdefault("num_anchors", 10)
    return EcoAttention(24, 3, **kw)


@pytest.mark.parametrize("shared_qk", [True, False])
@pytest.mark.parametrize("causal", [False, True])
def test_forward_shape_and_gradients_reach_projections(shared_qk, causal):
    layer = _layer(shared_qk=shared_qk, causal=causal)
    layer.fit_hash(torch.randn(2, 19, 24))
    layer.hyperplanes.mul_(0.05)  # keep pre-sign values inside the straight-through window
    x = torch.randn(2, 19, 24, requires_grad=True)
    y = layer(x)
    assert y.shape == (2, 19, 24)
    (y * torch.randn_like(y)).sum().backward()
    projections = [layer.q_proj, layer.v_proj, layer.o_proj] + ([] if shared_qk else [layer.k_proj])
    for proj in projections:
        assert proj.weight.grad is not None and proj.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("shared_qk", [True, False])
def test_causal_layer_does_not_look_ahead(shared_qk):
    layer = _layer(causal=True, shared_qk=shared_qk)
    x = torch.randn(2, 16, 24)
    layer.fit_hash(x)
    x2 = x.clone()
    x2[:, 10:] = torch.randn(2, 6, 24)
    torch.testing.assert_close(layer(x)[:, :10], layer(x2)[:, :10])
    assert not torch.allclose(layer(x)[:, 10:], layer(x2)[:, 10:])


@pytest.mark.parametrize("mode", ["hash", "softmax"])
@pytest.mark.parametrize("shared_qk, normalizer", [(True, "consistent"), (False, "reference")])
def test_cached_prefill_then_token_steps_equal_one_causal_call(mode, shared_qk, normalizer):
    layer = _layer(causal=True, shared_qk=shared_qk, normalizer=normalizer, mode=mode).double()
    x = torch.randn(2, 21, 24, dtype=torch.float64)
    layer.fit_hash(x)
    full = layer(x)
    cache = EcoCache()
    steps = [layer(x[:, :8], cache)] + [layer(x[:, t : t + 1], cache) for t in range(8, 21)]
    torch.testing.assert_close(torch.cat(steps, 1), full, rtol=1e-10, atol=1e-10)
    assert cache.length == 21 and cache.mode == mode and cache.batch_size == 2


def test_hash_mode_cache_has_constant_size():
    layer = _layer(causal=True)
    cache = EcoCache()
    layer(torch.randn(1, 5, 24), cache)
    first = cache.nbytes()
    layer(torch.randn(1, 40, 24), cache)
    assert cache.nbytes() == first == 4 * (3 * (8 + 1) * (8 + 1) + 3 * 2)  # [B,H,b+1,C+1] + bandwidth [B,H,2]
    cache.select_batch(torch.tensor([0, 0, 0]))
    assert cache.batch_size == 3


def test_cache_misuse_is_one_clear_error():
    layer = _layer(causal=True)
    cache = EcoCache()
    layer(torch.randn(2, 4, 24), cache)
    with pytest.raises(ValueError, match="batch size 3"):
        layer(torch.randn(3, 1, 24), cache)
    layer.mode = "softmax"
    with pytest.raises(ValueError, match="start a new EcoCache"):
        layer(torch.randn(2, 1, 24), cache)
    with pytest.raises(ValueError, match="causal=True"):
        _layer(causal=False)(torch.randn(2, 4, 24), EcoCache())
    with pytest.raises(TypeError, match="EcoCache"):
        layer(torch.randn(2, 4, 24), cache={})


def test_softmax_mode_is_plain_attention():
    layer = _layer(mode="softmax", shared_qk=False)
    x = torch.randn(2, 7, 24)
    q, k, v = layer.project(x)
    w = torch.softmax(torch.einsum("bihd,bjhd->bhij", q, k) / 8**0.5, -1)
    expect = layer.o_proj(torch.einsum("bhij,bjhd->bihd", w, v).reshape(2, 7, 24))
    torch.testing.assert_close(layer(x), expect, rtol=1e-5, atol=1e-5)


def test_unfitted_hash_layer_fits_itself_on_first_forward():
    layer = _layer()
    assert not bool(layer.fitted)
    layer(torch.randn(2, 12, 24))
    assert bool(layer.fitted) and layer.last_fit is not None
    assert layer.anchors.abs().sum() > 0


def test_fit_model_hashes_fits_every_layer_and_keeps_modes():
    model = nn.Sequential(_layer(mode="softmax"), nn.GELU(), _layer(mode="softmax"))
    summaries = fit_model_hashes(model, torch.randn(2, 15, 24))
    assert len(summaries) == 2 and all(bool(m.fitted) for m in model if isinstance(m, EcoAttention))
    assert all(m.mode == "hash" for m in model if isinstance(m, EcoAttention))
    assert set_attention_mode(model, "softmax") == 2


def test_hash_buffers_round_trip_through_state_dict():
    a, b = _layer(), _layer()
    x = torch.randn(2, 11, 24)
    a.fit_hash(x)
    b.load_state_dict(a.state_dict())
    torch.testing.assert_close(a(x), b(x))


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="normalizer"):
        EcoAttention(24, 3, normalizer="x")
    with pytest.raises(ValueError, match="mode"):
        EcoAttention(24, 3, mode="linear")
    with pytest.raises(ValueError, match="divisible"):
        EcoAttention(25, 3)
    with pytest.raises(ValueError, match="x must be"):
        _layer()(torch.randn(2, 5, 23))
    with pytest.raises(ValueError, match="no EcoAttention"):
        fit_model_hashes(nn.Linear(3, 3), torch.randn(1, 3))
