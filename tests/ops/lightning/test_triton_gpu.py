"""The Triton kernels at real shapes on a GPU, against a float64 reference (run by benchmarks/gpu_check.sh)."""

import pytest
import torch
import torch.nn.functional as F

from linseq.ops import lightning_attn, tnl_log_decay

pytestmark = pytest.mark.gpu


def rel(a, b):
    return ((a.double() - b.double()).norm() / b.double().norm().clamp_min(1e-30)).item()


def _errors(B, T, H, K, V, dtype, decay, num_segments=None, cu=None):
    """Relative RMS errors of o, final state and every gradient against the float64 chunk backend."""
    from linseq.ops.lightning.triton.function import triton_lightning_attn

    dev = "cuda"
    q, k, v = (torch.randn(B, T, H, d, device=dev, dtype=dtype) for d in (K, K, V))
    N = B if cu is None else cu.numel() - 1
    g = {"none": None, "head": tnl_log_decay(H, 1, 12).to(dev),
         "token": F.logsigmoid(torch.randn(B, T, H, device=dev)) / 8}[decay]
    h0 = torch.randn(N, H, K, V, device=dev)
    leaves = [x for x in (q, k, v, g, h0) if x is not None]
    for x in leaves:
        x.requires_grad_(True)
    do = torch.randn(B, T, H, V, device=dev, dtype=dtype)
    dht = torch.randn(N, H, K, V, device=dev)
    o, s = triton_lightning_attn(q, k, v, g, 1.0, h0, True, cu, num_segments)
    ((o.float() * do.float()).sum() + (s * dht).sum()).backward()
    ref = [x.detach().double().requires_grad_(True) for x in leaves]
    rg = ref[3] if g is not None else None
    ro, rs = lightning_attn(ref[0], ref[1], ref[2], rg, scale=1.0, initial_state=ref[-1], output_final_state=True,
                            cu_seqlens=cu, backend="chunk")
    ((ro * do.double()).sum() + (rs * dht.double()).sum()).backward()
    names = ["o", "final"] + ["dq", "dk", "dv"] + (["dlog_decay"] if g is not None else []) + ["dh0"]
    values = [rel(o, ro), rel(s, rs)] + [rel(a.grad, b.grad) for a, b in zip(leaves, ref)]
    return dict(zip(names, values))


CASES = [
    (torch.bfloat16, "head", 128, 128, 1e-2),
    (torch.bfloat16, "token", 128, 128, 1e-2),
    (torch.bfloat16, "none", 128, 128, 1e-2),
    (torch.float16, "token", 64, 64, 5e-3),
    (torch.float32, "token", 100, 72, 1e-4),
    (torch.bfloat16, "head", 256, 256, 1e-2),
]


@pytest.mark.parametrize("dtype,decay,K,V,tol", CASES)
def test_triton_matches_float64_reference_at_real_shapes(dtype, decay, K, V, tol):
    errs = _errors(2, 4096 + 37, 4, K, V, dtype, decay)
    if dtype == torch.bfloat16 and decay == "head":
        _xfail_known_decay_grad_error(errs)
    _assert_within(errs, tol, dtype)


def _xfail_known_decay_grad_error(errs):
    """A per-head decay's gradient in bf16 is Σ_t (t+1)·(q·dq − k·dk): later tokens weigh more and the terms
    cancel, so bf16 operands leave 0.1-0.6 relative error (README, Accuracy). Fail hard only far beyond that."""
    decay_err = errs.pop("dlog_decay")
    assert decay_err < 1.0, errs
    _assert_within(errs, 1e-2, torch.bfloat16)
    if decay_err >= 0.2:
        pytest.xfail(f"known bf16 imprecision of the per-head decay gradient: {decay_err:.2f}")


def _assert_within(errs, tol, dtype):
    # dlog_decay = Σ (q·dq − k·dk) cancels heavily; with bf16 operands it measured 5e-2 to 1.1e-1 (H100, T=4K-32K)
    decay_tol = {torch.bfloat16: 0.2, torch.float16: 2e-2}.get(dtype, 1e-4)
    for name, err in errs.items():
        assert err < (decay_tol if name == "dlog_decay" else tol), errs


@pytest.mark.parametrize("reversed_state", [False, True])
@pytest.mark.parametrize("decay", ["head", "token"])
def test_sequence_split_matches_reference(monkeypatch, decay, reversed_state):
    """8 segments of 64 blocks (the last one short), whose state passes run over 8 sub-segments each; also with
    STATE_PASS_REVERSED."""
    from linseq.ops.lightning.triton import function as fn_mod

    monkeypatch.setattr(fn_mod, "STATE_PASS_REVERSED", reversed_state)
    assert fn_mod.make_plan(torch.empty(1, 32768 - 3, 4, 128, device="cuda"), torch.empty(1, 1, 4, 128), None,
                            8).state_splits == 8
    errs = _errors(1, 32768 - 3, 4, 128, 128, torch.bfloat16, decay, num_segments=8)
    if decay == "head":
        _xfail_known_decay_grad_error(errs)  # measured 0.60 at 32K
    _assert_within(errs, 1e-2, torch.bfloat16)


