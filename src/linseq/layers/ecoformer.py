"""EcoAttention: EcoFormer's binary-code attention as a drop-in multi-head attention layer, ``[B, T, D] -> [B, T, D]``.

Two modes share the same weights, as in EcoFormer's training schedule (full attention, fit the hash, fine-tune):

- ``mode="softmax"``: plain softmax attention ``softmax(q·k/√d) v`` (the "full attention" phase);
- ``mode="hash"``: queries and keys are L2-normalised, hashed to b-bit codes by the kernelized hash, and attended
  in linear time by :func:`linseq.ops.hashing.hash_attn`.

The hash (anchors, centring vector, hyperplanes: buffers, saved with the state dict) is fitted from a batch by
:meth:`EcoAttention.fit_hash`, or for every layer of a model at once by :func:`fit_model_hashes`. A layer in hash
mode that has never been fitted fits itself on its first forward pass, like the reference code.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from linseq.layers.softmax import KVCache, causal_sdpa
from linseq.ops.hashing import (
    NORMALIZERS,
    causal_rbf_features,
    fit_hash_bits,
    hash_codes,
    hash_agreement,
    hash_attn,
    kernel_hash,
    rbf_features,
    similarity_labels,
)

__all__ = ["EcoAttention", "EcoCache", "fit_model_hashes", "set_attention_mode", "eco_layers"]

MODES = ("softmax", "hash")


class EcoCache:
    """What a causal :class:`EcoAttention` carries from earlier tokens of the same sequences.

    hash mode: ``state [B, H, b+1, head_dim+1]`` float32 prefix sums of :func:`linseq.ops.hashing.hash_attn` and
    ``bandwidth`` / ``bandwidth_k`` ``[B, H, 2]`` running RBF bandwidths of queries / keys (``bandwidth_k`` only with
    separate q and k projections): constant size. softmax mode: a growing :class:`KVCache`.
    The first call fixes the mode; continuing in the other mode is an error (start a new cache).
    """

    def __init__(self) -> None:
        self.mode: str | None = None
        self.length = 0
        self.state: torch.Tensor | None = None
        self.bandwidth: torch.Tensor | None = None
        self.bandwidth_k: torch.Tensor | None = None
        self.kv = KVCache()

    def __repr__(self) -> str:
        return f"EcoCache(mode={self.mode!r}, length={self.length}, bytes={self.nbytes()})"

    def _tensors(self) -> list[torch.Tensor]:
        return [t for t in (self.state, self.bandwidth, self.bandwidth_k) if t is not None]

    @property
    def batch_size(self) -> int | None:
        """Rows held (None before the first call)."""
        tensors = self._tensors()
        return tensors[0].shape[0] if tensors else self.kv.batch_size

    def nbytes(self) -> int:
        """Bytes held (hash-mode state, or allocated key/value capacity in softmax mode)."""
        return sum(t.numel() * t.element_size() for t in self._tensors()) + self.kv.nbytes()

    def select_batch(self, index: torch.Tensor) -> None:
        """Keep (or reorder) the batch rows ``index`` (beam search)."""
        self.state, self.bandwidth, self.bandwidth_k = (
            None if t is None else t[index] for t in (self.state, self.bandwidth, self.bandwidth_k)
        )
        self.kv.select_batch(index)


class EcoAttention(nn.Module):
    """Multi-head attention whose hash mode is EcoFormer's binary-code attention.

    Args:
        dim: model width D (input and output ``[B, T, D]``).
        num_heads: H; ``head_dim = dim // num_heads`` unless given.
        nbits: b, bits per code (16 in every EcoFormer config).
        num_anchors: m, RBF anchors per head (25 in every EcoFormer config).
        topk: keys labelled most/least similar per query when fitting (10 in the EcoFormer configs).
        shared_qk: one projection for queries and keys (as EcoFormer's ``to_qk``), or separate ``q_proj``/``k_proj``.
        causal: keys ``j <= i`` only (for a language model); the fitting labels and the RBF bandwidth (a running
            mean) are then causal too, so no output depends on a later token.
        normalizer: ``"consistent"`` or ``"reference"`` (see :func:`linseq.ops.hashing.hash_attn`).
        mode: ``"hash"`` or ``"softmax"``.
        fit_iterations, fit_lr: per-bit SGD steps and learning rate of the fitting (reference: 100, 5e-4).
        fit_max_tokens: tokens per sequence sampled for fitting (the labels are ``[B,H,n,n]``).
        bias: add biases in the projections.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        *,
        head_dim: int | None = None,
        nbits: int = 16,
        num_anchors: int = 25,
        topk: int = 10,
        shared_qk: bool = True,
        causal: bool = False,
        normalizer: str = "consistent",
        mode: str = "hash",
        fit_iterations: int = 100,
        fit_lr: float = 5e-4,
        fit_max_tokens: int = 256,
        bias: bool = True,
    ) -> None:
        super().__init__()
        for name, val in (("dim", dim), ("num_heads", num_heads), ("nbits", nbits), ("num_anchors", num_anchors),
                          ("topk", topk), ("fit_max_tokens", fit_max_tokens)):
            if isinstance(val, bool) or not isinstance(val, int) or val < 1:
                raise ValueError(f"{name} must be a positive int; got {val!r}")
        if head_dim is None:
            if dim % num_heads:
                raise ValueError(f"dim must be divisible by num_heads when head_dim is not given; got {dim} and {num_heads}")
            head_dim = dim // num_heads
        if normalizer not in NORMALIZERS:
            raise ValueError(f"normalizer must be one of {NORMALIZERS}; got {normalizer!r}")
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}; got {mode!r}")
        if not isinstance(fit_iterations, int) or fit_iterations < 0:
            raise ValueError(f"fit_iterations must be an int >= 0; got {fit_iterations!r}")
        self.dim, self.num_heads, self.head_dim = dim, num_heads, head_dim
        self.nbits, self.num_anchors, self.topk = nbits, num_anchors, topk
        self.shared_qk, self.causal, self.normalizer, self.mode = shared_qk, causal, normalizer, mode
        self.fit_iterations, self.fit_lr, self.fit_max_tokens = fit_iterations, fit_lr, fit_max_tokens
        inner = num_heads * head_dim
        self.q_proj = nn.Linear(dim, inner, bias=bias)
        self.k_proj = None if shared_qk else nn.Linear(dim, inner, bias=bias)
        self.v_proj = nn.Linear(dim, inner, bias=bias)
        self.o_proj = nn.Linear(inner, dim, bias=bias)
        self.register_buffer("hyperplanes", torch.randn(num_heads, nbits, num_anchors))
        self.register_buffer("anchors", torch.zeros(num_heads, num_anchors, head_dim))
        self.register_buffer("mvec", torch.zeros(num_heads, num_anchors))
        self.register_buffer("fitted", torch.zeros((), dtype=torch.bool))
        self._fit_next_forward = False
        self.last_fit: dict | None = None

    def extra_repr(self) -> str:
        return (f"dim={self.dim}, heads={self.num_heads}, head_dim={self.head_dim}, nbits={self.nbits}, "
                f"anchors={self.num_anchors}, shared_qk={self.shared_qk}, causal={self.causal}, "
                f"normalizer={self.normalizer!r}, mode={self.mode!r}")

    # projections -------------------------------------------------------------------------------------------
    def project(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """q, k, v of ``x [B,T,D]``, each ``[B, T, H, head_dim]`` (k is q when shared)."""
        B, T, _ = x.shape
        q = self.q_proj(x).view(B, T, self.num_heads, self.head_dim)
        k = q if self.k_proj is None else self.k_proj(x).view(B, T, self.num_heads, self.head_dim)
        v = self.v_proj(x).view(B, T, self.num_heads, self.head_dim)
        return q, k, v

    def codes(self, q: torch.Tensor, k: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """±1 codes ``[B,T,H,b]`` of the L2-normalised queries and keys."""
        c = self.causal
        hq = kernel_hash(F.normalize(q, dim=-1), self.anchors, self.hyperplanes, self.mvec, causal=c)
        hk = hq if self.k_proj is None else kernel_hash(F.normalize(k, dim=-1), self.anchors, self.hyperplanes,
                                                         self.mvec, causal=c)
        return hq, hk

    def forward(self, x: torch.Tensor, cache: EcoCache | None = None) -> torch.Tensor:
        """x ``[B, T, D]`` → ``[B, T, D]``. With ``cache`` (causal layers only) x continues the tokens the cache has
        seen, and the cache absorbs x: a sequence fed in pieces gives the same output as one call."""
        if x.ndim != 3 or x.shape[-1] != self.dim:
            raise ValueError(f"x must be [B,T,D] with D={self.dim}; got shape {tuple(x.shape)}")
        if cache is not None:
            self._check_cache(cache, x.shape[0])
        q, k, v = self.project(x)
        if self.mode == "hash" and (self._fit_next_forward or not bool(self.fitted)):
            self._fit_next_forward = False
            self.last_fit = self._fit_from_qk(q.detach(), k.detach())
        if self.mode == "softmax":
            o = self._softmax(q, k, v, cache)
        elif cache is None:
            hq, hk = self.codes(q, k)
            o, _ = hash_attn(hq, hk, v, causal=self.causal, normalizer=self.normalizer)
        else:
            o = self._hash_cached(q, k, v, cache)
        if cache is not None:
            cache.mode = self.mode
            cache.length += x.shape[1]
        return self.o_proj(o.reshape(x.shape[0], x.shape[1], -1))

    def _check_cache(self, cache: EcoCache, batch: int) -> None:
        if not isinstance(cache, EcoCache):
            raise TypeError(f"cache must be an EcoCache; got {type(cache).__name__}")
        if not self.causal:
            raise ValueError("a cache continues a sequence token by token, which needs an EcoAttention with causal=True")
        if cache.mode is not None and cache.mode != self.mode:
            raise ValueError(
                f"this cache was filled in {cache.mode!r} mode and the layer is now in {self.mode!r} mode; "
                "start a new EcoCache after switching modes"
            )
        if cache.batch_size is not None and cache.batch_size != batch:
            raise ValueError(f"x has batch size {batch} but the cache holds {cache.batch_size} rows")

    def _softmax(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, cache: EcoCache | None) -> torch.Tensor:
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)  # [B,H,T,C]
        if cache is None:
            o = F.scaled_dot_product_attention(q, k, v, is_causal=self.causal)
        else:
            past = cache.kv.length
            k, v = cache.kv.append(k, v)
            o = causal_sdpa(q, k, v, past)
        return o.transpose(1, 2)

    def _hash_cached(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, cache: EcoCache) -> torch.Tensor:
        feats, cache.bandwidth = causal_rbf_features(F.normalize(q, dim=-1), self.anchors, self.mvec, cache.bandwidth)
        hq = hash_codes(feats, self.hyperplanes)
        if self.k_proj is None:
            hk = hq
        else:
            feats_k, cache.bandwidth_k = causal_rbf_features(
                F.normalize(k, dim=-1), self.anchors, self.mvec, cache.bandwidth_k
            )
            hk = hash_codes(feats_k, self.hyperplanes)
        o, cache.state = hash_attn(
            hq, hk, v, causal=True, normalizer=self.normalizer, initial_state=cache.state, output_final_state=True
        )
        return o

    # fitting -----------------------------------------------------------------------------------------------
    def attention_scores(self, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        """The layer's own softmax-attention logits ``q·k/√d``: ``[B, H, T, T]`` (labels come from these)."""
        return torch.einsum("bihd,bjhd->bhij", q.float(), k.float()) * self.head_dim**-0.5

    def fit_hash(self, x: torch.Tensor, *, iterations: int | None = None) -> dict:
        """Fit anchors, centring and hyperplanes from a batch ``x [B,T,D]`` (no gradient to the weights).

        ``iterations=0`` keeps the random hyperplanes (anchors and centring are still set from the batch): the
        "random hash" baseline. Returns a summary (per-head fitting error before/after, agreement before/after).
        """
        if x.ndim != 3 or x.shape[-1] != self.dim:
            raise ValueError(f"x must be [B,T,D] with D={self.dim}; got shape {tuple(x.shape)}")
        with torch.no_grad():
            q, k, _ = self.project(x)
        return self._fit_from_qk(q, k, iterations)

    def _sample_positions(self, T: int, device: torch.device) -> torch.Tensor:
        if T <= self.fit_max_tokens:
            return torch.arange(T, device=device)
        return torch.randperm(T, device=device)[: self.fit_max_tokens].sort().values

    def _fit_from_qk(self, q: torch.Tensor, k: torch.Tensor, iterations: int | None = None) -> dict:
        iterations = self.fit_iterations if iterations is None else iterations
        B, T, H, _ = q.shape
        q, k = q.detach().float(), k.detach().float()
        qn, kn = F.normalize(q, dim=-1), F.normalize(k, dim=-1)
        # anchors: m random tokens of the first sample (the reference's choice), from queries and keys alike
        pool = torch.cat([qn[0], kn[0]], dim=0) if self.k_proj is not None else qn[0]  # [T',H,C]
        pick = torch.randperm(pool.shape[0], device=q.device)
        if pool.shape[0] < self.num_anchors:
            pick = torch.randint(pool.shape[0], (self.num_anchors,), device=q.device)
        self.anchors.copy_(pool[pick[: self.num_anchors]].transpose(0, 1))  # [H,m,C]
        feats_q = rbf_features(qn, self.anchors, causal=self.causal)  # [B,T,H,m]
        feats_k = feats_q if self.k_proj is None else rbf_features(kn, self.anchors, causal=self.causal)
        self.mvec.copy_(torch.cat([feats_q, feats_k], 1).mean(dim=(0, 1)) if self.k_proj is not None
                        else feats_q.mean(dim=(0, 1)))
        pos = self._sample_positions(T, q.device)
        fq = (feats_q[:, pos] - self.mvec).transpose(1, 2)  # [B,H,n,m]
        fk = fq if self.k_proj is None else (feats_k[:, pos] - self.mvec).transpose(1, 2)
        labels = similarity_labels(self.attention_scores(q[:, pos], k[:, pos]), self.topk, self.causal)
        before = self._agreement(fq, fk, labels)
        A, err = fit_hash_bits(fq, fk, labels, self.hyperplanes, iterations=iterations, lr=self.fit_lr)
        self.hyperplanes.copy_(A)
        self.fitted.fill_(True)
        after = self._agreement(fq, fk, labels)
        return {"error_before": err[0].tolist(), "error_after": err[-1].tolist(),
                "agreement_random": before.tolist(), "agreement_fitted": after.tolist(), "iterations": iterations}

    def _agreement(self, fq: torch.Tensor, fk: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        hq = torch.where(torch.einsum("bhnm,hrm->bhnr", fq, self.hyperplanes) >= 0, 1.0, -1.0)
        hk = hq if fk is fq else torch.where(torch.einsum("bhnm,hrm->bhnr", fk, self.hyperplanes) >= 0, 1.0, -1.0)
        return hash_agreement(hq, hk, labels)

    def agreement(self, x: torch.Tensor) -> torch.Tensor:
        """Per-head agreement ``[H]`` (:func:`linseq.ops.hashing.hash_agreement`) of the current hash with this
        layer's softmax attention map on ``x [B,T,D]``."""
        with torch.no_grad():
            q, k, _ = self.project(x)
            pos = self._sample_positions(x.shape[1], x.device)
            hq, hk = self.codes(q[:, pos], k[:, pos])
            labels = similarity_labels(self.attention_scores(q[:, pos], k[:, pos]), self.topk, self.causal)
            return hash_agreement(hq.transpose(1, 2), hk.transpose(1, 2), labels)


def eco_layers(model: nn.Module) -> list[EcoAttention]:
    """Every :class:`EcoAttention` inside ``model``, in module order."""
    return [m for m in model.modules() if isinstance(m, EcoAttention)]


def set_attention_mode(model: nn.Module, mode: str) -> int:
    """Switch every EcoAttention of ``model`` to ``"softmax"`` or ``"hash"``; returns how many were switched."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}; got {mode!r}")
    layers = eco_layers(model)
    for layer in layers:
        layer.mode = mode
    return len(layers)


def fit_model_hashes(model: nn.Module, *inputs, iterations: int | None = None, **kwargs) -> list[dict]:
    """Fit the hash of every EcoAttention in ``model`` on one batch: each layer fits on the input it receives in
    ``model(*inputs, **kwargs)`` (run without gradient, layers in hash mode). ``iterations=0`` gives random
    hyperplanes. Returns one fitting summary per layer."""
    layers = eco_layers(model)
    if not layers:
        raise ValueError("model contains no EcoAttention layer to fit")
    saved = []
    for layer in layers:
        saved.append((layer.mode, layer.fit_iterations))
        layer.mode = "hash"
        layer._fit_next_forward = True
        if iterations is not None:
            layer.fit_iterations = iterations
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(*inputs, **kwargs)
    finally:
        model.train(was_training)
        for layer, (mode, iters) in zip(layers, saved):
            layer.fit_iterations = iters
            layer._fit_next_forward = False
    return [layer.last_fit for layer in layers]
