"""Argument checks for :func:`linseq.ops.lightning_attn`, run once before any kernel launch."""

from __future__ import annotations

import math
import weakref
from dataclasses import dataclass

import torch

BACKENDS = ("auto", "triton", "chunk", "recurrent", "naive")
INPUT_DTYPES = (torch.float32, torch.bfloat16, torch.float16)
# float64 is accepted by the PyTorch backends so that they can serve as references.
REFERENCE_DTYPES = INPUT_DTYPES + (torch.float64,)
TRITON_MAX_HEAD_DIM = 256


@dataclass(frozen=True)
class LightningShapes:
    batch: int
    seq_len: int
    heads: int
    key_dim: int
    value_dim: int
    num_states: int  # B, or the number of packed sequences when cu_seqlens is given


def _shape(t: torch.Tensor) -> tuple[int, ...]:
    return tuple(t.shape)


def _require_tensor(name: str, value: object) -> torch.Tensor:
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor; got {type(value).__name__}")
    return value


def triton_usable(device: torch.device) -> bool:
    """True when the Triton backend can run on ``device`` (CUDA, or any device under TRITON_INTERPRET=1)."""
    import os

    try:
        import triton  # noqa: F401
    except ImportError:
        return False
    if device.type == "cuda":
        return True
    return os.environ.get("TRITON_INTERPRET", "0") == "1" and device.type == "cpu"


def check_lightning_args(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    log_decay: torch.Tensor | None,
    scale: float | None,
    initial_state: torch.Tensor | None,
    cu_seqlens: torch.Tensor | None,
    backend: str,
) -> LightningShapes:
    """Validate every argument; raise ``ValueError``/``TypeError`` naming the argument, what it got and what
    was expected. Returns the shapes."""
    for name, t in (("q", q), ("k", k), ("v", v)):
        _require_tensor(name, t)
        if t.ndim != 4:
            raise ValueError(f"{name} must be 4-D [B,T,H,D]; got {t.ndim}-D tensor of shape {_shape(t)}")
    if q.shape != k.shape:
        raise ValueError(f"q and k must have the same shape [B,T,H,K]; got q {_shape(q)} and k {_shape(k)}")
    if v.shape[:3] != q.shape[:3]:
        raise ValueError(
            f"v must be [B,T,H,V] with the B, T, H of q; got q {_shape(q)} and v {_shape(v)}"
        )
    B, T, H, K = q.shape
    V = v.shape[-1]
    if T < 1 or B < 1 or H < 1 or K < 1 or V < 1:
        raise ValueError(f"q and v must have non-empty dimensions; got q {_shape(q)} and v {_shape(v)}")

    if not isinstance(backend, str) or backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}; got {backend!r}")

    allowed = INPUT_DTYPES if backend in ("auto", "triton") else REFERENCE_DTYPES
    if q.dtype not in allowed:
        names = ", ".join(str(d).replace("torch.", "") for d in allowed)
        raise TypeError(f"q must have dtype in ({names}) for backend={backend!r}; got {q.dtype}")
    if k.dtype != q.dtype or v.dtype != q.dtype:
        raise TypeError(f"q, k and v must share one dtype; got q {q.dtype}, k {k.dtype}, v {v.dtype}")
    if k.device != q.device or v.device != q.device:
        raise ValueError(f"q, k and v must be on one device; got q {q.device}, k {k.device}, v {v.device}")

    if scale is not None:
        if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not math.isfinite(scale):
            raise TypeError(f"scale must be a finite float or None; got {scale!r}")

    num_states = B
    if cu_seqlens is not None:
        num_states = _check_cu_seqlens(cu_seqlens, B, T, q.device)

    if log_decay is not None:
        _check_log_decay(log_decay, B, T, H, q.device)

    if initial_state is not None:
        _require_tensor("initial_state", initial_state)
        expected = (num_states, H, K, V)
        if _shape(initial_state) != expected:
            what = "number of sequences in cu_seqlens" if cu_seqlens is not None else "batch size"
            raise ValueError(
                f"initial_state must have shape [N,H,K,V] = {list(expected)} (N = {what}); "
                f"got {_shape(initial_state)}"
            )
        if not initial_state.is_floating_point():
            raise TypeError(f"initial_state must be a floating-point tensor; got {initial_state.dtype}")
        if initial_state.device != q.device:
            raise ValueError(f"initial_state must be on {q.device} like q; got {initial_state.device}")

    if backend == "triton":
        if not triton_usable(q.device):
            raise ValueError(
                f"backend='triton' needs CUDA tensors (or CPU tensors with TRITON_INTERPRET=1) and triton "
                f"installed; got tensors on {q.device}"
            )
        if K > TRITON_MAX_HEAD_DIM or V > TRITON_MAX_HEAD_DIM:
            raise ValueError(
                f"backend='triton' supports head dims up to {TRITON_MAX_HEAD_DIM}; got K={K}, V={V} "
                f"(use backend='chunk')"
            )
    return LightningShapes(B, T, H, K, V, num_states)


