"""Every backend of lightning_attn against the definition (naive, float64), forward and backward.

Fresh random inputs each run, odd sizes (T not a multiple of the block, odd head dims), B > 1, H > 1.
The Triton kernels run under TRITON_INTERPRET=1 here (see conftest.py) and on the GPU in test_triton_gpu.py.
"""

import pytest
import torch
import torch.nn.functional as F

from linseq.ops import lightning_attn
from linseq.ops.lightning.checks import triton_usable


def rel(a, b):
    return ((a.double() - b.double()).norm() / b.double().norm().clamp_min(1e-30)).item()


def make_inputs(B, T, H, K, V, dtype, decay, with_state=True, N=None):
    q, k, v = (torch.randn(B, T, H, d, dtype=dtype) for d in (K, K, V))
    g = {"none": None, "head": -torch.rand(H) * 0.5,
         "token": F.logsigmoid(torch.randn(B, T, H)) / 2}[decay]
    h0 = torch.randn(N or B, H, K, V) if with_state else None
    return q, k, v, g, h0


def run_with_grads(backend, q, k, v, g, h0, scale, cu=None, **kw):
    leaves = [x.detach().clone().requires_grad_(True) if x is not None else None for x in (q, k, v, g, h0)]
    fn = kw.pop("fn", None)
    if fn is None:
        o, s = lightning_attn(*leaves[:4], scale=scale, initial_state=leaves[4], output_final_state=True,
                              cu_seqlens=cu, backend=backend)
    else:
        o, s = fn(*leaves[:4], scale, leaves[4], True, cu, **kw)
    gen = torch.Generator().manual_seed(1234)  # the same cotangents for every backend in one test
    do = torch.randn(o.shape, generator=gen, dtype=torch.float64)
    dht = torch.randn(s.shape, generator=gen, dtype=torch.float64)
    ((o.double() * do).sum() + (s.double() * dht).sum()).backward()
    grads = {n: x.grad for n, x in zip(("dq", "dk", "dv", "dlog_decay", "dh0"), leaves) if x is not None}
    return {"o": o, "final": s, **grads}


def assert_close_to_reference(out, ref, tol):
    for name, value in ref.items():
        err = rel(out[name], value)
        # the decay gradient sums q·dq − k·dk over tokens, which cancels: it gets 10× the tolerance
        limit = 10 * tol if name == "dlog_decay" else tol
        assert err < limit, f"{name}: relative error {err:.2e} >= {limit:.0e}"


def reference(q, k, v, g, h0, scale, cu=None):
    as64 = [x.double() if x is not None else None for x in (q, k, v, g, h0)]
    return run_with_grads("naive", *as64, scale, cu)


needs_triton = pytest.mark.skipif(
    not triton_usable(torch.device("cpu")) and not torch.cuda.is_available(), reason="triton not installed")


@pytest.mark.parametrize("decay", ["none", "head", "token"])
@pytest.mark.parametrize("backend", ["chunk", "recurrent"])
def test_pytorch_backends_match_definition_fp32(backend, decay):
    inputs = make_inputs(2, 83, 3, 20, 13, torch.float32, decay)
    assert_close_to_reference(run_with_grads(backend, *inputs, 0.7), reference(*inputs, 0.7), 1e-5)


@pytest.mark.parametrize("decay", ["head", "token"])
def test_chunk_backend_bf16_is_close_to_definition(decay):
    inputs = make_inputs(2, 70, 2, 33, 24, torch.bfloat16, decay)
    out = run_with_grads("chunk", *inputs, 1.0)
    ref = reference(*inputs, 1.0)
    assert out["o"].dtype == torch.bfloat16 and out["final"].dtype == torch.float32
    assert_close_to_reference(out, ref, 1e-2)


@needs_triton
@pytest.mark.parametrize("decay", ["none", "head", "token"])
@pytest.mark.parametrize("num_segments", [1, 3])
@pytest.mark.parametrize("separate_dkdv", [True, False])
def test_triton_matches_definition_fp32(monkeypatch, decay, num_segments, separate_dkdv):
    from linseq.ops.lightning.triton import function as fn_mod
    from linseq.ops.lightning.triton.function import triton_lightning_attn

    monkeypatch.setattr(fn_mod, "DKDV_SEPARATE", separate_dkdv)
    inputs = make_inputs(2, 150, 2, 24, 40, torch.float32, decay)
    out = run_with_grads(None, *inputs, 0.5, fn=triton_lightning_attn, num_segments=num_segments)
    assert_close_to_reference(out, reference(*inputs, 0.5), 1e-5)


