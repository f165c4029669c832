"""Launch logic and the autograd.Function tying the Triton forward and backward kernels together.

When (sequences × heads × value blocks) is too small to fill the GPU, each sequence is split into NS segments (one
wave of fused-pass programs): phase 1 computes the local end states of NSUB sub-segments per segment (reads k, v
only; sub-segments so that the pass fills the GPU too); phase 2 starts each segment from the initial state folded
with the earlier sub-segments' local states (inside the kernel, no separate scan) and runs the fused pass. The
backward splits the same way, with the segment starting states kept from the forward (a few MB) instead of
per-block states.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import triton

from linseq.ops.lightning.triton.kernels import (
    lightning_bwd_dkdv_kernel,
    lightning_bwd_dq_kernel,
    lightning_fwd_kernel,
)

BLOCK_T = 64
# Fused-pass programs per multiprocessor in the split rule: one (255 registers a thread at 8 warps), so a split
# sequence runs its fused pass in a single wave (H100, dcf8f94 vs the next commit: NOTES.md).
PROGRAMS_PER_SM = 1
# Programs a multiprocessor holds at once when the forward's state tile is at most 64×64 (4 warps, half the shared
# memory): the split rule counts that many slots per multiprocessor, so H=32, D=64 at 16K (128 sequence-heads) is
# split too instead of leaving every multiprocessor one 4-warp program. 1 restores the rule of ba3c541.
SMALL_TILE_PROGRAMS_PER_SM = 2
# State-only passes (≤ 255 registers at 4 warps: two programs per multiprocessor): their segments are cut into
# sub-segments until the sub-segments they need fill this many programs per multiprocessor. None of STATE_SPLITS:
# that rule; an int forces the sub-segments per segment (largest power of two ≤ it that divides the segment).
STATE_PROGRAMS_PER_SM = 2
STATE_SPLITS: int | None = None


@dataclass(frozen=True)
class Plan:
    """How one call is cut into programs."""

    num_seqs: int  # N
    seq_len: int  # T of the dense layout (unused with cu_seqlens)
    max_len: int  # longest sequence
    num_segments: int  # NS
    seg_len: int  # tokens per segment, a multiple of BLOCK_T
    state_splits: int  # sub-segments per segment in the state-only passes (NSUB); seg_len / NSUB is whole blocks
    is_varlen: bool
    has_empty: bool  # some packed sequence has no tokens: its kernels never run


def _pow2(x: int) -> int:
    """Smallest power of two ≥ x, at least 16 (plain Python: triton.next_power_of_2 costs ~3 µs a call, which a
    one-token decoding step notices)."""
    return max(16, 1 << (x - 1).bit_length())


# Largest fp32 state tile one program keeps in registers (128×128 with 8 warps: 64 registers a thread).
MAX_STATE_TILE = 128 * 128


def _value_block(K: int, V: int) -> int:
    """Width of the V slice a program owns: all of V when the whole [K, V] state fits on chip, so q and k
    are read once; otherwise a slice, and the slices' partial dk are summed afterwards."""
    if _pow2(K) * _pow2(V) <= MAX_STATE_TILE:
        return _pow2(V)
    return min(_pow2(V), 64 if K <= 128 else 32)


# Forward overrides for benchmarks/lightning_sweep.py: the V slice width of a forward program (None: the whole
# state when it fits, as _value_block) and its warps (None: from the tile size).
FWD_VALUE_BLOCK: int | None = None
FWD_NUM_WARPS: int | None = None
FWD_BLOCK_T: int | None = None  # token block of the forward (a divisor of BLOCK_T, so segments stay whole blocks)
FWD_TMA = False  # forward loads through tensor descriptors (Hopper TMA) where the layout allows them
BWD_TMA = False  # the same for the dq and dk/dv sweeps
# When the decay needs a gradient and the inputs are 16-bit: None keeps the backward's 16-bit dot operands (the
# decay gradient, a cancelling sum of q·dq − k·dk, is then loose: README); "tf32" or "tf32x3" (≈ fp32) makes every
# backward dot take float32 operands at that precision ("ieee": exact float32), for dq and dk exact enough for the
# decay gradient.
DECAY_GRAD_PRECISION: str | None = None
# The state-only passes of a split sequence (forward: each segment's end state; backward: each segment's dS).
# STATE_PASS_REVERSED visits the blocks in the order that makes the state a plain sum of decay-weighted products
# (no rescaling of the accumulator between dots); STATE_PASS_WARPS / STATE_PASS_STAGES override their launch (these
# passes hold no attention or output tiles: ~135 registers at 8 warps, ~250 at 4, so 4 warps fit two programs on
# a multiprocessor).
STATE_PASS_REVERSED = False
STATE_PASS_WARPS: int | None = 4
STATE_PASS_STAGES: int | None = 2
STATE_PASS_BLOCK_T: int | None = None  # token block of the state passes (None: the fused passes'; any power of two ≥ 16)
# Pass each block's attention matrix (and the intra-block partial output) between dots through a branch the compiler
# cannot resolve, so that Triton does not give those 64-row dots its chained-dot layout, which on 8 warps computes
# them twice, once per warpgroup (kernels._unchained). SCALE_OUTPUTS applies the decay rows to a dot's result
# instead of to its 16-bit operand, so that operand goes to the tensor cores straight from shared memory. Together:
# forward+backward 2.21 -> 1.47 ms at 4K on an H100 (benchmarks/results/lightning/be394ae, variant 'chained').
UNCHAIN_DOTS = True
SCALE_OUTPUTS = True


