"""Triton kernels of Lightning Attention-2 (one kernel family, specialised by constexpr flags).

Layout: q, k ``[B*T, H, K]``, v, o ``[B*T, H, V]`` (contiguous), per-token log decay ``g [B*T, H]`` float32,
per-head log decay ``ld [H]`` float32. States ``[N, H, NS, K, V]`` float32, NS = segments per sequence.

Every program walks the blocks of ``BT`` tokens of one segment of one (sequence, head) and keeps the carried
state on chip, so no per-block state ever goes to memory:

* ``lightning_fwd_kernel``: o = [(Q Kᵀ) ⊙ D] V + (Λ Q) S per block, then S ← λ^C S + (Λ' K)ᵀ V.
  With ``STATE_ONLY`` it reads only k, v and writes the segment's end state (the first phase of a split sequence).
* ``lightning_bwd_dq_kernel``: forward in time; dq = [(dO Vᵀ) ⊙ D] K + (Λ dO) Sᵀ, S recomputed on the way.
* ``lightning_bwd_dkdv_kernel``: backward in time; dk, dv (or one of them) from the block's own attention and the
  carried dS.
  With ``STATE_ONLY`` it reads q, dO and writes the segment's dS.

Decay modes (``DECAY``): 0 none, 1 per head (``ld``), 2 per token (``g``, cumulated inside each block so that
only differences of small numbers are ever exponentiated).
"""

from __future__ import annotations

import triton
import triton.language as tl


@triton.jit
def _segment_bounds(CU, i_n, i_s, T, SEG_LEN, IS_VARLEN: tl.constexpr):
    """Token range [seg_start, seg_end) of segment i_s of sequence i_n, and the sequence's end."""
    if IS_VARLEN:
        bos = tl.load(CU + i_n).to(tl.int64)
        eos = tl.load(CU + i_n + 1).to(tl.int64)
    else:
        bos = i_n.to(tl.int64) * T
        eos = bos + T
    seg_start = bos + i_s.to(tl.int64) * SEG_LEN
    seg_end = tl.minimum(seg_start + SEG_LEN, eos)
    return seg_start, seg_end, eos


@triton.jit
def _load_rows(P, t, t_mask, i_h, H, D, offs, d_mask):
    """Tile ``[len(t), len(offs)]`` of a ``[B*T, H, D]`` tensor: rows t of head i_h, columns offs (zeros outside)."""
    ptrs = P + (t[:, None] * H + i_h) * D + offs[None, :]
    return tl.load(ptrs, mask=t_mask[:, None] & d_mask[None, :], other=0.0)


@triton.jit
def _store_rows(P, x, t, t_mask, i_h, H, D, offs, d_mask):
    tl.store(P + (t[:, None] * H + i_h) * D + offs[None, :], x.to(P.dtype.element_ty),
             mask=t_mask[:, None] & d_mask[None, :])


@triton.jit
def _load_block(D, P, row0, t, t_mask, i_h, H, Dim, offs, d_mask, col0, BT: tl.constexpr, BD: tl.constexpr,
                USE_TMA: tl.constexpr):
    """Tile ``[BT, BD]`` of rows t (= row0 + arange(BT)), head i_h, columns offs (= col0 + arange(BD)) of a
    ``[B*T, H, Dim]`` tensor, zero outside ``t_mask`` and ``Dim``: through the tensor descriptor ``D`` (block
    ``[BT, 1, BD]``; the copy engine computes the addresses and fills columns past Dim with zeros) or from
    pointers into ``P``."""
    if USE_TMA:
        x = D.load([row0.to(tl.int32), i_h, col0]).reshape(BT, BD)
        return tl.where(t_mask[:, None], x, tl.zeros_like(x))
    return _load_rows(P, t, t_mask, i_h, H, Dim, offs, d_mask)


@triton.jit
def _op(x, like, F32: tl.constexpr):
    """A dot operand: ``x`` in ``like``'s dtype, or in float32 with ``F32`` (more exact gradients, slower dots)."""
    if F32:  # one return: Triton 3.6 rejects returns of different types even under a constexpr branch
        y = x.to(tl.float32)
    else:
        y = x.to(like.dtype)
    return y