@needs_triton
@pytest.mark.parametrize("decay", ["none", "head", "token"])
@pytest.mark.parametrize("num_segments", [1, 3])
@pytest.mark.parametrize("unchain,scale_outputs", [(True, False), (True, True), (False, True)])
def test_triton_unchained_dots_and_scaled_outputs_match_definition(monkeypatch, decay, num_segments, unchain,
                                                                   scale_outputs):
    """The layout workaround (a branch between chained dots) and the decay applied to dot results instead of
    operands compute the same function; the fp16 case keeps the 16-bit operands these options change."""
    from linseq.ops.lightning.triton import function as fn_mod

    monkeypatch.setattr(fn_mod, "UNCHAIN_DOTS", unchain)
    monkeypatch.setattr(fn_mod, "SCALE_OUTPUTS", scale_outputs)
    inputs = make_inputs(2, 150, 2, 24, 40, torch.float32, decay)
    out = run_with_grads(None, *inputs, 0.5, fn=_interpreted, num_segments=num_segments)
    assert_close_to_reference(out, reference(*inputs, 0.5), 1e-5)
    if decay == "head" and num_segments == 1:
        half = make_inputs(1, 97, 2, 33, 20, torch.float16, decay)
        out = run_with_grads(None, *half, 1.0, fn=_interpreted, num_segments=1)
        assert_close_to_reference(out, reference(*half, 1.0), 3e-3)


@needs_triton
@pytest.mark.parametrize("decay", ["head", "token"])
def test_triton_mild_and_strong_decay_match_definition(decay):
    """Decays mild and strong (per-token decay down to −3, per-head −1.5: a block's mask spans e^-96) in one call."""
    q, k, v, g, h0 = make_inputs(2, 141, 2, 16, 24, torch.float32, decay)
    if decay == "head":
        g = torch.tensor([-0.05, -1.5])
    else:
        g = g.clone()
        g[1, 64:128] = -3.0 * torch.rand(64, 2)
    out = run_with_grads(None, q, k, v, g, h0, 1.0, fn=_interpreted, num_segments=1)
    assert_close_to_reference(out, reference(q, k, v, g, h0, 1.0), 1e-5)


@needs_triton
@pytest.mark.parametrize("backend", ["chunk", "triton"])
def test_strong_per_head_decay_with_a_short_last_block(backend):
    """A per-head decay of −3 and a last block of 6 tokens: the padded rows' decay to the block's end would be
    e^174 (float32 overflow; 0·inf gave a NaN final state and decay gradient before the rows were masked)."""
    q, k, v, _, h0 = make_inputs(2, 70, 2, 16, 24, torch.float32, "head")
    g = torch.tensor([-0.05, -3.0])
    kw = {"fn": _interpreted, "num_segments": 2} if backend == "triton" and not torch.cuda.is_available() else {}
    out = run_with_grads(backend if not kw else None, q, k, v, g, h0, 1.0, **kw)
    assert_close_to_reference(out, reference(q, k, v, g, h0, 1.0), 1e-5)


@needs_triton
@pytest.mark.parametrize("decay,cu", [("head", None), ("token", None), ("none", None), ("token", [0, 37, 37, 300])])
def test_triton_reversed_state_passes(monkeypatch, decay, cu):
    """STATE_PASS_REVERSED (the split's state-only passes as plain sums of decay-weighted products, with their own
    launch settings): the same function and gradients. Segments of 3 blocks, so the decay between blocks counts."""
    from linseq.ops.lightning.triton import function as fn_mod

    monkeypatch.setattr(fn_mod, "STATE_PASS_REVERSED", True)
    monkeypatch.setattr(fn_mod, "STATE_PASS_WARPS", 4)
    monkeypatch.setattr(fn_mod, "STATE_PASS_STAGES", 2)
    cu = None if cu is None else torch.tensor(cu, dtype=torch.int32)
    inputs = make_inputs(1 if cu is not None else 2, 300, 2, 24, 40, torch.float32, decay,
                         N=None if cu is None else len(cu) - 1)
    out = run_with_grads(None, *inputs, 0.5, cu, fn=fn_mod.triton_lightning_attn, num_segments=2)
    assert_close_to_reference(out, reference(*inputs, 0.5, cu), 1e-5)


