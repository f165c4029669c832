"""Argument checking of lightning_attn and the TransNormerLLM / MiniMax decay schedule."""

import math

import pytest
import torch

from linseq.ops import lightning_attn, tnl_log_decay
from linseq.ops.lightning.decay import alibi_slopes


def qkv(B=2, T=10, H=3, K=8, V=5, dtype=torch.float32):
    return torch.randn(B, T, H, K, dtype=dtype), torch.randn(B, T, H, K, dtype=dtype), torch.randn(B, T, H, V,
                                                                                                     dtype=dtype)


@pytest.mark.parametrize(
    "mutate,error,match",
    [
        (lambda a: {**a, "q": a["q"][0]}, ValueError, r"q must be 4-D \[B,T,H,D\]; got 3-D"),
        (lambda a: {**a, "k": torch.randn(2, 10, 4, 8)}, ValueError, r"q and k must have the same shape"),
        (lambda a: {**a, "v": torch.randn(2, 11, 3, 5)}, ValueError, r"v must be \[B,T,H,V\]"),
        (lambda a: {**a, "v": a["v"].double()}, TypeError, r"share one dtype"),
        (lambda a: {**a, "q": a["q"].int(), "k": a["k"].int(), "v": a["v"].int()}, TypeError, r"q must have dtype"),
        (lambda a: {**a, "log_decay": torch.full((3,), 0.1)}, ValueError, r"log_decay must be <= 0"),
        (lambda a: {**a, "log_decay": torch.tensor([-0.1, float("nan"), -0.2])}, ValueError, r"log_decay contains NaN"),
        (lambda a: {**a, "log_decay": torch.zeros(2, 10)}, ValueError, r"log_decay must have shape \[H\]"),
        (lambda a: {**a, "backend": "cuda"}, ValueError, r"backend must be one of"),
        (lambda a: {**a, "scale": "1"}, TypeError, r"scale must be a finite float"),
        (lambda a: {**a, "initial_state": torch.zeros(2, 3, 8, 4)}, ValueError, r"initial_state must have shape"),
        (lambda a: {**a, "cu_seqlens": torch.tensor([0, 10])}, ValueError, r"batch size must be 1"),
    ],
)
def test_bad_arguments_raise_clear_errors(mutate, error, match):
    q, k, v = qkv()
    args = mutate(dict(q=q, k=k, v=v, log_decay=None, scale=None, initial_state=None, cu_seqlens=None,
                       backend="chunk"))
    with pytest.raises(error, match=match):
        lightning_attn(args["q"], args["k"], args["v"], args["log_decay"], scale=args["scale"],
                       initial_state=args["initial_state"], cu_seqlens=args["cu_seqlens"], backend=args["backend"])


@pytest.mark.parametrize("offsets,match", [([0, 4, 3, 10], "non-decreasing"), ([0, 4, 9], "end at T=10"),
                                           ([1, 10], "start at 0")])
def test_inconsistent_cu_seqlens_are_rejected(offsets, match):
    q, k, v = qkv(B=1)
    with pytest.raises(ValueError, match=match):
        lightning_attn(q, k, v, cu_seqlens=torch.tensor(offsets), backend="chunk")


def test_float_cu_seqlens_is_a_type_error():
    q, k, v = qkv(B=1)
    with pytest.raises(TypeError, match="cu_seqlens must be int32 or int64"):
        lightning_attn(q, k, v, cu_seqlens=torch.tensor([0.0, 10.0]), backend="chunk")


def test_triton_backend_on_plain_cpu_names_the_requirement(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    q, k, v = qkv()
    with pytest.raises(ValueError, match="backend='triton' needs CUDA tensors"):
        lightning_attn(q, k, v, backend="triton")


def test_float64_only_for_pytorch_backends():
    q, k, v = qkv(dtype=torch.float64)
    with pytest.raises(TypeError, match="for backend='triton'"):
        lightning_attn(q, k, v, backend="triton")


def test_tnl_log_decay_follows_the_formula():
    H, L = 8, 12
    for layer in (0, 5, 11):
        expected = [-(2 ** (-8 * (h + 1) / H)) * (1 - layer / (L - 1) + 1e-5) for h in range(H)]
        assert torch.allclose(tnl_log_decay(H, layer, L).double(), torch.tensor(expected, dtype=torch.float64),
                              rtol=1e-6)


def test_tnl_decay_matches_published_lambdas_for_16_heads():
    # λ for H=16, layer 0 of 24 in TransNormerLLM / MiniMax-01's code (research note, §2.6)
    lam = tnl_log_decay(16, 0, 24).exp()
    published = [0.493, 0.779, 0.939, 0.985, 0.996]  # three decimals as printed there
    assert all(abs(lam[h].item() - p) < 1e-3 for h, p in zip((0, 3, 7, 11, 15), published))
    assert torch.all(tnl_log_decay(16, 23, 24).exp() > 0.9999)


def test_alibi_slopes_for_non_power_of_two_heads():
    slopes = alibi_slopes(12)
    base8 = [2 ** (-(h + 1)) for h in range(8)]  # 2^(-8(h+1)/8)
    extra = [2 ** (-8 * (h + 1) / 16) for h in range(16)][0::2][:4]
    assert torch.allclose(slopes, torch.tensor(base8 + extra, dtype=torch.float64))
    assert math.isclose(slopes[8].item(), 2 ** -0.5)


@pytest.mark.parametrize("args", [(0, 0, 4), (4, 4, 4), (4, -1, 4), (4, 0, 0)])
def test_tnl_log_decay_rejects_bad_indices(args):
    with pytest.raises(ValueError):
        tnl_log_decay(*args)


def test_a_checked_log_decay_is_not_read_again_until_it_changes():
    from linseq.ops.lightning import checks

    q = torch.randn(1, 5, 2, 8)
    ld = torch.tensor([-0.1, -0.2])
    assert not checks._known_good(ld)
    lightning_attn(q, q, q, ld, backend="chunk")
    assert checks._known_good(ld)  # the next call skips the read-back (a GPU sync per call)
    ld[0] = 0.5  # in place: the version counter moves, so the check runs again and catches it
    assert not checks._known_good(ld)
    with pytest.raises(ValueError, match="log_decay must be <= 0"):
        lightning_attn(q, q, q, ld, backend="chunk")
    ld[0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        lightning_attn(q, q, q, ld, backend="chunk")
    fine = torch.tensor([-0.3, -0.4])
    lightning_attn(q, q, q, fine, backend="chunk")
    fine_key = id(fine)
    del fine
    assert fine_key not in checks._GOOD  # a freed tensor's entry goes with it
    learned = torch.tensor([-0.1, -0.2], requires_grad=True)
    lightning_attn(q, q, q, learned, backend="chunk")
    assert not checks._known_good(learned)  # tensors that need grad are rebuilt every call: not remembered
    with torch.inference_mode():
        frozen = torch.tensor([-0.1, -0.2])
        lightning_attn(q, q, q, frozen, backend="chunk")
        assert not checks._known_good(frozen)  # no version counter: always checked