def test_small_state_tiles_split_at_moderate_batch():
    """D=64 with 4 × 32 sequence-heads: the split rule counts two programs per multiprocessor for 64×64 tiles, so
    this shape (unsplit under the rule of ba3c541) now runs in segments; its results still match."""
    from linseq.ops.lightning.triton import function as fn_mod

    q = torch.empty(4, 16384 + 37, 32, 64, device="cuda")
    assert fn_mod.make_plan(q, q, None, None).num_segments >= 2
    errs = _errors(4, 16384 + 37, 32, 64, 64, torch.bfloat16, "token")
    _assert_within(errs, 1e-2, torch.bfloat16)


@pytest.mark.parametrize("decay,num_segments", [("token", None), ("head", 4)])
def test_fused_dkdv_sweep_at_real_shapes(monkeypatch, decay, num_segments):
    """One dk/dv sweep for both outputs at 64-token blocks (DKDV_SEPARATE=False, the candidate that reads q and dO
    once; NOTES.md), unsplit and split, against the float64 reference."""
    from linseq.ops.lightning.triton import function as fn_mod

    monkeypatch.setattr(fn_mod, "DKDV_SEPARATE", False)
    monkeypatch.setattr(fn_mod, "DKDV_BLOCK_T", 64)
    errs = _errors(2, 4096 + 37, 4, 128, 128, torch.bfloat16, decay, num_segments=num_segments)
    if decay == "head":
        _xfail_known_decay_grad_error(errs)
    _assert_within(errs, 1e-2, torch.bfloat16)


def test_packed_sequences_on_gpu():
    cu = torch.tensor([0, 1, 700, 700, 5000, 9001], device="cuda", dtype=torch.int32)
    errs = _errors(1, 9001, 4, 128, 128, torch.bfloat16, "token", None, cu)
    _assert_within(errs, 1e-2, torch.bfloat16)


@pytest.mark.parametrize("num_segments", [1, 4])
def test_tensor_descriptor_loads_on_gpu(monkeypatch, num_segments):
    """FWD_TMA / BWD_TMA (Hopper copy-engine loads): the same outputs and gradients as the pointer loads, on
    packed sequences, unsplit and split."""
    from linseq.ops.lightning.triton import function as fn_mod

    cu = torch.tensor([0, 1, 700, 700, 5000, 9001], device="cuda", dtype=torch.int32)
    base = [torch.randn(1, 9001, 4, 128, device="cuda", dtype=torch.bfloat16) for _ in range(3)]
    g = F.logsigmoid(torch.randn(1, 9001, 4, device="cuda")) / 8
    h0 = torch.randn(5, 4, 128, 128, device="cuda")
    do = torch.randn_like(base[0])
    results = []
    for tma in (False, True):
        monkeypatch.setattr(fn_mod, "FWD_TMA", tma)
        monkeypatch.setattr(fn_mod, "BWD_TMA", tma)
        q, k, v = (x.clone().requires_grad_(True) for x in base)
        o, s = fn_mod.triton_lightning_attn(q, k, v, g, 1.0, h0, True, cu, num_segments)
        (o.float() * do.float()).sum().backward()
        results.append([o, s, q.grad, k.grad, v.grad])
    for name, a, b in zip(("o", "state", "dq", "dk", "dv"), results[1], results[0]):
        assert rel(a, b) < 1e-3, name


@pytest.mark.parametrize("B", [1, 16, 256])
def test_fused_decode_step_matches_reference(B):
    H, D = 16, 128
    q, k, v = (torch.randn(B, 3, H, D, device="cuda", dtype=torch.bfloat16) for _ in range(3))
    g = F.logsigmoid(torch.randn(B, 3, H, device="cuda"))
    s0 = torch.randn(B, H, D, D, device="cuda")
    with torch.no_grad():
        o, s = lightning_attn(q, k, v, g, scale=1.0, initial_state=s0, output_final_state=True, backend="recurrent")
    ro, rs = lightning_attn(q.double(), k.double(), v.double(), g.double(), scale=1.0, initial_state=s0.double(),
                            output_final_state=True, backend="naive")
    assert rel(o, ro) < 1e-2 and rel(s, rs) < 1e-4
