"""Specifications of linseq.ops.hashing: codes, linear-time attention vs its quadratic form, fitting, energy."""

import pytest
import torch

from linseq.ops.hashing import (
    attention_energy,
    causal_rbf_features,
    fit_hash_bits,
    hash_agreement,
    hash_attn,
    kernel_hash,
    rbf_features,
    similarity_labels,
)


def _codes(B, T, H, b, dtype=torch.float64):
    return torch.randn(B, T, H, b, dtype=dtype).sign()


def _hash_inputs(B=2, T=13, H=3, C=5, m=7, b=6):
    x = torch.randn(B, T, H, C, dtype=torch.float64)
    anchors = torch.randn(H, m, C, dtype=torch.float64)
    hyper = torch.randn(H, b, m, dtype=torch.float64)
    mvec = torch.rand(H, m, dtype=torch.float64) * 0.5
    return x, anchors, hyper, mvec


def test_codes_are_exactly_plus_minus_one():
    x, anchors, hyper, mvec = _hash_inputs()
    h = kernel_hash(x, anchors, hyper, mvec)
    assert h.shape == (2, 13, 3, 6)
    assert torch.all((h == 1) | (h == -1))


def test_rbf_bandwidth_is_mean_squared_distance():
    x, anchors, _, _ = _hash_inputs()
    k = rbf_features(x, anchors)
    d = ((x[:, :, :, None, :] - anchors[None, None]) ** 2).sum(-1)  # [B,T,H,m]
    sigma2 = d.mean(dim=(1, 3), keepdim=True)
    torch.testing.assert_close(k, torch.exp(-d / (2 * sigma2)))


def test_kernel_hash_gradient_reaches_input_through_straight_through_sign():
    x, anchors, hyper, mvec = _hash_inputs()
    x.requires_grad_(True)
    h = kernel_hash(x, anchors, hyper * 0.1, mvec)  # small hyperplanes: pre-sign values inside the STE window
    (h * torch.randn_like(h)).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("normalizer", ["consistent", "reference"])
@pytest.mark.parametrize("B,T,H,b,V", [(1, 1, 1, 4, 3), (2, 37, 3, 8, 5), (3, 70, 2, 16, 9)])
def test_linear_form_equals_quadratic_form(causal, normalizer, B, T, H, b, V):
    hq, hk = _codes(B, T, H, b), _codes(B, T, H, b)
    v = torch.randn(B, T, H, V, dtype=torch.float64)
    ref, _ = hash_attn(hq, hk, v, causal=causal, normalizer=normalizer, backend="naive")
    out, _ = hash_attn(hq, hk, v, causal=causal, normalizer=normalizer)
    torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-10)
    out32, _ = hash_attn(hq.float(), hk.float(), v.float(), causal=causal, normalizer=normalizer)
    torch.testing.assert_close(out32.double(), ref, rtol=1e-5, atol=1e-5)


def _pieces(T):
    """Random cut points splitting ``range(T)`` into 2-5 pieces, some of one token."""
    cuts = sorted(set(torch.randint(1, T, (torch.randint(1, 5, ()).item(),)).tolist()) | {T - 1})
    return list(zip([0] + cuts, cuts + [T]))


def test_causal_rbf_features_carried_in_pieces_equal_one_call():
    x, anchors, _, mvec = _hash_inputs(T=23)
    whole = rbf_features(x, anchors, mvec, causal=True)
    state, parts = None, []
    for a, z in _pieces(23):
        feats, state = causal_rbf_features(x[:, a:z], anchors, mvec, state)
        parts.append(feats)
    torch.testing.assert_close(torch.cat(parts, 1), whole, rtol=1e-12, atol=1e-12)
    assert state.shape == (2, 3, 2) and torch.all(state[..., 1] == 23)


