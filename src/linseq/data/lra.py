"""Offline Long-Range-Arena-style tasks: ListOps and Pathfinder, generated on the fly by their published procedures.

ListOps (Nangia & Bowman, 2018; the LRA version of Tay et al., 2021): nested prefix expressions over the digits
0-9 with the operators MAX, MIN, MED (median, rounded down) and SM (sum modulo 10); the label is the value (10
classes). Trees are drawn top-down: below the maximum depth a node is an operator with 2..max_args arguments with
probability 0.25, else a leaf digit; expressions outside [min_len, max_len] tokens are rejected (LRA: depth 10,
10 arguments, 500-2000 tokens).

Pathfinder (Linsley et al., 2018; LRA's 32×32 version): a grey-scale image with two marker dots and several curved,
dashed contours ("snakes" of short segments whose direction turns by at most a fixed angle per segment). Label 1
when the two markers sit at the two ends of the same contour, 0 when they sit on two different contours; both
classes have the same number of contours so ink amount does not give the label away. The image is read as a
sequence of H·W pixel tokens (1,024 for 32×32).
"""

from __future__ import annotations

import math

import numpy as np
import torch

__all__ = [
    "LISTOPS_VOCAB", "LISTOPS_PAD", "listops_expression", "listops_dataset", "evaluate_listops_tokens",
    "pathfinder_image", "pathfinder_dataset",
]

# token ids: 0 pad, 1..10 digits 0..9, then operators and the closing bracket
LISTOPS_PAD = 0
LISTOPS_OPS = ("[MAX", "[MIN", "[MED", "[SM")
LISTOPS_VOCAB = ("<pad>",) + tuple(str(d) for d in range(10)) + LISTOPS_OPS + ("]",)
_TOK = {t: i for i, t in enumerate(LISTOPS_VOCAB)}
_OP_P = 0.25  # LRA's VALUE_P: a node below the maximum depth is an operator with this probability


class _TooLong(Exception):
    pass


def _apply(op: str, args: list[int]) -> int:
    if op == "[MAX":
        return max(args)
    if op == "[MIN":
        return min(args)
    if op == "[MED":
        return int(np.median(args))  # LRA: int(np.median(...)), i.e. rounded down
    return sum(args) % 10


def _grow(rng: np.random.Generator, depth: int, max_depth: int, max_args: int, out: list[str], budget: int) -> int:
    """Append one subtree's tokens to ``out``; return its value. Raises _TooLong past ``budget`` tokens."""
    if len(out) > budget:
        raise _TooLong
    if depth >= max_depth or rng.random() >= _OP_P:
        d = int(rng.integers(10))
        out.append(str(d))
        return d
    op = LISTOPS_OPS[int(rng.integers(len(LISTOPS_OPS)))]
    out.append(op)
    n_args = int(rng.integers(2, max_args + 1))
    vals = [_grow(rng, depth + 1, max_depth, max_args, out, budget) for _ in range(n_args)]
    out.append("]")
    return _apply(op, vals)


def listops_expression(
    rng: np.random.Generator, *, min_len: int = 500, max_len: int = 2000, max_depth: int = 10, max_args: int = 10,
    max_tries: int = 100_000,
) -> tuple[list[str], int]:
    """One expression with ``min_len <= len(tokens) <= max_len``: ``(tokens, value)``."""
    if not (1 <= min_len <= max_len):
        raise ValueError(f"need 1 <= min_len <= max_len; got min_len={min_len}, max_len={max_len}")
    for _ in range(max_tries):
        out: list[str] = []
        try:
            value = _grow(rng, 1, max_depth, max_args, out, max_len)
        except _TooLong:
            continue
        if min_len <= len(out) <= max_len:
            return out, value
    raise RuntimeError(f"no ListOps expression with {min_len}..{max_len} tokens after {max_tries} tries")


