"""FLoRA layers: the Tucker update, no-op at init, exact forward against a dense reference, merge/unmerge."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from linseq.adapters import (
    FloraConfig,
    FloraConv,
    FloraEmbedding,
    FloraLinear,
    flora_param_count,
    get_flora_model,
    resolve_ranks,
    tucker_to_tensor,
)

CONVS = [
    # (module, input shape) — odd sizes, grouped, depthwise, stride / padding / dilation / padding modes
    (lambda: nn.Conv1d(6, 10, 5, stride=2, padding=3, dilation=2, groups=2), (3, 6, 23)),
    (lambda: nn.Conv2d(5, 7, 3, padding=1), (2, 5, 11, 9)),
    (lambda: nn.Conv2d(6, 9, (3, 2), stride=(2, 1), padding=(2, 0), dilation=(1, 2), groups=3), (2, 6, 13, 10)),
    (lambda: nn.Conv2d(8, 8, 3, padding=1, groups=8, padding_mode="reflect"), (2, 8, 7, 7)),  # depthwise
    (lambda: nn.Conv3d(4, 6, (2, 3, 3), stride=(1, 2, 2), padding=1, groups=2, bias=False), (2, 4, 5, 7, 6)),
]


def _randomize_core(model: nn.Module) -> None:
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "flora_core" in name:
                p.normal_(0.0, 0.3)


def test_tucker_to_tensor_matches_einsum():
    core = torch.randn(2, 3, 4, dtype=torch.float64)
    factors = [torch.randn(d, r, dtype=torch.float64) for d, r in [(5, 2), (7, 3), (6, 4)]]
    dense = tucker_to_tensor(core, factors)
    ref = torch.einsum("abc,ia,jb,kc->ijk", core, *factors)
    torch.testing.assert_close(dense, ref)


def test_linear_forward_equals_dense_update():
    base = nn.Linear(13, 17)
    layer = FloraLinear(copy.deepcopy(base), ranks=(5, 4), scale=1.7)
    _randomize_core(layer)
    x = torch.randn(3, 2, 13)
    delta = layer.delta_weight()
    torch.testing.assert_close(layer(x), F.linear(x, base.weight + delta, base.bias))
    u_out, u_in = layer.flora_factors
    torch.testing.assert_close(delta, 1.7 * u_out @ layer.flora_core @ u_in.t())


@pytest.mark.parametrize("make, shape", CONVS)
def test_conv_forward_equals_conv_with_updated_weight(make, shape):
    base = make()
    layer = FloraConv(copy.deepcopy(base), ranks=resolve_ranks(base.weight.shape, 3, None, base.weight.dim() - 2, "c"))
    _randomize_core(layer)
    x = torch.randn(shape)
    reference = copy.deepcopy(base)
    with torch.no_grad():
        reference.weight += layer.delta_weight()
    torch.testing.assert_close(layer(x), reference(x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("make, shape", CONVS)
def test_conv_with_dropout_in_eval_equals_single_convolution(make, shape):
    base = make()
    ranks = resolve_ranks(base.weight.shape, 2, None, base.weight.dim() - 2, "c")
    layer = FloraConv(copy.deepcopy(base), ranks=ranks, dropout=0.5).eval()
    _randomize_core(layer)
    x = torch.randn(shape)
    reference = copy.deepcopy(base)
    with torch.no_grad():
        reference.weight += layer.delta_weight()
    torch.testing.assert_close(layer(x), reference(x), rtol=1e-5, atol=1e-5)


def test_embedding_forward_equals_dense_update():
    base = nn.Embedding(37, 11, padding_idx=0)
    layer = FloraEmbedding(copy.deepcopy(base), ranks=(6, 5), scale=0.9)
    _randomize_core(layer)
    idx = torch.randint(0, 37, (4, 9))
    torch.testing.assert_close(layer(idx), F.embedding(idx, base.weight + layer.delta_weight()))


@pytest.mark.parametrize("make, shape", CONVS)
def test_fresh_adapter_is_a_no_op(make, shape):
    base = make()
    model = nn.Sequential(copy.deepcopy(base))
    flora = get_flora_model(model, FloraConfig(r=4, target_modules="all-conv", init="kaiming"))
    x = torch.randn(shape)
    assert torch.equal(flora(x), base(x))


def test_fresh_linear_and_embedding_adapters_are_no_ops():
    base = nn.Sequential(nn.Embedding(29, 12), nn.Linear(12, 7), nn.GELU(), nn.Linear(7, 5))
    flora = get_flora_model(copy.deepcopy(base), FloraConfig(r=3, target_modules=["0", "1", "3"]))
    idx = torch.randint(0, 29, (3, 6))
    assert torch.equal(flora(idx), base(idx))


@pytest.mark.parametrize("make, shape", CONVS)
def test_merged_equals_unmerged_and_unmerge_restores_weights(make, shape):
    model = nn.Sequential(make(), nn.Flatten(), nn.LazyLinear(3))
    x = torch.randn(shape)
    model(x)
    original = copy.deepcopy(model.state_dict())
    flora = get_flora_model(model, FloraConfig(r=3, target_modules="all-conv", scale=2.0))
    _randomize_core(flora)
    unmerged = flora(x)
    flora.merge_adapter(safe_merge=True)
    torch.testing.assert_close(flora(x), unmerged, rtol=1e-5, atol=1e-5)
    flora.unmerge_adapter()
    torch.testing.assert_close(flora.model[0].base_layer.weight, original["0.weight"], rtol=0, atol=1e-6)


def test_merge_and_unload_gives_plain_modules_with_same_outputs():
    model = nn.Sequential(nn.Embedding(23, 10), nn.Linear(10, 10), nn.ReLU(), nn.Linear(10, 4))
    n_before = sum(p.numel() for p in model.parameters())
    flora = get_flora_model(model, FloraConfig(r=(3, 2), target_modules=["0", "1"], modules_to_save=["3"]))
    _randomize_core(flora)
    with torch.no_grad():
        flora.model[3].modules_to_save.weight.add_(torch.randn(4, 10))
    idx = torch.randint(0, 23, (5, 7))
    expected = flora(idx)
    plain = flora.merge_and_unload()
    assert [type(m) for m in plain] == [nn.Embedding, nn.Linear, nn.ReLU, nn.Linear]
    assert sum(p.numel() for p in plain.parameters()) == n_before
    torch.testing.assert_close(plain(idx), expected, rtol=1e-5, atol=1e-6)


def test_unload_returns_original_model():
    base = nn.Sequential(nn.Linear(9, 6), nn.Tanh(), nn.Linear(6, 2))
    flora = get_flora_model(copy.deepcopy(base), FloraConfig(r=2, target_modules="all-linear", modules_to_save=["2"]))
    _randomize_core(flora)
    x = torch.randn(4, 9)
    assert not torch.allclose(flora(x), base(x))
    torch.testing.assert_close(flora.unload()(x), base(x), rtol=0, atol=0)


def test_disable_adapter_runs_base_model_even_when_merged():
    base = nn.Sequential(nn.Conv1d(3, 5, 3, groups=1), nn.Flatten(), nn.Linear(5 * 6, 2))
    flora = get_flora_model(copy.deepcopy(base), FloraConfig(r=2, target_modules="all-conv", modules_to_save=["2"]))
    _randomize_core(flora)
    x = torch.randn(2, 3, 8)
    adapted = flora(x)
    flora.merge_adapter()
    with flora.disable_adapter():
        torch.testing.assert_close(flora(x), base(x), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(flora(x), adapted, rtol=1e-5, atol=1e-6)


def test_param_counts_match_formula():
    model = nn.Sequential(
        nn.Conv2d(3, 16, 3), nn.Conv2d(16, 16, 5, groups=16), nn.Conv3d(4, 8, (1, 3, 3)), nn.Linear(20, 30),
        nn.Embedding(50, 12),
    )
    cfg = FloraConfig(r=6, spatial_r=2, target_modules=r"\d", rank_pattern={"3": (5, 7)})
    flora = get_flora_model(model, cfg)
    expected_ranks = {"0": (6, 3, 2, 2), "1": (6, 1, 2, 2), "2": (6, 4, 1, 2, 2), "3": (5, 7), "4": (6, 6)}
    summary = {row["module"]: row for row in flora.adapter_summary()}
    for name, ranks in expected_ranks.items():
        assert tuple(summary[name]["ranks"]) == ranks
        shape = tuple(model.get_submodule(name).base_layer.weight.shape)
        assert summary[name]["params"] == flora_param_count(shape, ranks)
    trainable, total = flora.get_nb_trainable_parameters()
    hand = 6 * 3 * 2 * 2 + 16 * 6 + 3 * 3 + 3 * 2 * 2  # conv "0": core + Σ d_i r_i
    assert summary["0"]["params"] == hand
    assert trainable == sum(row["params"] for row in summary.values())
    assert total == trainable + sum(p.numel() for n, p in flora.named_parameters() if "base_layer" in n)


def test_only_adapter_parameters_receive_gradients():
    model = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 3))
    flora = get_flora_model(model, FloraConfig(r=4, target_modules=["0"], modules_to_save=["2"]))
    flora(torch.randn(5, 8)).square().sum().backward()
    for name, p in flora.named_parameters():
        trainable = "flora_" in name or "modules_to_save" in name
        assert p.requires_grad == trainable, name
        if not trainable:
            assert p.grad is None, name
    assert flora.model[0].flora_core.grad.abs().sum() > 0  # the zero core gets gradient through the factors


def test_half_precision_base_keeps_float32_adapter():
    model = nn.Sequential(nn.Linear(16, 8)).to(torch.bfloat16)
    flora = get_flora_model(model, FloraConfig(r=4, target_modules="all-linear"))
    assert flora.model[0].flora_core.dtype == torch.float32
    out = flora(torch.randn(2, 16, dtype=torch.bfloat16))
    assert out.dtype == torch.bfloat16
