"""Evaluate a system on a DNS-2020-shaped test set, and measure complexity and real-time factors.

A *system* is ``"noisy"`` (the unprocessed input), ``"baseline"`` (spectral gating, :mod:`.baseline`) or a
checkpoint folder. A test set folder holds ``no_reverb/`` and ``with_reverb/``, each with ``noisy/`` and ``clean/``
audio files of the same names (``linseq speech build-data`` writes one; for with_reverb the clean reference is
the reverberant speech, as in DNS-2020). Results: per-subset means of WB-PESQ, NB-PESQ, STOI and SI-SDR, written
as JSON (with per-clip values and run metadata) and as a Markdown table.

Real-time factor (RTF) = processing time / audio duration, for STFT + model + iSTFT of a 10 s signal:
offline on one CPU thread (``torch.set_num_threads(1)``), frame by frame (256-sample hops through
:class:`~linseq.models.speech.streaming.StreamingWaveEnhancer`, the real-time setting) on one CPU thread, and
offline on the GPU when there is one.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import statistics
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch

from linseq.experiments.speech_enhancement.metrics import METRICS, available_metrics, evaluate_pairs, mean_metrics
from linseq.io import run_metadata, save_json
from linseq.models.speech import FastFullSubNet, FullSubNet, SpeechMaskModel, count_macs, count_parameters
from linseq.models.speech.streaming import StreamingWaveEnhancer

SUBSETS = ("with_reverb", "no_reverb")
AUDIO_SUFFIXES = (".flac", ".wav", ".ogg")


def iter_test_set(test_dir: str | os.PathLike) -> Iterator[tuple[str, str, np.ndarray, np.ndarray]]:
    """Yield ``(name, subset, noisy [L], clean [L])`` float32 16 kHz clips of a test-set folder.

    A folder with ``manifest.json`` is read by :func:`linseq.data.speech.load_test_set`; any other folder by the
    layout ``<subset>/noisy/<name>`` + ``<subset>/clean/<name>`` (same file names), sorted by name."""
    test_dir = Path(test_dir)
    if not test_dir.is_dir():
        raise FileNotFoundError(f"no test set at {test_dir}: the folder does not exist (build one with "
                                "`linseq speech build-data`)")
    if (test_dir / "manifest.json").is_file():  # built by linseq.data.speech: its loader knows the naming
        from linseq.data.speech import load_test_set

        for name, subset, noisy, clean in load_test_set(test_dir):
            yield name, subset, np.asarray(noisy, np.float32), np.asarray(clean, np.float32)
        return
    import soundfile as sf

    found = False
    for subset in SUBSETS:
        noisy_dir, clean_dir = test_dir / subset / "noisy", test_dir / subset / "clean"
        if not noisy_dir.is_dir():
            continue
        for f in sorted(p for p in noisy_dir.iterdir() if p.suffix.lower() in AUDIO_SUFFIXES):
            noisy, sr = sf.read(f, dtype="float32")
            clean, sr2 = sf.read(clean_dir / f.name, dtype="float32")
            if sr != 16000 or sr2 != 16000:
                raise ValueError(f"test clips must be 16 kHz; {f} is {sr} Hz")
            found = True
            yield f.stem, subset, noisy, clean
    if not found:
        raise FileNotFoundError(f"no test clips under {test_dir} (expected {SUBSETS[0]}/noisy/*.flac, ...)")


def load_test_clips(test_dir: str | os.PathLike, limit: int | None = None) -> list[tuple[str, str, np.ndarray, np.ndarray]]:
    """All clips (at most ``limit`` per subset) as a list."""
    clips, per_subset = [], {}
    for name, subset, noisy, clean in iter_test_set(test_dir):
        if limit is not None and per_subset.get(subset, 0) >= limit:
            continue
        per_subset[subset] = per_subset.get(subset, 0) + 1
        clips.append((name, subset, noisy, clean))
    return clips


@torch.no_grad()
def enhance_waves(model: SpeechMaskModel, waves: list[np.ndarray], device: torch.device,
                  batch: int | None = None) -> list[np.ndarray]:
    """Offline enhancement of 16 kHz clips; clips of equal length are batched, ``batch`` at a time (default 8 on a
    GPU, 1 elsewhere: on a 2-core CPU one clip at a time made a test-set evaluation's enhancement 3-7x faster,
    benchmarks/results/speech/soup_run18-20/)."""
    from linseq.experiments.speech_enhancement.training import enhance_batch

    batch = batch or (8 if device.type == "cuda" else 1)

    out: list[np.ndarray | None] = [None] * len(waves)
    by_len: dict[int, list[int]] = {}
    for i, w in enumerate(waves):
        by_len.setdefault(len(w), []).append(i)
    for idx in by_len.values():
        for k in range(0, len(idx), batch):
            part = idx[k:k + batch]
            x = torch.from_numpy(np.stack([waves[i] for i in part])).to(device)
            y = enhance_batch(model, x).float().cpu().numpy()
            for j, i in enumerate(part):
                out[i] = y[j]
    return out  # type: ignore[return-value]


def _baseline(wave: np.ndarray) -> np.ndarray:
    from linseq.experiments.speech_enhancement.baseline import spectral_gate

    return spectral_gate(wave)


def _single_thread() -> None:
    """Pool initializer: one torch thread per worker process (the workers already fill the cores)."""
    torch.set_num_threads(1)


def system_label(system: str, config: dict[str, Any] | None) -> str:
    """Short display name: ``noisy``, ``baseline``, ``FullSubNet``, ``Fast FullSubNet m=2 (Lightning)``, ..."""
    if config is None:
        return {"noisy": "Noisy", "baseline": "Spectral gating (baseline)"}.get(system, system)
    if config["model"] == "fullsubnet":
        name = "FullSubNet"
    else:
        name = f"Fast FullSubNet m={config.get('shrink_size')}"
    if config.get("sequence_model") == "lightning":
        name += " (Lightning)"
    return name


def evaluate_system(
    system: str, test_dir: str | os.PathLike, out_dir: str | os.PathLike | None = None, device: str = "auto",
    workers: int | None = None, progress: bool = True, limit: int | None = None, tag: str | None = None,
) -> dict[str, Any]:
    """Enhance every test clip with ``system`` and compute the metrics per subset.

    ``system``: ``"noisy"``, ``"baseline"`` or a checkpoint folder. ``workers``: metric processes (default: CPU
    count). ``limit``: clips per subset (smoke runs). Writes ``OUT/eval_<tag>.json`` and ``.md`` when ``out_dir``
    is set (``tag`` defaults to the system's folder name). Returns the result dict.
    """
    from linseq.experiments.speech_enhancement.checkpoint import load_speech_model, weights_sha256
    from linseq.experiments.speech_enhancement.training import pick_device

    dev = pick_device(device)
    config = sha = None
    if system not in ("noisy", "baseline"):
        model, config = load_speech_model(system, dev)
        sha = weights_sha256(system)
    clips = load_test_clips(test_dir, limit)
    if not clips:
        raise FileNotFoundError(f"no test clips under {test_dir}")
    workers = workers or os.cpu_count() or 1
    noisy = [c[2] for c in clips]
    t0 = time.perf_counter()
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_single_thread) if workers > 1 else None
    with pool or contextlib.nullcontext():
        if system == "noisy":
            estimates = noisy
        elif system == "baseline":
            estimates = list(pool.map(_baseline, noisy, chunksize=1)) if pool else [_baseline(n) for n in noisy]
        else:
            estimates = enhance_waves(model, noisy, dev)
        t_enhance = time.perf_counter() - t0
        metrics = available_metrics(METRICS)
        rows = evaluate_pairs(((c[3], e) for c, e in zip(clips, estimates)), metrics, workers=workers,
                              progress=progress, desc=f"metrics {system_label(system, config)}", total=len(clips),
                              pool=pool)
    per_clip = [{"name": c[0], "subset": c[1], **r} for c, r in zip(clips, rows)]
    subsets = {s: mean_metrics([r for r in per_clip if r["subset"] == s]) for s in SUBSETS
               if any(r["subset"] == s for r in per_clip)}
    result = {
        "system": system if config is None else "checkpoint", "label": system_label(system, config),
        "checkpoint": None if config is None else str(system), "weights_sha256": sha, "model_config": config,
        "metrics": metrics, "missing_metrics": [m for m in METRICS if m not in metrics],
        "subsets": subsets, "enhance_seconds": round(t_enhance, 2), "test_set": str(test_dir),
        "meta": run_metadata(device=str(dev)), "per_clip": per_clip,
    }
    if out_dir is not None:
        out = Path(out_dir)
        tag = tag or (system if config is None else Path(system).name)
        save_json(out / f"eval_{tag}.json", result)
        (out / f"eval_{tag}.md").write_text(markdown_table([result]) + "\n")
        result["written"] = [str(out / f"eval_{tag}.json"), str(out / f"eval_{tag}.md")]
    return result


def _fmt(value: float | None, digits: int) -> str:
    return "—" if value is None or not np.isfinite(value) else f"{value:.{digits}f}"


def markdown_table(results: list[dict[str, Any]]) -> str:
    """Rows: systems; columns: WB-PESQ, NB-PESQ, STOI (%), SI-SDR (dB) for with_reverb, then no_reverb."""
    head = ["system"]
    for s in SUBSETS:
        short = "WR" if s == "with_reverb" else "NR"
        head += [f"{short} WB-PESQ", f"{short} NB-PESQ", f"{short} STOI %", f"{short} SI-SDR"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in results:
        cells = [r["label"]]
        for s in SUBSETS:
            m = r["subsets"].get(s, {})
            stoi = m.get("STOI")
            cells += [_fmt(m.get("WB_PESQ"), 3), _fmt(m.get("NB_PESQ"), 3),
                      _fmt(None if stoi is None else 100 * stoi, 2), _fmt(m.get("SI_SDR"), 2)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _timeit(fn: Callable[[], Any], repeats: int, sync: bool) -> float:
    times = []
    for _ in range(repeats):
        if sync:
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        if sync:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def measure_rtf(model: SpeechMaskModel, device: str | torch.device = "cpu", seconds: float = 10.0, threads: int | None = 1,
                repeats: int = 3, streaming: bool = False) -> float:
    """Real-time factor of STFT + model + iSTFT on ``seconds`` of audio (median of ``repeats`` after a warm-up).

    ``threads``: CPU threads during the measurement (restored afterwards). ``streaming``: feed 256-sample hops
    through :class:`StreamingWaveEnhancer` (one model step per 16 ms frame) instead of one offline call.
    """
    from linseq.experiments.speech_enhancement.training import enhance_batch

    dev = torch.device(device)
    model = model.to(dev).eval()
    x = torch.randn(1, int(seconds * 16000), generator=torch.Generator().manual_seed(0)) * 0.1
    x = x.to(dev)
    old_threads = torch.get_num_threads()
    if threads is not None and dev.type == "cpu":
        torch.set_num_threads(threads)
    try:
        if streaming:
            hop = 256

            def run() -> None:
                s = StreamingWaveEnhancer(model)
                for i in range(0, x.shape[-1], hop):
                    s.process(x[:, i:i + hop])
                s.flush()
        else:
            def run() -> None:
                enhance_batch(model, x)
        with torch.no_grad():
            run()  # warm-up
            t = _timeit(run, repeats, dev.type == "cuda")
    finally:
        torch.set_num_threads(old_threads)
    return t / seconds


def complexity_models() -> dict[str, SpeechMaskModel]:
    """The four models of the complexity table, at the published sizes."""
    return {
        "FullSubNet": FullSubNet(),
        "Fast FullSubNet m=2": FastFullSubNet(shrink_size=2),
        "Fast FullSubNet m=8": FastFullSubNet(shrink_size=8),
        "Fast FullSubNet m=2 (Lightning)": FastFullSubNet(shrink_size=2, sequence_model="lightning"),
    }


def complexity_table(
    out_dir: str | os.PathLike | None = None, seconds: float = 10.0, stream_seconds: float = 2.0, repeats: int = 3,
    gpu: bool | None = None, cpu: bool = True, progress: bool = True,
) -> dict[str, Any]:
    """Parameters, GMAC per second of audio (counted) and RTFs for :func:`complexity_models`.

    Writes ``OUT/complexity.json`` and ``OUT/complexity.md`` when ``out_dir`` is set. ``gpu=None``: use CUDA when
    available. Untrained weights: speed does not depend on the weight values.
    """
    from tqdm.auto import tqdm

    gpu = torch.cuda.is_available() if gpu is None else gpu
    rows = []
    torch.manual_seed(0)
    for name, model in tqdm(complexity_models().items(), desc="rtf", disable=not progress, leave=False):
        row: dict[str, Any] = {"model": name, "parameters": count_parameters(model)["total"],
                               "gmac_per_s": count_macs(model)["total"] / 1e9}
        if cpu:
            row["rtf_cpu_1thread"] = measure_rtf(model, "cpu", seconds, 1, repeats)
            row["rtf_cpu_1thread_streaming"] = measure_rtf(model, "cpu", stream_seconds, 1, max(1, repeats - 1),
                                                           streaming=True)
        if gpu:
            row["rtf_gpu"] = measure_rtf(model, "cuda", seconds, None, max(repeats, 5))
            model.cpu()
        rows.append(row)
    ref = rows[0]
    for r in rows:
        r["gmac_ratio_vs_fullsubnet"] = r["gmac_per_s"] / ref["gmac_per_s"]
        for key in ("rtf_cpu_1thread", "rtf_cpu_1thread_streaming", "rtf_gpu"):
            if key in r and key in ref:
                r[f"{key}_ratio_vs_fullsubnet"] = r[key] / ref[key]
    result = {"rows": rows, "audio_seconds": seconds, "stream_seconds": stream_seconds,
              "meta": run_metadata(device="cuda" if gpu else "cpu"),
              "cpu": run_metadata(device="cpu")["device"]}
    if out_dir is not None:
        out = Path(out_dir)
        save_json(out / "complexity.json", result)
        (out / "complexity.md").write_text(complexity_markdown(result) + "\n")
    return result


def complexity_markdown(result: dict[str, Any]) -> str:
    """The complexity table as Markdown (RTF columns only where measured)."""
    cols = [("rtf_cpu_1thread", "RTF CPU 1 thread"), ("rtf_cpu_1thread_streaming", "RTF CPU 1 thread, frame by frame"),
            ("rtf_gpu", "RTF GPU")]
    cols = [c for c in cols if any(c[0] in r for r in result["rows"])]
    head = ["model", "parameters", "GMAC/s", "MACs vs FullSubNet"] + [c[1] for c in cols]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in result["rows"]:
        cells = [r["model"], f"{r['parameters']:,}", f"{r['gmac_per_s']:.2f}", f"{100 * r['gmac_ratio_vs_fullsubnet']:.1f} %"]
        for key, _ in cols:
            if key in r:
                ratio = r.get(f"{key}_ratio_vs_fullsubnet")
                cells.append(f"{r[key]:.4f}" + (f" ({100 * ratio:.0f} %)" if ratio is not None and r is not result["rows"][0] else ""))
            else:
                cells.append("—")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