@needs_triton
@pytest.mark.parametrize("decay,cu,reversed_state,splits,state_block", [
    ("head", None, False, 4, None), ("token", None, False, 4, None), ("none", None, False, 4, None),
    ("token", None, True, 4, None),
    ("head", [0, 37, 37, 100, 763], False, 4, None),  # sequences inside one segment, and a short last sub-segment
    ("token", None, False, 2, 128), ("head", None, True, 2, 32),  # state passes with their own token block
])
def test_triton_state_passes_over_sub_segments(monkeypatch, decay, cu, reversed_state, splits, state_block):
    """The split's state-only passes over sub-segments (STATE_SPLITS: NSUB per segment, e.g. 4 of one block each,
    with 3 segments of 4 blocks): the fused passes fold the sub-segments' states and log decays back in."""
    from linseq.ops.lightning.triton import function as fn_mod

    monkeypatch.setattr(fn_mod, "STATE_SPLITS", splits)
    monkeypatch.setattr(fn_mod, "STATE_PASS_REVERSED", reversed_state)
    monkeypatch.setattr(fn_mod, "STATE_PASS_BLOCK_T", state_block)
    cu = None if cu is None else torch.tensor(cu, dtype=torch.int32)
    q, k, v, g, h0 = make_inputs(1 if cu is not None else 2, 763, 2, 24, 40, torch.float32, decay,
                                 N=None if cu is None else len(cu) - 1)
    if g is not None:  # mild, so that states from several sub-segments back still count
        g = g / 50 if decay == "token" else -torch.rand(2) * 0.02
    inputs = (q, k, v, g, h0)
    assert fn_mod.make_plan(q, v, cu, 3).state_splits == splits
    out = run_with_grads(None, *inputs, 0.5, cu, fn=fn_mod.triton_lightning_attn, num_segments=3)
    assert_close_to_reference(out, reference(*inputs, 0.5, cu), 1e-5)


@needs_triton
@pytest.mark.parametrize("decay_grad_precision", [None, "tf32x3"])
def test_triton_fp16_is_close_to_definition(monkeypatch, decay_grad_precision):
    """Also with DECAY_GRAD_PRECISION: the backward's dots on float32 operands when the decay needs a gradient."""
    from linseq.ops.lightning.triton import function as fn_mod

    monkeypatch.setattr(fn_mod, "DECAY_GRAD_PRECISION", decay_grad_precision)
    inputs = make_inputs(1, 97, 2, 16, 16, torch.float16, "token")
    out = run_with_grads("triton" if torch.cuda.is_available() else None, *inputs, 1.0,
                         **({} if torch.cuda.is_available() else {"fn": _interpreted}))
    ref = reference(*inputs, 1.0)
    assert_close_to_reference({k: v for k, v in out.items() if k != "dlog_decay"},
                              {k: v for k, v in ref.items() if k != "dlog_decay"}, 2e-3)
    assert rel(out["dlog_decay"], ref["dlog_decay"]) < 2e-2


def _interpreted(q, k, v, g, scale, h0, output_final_state, cu, **kw):
    from linseq.ops.lightning.triton.function import triton_lightning_attn

    return triton_lightning_attn(q, k, v, g, scale, h0, output_final_state, cu, **kw)


def _interpreter_bf16_dot_is_correct() -> bool:
    import triton
    import triton.language as tl

    @triton.jit
    def probe(A, B, C, N: tl.constexpr):
        r = tl.arange(0, N)
        c = tl.dot(tl.load(A + r[:, None] * N + r[None, :]), tl.load(B + r[:, None] * N + r[None, :]))
        tl.store(C + r[:, None] * N + r[None, :], c)

    a, b = torch.randn(16, 16, dtype=torch.bfloat16), torch.randn(16, 16, dtype=torch.bfloat16)
    c = torch.empty(16, 16)
    try:
        probe[(1,)](a, b, c, 16)
    except Exception:
        return False
    return rel(c, a.float() @ b.float()) < 1e-2