def _state_pass_launch(launch: dict) -> dict:
    """Launch settings of a state-only pass: the main pass's, with the STATE_PASS_* overrides."""
    out = dict(num_warps=launch["num_warps"], num_stages=launch["num_stages"], REVERSED=STATE_PASS_REVERSED)
    if STATE_PASS_WARPS is not None:
        out["num_warps"] = STATE_PASS_WARPS
    if STATE_PASS_STAGES is not None:
        out["num_stages"] = STATE_PASS_STAGES
    if STATE_PASS_BLOCK_T is not None:
        out["BT"] = STATE_PASS_BLOCK_T
    return out


def _descriptors(tensors, blocks) -> list | None:
    """Host tensor descriptors with block ``[BT, 1, BD]`` over ``[B*T, H, D]`` tensors, or None when this Triton
    has none, or a base address or row stride is not a multiple of 16 bytes (TMA requirements)."""
    try:
        from triton.tools.tensor_descriptor import TensorDescriptor
    except ImportError:
        return None
    if any((x.stride(1) * x.element_size()) % 16 or x.data_ptr() % 16 for x in tensors):
        return None
    return [TensorDescriptor.from_tensor(x, list(b)) for x, b in zip(tensors, blocks)]


def _forward_value_block(K: int, V: int) -> int:
    """Width of the V slice of a forward program. Slices re-read q and k (from L2 when the slices of one head
    run together) but need no partial sums, so they multiply the programs without a sequence split."""
    bv = _value_block(K, V)
    return bv if FWD_VALUE_BLOCK is None else max(16, min(bv, FWD_VALUE_BLOCK))


def _key_block(K: int, V: int) -> int:
    """Width of the K slice of the dq sweep (its state slice is [BK, V])."""
    return _pow2(K) if _pow2(K) * _pow2(V) <= MAX_STATE_TILE else min(_pow2(K), 64)


def _num_sms(device: torch.device) -> int:
    if device.type == "cuda":
        return torch.cuda.get_device_properties(device).multi_processor_count
    return 4  # the interpreter: small, so that tests exercise the split path