def listops_dataset(
    n: int, *, min_len: int = 500, max_len: int = 2000, seq_len: int | None = None, seed: int = 0,
    max_depth: int = 10, max_args: int = 10,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` ListOps examples: tokens ``[n, seq_len]`` int64 (right-padded with 0; seq_len defaults to max_len) and
    labels ``[n]`` int64 in 0..9."""
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive int; got {n!r}")
    seq_len = max_len if seq_len is None else seq_len
    if seq_len < max_len:
        raise ValueError(f"seq_len must be >= max_len={max_len}; got {seq_len}")
    rng = np.random.default_rng(seed)
    x = np.zeros((n, seq_len), dtype=np.int64)
    y = np.zeros(n, dtype=np.int64)
    for i in range(n):
        toks, val = listops_expression(rng, min_len=min_len, max_len=max_len, max_depth=max_depth, max_args=max_args)
        x[i, : len(toks)] = [_TOK[t] for t in toks]
        y[i] = val
    return torch.from_numpy(x), torch.from_numpy(y)


def evaluate_listops_tokens(tokens: list[int] | torch.Tensor) -> int:
    """Value of a token-id sequence (padding ignored), computed with an explicit stack — independent of the
    generator's recursive evaluation, so tests can check one against the other."""
    ids = tokens.tolist() if isinstance(tokens, torch.Tensor) else list(tokens)
    stack: list[list] = []
    result = None
    for t in ids:
        if t == LISTOPS_PAD:
            continue
        name = LISTOPS_VOCAB[t]
        if name in LISTOPS_OPS:
            stack.append([name])
        elif name == "]":
            frame = stack.pop()
            op, args = frame[0], frame[1:]
            if op == "[MAX":
                v = max(args)
            elif op == "[MIN":
                v = min(args)
            elif op == "[MED":
                s = sorted(args)
                mid = len(s) // 2
                v = s[mid] if len(s) % 2 else (s[mid - 1] + s[mid]) // 2
            else:
                v = sum(args) % 10
            if stack:
                stack[-1].append(v)
            else:
                result = v
        else:
            v = int(name)
            if stack:
                stack[-1].append(v)
            else:
                result = v
    if result is None or stack:
        raise ValueError("tokens do not form one complete ListOps expression")
    return result


# ---- Pathfinder ---------------------------------------------------------------------------------------------------

def _snake(rng, size, n_seg, seg_len, gap, max_turn, start=None, angle=None):
    """Points of one dashed contour: list of dashes, each an array of (y, x) float points; plus its two ends."""
    if start is None:
        start = rng.uniform(3, size - 3, 2)
    angle = rng.uniform(0, 2 * math.pi) if angle is None else angle
    pos = np.array(start, dtype=float)
    dashes, ends = [], [pos.copy()]
    for _ in range(n_seg):
        d = np.array([math.sin(angle), math.cos(angle)])
        steps = np.linspace(0, seg_len, int(seg_len * 2) + 2)
        dashes.append(pos[None, :] + steps[:, None] * d[None, :])
        pos = pos + (seg_len + gap) * d
        angle += rng.uniform(-max_turn, max_turn)
    ends.append(pos - gap * np.array([math.sin(angle), math.cos(angle)]))
    return dashes, ends


def _raster(points: np.ndarray, size: int) -> np.ndarray:
    ij = np.rint(points).astype(int)
    keep = (ij[:, 0] >= 0) & (ij[:, 0] < size) & (ij[:, 1] >= 0) & (ij[:, 1] < size)
    mask = np.zeros((size, size), dtype=bool)
    mask[ij[keep, 0], ij[keep, 1]] = True
    return mask


def _place_snake(rng, size, occupied, n_seg, seg_len, gap, max_turn, tries=30):
    """A contour that stays inside the image and does not touch ``occupied`` (dilated by one pixel)."""
    grown = occupied.copy()
    grown[1:] |= occupied[:-1]; grown[:-1] |= occupied[1:]
    grown[:, 1:] |= grown[:, :-1].copy(); grown[:, :-1] |= grown[:, 1:].copy()
    for _ in range(tries):
        dashes, ends = _snake(rng, size, n_seg, seg_len, gap, max_turn)
        pts = np.concatenate(dashes)
        if pts.min() < 1 or pts.max() > size - 2:
            continue
        mask = _raster(pts, size)
        if not (mask & grown).any():
            return mask, ends
    return None


def pathfinder_image(
    rng: np.random.Generator, label: int, *, size: int = 32, n_seg: int = 6, seg_len: float = 2.0, gap: float = 1.5,
    max_turn: float = math.pi / 6, n_contours: int = 3, marker_radius: float = 1.0,
) -> np.ndarray:
    """One image ``[size, size]`` uint8 (0 background, 255 ink) of the given label (1 connected, 0 not)."""
    for _ in range(100):
        occupied = np.zeros((size, size), dtype=bool)
        snakes = []
        for _ in range(n_contours):
            placed = _place_snake(rng, size, occupied, n_seg, seg_len, gap, max_turn)
            if placed is None:
                break
            snakes.append(placed)
            occupied |= placed[0]
        if len(snakes) < max(n_contours, 2):
            continue
        if label == 1:
            markers = [snakes[0][1][0], snakes[0][1][1]]
        else:
            markers = [snakes[0][1][int(rng.integers(2))], snakes[1][1][int(rng.integers(2))]]
        img = occupied.astype(np.uint8) * 255
        yy, xx = np.mgrid[0:size, 0:size]
        for my, mx in markers:
            img[(yy - my) ** 2 + (xx - mx) ** 2 <= (marker_radius + 0.5) ** 2] = 255
        return img
    raise RuntimeError("could not place the Pathfinder contours; lower n_contours or n_seg")


def pathfinder_dataset(
    n: int, *, size: int = 32, seed: int = 0, **kwargs
) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` balanced Pathfinder images ``[n, size, size]`` uint8 and labels ``[n]`` int64 (alternating 0/1 before
    a shuffle). Keyword arguments go to :func:`pathfinder_image`."""
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive int; got {n!r}")
    if not isinstance(size, int) or size < 12:
        raise ValueError(f"size must be an int >= 12; got {size!r}")
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(n) % 2)
    imgs = np.stack([pathfinder_image(rng, int(lab), size=size, **kwargs) for lab in labels])
    return torch.from_numpy(imgs), torch.from_numpy(labels.astype(np.int64))