@needs_triton
def test_triton_bf16_under_interpreter():
    if not torch.cuda.is_available() and not _interpreter_bf16_dot_is_correct():
        pytest.skip("this Triton's interpreter computes bf16 dots wrongly (3.9) or lacks bf16 (3.6); "
                    "bf16 is checked on the GPU in test_triton_gpu.py")
    inputs = make_inputs(1, 70, 2, 16, 16, torch.bfloat16, "head")
    out = run_with_grads(None, *inputs, 1.0, fn=_interpreted)
    assert rel(out["o"], reference(*inputs, 1.0)["o"]) < 1e-2


@needs_triton
def test_triton_packed_sequences_match_definition():
    from linseq.ops.lightning.triton.function import triton_lightning_attn

    cu = torch.tensor([0, 1, 60, 60, 141], dtype=torch.int32)
    inputs = make_inputs(1, 141, 2, 16, 20, torch.float32, "token", N=4)
    out = run_with_grads(None, *inputs, 1.0, cu, fn=triton_lightning_attn, num_segments=2)
    assert_close_to_reference(out, reference(*inputs, 1.0, cu), 1e-5)


@needs_triton
@pytest.mark.parametrize("decay,num_segments,cu,K,V", [
    ("head", 1, None, 24, 40), ("token", 3, None, 24, 40), ("none", 2, [0, 37, 37, 150], 16, 20),
    ("token", 1, None, 18, 40),  # 18 floats = 72 B rows: not 16-byte aligned, so the pointer loads stand in
    ("head", 1, None, 160, 136),  # a state too large for one program: K-sliced dq, V-sliced dk/dv descriptors
])
def test_triton_through_tensor_descriptors(monkeypatch, decay, num_segments, cu, K, V):
    """FWD_TMA and BWD_TMA (tiles through TMA descriptors): the same function and gradients, including packed
    sequences and splits."""
    from linseq.ops.lightning.triton import function as fn_mod
    from linseq.ops.lightning.triton.function import triton_lightning_attn

    monkeypatch.setattr(fn_mod, "FWD_TMA", True)
    monkeypatch.setattr(fn_mod, "BWD_TMA", True)
    cu = None if cu is None else torch.tensor(cu, dtype=torch.int32)
    inputs = make_inputs(1 if cu is not None else 2, 150, 2, K, V, torch.float32, decay,
                         N=None if cu is None else len(cu) - 1)
    aligned = K % 4 == 0 and V % 4 == 0
    flat = [x.reshape((-1,) + tuple(x.shape[2:])) for x in inputs[:3]]
    assert (fn_mod._descriptors(flat, [(64, 1, 32), (64, 1, 32), (64, 1, 64)]) is not None) == aligned
    out = run_with_grads(None, *inputs, 0.5, cu, fn=triton_lightning_attn, num_segments=num_segments)
    assert_close_to_reference(out, reference(*inputs, 0.5, cu), 1e-5)


@needs_triton
@pytest.mark.parametrize("num_segments", [1, 3])
@pytest.mark.parametrize("separate_dkdv", [True, False])
def test_triton_writes_every_output_element(monkeypatch, num_segments, separate_dkdv):
    """Outputs are allocated NaN-filled, so an element a kernel forgets to write fails the check."""
    from linseq.ops.lightning.triton import function as fn_mod

    monkeypatch.setattr(fn_mod, "DKDV_SEPARATE", separate_dkdv)
    real_empty, real_empty_like = torch.empty, torch.empty_like

    def poisoned_empty(*a, **kw):
        t = real_empty(*a, **kw)
        return t.fill_(float("nan")) if t.is_floating_point() else t

    def poisoned_empty_like(*a, **kw):
        t = real_empty_like(*a, **kw)
        return t.fill_(float("nan")) if t.is_floating_point() else t

    monkeypatch.setattr(fn_mod.torch, "empty", poisoned_empty)
    monkeypatch.setattr(fn_mod.torch, "empty_like", poisoned_empty_like)
    inputs = make_inputs(2, 167, 2, 16, 24, torch.float32, "token")
    out = run_with_grads(None, *inputs, 1.0, fn=_interpreted, num_segments=num_segments)
    for name, value in out.items():
        assert torch.isfinite(value).all(), name