def default_num_segments(programs: int, blocks: int, sms: int) -> int:
    """Segments per sequence when ``programs`` (sequences × heads × value slices) of ``blocks`` blocks each run on
    ``sms`` multiprocessors.

    Split only when at most half the multiprocessors would be busy: the split costs a pass over k and v (and q, dO
    backward), which a wave that is almost full does not win back (H100: 8K unsplit 0.73 ms, split in 2 0.97 ms).
    At least 4 blocks per segment, or the state traffic outweighs the parallelism."""
    if 2 * programs > sms:
        return 1
    return max(1, min(PROGRAMS_PER_SM * sms // programs, blocks // 4))


def default_state_splits(programs: int, num_segments: int, seg_blocks: int, sms: int) -> int:
    """Sub-segments per segment for the state-only passes: a power of two dividing ``seg_blocks``, at least 4 blocks
    each, growing until the (NS − 1)·NSUB sub-segments a pass needs fill STATE_PROGRAMS_PER_SM programs per
    multiprocessor (or STATE_SPLITS, when set, as the upper bound without the 4-block floor)."""
    if num_segments == 1:
        return 1
    if STATE_SPLITS is not None:
        want, min_blocks = STATE_SPLITS, 1
    else:
        want, min_blocks = STATE_PROGRAMS_PER_SM * sms // (programs * (num_segments - 1)), 4
    r = 1
    while 2 * r <= want and seg_blocks % (2 * r) == 0 and seg_blocks // (2 * r) >= min_blocks:
        r *= 2
    return r


def make_plan(q: torch.Tensor, v: torch.Tensor, cu_seqlens: torch.Tensor | None, num_segments: int | None) -> Plan:
    B, T, H, K = q.shape
    V = v.shape[-1]
    has_empty = False
    if cu_seqlens is not None:
        N = cu_seqlens.numel() - 1
        lengths = cu_seqlens[1:] - cu_seqlens[:-1]
        max_len, min_len = (int(x) for x in torch.stack([lengths.max(), lengths.min()]).tolist())
        has_empty = min_len == 0
    else:
        N, max_len = B, T
    max_len = max(max_len, 1)
    blocks = triton.cdiv(max_len, BLOCK_T)
    BV = _forward_value_block(K, V)
    programs = N * H * triton.cdiv(V, BV)
    sms = _num_sms(q.device)
    if num_segments is None:
        small = _pow2(K) * BV <= 64 * 64
        num_segments = default_num_segments(programs, blocks, sms * (SMALL_TILE_PROGRAMS_PER_SM if small else 1))
    num_segments = max(1, min(num_segments, blocks))
    seg_blocks = triton.cdiv(blocks, num_segments)
    num_segments = triton.cdiv(blocks, seg_blocks)
    splits = default_state_splits(programs, num_segments, seg_blocks, sms)
    return Plan(N, T, max_len, num_segments, seg_blocks * BLOCK_T, splits, cu_seqlens is not None, has_empty)


def _pass_through_empty(out: torch.Tensor | None, given: torch.Tensor | None, cu_seqlens) -> None:
    """For packed sequences with no tokens the state (or its gradient) passes through unchanged."""
    if out is None:
        return
    empty = (cu_seqlens[1:] == cu_seqlens[:-1]).view(-1, 1, 1, 1)
    src = given.float() if given is not None else torch.zeros_like(out)
    out.copy_(torch.where(empty, src, out))


# Launch settings, fixed rather than autotuned (autotuning every shape cost minutes of compilation on the GPU);
# benchmarks/lightning_sweep.py overrides them to compare variants in one GPU call.
NUM_STAGES: int | None = None  # None: as many (≤ 3) as fit in shared memory; 3 removed the register spills
DKDV_BLOCK_T: int | None = None  # None: BLOCK_T when dk and dv are separate launches, else half when the tile is large
DKDV_SEPARATE = True  # dk and dv from two launches of the dk/dv sweep instead of one
SHARED_BYTES = 200 * 1024  # budget for pipelined tiles + the state's 16-bit copy (H100: 227 KB per block)


def _launch(tile_elems: int, stage_bytes: int = 0) -> dict:
    """Warps and pipeline stages for a program whose fp32 state tile has ``tile_elems`` elements and whose
    loop loads ``stage_bytes`` per pipeline stage."""
    stages = NUM_STAGES
    if stages is None:
        stages = next((n for n in (3, 2) if n * stage_bytes + 2 * tile_elems <= SHARED_BYTES), 1)
    return dict(num_warps=4 if tile_elems <= 128 * 64 else 8, num_stages=stages)


def dkdv_block_t(BK: int, BV: int, float32_operands: bool) -> int:
    """Token block of the dk/dv sweep for a [BK, BV] state tile. The fused dk/dv sweep, and either sweep on float32
    operands, hold the most tiles at once: the block is halved when the state tile is large (sm_90a, K=V=128,
    per-head decay, tf32x3: the dv sweep needs 256 KiB of shared memory at 64 tokens even in one stage, 208 KiB at
    32 tokens in three; benchmarks/lightning_registers.py)."""
    if DKDV_BLOCK_T:
        return DKDV_BLOCK_T
    return BLOCK_T // 2 if BK * BV > 128 * 64 and (float32_operands or not DKDV_SEPARATE) else BLOCK_T


def _precision(dtype: torch.dtype) -> str:
    return "ieee" if dtype == torch.float32 else "tf32"


def _decay_mode(log_decay: torch.Tensor | None) -> int:
    if log_decay is None:
        return 0
    return 1 if log_decay.ndim == 1 else 2


def _flat(x: torch.Tensor) -> torch.Tensor:
    return x.reshape((-1,) + tuple(x.shape[2:])).contiguous()


def lightning_forward(q, k, v, log_decay, scale, initial_state, output_final_state, cu_seqlens, plan: Plan):
    """Returns (o [B,T,H,V], final state or None, segment start states [N,H,NS,K,V] or None,
    per-segment log decay [N,H,NS] or None)."""
    B, T, H, K = q.shape
    V = v.shape[-1]
    qf, kf, vf = _flat(q), _flat(k), _flat(v)
    decay = _decay_mode(log_decay)
    g = log_decay.float().contiguous() if decay == 2 else None
    ld = log_decay.float().contiguous() if decay == 1 else None
    h0 = initial_state.float().contiguous() if initial_state is not None else None
    BK, BV = _pow2(K), _forward_value_block(K, V)
    N, NS, R = plan.num_seqs, plan.num_segments, plan.state_splits
    split = NS > 1
    o = torch.empty_like(vf)
    final = q.new_empty(N, H, K, V, dtype=torch.float32) if output_final_state else None
    local = seg_start = seg_ld = None
    if split:
        local = q.new_empty(N, H, NS * R, K, V, dtype=torch.float32)
        seg_start = q.new_empty(N, H, NS, K, V, dtype=torch.float32)
        seg_ld = q.new_empty(N, H, NS * R, dtype=torch.float32) if decay == 2 else None
    BT = FWD_BLOCK_T or BLOCK_T
    if BLOCK_T % BT:
        raise ValueError(f"FWD_BLOCK_T must divide BLOCK_T = {BLOCK_T}; got {BT}")
    launch = _launch(BK * BV, BT * (2 * BK + BV) * q.element_size())
    if FWD_NUM_WARPS is not None:
        launch["num_warps"] = FWD_NUM_WARPS
    descs = _descriptors((qf, kf, vf), ((BT, 1, BK), (BT, 1, BK), (BT, 1, BV))) if FWD_TMA else None
    qd, kd, vd = descs or (None, None, None)
    common = dict(T=T, H=H, K=K, V=V, NSUB=R, BT=BT, BK=BK, BV=BV, DECAY=decay, SPLIT=split,
                  IS_VARLEN=plan.is_varlen, PRECISION=_precision(q.dtype), USE_TMA=descs is not None,
                  QD=qd, KD=kd, VD=vd, UNCHAIN=UNCHAIN_DOTS, SCALE_OUT=SCALE_OUTPUTS)
    NV = triton.cdiv(V, BV)
    if split:  # over sub-segments
        lightning_fwd_kernel[(NV, N * H, NS * R)](
            qf, kf, vf, g, ld, None, None, None, local, seg_ld, None, cu_seqlens, scale, NS=NS * R,
            SEG_LEN=plan.seg_len // R, HAS_H0=False, STORE_STATE=False, STATE_ONLY=True,
            **{**common, **_state_pass_launch(launch)})
    lightning_fwd_kernel[(NV, N * H, NS)](
        qf, kf, vf, g, ld, h0, o, final, local, seg_ld, seg_start, cu_seqlens, scale, NS=NS, SEG_LEN=plan.seg_len,
        HAS_H0=h0 is not None, STORE_STATE=output_final_state, STATE_ONLY=False, **common, **launch)
    if plan.has_empty:
        _pass_through_empty(final, h0, cu_seqlens)
    return o.view(B, T, H, V), final, seg_start, seg_ld


def lightning_backward(q, k, v, log_decay, scale, initial_state, seg_states, seg_ld, do, dht, cu_seqlens,
                       plan: Plan, need_dh0: bool, grad_dtype: torch.dtype):
    """Returns (dq, dk, dv, dh0 or None) with dq, dk in ``grad_dtype`` and dv in v's dtype."""
    B, T, H, K = q.shape
    V = v.shape[-1]
    qf, kf, vf, dof = _flat(q), _flat(k), _flat(v), _flat(do)
    decay = _decay_mode(log_decay)
    g = log_decay.float().contiguous() if decay == 2 else None
    ld = log_decay.float().contiguous() if decay == 1 else None
    h0 = initial_state.float().contiguous() if initial_state is not None else None
    dht = dht.float().contiguous() if dht is not None else None
    N, NS = plan.num_seqs, plan.num_segments
    BK, BV = _pow2(K), _value_block(K, V)
    BVf = _pow2(V)
    BKq = _key_block(K, V)
    if DECAY_GRAD_PRECISION not in (None, "tf32", "tf32x3", "ieee"):
        raise ValueError(f"DECAY_GRAD_PRECISION must be None, 'tf32', 'tf32x3' or 'ieee'; got {DECAY_GRAD_PRECISION!r}")
    exact = DECAY_GRAD_PRECISION is not None and grad_dtype == torch.float32 and q.dtype != torch.float32
    BT_dkdv = dkdv_block_t(BK, BV, exact)
    elem = 4 if exact else q.element_size()  # float32 operands take twice the shared memory per pipeline stage
    common = dict(T=T, H=H, K=K, V=V, SEG_LEN=plan.seg_len, DECAY=decay, IS_VARLEN=plan.is_varlen,
                  PRECISION=DECAY_GRAD_PRECISION if exact else _precision(q.dtype), F32=exact, UNCHAIN=UNCHAIN_DOTS)

    dq = torch.empty(qf.shape, dtype=grad_dtype, device=q.device)
    dq_h0 = seg_states if NS > 1 else h0
    descs = _descriptors((dof, kf, vf), ((BLOCK_T, 1, BVf), (BLOCK_T, 1, BKq), (BLOCK_T, 1, BVf))) if BWD_TMA else None
    dod, kd, vd = descs or (None, None, None)
    lightning_bwd_dq_kernel[(triton.cdiv(K, BKq), N * H, NS)](
        dof, kf, vf, g, ld, dq_h0, dq, cu_seqlens, scale, DOD=dod, KD=kd, VD=vd, USE_TMA=descs is not None,
        NS=NS, BK=BKq, BV=BVf, BT=BLOCK_T, HAS_H0=dq_h0 is not None, **common,
        **_launch(BKq * BVf, BLOCK_T * (BKq + 2 * BVf) * elem))
    # elements loaded per token: q, dO and v (dk launch) or k (dv launch); all four when fused
    loads = max(BK + 2 * BV, 2 * BK + BV) if DKDV_SEPARATE else 2 * (BK + BV)
    common.update(_launch(BK * BV, BT_dkdv * loads * elem), BT=BT_dkdv)

    NV = triton.cdiv(V, BV)
    dv = torch.empty_like(vf)
    dk_dtype = grad_dtype if NV == 1 else torch.float32
    dk_buf = torch.empty((NV,) + tuple(kf.shape), dtype=dk_dtype, device=q.device)
    grid = (NV, N * H, NS)
    split = NS > 1
    dh0 = q.new_empty(N, H, K, V, dtype=torch.float32) if need_dh0 else None
    R = plan.state_splits
    local = q.new_empty(N, H, NS * R, K, V, dtype=torch.float32) if split else None
    common.update(BK=BK, BV=BV, NS=NS, NSUB=R, SPLIT=split, DK_SPLIT_STRIDE=kf.numel(), SCALE_OUT=SCALE_OUTPUTS)
    blocks = ((BT_dkdv, 1, BK), (BT_dkdv, 1, BK), (BT_dkdv, 1, BV), (BT_dkdv, 1, BV))
    descs = _descriptors((qf, kf, vf, dof), blocks) if BWD_TMA else None
    qd, kd, vd, dod = descs or (None, None, None, None)
    common.update(QD=qd, KD=kd, VD=vd, DOD=dod, USE_TMA=descs is not None)
    if split:  # over sub-segments
        lightning_bwd_dkdv_kernel[(NV, N * H, NS * R)](
            qf, kf, vf, dof, g, ld, None, None, None, None, local, seg_ld, cu_seqlens, scale,
            HAS_DHT=False, STORE_DH0=False, STATE_ONLY=True,
            **{**common, **_state_pass_launch(common), "NS": NS * R, "SEG_LEN": plan.seg_len // R})
    outputs = [dict(WANT_DK=True, WANT_DV=False), dict(WANT_DK=False, WANT_DV=True)] if DKDV_SEPARATE else [{}]
    for i, want in enumerate(outputs):
        lightning_bwd_dkdv_kernel[grid](
            qf, kf, vf, dof, g, ld, dht, dk_buf, dv, dh0, local, seg_ld, cu_seqlens, scale,
            HAS_DHT=dht is not None, STORE_DH0=need_dh0 and i == 0, STATE_ONLY=False, **want, **common)
    if plan.has_empty:
        _pass_through_empty(dh0, dht, cu_seqlens)
    dk = dk_buf[0] if NV == 1 else dk_buf.sum(0).to(grad_dtype)
    return dq.view(B, T, H, K), dk.view(B, T, H, K), dv.view(B, T, H, V), dh0


def log_decay_grad(q, k, dq, dk, log_decay, final_state, dht, cu_seqlens) -> torch.Tensor:
    """Gradient of the loss w.r.t. ``log_decay`` from the other gradients, in float32.

    With ``G_t`` the cumulative log decay, every term of ``o_t`` carries ``exp(G_t)`` and every term that ``k_s``
    enters carries ``exp(-G_s)``, so ``dL/dG_t = q_t·dq_t − k_t·dk_t`` (+ ⟨dS_T, S_T⟩ at a sequence's last token).
    ``dL/dlog_decay_r = Σ_{t≥r} dL/dG_t`` within each sequence; a per-head decay sums that over tokens and batch.
    """
    B, T, H, _ = q.shape
    dG = (q.float() * dq.float()).sum(-1) - (k.float() * dk.float()).sum(-1)  # [B,T,H]
    dG = dG.reshape(-1, H).double()
    if cu_seqlens is not None:
        bos = cu_seqlens[:-1].long()
        eos = cu_seqlens[1:].long()
    else:
        bos = torch.arange(B, device=q.device) * T
        eos = bos + T
    if dht is not None and final_state is not None:
        last = (eos - 1).clamp_min(0)
        nonempty = eos > bos
        term = (dht.double() * final_state.double()).sum((-1, -2))  # [N,H]
        dG.index_add_(0, last[nonempty], term[nonempty])
    # reverse cumulative sum inside each sequence: Σ_{t≥r} dG_t = C[eos] - C[r]
    C = torch.cat([dG.new_zeros(1, H), torch.cumsum(dG, dim=0)], dim=0)
    lengths = eos - bos
    seq_end = torch.repeat_interleave(eos, lengths, output_size=dG.shape[0])
    dg = C[seq_end] - C[:-1]
    if log_decay.ndim == 1:
        return dg.sum(0).to(log_decay.dtype)
    return dg.view(B, T, H).to(log_decay.dtype)


class LightningAttnFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k, v, log_decay, initial_state, scale, output_final_state, cu_seqlens, num_segments):
        plan = make_plan(q, v, cu_seqlens, num_segments)
        need_final = output_final_state or (log_decay is not None and log_decay.requires_grad)
        o, final, seg_states, seg_ld = lightning_forward(
            q, k, v, log_decay, scale, initial_state, need_final, cu_seqlens, plan)
        ctx.save_for_backward(q, k, v, log_decay, initial_state, seg_states, seg_ld, final, cu_seqlens)
        ctx.plan, ctx.scale = plan, scale
        ctx.output_final_state = output_final_state
        return o, (final if output_final_state else None)

    @staticmethod
    def backward(ctx, do, dht):
        q, k, v, log_decay, initial_state, seg_states, seg_ld, final, cu_seqlens = ctx.saved_tensors
        need_decay_grad = ctx.needs_input_grad[3]
        need_dh0 = ctx.needs_input_grad[4]
        grad_dtype = torch.float32 if need_decay_grad else q.dtype
        dq, dk, dv, dh0 = lightning_backward(
            q, k, v, log_decay, ctx.scale, initial_state, seg_states, seg_ld, do.contiguous(),
            dht if ctx.output_final_state else None, cu_seqlens, ctx.plan, need_dh0, grad_dtype)
        dlog_decay = None
        if need_decay_grad:
            dlog_decay = log_decay_grad(q, k, dq, dk, log_decay, final, dht if ctx.output_final_state else None,
                                        cu_seqlens)
            dq, dk = dq.to(q.dtype), dk.to(k.dtype)
        if dh0 is not None:
            dh0 = dh0.to(initial_state.dtype)
        return dq, dk, dv, dlog_decay, dh0, None, None, None, None


def triton_lightning_attn(q, k, v, log_decay, scale, initial_state, output_final_state, cu_seqlens,
                          num_segments: int | None = None):
    """Triton backend of :func:`linseq.ops.lightning_attn` (arguments already checked there).

    ``num_segments`` forces the sequence split (None: chosen from the GPU's size)."""
    return LightningAttnFunction.apply(
        q, k, v, log_decay, initial_state, scale, output_final_state, cu_seqlens, num_segments)
