"""Self-supervised fitting of the hash (KSH, bit by bit) and the agreement measure used to judge a hash.

Labels come from the model's own attention map: for each query, its ``topk`` most similar keys get +1, its
``topk`` least similar keys −1, every other pair 0 (shared/research/ecoformer_flora.md §1.3). The b hyperplanes
are fitted greedily: residual ``R_0 = b·S``; for bit r, minimise ``−(1/(n·b)) · y_qᵀ R_{r−1} y_k`` over the
hyperplane ``a`` with ``y = tanh(K̄a / 2)`` (= ``2σ(K̄a) − 1``, the reference's relaxation of sign) by Nesterov SGD,
keep the new ``a`` only if the *discrete* loss improves, then ``R_r = R_{r−1} − y_q y_kᵀ`` with the discrete codes.
"""

from __future__ import annotations

import torch


def similarity_labels(scores: torch.Tensor, topk: int, causal: bool = False) -> torch.Tensor:
    """Per-query labels from an attention score map.

    scores: ``[B, H, n, n]`` (query rows, key columns; any monotone form of the attention map, e.g. logits).
    Returns ``[B, H, n, n]`` float32 in {−1, 0, +1}: per row, the ``k`` highest-scoring allowed keys +1 and the ``k``
    lowest −1, with ``k = min(topk, allowed // 2)``; when ``causal`` only keys ``j <= i`` are allowed.
    """
    B, H, n, _ = scores.shape
    device = scores.device
    s = scores.float()
    if causal:
        allowed = torch.ones(n, n, dtype=torch.bool, device=device).tril()
        count = torch.arange(1, n + 1, device=device)
    else:
        allowed = torch.ones(n, n, dtype=torch.bool, device=device)
        count = torch.full((n,), n, device=device)
    k_row = torch.clamp(count // 2, max=topk)[:, None]  # [n,1]
    ranks = torch.arange(n, device=device)[None, :]  # [1,n]
    top_order = s.masked_fill(~allowed, float("-inf")).argsort(dim=-1, descending=True)
    bottom_order = s.masked_fill(~allowed, float("inf")).argsort(dim=-1)
    labels = torch.zeros(B, H, n, n, dtype=torch.float32, device=device)
    labels.scatter_(-1, top_order, (ranks < k_row).float().expand(B, H, n, n).contiguous())
    neg = torch.zeros_like(labels).scatter_(-1, bottom_order, (ranks < k_row).float().expand(B, H, n, n).contiguous())
    return labels - neg


def _ksh_loss(yq: torch.Tensor, yk: torch.Tensor, residual: torch.Tensor, nbits: int) -> torch.Tensor:
    """``−(1/(n·b)) y_qᵀ R y_k`` per head, averaged over the batch: yq, yk ``[B,H,n]``, residual ``[B,H,n,n]`` → ``[H]``."""
    n = yq.shape[-1]
    return -(torch.einsum("bhi,bhij,bhj->bh", yq, residual, yk) / (n * nbits)).mean(0)


def fit_hash_bits(
    feats_q: torch.Tensor,
    feats_k: torch.Tensor,
    labels: torch.Tensor,
    hyperplanes: torch.Tensor,
    *,
    iterations: int = 100,
    lr: float = 5e-4,
    momentum: float = 0.9,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Fit the hyperplanes bit by bit (KSH without the eigen initialisation, as the EcoFormer code does).

    feats_q, feats_k: centred kernel features ``[B, H, n, m]`` of queries and keys (the same tensor when q and k are
    shared); labels: ``[B, H, n, n]`` in {−1,0,1} (:func:`similarity_labels`); hyperplanes: ``[H, b, m]``, the start
    point (random normal at the first fit). Defaults (100 Nesterov-SGD steps per bit, lr 5e-4, momentum 0.9) are
    the reference code's. One difference: the accept-if-the-discrete-loss-improves test is made per head (the
    reference makes it once for all heads together).

    Returns ``(hyperplanes [H,b,m] float32, error [2, H])``: per head, before and after fitting, the KSH objective
    ``‖h_q h_kᵀ − b·S‖²_F / (n² b²)`` (lower is better; the greedy steps need not lower it).
    """
    nbits = hyperplanes.shape[1]
    return _fit_hash_bits(feats_q, feats_k, labels, hyperplanes, iterations, lr, momentum)


@torch.no_grad()
def _fit_hash_bits(feats_q, feats_k, labels, hyperplanes, iterations, lr, momentum):
    nbits = hyperplanes.shape[1]
    Kq = feats_q.detach().float()
    Kk = feats_k.detach().float()
    same = feats_q is feats_k
    A = hyperplanes.detach().float().clone()
    residual = labels.detach().float() * nbits
    losses = [_full_loss(Kq, Kk, A, labels, nbits, same)]

    def codes(a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        yq = torch.where(torch.einsum("bhnm,hm->bhn", Kq, a) >= 0, 1.0, -1.0)
        yk = yq if same else torch.where(torch.einsum("bhnm,hm->bhn", Kk, a) >= 0, 1.0, -1.0)
        return yq, yk
    B, H = Kq.shape[:2]
    n = Kq.shape[2]
    # the reference's loss is a mean over batch and heads: its learning rate is tuned to that scale
    c = 1.0 / (B * H * n * nbits)
    for r in range(nbits):
        a_old = A[:, r].clone()
        a = a_old.clone()
        buf = torch.zeros_like(a)
        for step in range(iterations):
            # relaxed codes y = 2σ(K̄a) − 1 = tanh(K̄a / 2); gradient of −c·y_qᵀ R y_k written out (no autograd)
            yq = torch.tanh(torch.einsum("bhnm,hm->bhn", Kq, a) / 2)
            yk = yq if same else torch.tanh(torch.einsum("bhnm,hm->bhn", Kk, a) / 2)
            g_yq = -c * (residual @ yk[..., None])[..., 0]  # [B,H,n]
            g_yk = -c * (yq[..., None, :] @ residual)[..., 0, :]
            grad = torch.einsum("bhn,bhnm->hm", g_yq * (1 - yq * yq) / 2, Kq)
            grad = grad + torch.einsum("bhn,bhnm->hm", g_yk * (1 - yk * yk) / 2, Kk)
            buf = grad if step == 0 else momentum * buf + grad  # SGD with Nesterov momentum, as torch.optim.SGD
            a = a - lr * (grad + momentum * buf)
        if not torch.isfinite(a).all():
            raise FloatingPointError(f"hash fitting produced a non-finite hyperplane at bit {r}")
        yq_old, yk_old = codes(a_old)
        yq_new, yk_new = codes(a)
        better = _ksh_loss(yq_new, yk_new, residual, nbits) < _ksh_loss(yq_old, yk_old, residual, nbits)  # [H]
        A[:, r] = torch.where(better[:, None], a, a_old)
        pick = better[None, :, None]
        yq = torch.where(pick, yq_new, yq_old)
        yk = torch.where(pick, yk_new, yk_old)
        residual = residual - yq[..., :, None] * yk[..., None, :]
    losses.append(_full_loss(Kq, Kk, A, labels, nbits, same))
    return A, torch.stack(losses)


def _full_loss(Kq, Kk, A, labels, nbits, same) -> torch.Tensor:
    """The KSH objective ``‖h_q h_kᵀ − b·S‖²_F / (n² b²)`` per head, averaged over the batch: ``[H]``."""
    hq = torch.where(torch.einsum("bhnm,hrm->bhnr", Kq, A) >= 0, 1.0, -1.0)
    hk = hq if same else torch.where(torch.einsum("bhnm,hrm->bhnr", Kk, A) >= 0, 1.0, -1.0)
    gram = torch.einsum("bhir,bhjr->bhij", hq, hk)
    return ((gram - nbits * labels) ** 2).mean(dim=(0, 2, 3)) / nbits**2


def hash_agreement(hq: torch.Tensor, hk: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """How well code similarity ranks keys like the attention map does, per head: ``[H]`` in [0, 1].

    hq: ``[B,H,n,b]``, hk: ``[B,H,n,b]`` codes; labels: ``[B,H,n,n]`` from :func:`similarity_labels`. For every
    query and every pair (one of its +1 keys, one of its −1 keys), score 1 when the +1 key has the larger code
    similarity ``h_q·h_k``, 0.5 on a tie, 0 otherwise (a per-row AUC); averaged over all such pairs. A random hash
    of unrelated codes gives 0.5.
    """
    sim = torch.einsum("bhir,bhjr->bhij", hq.float(), hk.float())
    k = int((labels == 1).sum(-1).max().item())
    if k == 0:
        raise ValueError("labels has no +1 entries; cannot measure agreement")
    pos_val, pos_idx = labels.topk(k, dim=-1)
    neg_val, neg_idx = (-labels).topk(k, dim=-1)
    s_pos = sim.gather(-1, pos_idx)  # [B,H,n,k]
    s_neg = sim.gather(-1, neg_idx)
    ok = (pos_val == 1)[..., :, None] & (neg_val == 1)[..., None, :]  # [B,H,n,k,k]
    cmp = (s_pos[..., :, None] > s_neg[..., None, :]).float() + 0.5 * (s_pos[..., :, None] == s_neg[..., None, :]).float()
    num = (cmp * ok).sum(dim=(0, 2, 3, 4))
    den = ok.sum(dim=(0, 2, 3, 4)).clamp_min(1)
    return num / den