@pytest.mark.parametrize("backend", ["chunk", "recurrent", "naive"])
def test_packed_sequences_equal_separate_runs(backend):
    lengths = [5, 0, 33, 64, 1]
    cu = torch.tensor([0] + torch.tensor(lengths).cumsum(0).tolist())
    T, H, K, V = sum(lengths), 2, 8, 6
    q, k, v, g, h0 = make_inputs(1, T, H, K, V, torch.float64, "token", N=len(lengths))
    o, s = lightning_attn(q, k, v, g, initial_state=h0, output_final_state=True, cu_seqlens=cu, backend=backend)
    for i, (a, b) in enumerate(zip(cu[:-1].tolist(), cu[1:].tolist())):
        if b == a:
            assert torch.allclose(s[i], h0[i].to(s.dtype))
            continue
        oi, si = lightning_attn(q[:, a:b], k[:, a:b], v[:, a:b], g[:, a:b], initial_state=h0[i:i + 1],
                                output_final_state=True, backend="naive")
        assert torch.allclose(o[:, a:b], oi, atol=1e-10) and torch.allclose(s[i:i + 1], si, atol=1e-10)


@pytest.mark.parametrize("decay", ["head", "token"])
def test_carrying_the_state_across_calls_equals_one_call(decay):
    q, k, v, g, h0 = make_inputs(2, 90, 2, 12, 10, torch.float64, decay)
    full, s_full = lightning_attn(q, k, v, g, initial_state=h0, output_final_state=True, backend="chunk")
    cut = 37
    g1, g2 = (g, g) if decay == "head" else (g[:, :cut], g[:, cut:])
    o1, s1 = lightning_attn(q[:, :cut], k[:, :cut], v[:, :cut], g1, initial_state=h0, output_final_state=True,
                            backend="chunk")
    outs, state = [o1], s1
    for t in range(cut, 90):  # then token by token, as a decoder does
        gt = g2 if decay == "head" else g2[:, t - cut:t - cut + 1]
        o_t, state = lightning_attn(q[:, t:t + 1], k[:, t:t + 1], v[:, t:t + 1], gt, initial_state=state,
                                    output_final_state=True, backend="recurrent")
        outs.append(o_t)
    assert torch.allclose(torch.cat(outs, 1), full, atol=1e-10)
    assert torch.allclose(state, s_full, atol=1e-10)


def test_default_scale_is_inverse_sqrt_key_dim():
    q, k, v, g, _ = make_inputs(1, 20, 1, 16, 8, torch.float64, "head", with_state=False)
    o_default, _ = lightning_attn(q, k, v, g, backend="chunk")
    o_explicit, _ = lightning_attn(q, k, v, g, scale=0.25, backend="naive")
    assert torch.allclose(o_default, o_explicit, atol=1e-10)


def test_auto_backend_on_cpu_is_chunk_and_gives_same_result():
    q, k, v, g, _ = make_inputs(2, 40, 2, 8, 8, torch.float32, "token", with_state=False)
    assert torch.allclose(lightning_attn(q, k, v, g)[0], lightning_attn(q, k, v, g, backend="chunk")[0])


@needs_triton
@pytest.mark.parametrize("decay,K,V,packed", [("head", 72, 40, False), ("token", 24, 100, False),
                                               (None, 16, 16, False), ("token", 40, 24, True)])
def test_fused_decode_kernel_matches_reference(decay, K, V, packed):
    """The one-launch recurrent step (CUDA decoding path), run by the interpreter on odd head dims, a few tokens
    per call, per-head / per-token / no decay and packed sequences."""
    from linseq.ops.lightning.triton.decode import fused_recurrent_forward

    torch.manual_seed(3)
    B, T, H = (1, 7, 3) if packed else (2, 3, 3)
    cu = torch.tensor([0, 2, 2, 7], dtype=torch.int32) if packed else None
    N = 3 if packed else B
    q, k, v = (torch.randn(B, T, H, d) for d in (K, K, V))
    g = {"head": -torch.rand(H), "token": F.logsigmoid(torch.randn(B, T, H)), None: None}[decay]
    s0 = torch.randn(N, H, K, V)
    o, s = fused_recurrent_forward(q, k, v, g, 0.5, s0, True, cu)
    ro, rs = lightning_attn(q.double(), k.double(), v.double(), None if g is None else g.double(), scale=0.5,
                            initial_state=s0.double(), output_final_state=True, cu_seqlens=cu, backend="naive")
    assert rel(o, ro) < 1e-5 and rel(s, rs) < 1e-5
