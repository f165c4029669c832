"""Speech-quality metrics as FullSubNet reports them, and a parallel evaluator over many clips.

- ``WB_PESQ``: ITU-T P.862.2 wide-band PESQ (MOS-LQO) from the ``pesq`` package, ``pesq(16000, ref, est, "wb")``.
- ``NB_PESQ``: P.862 narrow-band with the P.862.1 MOS-LQO mapping, ``pesq(16000, ref, est, "nb")``. This is what
  FullSubNet's ``main`` branch reports; ``pypesq`` (raw P.862) gives different numbers, not comparable.
- ``STOI``: short-time objective intelligibility from ``pystoi`` with ``extended=False`` (0..1).
- ``SI_SDR``: scale-invariant SDR in dB, computed as FullSubNet's metric code does: **no mean removal**; the
  estimate is projected on the reference, ``α = <est, ref> / <ref, ref>``,
  ``SI-SDR = 10 log10(|α ref|² / |est - α ref|²)``. (Le Roux et al. remove the means first; for speech clips the
  difference is tiny.)

All functions take 1-D float arrays at 16 kHz of equal length. ``pesq`` and ``pystoi`` are optional
(``pip install 'linseq[speech]'``); asking for their metrics without them raises :class:`MissingMetricPackage`
(an ``ImportError`` with a one-line install hint). This module imports neither torch nor the model code, so the
evaluator's worker processes start fast.
"""

from __future__ import annotations

import importlib.util
import math
import multiprocessing
from concurrent.futures import Executor, ProcessPoolExecutor
from typing import Any, Callable, Iterable, Sequence

import numpy as np

SAMPLE_RATE = 16000
METRICS = ("WB_PESQ", "NB_PESQ", "STOI", "SI_SDR")
_PACKAGE_OF = {"WB_PESQ": "pesq", "NB_PESQ": "pesq", "STOI": "pystoi", "SI_SDR": None}


class MissingMetricPackage(ImportError):
    """A metric needs an optional package that is not installed."""


def has_package(name: str) -> bool:
    """Whether the optional package ``name`` can be imported."""
    return importlib.util.find_spec(name) is not None


def available_metrics(wanted: Iterable[str] = METRICS) -> list[str]:
    """The metrics of ``wanted`` whose package is installed (SI_SDR always is)."""
    return [m for m in wanted if _PACKAGE_OF[m] is None or has_package(_PACKAGE_OF[m])]


def _require(metric: str) -> None:
    pkg = _PACKAGE_OF[metric]
    if pkg is not None and not has_package(pkg):
        raise MissingMetricPackage(
            f"{metric} needs the '{pkg}' package, which is not installed: pip install '{pkg}' "
            f"(or pip install 'linseq[speech]')"
        )


def _pair(reference: Any, estimate: Any) -> tuple[np.ndarray, np.ndarray]:
    ref, est = np.asarray(reference, dtype=np.float64), np.asarray(estimate, dtype=np.float64)
    if ref.ndim != 1 or est.ndim != 1:
        raise ValueError(f"reference and estimate must be 1-D signals; got shapes {ref.shape} and {est.shape}")
    if ref.shape != est.shape:
        raise ValueError(f"reference and estimate must have the same length; got {ref.size} and {est.size}")
    if not (np.isfinite(ref).all() and np.isfinite(est).all()):
        raise ValueError("reference and estimate must be finite (got NaN or inf)")
    return ref, est


def si_sdr(reference: Any, estimate: Any) -> float:
    """Scale-invariant SDR in dB (no mean removal, as FullSubNet computes it). ``reference, estimate: [L]``."""
    ref, est = _pair(reference, estimate)
    ref_energy = float(np.dot(ref, ref))
    if ref_energy == 0.0:
        raise ValueError("reference must not be all zeros (SI-SDR is undefined)")
    projection = (float(np.dot(ref, est)) / ref_energy) * ref
    noise = est - projection
    num, den = float(np.dot(projection, projection)), float(np.dot(noise, noise))
    if den == 0.0:
        return math.inf
    if num == 0.0:
        return -math.inf
    return 10.0 * math.log10(num / den)


def stoi(reference: Any, estimate: Any, sample_rate: int = SAMPLE_RATE) -> float:
    """STOI (0..1), ``pystoi.stoi(ref, est, fs, extended=False)``."""
    _require("STOI")
    from pystoi import stoi as _stoi

    ref, est = _pair(reference, estimate)
    return float(_stoi(ref, est, sample_rate, extended=False))


def _pesq(reference: Any, estimate: Any, sample_rate: int, mode: str) -> float:
    _require("WB_PESQ" if mode == "wb" else "NB_PESQ")
    from pesq import PesqError, pesq

    if sample_rate not in (8000, 16000):
        raise ValueError(f"sample_rate must be 8000 or 16000 for PESQ; got {sample_rate}")
    ref, est = _pair(reference, estimate)
    try:
        return float(pesq(sample_rate, ref, est, mode))
    except PesqError:  # e.g. no utterances detected in a silent reference
        return float("nan")