@pytest.mark.parametrize("normalizer", ["consistent", "reference"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_causal_hash_attn_carried_in_pieces_equals_one_call(normalizer, dtype):
    B, T, H, b, V = 2, 29, 3, 8, 5
    hq, hk = _codes(B, T, H, b), _codes(B, T, H, b)
    v = torch.randn(B, T, H, V, dtype=torch.float64)
    ref, _ = hash_attn(hq, hk, v, causal=True, normalizer=normalizer, backend="naive")
    state, parts = None, []
    for a, z in _pieces(T):
        o, state = hash_attn(hq[:, a:z].to(dtype), hk[:, a:z].to(dtype), v[:, a:z].to(dtype), causal=True,
                             normalizer=normalizer, initial_state=state, output_final_state=True)
        parts.append(o)
    tol = 1e-10 if dtype == torch.float64 else 1e-5
    torch.testing.assert_close(torch.cat(parts, 1).double(), ref, rtol=tol, atol=tol)
    assert state.shape == (B, H, b + 1, V + 1)


def test_hash_attn_state_needs_causal_linear_form_and_the_right_shape():
    hq = hk = torch.ones(2, 5, 3, 8)
    v = torch.ones(2, 5, 3, 4)
    with pytest.raises(ValueError, match="causal=True"):
        hash_attn(hq, hk, v, output_final_state=True)
    with pytest.raises(ValueError, match="naive"):
        hash_attn(hq, hk, v, causal=True, backend="naive", output_final_state=True)
    with pytest.raises(ValueError, match=r"initial_state must be \[B,H,b\+1,V\+1\] = \[2, 3, 9, 5\]"):
        hash_attn(hq, hk, v, causal=True, initial_state=torch.zeros(2, 3, 8, 4))


def test_quadratic_form_matches_definition_by_loops():
    B, T, H, b, V = 1, 6, 1, 4, 2
    hq, hk = _codes(B, T, H, b), _codes(B, T, H, b)
    v = torch.randn(B, T, H, V, dtype=torch.float64)
    c = b + 1.0
    out, _ = hash_attn(hq, hk, v, causal=True, normalizer="consistent", backend="naive")
    for i in range(T):
        sims = torch.stack([hq[0, i, 0] @ hk[0, j, 0] + c for j in range(i + 1)])
        expect = (sims[:, None] * v[0, : i + 1, 0]).sum(0) / sims.sum()
        torch.testing.assert_close(out[0, i, 0], expect)


def test_consistent_output_is_a_convex_combination_of_values():
    hq, hk = _codes(2, 20, 2, 8), _codes(2, 20, 2, 8)
    v = torch.rand(2, 20, 2, 4, dtype=torch.float64)
    out, _ = hash_attn(hq, hk, v)
    assert torch.all(out <= v.amax(1, keepdim=True) + 1e-12) and torch.all(out >= v.amin(1, keepdim=True) - 1e-12)


def test_reduced_precision_inputs_keep_their_dtype():
    hq, hk = _codes(1, 50, 2, 16, torch.bfloat16), _codes(1, 50, 2, 16, torch.bfloat16)
    v = torch.randn(1, 50, 2, 8, dtype=torch.bfloat16)
    ref, _ = hash_attn(hq.double(), hk.double(), v.double(), causal=True, backend="naive")
    out, _ = hash_attn(hq, hk, v, causal=True)
    assert out.dtype == torch.bfloat16
    rel = (out.double() - ref).norm() / ref.norm()
    assert rel < 1e-2


def test_similarity_labels_mark_topk_and_bottomk_per_row():
    scores = torch.randn(2, 3, 30, 30)
    labels = similarity_labels(scores, topk=4)
    assert torch.all((labels == 1).sum(-1) == 4) and torch.all((labels == -1).sum(-1) == 4)
    top = scores.topk(4, dim=-1).indices
    assert torch.all(labels.gather(-1, top) == 1)
    bottom = (-scores).topk(4, dim=-1).indices
    assert torch.all(labels.gather(-1, bottom) == -1)


def test_causal_labels_never_point_to_the_future():
    labels = similarity_labels(torch.randn(1, 2, 25, 25), topk=5, causal=True)
    assert torch.all(labels.triu(1) == 0)
    assert torch.all((labels[..., 12, :] == 1).sum(-1) == 5)
    assert torch.all(labels[..., 0, :] == 0)  # one visible key: nothing to rank


def test_fitting_improves_agreement_over_random_hyperplanes():
    # separate query/key features from a clustered batch; labels from their own dot-product attention map
    B, H, n, C, m, b = 2, 2, 40, 16, 12, 8
    centers = torch.randn(6, C)
    xq = centers[torch.randint(6, (B, H, n))] + 1.2 * torch.randn(B, H, n, C)
    xk = centers[torch.randint(6, (B, H, n))] + 1.2 * torch.randn(B, H, n, C)
    xq, xk = torch.nn.functional.normalize(xq, dim=-1), torch.nn.functional.normalize(xk, dim=-1)
    labels = similarity_labels(torch.einsum("bhic,bhjc->bhij", xq, xk), topk=5)
    anchors = xq[0, :, torch.randperm(n)[:m]]  # [H,m,C]
    fq = rbf_features(xq.transpose(1, 2), anchors).transpose(1, 2)
    fk = rbf_features(xk.transpose(1, 2), anchors).transpose(1, 2)
    mvec = torch.cat([fq, fk], 2).mean(dim=(0, 2))  # [H,m]
    fq, fk = fq - mvec[None, :, None], fk - mvec[None, :, None]
    random_A = torch.randn(H, b, m)

    def agreement(A):
        hq = torch.where(torch.einsum("bhnm,hrm->bhnr", fq, A) >= 0, 1.0, -1.0)
        hk = torch.where(torch.einsum("bhnm,hrm->bhnr", fk, A) >= 0, 1.0, -1.0)
        return hash_agreement(hq, hk, labels)

    fitted_A, error = fit_hash_bits(fq, fk, labels, random_A, iterations=40, lr=0.2)
    assert error.shape == (2, H)
    assert agreement(fitted_A).mean() > agreement(random_A).mean() + 0.01


def test_agreement_is_one_for_codes_that_copy_the_ranking():
    scores = torch.randn(1, 1, 20, 20)
    labels = similarity_labels(scores, topk=3)
    hk = torch.randn(1, 1, 20, 32).sign()
    hq = (labels @ hk).sign()  # each query's code: the majority of its +1 keys against its −1 keys
    hq[hq == 0] = 1
    assert hash_agreement(hq, hk, labels).item() > 0.9
    assert abs(hash_agreement(torch.randn(1, 1, 20, 32).sign(), hk, labels).item() - 0.5) < 0.2


def test_energy_of_ecoformer_is_below_softmax_and_grows_linearly():
    soft = attention_energy(1024, 64, 2)
    eco = attention_energy(1024, 64, 2, kind="ecoformer")
    assert eco["energy_pj"] < soft["energy_pj"]
    eco2 = attention_energy(2048, 64, 2, kind="ecoformer")
    assert 1.9 < eco2["energy_pj"] / eco["energy_pj"] < 2.1
    soft2 = attention_energy(2048, 64, 2)
    assert soft2["energy_pj"] / soft["energy_pj"] > 3.5
    assert soft["energy_pj"] == pytest.approx(3.7 * soft["mul"] + 0.9 * soft["add"])


@pytest.mark.parametrize(
    "kwargs,err,match",
    [
        (dict(hk=torch.ones(2, 5, 3, 4)), ValueError, "hq and hk"),
        (dict(v=torch.ones(2, 6, 3, 4)), ValueError, "v must be"),
        (dict(normalizer="other"), ValueError, "normalizer"),
        (dict(backend="triton"), ValueError, "backend"),
        (dict(bias=3.0), ValueError, "bias"),
        (dict(hq=torch.ones(2, 5, 3, 8, dtype=torch.int32)), TypeError, "hq"),
        (dict(v="x"), TypeError, "v must be a torch.Tensor"),
        (dict(causal=1), TypeError, "causal"),
    ],
)
def test_hash_attn_rejects_bad_arguments(kwargs, err, match):
    args = dict(hq=torch.ones(2, 5, 3, 8), hk=torch.ones(2, 5, 3, 8), v=torch.ones(2, 5, 3, 4))
    args.update(kwargs)
    hq, hk, v = args.pop("hq"), args.pop("hk"), args.pop("v")
    with pytest.raises(err, match=match):
        hash_attn(hq, hk, v, **args)


def test_kernel_hash_rejects_mismatched_shapes():
    x, anchors, hyper, mvec = _hash_inputs()
    with pytest.raises(ValueError, match="anchors"):
        kernel_hash(x, anchors[:, :, :-1], hyper)
    with pytest.raises(ValueError, match="hyperplanes"):
        kernel_hash(x, anchors, hyper[:, :, :-1])
    with pytest.raises(ValueError, match="mvec"):
        kernel_hash(x, anchors, hyper, mvec[:-1])
    with pytest.raises(ValueError, match="x must be 4-D"):
        kernel_hash(x[0], anchors, hyper)
    with pytest.raises(ValueError, match="seq_len"):
        attention_energy(0, 64)