@triton.jit
def _unchained(x, always_true):
    """``x``, passed through a branch the compiler cannot resolve (``always_true`` is true at run time).

    Triton lays a dot whose result feeds another dot out with all warps along M (the flash-attention layout); on
    64-row blocks with 8 warps that repeats the dot on both warpgroups. A value coming out of a branch is not
    traced back to the dot that made it, so the dots on either side get layouts that split the work."""
    if always_true:
        y = x
    else:
        y = -x
    return y


@triton.jit
def _unchained_dot(a, b, always_true, UNCHAIN: tl.constexpr, PRECISION: tl.constexpr, TRANS_A: tl.constexpr = False):
    """``tl.dot(a, b)`` (``aᵀ b`` with TRANS_A); with UNCHAIN its operand ``a`` (the previous dot's result) and its
    result both pass through :func:`_unchained`, so this dot is laid out on its own, neither as a chained consumer
    nor as a producer."""
    if UNCHAIN:
        a = _unchained(a, always_true)
    if TRANS_A:
        a = tl.trans(a)
    y = tl.dot(a, b, input_precision=PRECISION)
    if UNCHAIN:
        y = _unchained(y, always_true)
    return y


@triton.jit
def _block_log_decay(G, LD, t, t_mask, n_valid, i_h, H, BT: tl.constexpr, DECAY: tl.constexpr):
    """Inclusive cumulative log decay inside one block, ``[BT]``, and its total over the valid tokens."""
    if DECAY == 2:
        g = tl.load(G + t * H + i_h, mask=t_mask, other=0.0).to(tl.float32)
        b_g = tl.cumsum(g, axis=0)
        g_last = tl.sum(g, axis=0)
    else:
        b = tl.load(LD + i_h).to(tl.float32)
        b_g = (tl.arange(0, BT) + 1).to(tl.float32) * b
        g_last = n_valid.to(tl.float32) * b
    return b_g, g_last


@triton.jit
def _decay_to_end(b_g, g_end, t_mask):
    """``exp(g_end − G_t)``, each token's decay to the point whose cumulative log decay is ``g_end``; 0 on rows
    past the segment (a per-head G_t keeps falling there, so g_end − G_t would overflow for strong decays)."""
    return tl.exp(tl.where(t_mask, g_end - b_g, float("-inf")))


@triton.jit
def _decay_matrix(b_g, causal, scale):
    """``scale·exp(G_i − G_j)`` where i ≥ j, else 0: the ``[BT, BT]`` decay mask of one block from its inclusive
    cumulative log decay ``b_g``. (Building it as the outer product exp(G_i)·exp(−G_j), BT² → 2·BT exponentials,
    measured slower on an H100: benchmarks/results/lightning/NOTES.md, 80226bb.)"""
    return tl.exp(tl.where(causal, b_g[:, None] - b_g[None, :], float("-inf"))) * scale