def _check_log_decay(log_decay: torch.Tensor, B: int, T: int, H: int, device: torch.device) -> None:
    _require_tensor("log_decay", log_decay)
    if _shape(log_decay) not in ((H,), (B, T, H)):
        raise ValueError(
            f"log_decay must have shape [H] = [{H}] (per head) or [B,T,H] = [{B}, {T}, {H}] (per token); "
            f"got {_shape(log_decay)}"
        )
    if not log_decay.is_floating_point():
        raise TypeError(f"log_decay must be a floating-point tensor; got {log_decay.dtype}")
    if log_decay.device != device:
        raise ValueError(f"log_decay must be on {device} like q; got {log_decay.device}")
    if _known_good(log_decay):
        return
    with torch.no_grad():
        bad = torch.stack([(log_decay > 0).any(), torch.isnan(log_decay).any()]).tolist()
    if bad[1]:
        raise ValueError("log_decay contains NaN")
    if bad[0]:
        raise ValueError(
            f"log_decay must be <= 0 (decay λ = exp(log_decay) in (0, 1]); got max {log_decay.max().item():.4g}"
        )
    _remember_good(log_decay)


# Reading log_decay's values back costs a GPU synchronisation per call: in decoding, one per layer per token. A
# tensor that passed keeps passing until it is modified, which bumps its version counter, so a model's fixed decay
# buffer is read once. (Writes that bypass the counter, e.g. through ``.data``, are not seen.) Entries go when their
# tensor is freed.
_GOOD: dict[int, tuple[weakref.ref, int]] = {}


def _version(t: torch.Tensor) -> int | None:
    try:
        return t._version
    except RuntimeError:  # inference tensors have no version counter: never cached
        return None


def _known_good(t: torch.Tensor) -> bool:
    entry = _GOOD.get(id(t))  # only tensors with a version counter enter, so a None version never matches
    return entry is not None and entry[0]() is t and entry[1] == _version(t)


def _remember_good(t: torch.Tensor) -> None:
    version = _version(t)
    if version is None or t.requires_grad:  # a fresh tensor every call (a learned decay): nothing to gain
        return
    key = id(t)
    _GOOD[key] = (weakref.ref(t, lambda _, key=key: _GOOD.pop(key, None)), version)


def _check_cu_seqlens(cu_seqlens: torch.Tensor, B: int, T: int, device: torch.device) -> int:
    _require_tensor("cu_seqlens", cu_seqlens)
    if cu_seqlens.dtype not in (torch.int32, torch.int64):
        raise TypeError(f"cu_seqlens must be int32 or int64; got {cu_seqlens.dtype}")
    if cu_seqlens.ndim != 1 or cu_seqlens.numel() < 2:
        raise ValueError(f"cu_seqlens must be 1-D with at least 2 offsets; got shape {_shape(cu_seqlens)}")
    if B != 1:
        raise ValueError(f"with cu_seqlens the packed sequences go along T and the batch size must be 1; got B={B}")
    if cu_seqlens.device != device:
        raise ValueError(f"cu_seqlens must be on {device} like q; got {cu_seqlens.device}")
    offsets = cu_seqlens.tolist()
    if offsets[0] != 0 or offsets[-1] != T:
        raise ValueError(f"cu_seqlens must start at 0 and end at T={T}; got {offsets[0]} ... {offsets[-1]}")
    if any(b < a for a, b in zip(offsets[:-1], offsets[1:])):
        raise ValueError(f"cu_seqlens must be non-decreasing; got {offsets}")
    return len(offsets) - 1