def wb_pesq(reference: Any, estimate: Any, sample_rate: int = SAMPLE_RATE) -> float:
    """Wide-band PESQ (P.862.2), MOS-LQO about 1.0..4.64. NaN when PESQ finds no utterance."""
    return _pesq(reference, estimate, sample_rate, "wb")


def nb_pesq(reference: Any, estimate: Any, sample_rate: int = SAMPLE_RATE) -> float:
    """Narrow-band PESQ with the P.862.1 MOS-LQO mapping, about 1.0..4.55. NaN when PESQ finds no utterance."""
    return _pesq(reference, estimate, sample_rate, "nb")


_FUNCS: dict[str, Callable[..., float]] = {"WB_PESQ": wb_pesq, "NB_PESQ": nb_pesq, "STOI": stoi, "SI_SDR": si_sdr}


def compute_metrics(
    reference: Any, estimate: Any, metrics: Sequence[str] = METRICS, sample_rate: int = SAMPLE_RATE
) -> dict[str, float]:
    """``{metric: value}`` for one clip. Raises :class:`MissingMetricPackage` for a metric whose package is absent."""
    unknown = [m for m in metrics if m not in _FUNCS]
    if unknown:
        raise ValueError(f"metrics must be among {METRICS}; got {unknown}")
    for m in metrics:
        _require(m)
    out = {}
    for m in metrics:
        out[m] = _FUNCS[m](reference, estimate) if m == "SI_SDR" else _FUNCS[m](reference, estimate, sample_rate)
    return out


def selection_score(values: dict[str, float]) -> tuple[float, str]:
    """FullSubNet's model-selection score ``(STOI + (WB_PESQ + 0.5) / 5) / 2`` when both are present.

    Without PESQ: ``(STOI + (SI_SDR + 10) / 40) / 2``; with SI-SDR only: ``(SI_SDR + 10) / 40``. Returns
    ``(score, definition)``; higher is better, and the definition is stored next to the score.
    """
    if "WB_PESQ" in values and "STOI" in values and np.isfinite(values["WB_PESQ"]):
        return (values["STOI"] + (values["WB_PESQ"] + 0.5) / 5) / 2, "(STOI + (WB_PESQ + 0.5) / 5) / 2"
    if "STOI" in values:
        return (values["STOI"] + (values["SI_SDR"] + 10) / 40) / 2, "(STOI + (SI_SDR + 10) / 40) / 2"
    return (values["SI_SDR"] + 10) / 40, "(SI_SDR + 10) / 40"


def _one(args: tuple[np.ndarray, np.ndarray, tuple[str, ...], int]) -> dict[str, float]:
    ref, est, metrics, sr = args
    return compute_metrics(ref, est, metrics, sr)


def evaluate_pairs(
    pairs: Iterable[tuple[Any, Any]], metrics: Sequence[str] = METRICS, sample_rate: int = SAMPLE_RATE,
    workers: int = 1, progress: bool = False, desc: str = "metrics", total: int | None = None,
    pool: Executor | None = None,
) -> list[dict[str, float]]:
    """Metrics of many ``(reference, estimate)`` clips, in input order.

    ``workers > 1`` uses a pool of spawned processes (spawn, not fork: forking a process whose torch thread pools
    run can deadlock), or the given ``pool``. ``progress`` shows a tqdm bar.
    """
    metrics = tuple(metrics)
    for m in metrics:
        if m not in _FUNCS:
            raise ValueError(f"metrics must be among {METRICS}; got {m!r}")
        _require(m)
    jobs = ((np.asarray(r, np.float64), np.asarray(e, np.float64), metrics, sample_rate) for r, e in pairs)
    from tqdm.auto import tqdm

    bar = tqdm(total=total, desc=desc, disable=not progress, unit="clip", leave=False)
    results: list[dict[str, float]] = []
    try:
        if pool is not None:
            for r in pool.map(_one, jobs, chunksize=1):
                results.append(r)
                bar.update()
        elif workers <= 1:
            for job in jobs:
                results.append(_one(job))
                bar.update()
        else:
            with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as own:
                for r in own.map(_one, jobs, chunksize=1):
                    results.append(r)
                    bar.update()
    finally:
        bar.close()
    return results


def mean_metrics(rows: Sequence[dict[str, float]]) -> dict[str, float]:
    """Mean of each metric over clips, ignoring NaN (PESQ on a clip without speech); ``"n"`` counts the clips."""
    out: dict[str, float] = {}
    for m in METRICS:
        vals = [r[m] for r in rows if m in r and np.isfinite(r[m])]
        if vals:
            out[m] = float(np.mean(vals))
    out["n"] = len(rows)
    return out