@triton.jit
def lightning_fwd_kernel(
    Q, Kp, Vp, G, LD, H0, O, HT, LOCAL, SEG_LD, SEG_START, CU, scale, QD, KD, VD,
    T, H: tl.constexpr, K: tl.constexpr, V: tl.constexpr, NS, SEG_LEN, NSUB,
    BT: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr,
    DECAY: tl.constexpr, HAS_H0: tl.constexpr, STORE_STATE: tl.constexpr, STATE_ONLY: tl.constexpr,
    SPLIT: tl.constexpr, IS_VARLEN: tl.constexpr, PRECISION: tl.constexpr, USE_TMA: tl.constexpr = False,
    REVERSED: tl.constexpr = False, UNCHAIN: tl.constexpr = False, SCALE_OUT: tl.constexpr = False,
):
    """STATE_ONLY: launched over sub-segments (NS, SEG_LEN: sub-segments per sequence and their length; NSUB of
    them make one segment of the fused pass), write this sub-segment's local end state to LOCAL and its total log
    decay to SEG_LD. Sub-segments of a sequence's last segment write only the log decay (no later segment folds
    their state in; the backward needs the decay). With REVERSED the blocks are visited last to first and each
    token's key is weighted by its decay to the sub-segment's end, so the state is a plain sum of products (no
    rescaling between them) that the dots can pipeline.
    Otherwise: start from h0 folded with the local states of the earlier segments' NSUB sub-segments each (SPLIT),
    write the starting state to SEG_START (SPLIT), run the fused pass, and the last segment writes the final state
    to HT.
    USE_TMA: q, k, v tiles come through the tensor descriptors QD, KD, VD (Hopper's copy engine) instead of
    per-element pointers."""
    i_v, i_nh, i_s = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    i_n, i_h = i_nh // H, i_nh % H
    seg_start, seg_end, eos = _segment_bounds(CU, i_n, i_s, T, SEG_LEN, IS_VARLEN)
    if seg_start >= seg_end:
        return

    offs_k = tl.arange(0, BK)
    offs_v = i_v * BV + tl.arange(0, BV)
    k_mask = offs_k < K
    v_mask = offs_v < V
    nh = (i_n * H + i_h).to(tl.int64)
    seg_off = (nh * NS + i_s) * K * V
    state_ptrs = offs_k[:, None] * V + offs_v[None, :]
    state_mask = k_mask[:, None] & v_mask[None, :]

    b_s = tl.zeros([BK, BV], dtype=tl.float32)
    if STATE_ONLY:
        main_start = seg_start - (i_s % NSUB).to(tl.int64) * SEG_LEN
        if tl.minimum(main_start + NSUB * SEG_LEN, eos) == eos:  # in the last segment: only the log decay
            if DECAY == 2:
                if i_v == 0:
                    total = 0.0
                    for i_b in range(tl.cdiv(seg_end - seg_start, BT)):
                        t = seg_start + i_b * BT + tl.arange(0, BT)
                        total += tl.sum(tl.load(G + t * H + i_h, mask=t < seg_end, other=0.0).to(tl.float32))
                    tl.store(SEG_LD + nh * NS + i_s, total)
            return
    else:
        # state entering this segment: Σ_{j<s} λ(end of j → start of s)·local_j + λ(0 → start of s)·h0, j over
        # the NSUB sub-segments of every earlier segment
        log_gap = 0.0
        if SPLIT:
            for i_j in range(i_s * NSUB):
                j = i_s * NSUB - 1 - i_j
                b_s += tl.exp(log_gap) * tl.load(LOCAL + (nh * NS * NSUB + j) * K * V + state_ptrs,
                                                  mask=state_mask, other=0.0)
                if DECAY == 2:
                    log_gap += tl.load(SEG_LD + nh * NS * NSUB + j)
                elif DECAY == 1:  # earlier segments are full
                    log_gap += tl.load(LD + i_h).to(tl.float32) * (SEG_LEN // NSUB)
        if HAS_H0:
            b_s += tl.exp(log_gap) * tl.load(H0 + nh * K * V + state_ptrs, mask=state_mask, other=0.0)
        if SPLIT:
            tl.store(SEG_START + seg_off + state_ptrs, b_s, mask=state_mask)

    causal = tl.arange(0, BT)[:, None] >= tl.arange(0, BT)[None, :]
    num_blocks = tl.cdiv(seg_end - seg_start, BT)
    seg_log_decay = 0.0
    for i_r in range(num_blocks):
        i_b = num_blocks - 1 - i_r if STATE_ONLY and REVERSED else i_r
        t = seg_start + i_b * BT + tl.arange(0, BT)
        t_mask = t < seg_end
        n_valid = tl.minimum(seg_end - seg_start - i_b * BT, BT)
        row0 = seg_start + i_b * BT
        b_k = _load_block(KD, Kp, row0, t, t_mask, i_h, H, K, offs_k, k_mask, 0, BT, BK, USE_TMA)
        b_v = _load_block(VD, Vp, row0, t, t_mask, i_h, H, V, offs_v, v_mask, i_v * BV, BT, BV, USE_TMA)
        if DECAY > 0:
            b_g, g_last = _block_log_decay(G, LD, t, t_mask, n_valid, i_h, H, BT, DECAY)
        if not STATE_ONLY:
            b_q = _load_block(QD, Q, row0, t, t_mask, i_h, H, K, offs_k, k_mask, 0, BT, BK, USE_TMA)
            b_a = tl.dot(b_q, tl.trans(b_k), input_precision=PRECISION)
            if DECAY > 0:
                b_a = b_a * _decay_matrix(b_g, causal, scale)
            else:
                b_a = tl.where(causal, b_a * scale, 0.0)
            b_o = _unchained_dot(b_a.to(b_v.dtype), b_v, num_blocks > 0, UNCHAIN, PRECISION)
            if SCALE_OUT:  # (Λ Q) S as Λ (Q S): q goes to the dot straight from shared memory
                b_inter = tl.dot(b_q, b_s.to(b_q.dtype), input_precision=PRECISION)
                if DECAY > 0:
                    b_o += b_inter * (tl.exp(b_g) * scale)[:, None]
                else:
                    b_o += b_inter * scale
            else:
                if DECAY > 0:
                    b_qd = (b_q * (tl.exp(b_g) * scale)[:, None]).to(b_q.dtype)
                else:
                    b_qd = (b_q * scale).to(b_q.dtype)
                b_o += tl.dot(b_qd, b_s.to(b_q.dtype), input_precision=PRECISION)
            _store_rows(O, b_o, t, t_mask, i_h, H, V, offs_v, v_mask)
        if DECAY > 0 and STATE_ONLY and REVERSED:
            # seg_log_decay so far: the log decay from this block's end to the segment's end
            b_kd = (b_k * _decay_to_end(b_g, seg_log_decay + g_last, t_mask)[:, None]).to(b_k.dtype)
            b_s += tl.dot(tl.trans(b_kd), b_v, input_precision=PRECISION)
            seg_log_decay += g_last
        elif DECAY > 0:
            b_kd = (b_k * _decay_to_end(b_g, g_last, t_mask)[:, None]).to(b_k.dtype)
            b_s = b_s * tl.exp(g_last) + tl.dot(tl.trans(b_kd), b_v, input_precision=PRECISION)
            seg_log_decay += g_last
        else:
            b_s += tl.dot(tl.trans(b_k), b_v, input_precision=PRECISION)

    if STATE_ONLY:
        tl.store(LOCAL + seg_off + state_ptrs, b_s, mask=state_mask)
        if DECAY == 2:
            if i_v == 0:
                tl.store(SEG_LD + nh * NS + i_s, seg_log_decay)
    elif STORE_STATE:
        if seg_end == eos:
            tl.store(HT + nh * K * V + state_ptrs, b_s, mask=state_mask)


@triton.jit
def lightning_bwd_dq_kernel(
    DO, Kp, Vp, G, LD, H0, DQ, CU, scale, DOD, KD, VD,
    T, H: tl.constexpr, K: tl.constexpr, V: tl.constexpr, NS, SEG_LEN,
    BT: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr,
    DECAY: tl.constexpr, HAS_H0: tl.constexpr, IS_VARLEN: tl.constexpr, PRECISION: tl.constexpr,
    USE_TMA: tl.constexpr = False, F32: tl.constexpr = False, UNCHAIN: tl.constexpr = False,
):
    """Grid (K / BK, N*H, NS). BV covers all of V; S is the [BK, V] slice of the state. H0 holds each
    segment's starting state ([N,H,NS,K,V], kept by the forward) or, unsplit, the initial state."""
    i_k, i_nh, i_s = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    i_n, i_h = i_nh // H, i_nh % H
    seg_start, seg_end, _ = _segment_bounds(CU, i_n, i_s, T, SEG_LEN, IS_VARLEN)
    if seg_start >= seg_end:
        return

    offs_k = i_k * BK + tl.arange(0, BK)
    offs_v = tl.arange(0, BV)
    k_mask = offs_k < K
    v_mask = offs_v < V
    state_off = ((i_n * H + i_h).to(tl.int64) * NS + i_s) * K * V
    state_mask = k_mask[:, None] & v_mask[None, :]

    b_s = tl.zeros([BK, BV], dtype=tl.float32)
    if HAS_H0:
        b_s += tl.load(H0 + state_off + offs_k[:, None] * V + offs_v[None, :], mask=state_mask, other=0.0)

    causal = tl.arange(0, BT)[:, None] >= tl.arange(0, BT)[None, :]
    num_blocks = tl.cdiv(seg_end - seg_start, BT)
    for i_b in range(num_blocks):
        t = seg_start + i_b * BT + tl.arange(0, BT)
        t_mask = t < seg_end
        n_valid = tl.minimum(seg_end - seg_start - i_b * BT, BT)
        row0 = seg_start + i_b * BT
        b_k = _load_block(KD, Kp, row0, t, t_mask, i_h, H, K, offs_k, k_mask, i_k * BK, BT, BK, USE_TMA)
        b_v = _load_block(VD, Vp, row0, t, t_mask, i_h, H, V, offs_v, v_mask, 0, BT, BV, USE_TMA)
        b_do = _load_block(DOD, DO, row0, t, t_mask, i_h, H, V, offs_v, v_mask, 0, BT, BV, USE_TMA)
        b_da = tl.dot(b_do, tl.trans(b_v), input_precision=PRECISION)
        if DECAY > 0:
            b_g, g_last = _block_log_decay(G, LD, t, t_mask, n_valid, i_h, H, BT, DECAY)
            b_da = b_da * _decay_matrix(b_g, causal, scale)
        else:
            b_da = tl.where(causal, b_da * scale, 0.0)
        b_da = _op(b_da, b_k, F32)
        if UNCHAIN:
            b_da = _unchained(b_da, num_blocks > 0)
        b_dq = tl.dot(b_da, _op(b_k, b_k, F32), input_precision=PRECISION)
        b_inter = tl.dot(_op(b_do, b_do, F32), tl.trans(_op(b_s, b_do, F32)), input_precision=PRECISION)
        if UNCHAIN:
            b_inter = _unchained(b_inter, num_blocks > 0)
        if DECAY > 0:
            b_dq += b_inter * (tl.exp(b_g) * scale)[:, None]
            b_kd = _op(b_k * _decay_to_end(b_g, g_last, t_mask)[:, None], b_k, F32)
            b_s = b_s * tl.exp(g_last) + tl.dot(tl.trans(b_kd), _op(b_v, b_v, F32), input_precision=PRECISION)
        else:
            b_dq += b_inter * scale
            b_s += tl.dot(tl.trans(_op(b_k, b_k, F32)), _op(b_v, b_v, F32), input_precision=PRECISION)
        _store_rows(DQ, b_dq, t, t_mask, i_h, H, K, offs_k, k_mask)


@triton.jit
def lightning_bwd_dkdv_kernel(
    Q, Kp, Vp, DO, G, LD, DHT, DK, DV, DH0, LOCAL, SEG_LD, CU, scale, QD, KD, VD, DOD,
    T, H: tl.constexpr, K: tl.constexpr, V: tl.constexpr, NS, SEG_LEN, NSUB, DK_SPLIT_STRIDE,
    BT: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr,
    DECAY: tl.constexpr, HAS_DHT: tl.constexpr, STORE_DH0: tl.constexpr, STATE_ONLY: tl.constexpr,
    SPLIT: tl.constexpr, IS_VARLEN: tl.constexpr, PRECISION: tl.constexpr,
    WANT_DK: tl.constexpr = True, WANT_DV: tl.constexpr = True, USE_TMA: tl.constexpr = False,
    F32: tl.constexpr = False, REVERSED: tl.constexpr = False, UNCHAIN: tl.constexpr = False,
    SCALE_OUT: tl.constexpr = False,
):
    """Grid (V / BV, N*H, NS), blocks visited last to first. BK covers all of K; dS is the [K, BV] slice.

    STATE_ONLY: launched over sub-segments as the forward's state pass, write this sub-segment's own dL/d(state at
    its start) to LOCAL (nothing in the first segment, which no earlier segment folds in); with REVERSED (of the reversed
    order: blocks first to last) each query is weighted by its decay from the segment's start, a plain sum of
    products as in the forward's state pass. Otherwise the gradient entering at
    the segment's end is dht folded with the LOCAL of the later segments' sub-segments (SPLIT); segment 0 writes
    dh0.
    With several V slices each program writes its partial dk at ``DK + i_v * DK_SPLIT_STRIDE`` (float32),
    summed afterwards. ``WANT_DK`` / ``WANT_DV`` select the outputs: one launch for each keeps fewer tiles live
    (no register spills at 64-token blocks) at the price of reading q and dO twice."""
    i_v, i_nh, i_s = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    i_n, i_h = i_nh // H, i_nh % H
    seg_start, seg_end, eos = _segment_bounds(CU, i_n, i_s, T, SEG_LEN, IS_VARLEN)
    if seg_start >= seg_end:
        return

    offs_k = tl.arange(0, BK)
    offs_v = i_v * BV + tl.arange(0, BV)
    k_mask = offs_k < K
    v_mask = offs_v < V
    nh = (i_n * H + i_h).to(tl.int64)
    seg_off = (nh * NS + i_s) * K * V
    state_ptrs = offs_k[:, None] * V + offs_v[None, :]
    state_mask = k_mask[:, None] & v_mask[None, :]

    b_ds = tl.zeros([BK, BV], dtype=tl.float32)
    if STATE_ONLY:
        if i_s < NSUB:  # a sub-segment of the first segment
            return
    else:
        # gradient entering at this segment's end: Σ_{j>s} λ(end of s → start of j)·local_j + λ(→ end)·dht, j over
        # the sub-segments of every later segment
        log_gap = 0.0
        if SPLIT:
            sub_len = SEG_LEN // NSUB
            seq_start = seg_start - i_s.to(tl.int64) * SEG_LEN
            num_subs = tl.cdiv(eos - seq_start, sub_len).to(tl.int32)
            for j in range((i_s + 1) * NSUB, num_subs):
                b_ds += tl.exp(log_gap) * tl.load(LOCAL + (nh * NS * NSUB + j) * K * V + state_ptrs,
                                                   mask=state_mask, other=0.0)
                if DECAY == 2:
                    log_gap += tl.load(SEG_LD + nh * NS * NSUB + j)
                elif DECAY == 1:
                    sub_j_len = tl.minimum(sub_len, eos - seq_start - j * sub_len)
                    log_gap += tl.load(LD + i_h).to(tl.float32) * sub_j_len.to(tl.float32)
        if HAS_DHT:
            b_ds += tl.exp(log_gap) * tl.load(DHT + nh * K * V + state_ptrs, mask=state_mask, other=0.0)

    causal = tl.arange(0, BT)[:, None] >= tl.arange(0, BT)[None, :]
    num_blocks = tl.cdiv(seg_end - seg_start, BT)
    from_start = 0.0  # REVERSED state pass: log decay from the segment's start to this block's start
    for i_r in range(num_blocks):
        i_b = i_r if STATE_ONLY and REVERSED else num_blocks - 1 - i_r
        t = seg_start + i_b * BT + tl.arange(0, BT)
        t_mask = t < seg_end
        n_valid = tl.minimum(seg_end - seg_start - i_b * BT, BT)
        row0 = seg_start + i_b * BT
        b_q = _load_block(QD, Q, row0, t, t_mask, i_h, H, K, offs_k, k_mask, 0, BT, BK, USE_TMA)
        b_do = _load_block(DOD, DO, row0, t, t_mask, i_h, H, V, offs_v, v_mask, i_v * BV, BT, BV, USE_TMA)
        if DECAY > 0:
            b_g, g_last = _block_log_decay(G, LD, t, t_mask, n_valid, i_h, H, BT, DECAY)
            if STATE_ONLY and REVERSED:
                b_qd = _op(b_q * (tl.exp(from_start + b_g) * scale)[:, None], b_q, F32)
                from_start += g_last
            else:
                b_qd = _op(b_q * (tl.exp(b_g) * scale)[:, None], b_q, F32)
        else:
            b_qd = _op(b_q * scale, b_q, F32)
        if not STATE_ONLY:
            b_ds_lo = _op(b_ds, b_q, F32)
            if DECAY > 0:
                b_d = _decay_matrix(b_g, causal, scale)
                b_to_end = _decay_to_end(b_g, g_last, t_mask)
            if WANT_DV:
                b_k = _load_block(KD, Kp, row0, t, t_mask, i_h, H, K, offs_k, k_mask, 0, BT, BK, USE_TMA)
                b_a = tl.dot(b_q, tl.trans(b_k), input_precision=PRECISION)
                if DECAY > 0:
                    b_a = b_a * b_d
                    if not SCALE_OUT:
                        b_kd = _op(b_k * b_to_end[:, None], b_k, F32)
                else:
                    b_a = tl.where(causal, b_a * scale, 0.0)
                    b_kd = _op(b_k, b_k, F32)
                b_dv = _unchained_dot(_op(b_a, b_do, F32), _op(b_do, b_do, F32), num_blocks > 0, UNCHAIN, PRECISION,
                                      TRANS_A=True)
                if DECAY > 0 and SCALE_OUT:  # (Λ' K) dS as Λ' (K dS)
                    b_dv += tl.dot(_op(b_k, b_k, F32), b_ds_lo, input_precision=PRECISION) * b_to_end[:, None]
                else:
                    b_dv += tl.dot(b_kd, b_ds_lo, input_precision=PRECISION)
                _store_rows(DV, b_dv, t, t_mask, i_h, H, V, offs_v, v_mask)
            if WANT_DK:
                b_v = _load_block(VD, Vp, row0, t, t_mask, i_h, H, V, offs_v, v_mask, i_v * BV, BT, BV, USE_TMA)
                b_dp = tl.dot(b_do, tl.trans(b_v), input_precision=PRECISION)
                if DECAY > 0:
                    b_dp = b_dp * b_d
                    if not SCALE_OUT:
                        b_vd = _op(b_v * b_to_end[:, None], b_v, F32)
                else:
                    b_dp = tl.where(causal, b_dp * scale, 0.0)
                    b_vd = _op(b_v, b_v, F32)
                b_dk = _unchained_dot(_op(b_dp, b_q, F32), _op(b_q, b_q, F32), num_blocks > 0, UNCHAIN, PRECISION,
                                      TRANS_A=True)
                if DECAY > 0 and SCALE_OUT:
                    b_dk += tl.dot(_op(b_v, b_v, F32), tl.trans(b_ds_lo), input_precision=PRECISION) * b_to_end[:, None]
                else:
                    b_dk += tl.dot(b_vd, tl.trans(b_ds_lo), input_precision=PRECISION)
                _store_rows(DK + i_v * DK_SPLIT_STRIDE, b_dk, t, t_mask, i_h, H, K, offs_k, k_mask)
        if DECAY > 0 and not (STATE_ONLY and REVERSED):
            b_ds = b_ds * tl.exp(g_last) + tl.dot(tl.trans(b_qd), _op(b_do, b_do, F32), input_precision=PRECISION)
        else:
            b_ds += tl.dot(tl.trans(b_qd), _op(b_do, b_do, F32), input_precision=PRECISION)

    if STATE_ONLY:
        tl.store(LOCAL + seg_off + state_ptrs, b_ds, mask=state_mask)
    elif STORE_DH0:
        if i_s == 0:
            tl.store(DH0 + nh * K * V + state_ptrs, b_ds, mask=state_mask)


@triton.jit
def lightning_decode_kernel(
    Q, Kp, Vp, G, LD, H0, O, HT, CU, scale,
    T, H: tl.constexpr, K: tl.constexpr, V: tl.constexpr,
    BK: tl.constexpr, BV: tl.constexpr,
    DECAY: tl.constexpr, HAS_H0: tl.constexpr, STORE_STATE: tl.constexpr, IS_VARLEN: tl.constexpr,
):
    """Token-by-token recurrence for decoding: grid (V / BV, N*H); the [K, BV] state slice stays in registers."""
    i_v, i_nh = tl.program_id(0), tl.program_id(1)
    i_n, i_h = i_nh // H, i_nh % H
    if IS_VARLEN:
        bos = tl.load(CU + i_n).to(tl.int64)
        eos = tl.load(CU + i_n + 1).to(tl.int64)
    else:
        bos = i_n.to(tl.int64) * T
        eos = bos + T
    offs_k = tl.arange(0, BK)
    offs_v = i_v * BV + tl.arange(0, BV)
    k_mask = offs_k < K
    v_mask = offs_v < V
    state_off = (i_n * H + i_h).to(tl.int64) * K * V
    state_ptrs = offs_k[:, None] * V + offs_v[None, :]
    state_mask = k_mask[:, None] & v_mask[None, :]
    b_s = tl.zeros([BK, BV], dtype=tl.float32)
    if HAS_H0:
        b_s += tl.load(H0 + state_off + state_ptrs, mask=state_mask, other=0.0)
    if DECAY == 1:
        b_ld = tl.load(LD + i_h).to(tl.float32)
    for t in range(bos, eos):
        b_q = tl.load(Q + (t * H + i_h) * K + offs_k, mask=k_mask, other=0.0).to(tl.float32)
        b_k = tl.load(Kp + (t * H + i_h) * K + offs_k, mask=k_mask, other=0.0).to(tl.float32)
        b_v = tl.load(Vp + (t * H + i_h) * V + offs_v, mask=v_mask, other=0.0).to(tl.float32)
        if DECAY == 2:
            b_s = b_s * tl.exp(tl.load(G + t * H + i_h).to(tl.float32))
        elif DECAY == 1:
            b_s = b_s * tl.exp(b_ld)
        b_s += b_k[:, None] * b_v[None, :]
        b_o = tl.sum(b_s * b_q[:, None], axis=0) * scale
        tl.store(O + (t * H + i_h) * V + offs_v, b_o.to(O.dtype.element_ty), mask=v_mask)
    if STORE_STATE:
        tl.store(HT + state_off + state_ptrs, b_s, mask=state_mask)
