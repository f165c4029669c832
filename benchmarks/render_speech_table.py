"""Render the speech-enhancement results tables (and plot) from the JSON that real runs wrote.

    python benchmarks/render_speech_table.py            # print the Markdown
    python benchmarks/render_speech_table.py --docs     # refill the block between the markers in docs/speech.md
    python benchmarks/render_speech_table.py --plot     # also redraw benchmarks/results/speech/speech_results.png

Once a model ships (its provenance.json in the package), the block opens with it beside the equal-budget rows, its
margins over the noisy input and, where benchmarks/speech_paired_ci.py wrote them for its weights, their paired
95 % intervals.

Sources: benchmarks/results/speech/results.json (written by benchmarks/speech_gpu.py: evaluations, training
summaries, GPU real-time factors) and, if present, benchmarks/results/speech/cpu/complexity.json (written by
`linseq speech rtf --no-gpu --out benchmarks/results/speech/cpu` on a CPU). Nothing here is typed by hand.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "speech" / "results.json"
CPU_COMPLEXITY = ROOT / "benchmarks" / "results" / "speech" / "cpu" / "complexity.json"
DOCS = ROOT / "docs" / "speech.md"
SHIPPED_PROVENANCE = ROOT / "src" / "linseq" / "models" / "speech" / "weights" / "fast_fullsubnet" / "provenance.json"
BEGIN, END = "<!-- speech-results:begin -->", "<!-- speech-results:end -->"
ORDER = ["noisy", "baseline", "fullsubnet", "fast_m2", "fast_m8", "fast_m2_lightning"]
COMPLEXITY_NAME = {"fullsubnet": "FullSubNet", "fast_m2": "Fast FullSubNet m=2", "fast_m8": "Fast FullSubNet m=8",
                   "fast_m2_lightning": "Fast FullSubNet m=2 (Lightning)"}
SUBSETS = (("with_reverb", "WR"), ("no_reverb", "NR"))
COLUMNS = (("WB_PESQ", 1.0, 3), ("NB_PESQ", 1.0, 3), ("STOI", 100.0, 2), ("SI_SDR", 1.0, 2))  # metric, scale, digits


def _f(x: Any, digits: int) -> str:
    return "—" if x is None or (isinstance(x, float) and not math.isfinite(x)) else f"{x:.{digits}f}"


def _systems(summary: dict[str, Any]) -> list[str]:
    evals = summary.get("evals", {})
    # later rows in the order they were merged, which is the order the runs were made
    return [s for s in ORDER if s in evals] + [s for s in evals if s not in ORDER]


def _metric_cells(subsets: dict[str, Any], signed: bool = False) -> list[str]:
    """One cell per subset and metric of ``COLUMNS`` (STOI in points of %); ``signed`` writes a + on gains."""
    cells = []
    for subset, _ in SUBSETS:
        m = subsets.get(subset, {})
        for metric, scale, digits in COLUMNS:
            v = None if m.get(metric) is None else scale * m[metric]
            cells.append(("+" if signed and v is not None and v >= 0 else "") + _f(v, digits))
    return cells


def quality_table(summary: dict[str, Any], systems: list[str] | None = None,
                  labels: dict[str, str] | None = None) -> str:
    """Systems (default: every evaluated one) × (WB-PESQ, NB-PESQ, STOI %, SI-SDR dB) for with_reverb and
    no_reverb; ``labels`` overrides a system's row label."""
    head = ["system"] + [f"{short} {m}" for _, short in SUBSETS for m in ("WB-PESQ", "NB-PESQ", "STOI %", "SI-SDR")]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for s in systems if systems is not None else _systems(summary):
        e = summary["evals"][s]
        lines.append("| " + " | ".join([(labels or {}).get(s, e["label"])] + _metric_cells(e["subsets"])) + " |")
    return "\n".join(lines)


def shipped_row() -> str | None:
    """The results row of the Fast FullSubNet that ships as `linseq enhance`'s default, or None before one ships."""
    if not SHIPPED_PROVENANCE.is_file():
        return None
    return json.loads(SHIPPED_PROVENANCE.read_text())["row"]


def headline_table(summary: dict[str, Any], shipped: str, ci: dict[str, Any] | None = None) -> str:
    """The noisy input, the baseline, the equal-budget models and the shipped model, then the shipped model's
    margin over the noisy input and, with ``ci`` (a ``paired_intervals`` result), its 95 % intervals."""
    evals = summary["evals"]
    systems = [s for s in ORDER if s in evals] + [shipped]
    labels = {shipped: f"**Shipped**: {evals[shipped]['label'].split(', ')[0]}, `{shipped}`"}
    for s in ORDER[2:]:
        if s in evals:
            labels[s] = f"{evals[s]['label']}, {_f(summary.get('minutes'), 0)} min"
    margin = {sub: {m: evals[shipped]["subsets"][sub][m] - evals["noisy"]["subsets"][sub][m]
                    for m in evals[shipped]["subsets"][sub] if m != "n"} for sub, _ in SUBSETS}
    lines = [quality_table(summary, systems, labels),
             "| shipped − noisy | " + " | ".join(_metric_cells(margin, signed=True)) + " |"]
    if ci is not None:
        cells = [f"[{scale * r['low']:+.{digits}f}, {scale * r['high']:+.{digits}f}]"
                 for subset, _ in SUBSETS for metric, scale, digits in COLUMNS
                 for r in [ci["table"][subset][metric]]]
        lines.append("| 95 % interval of the shipped − noisy mean over clips (paired bootstrap) | "
                     + " | ".join(cells) + " |")
    return "\n".join(lines)


def paired_intervals(weights_sha256: str | None) -> dict[str, Any] | None:
    """The ``speech_paired_ci.py --out`` file under benchmarks/results/speech for these weights, or None."""
    if not weights_sha256:
        return None
    for path in sorted(RESULTS.parent.glob("*/paired_ci_vs_noisy.json")):
        data = json.loads(path.read_text())
        if data.get("weights_sha256") == weights_sha256:
            return {**data, "source": str(path.relative_to(ROOT))}
    return None


def _rows_by_model(complexity: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    return {r["model"]: r for r in (complexity or {}).get("rows", [])}


def complexity_table(summary: dict[str, Any], cpu: dict[str, Any] | None) -> str:
    """Parameters, GMAC/s, RTFs (CPU one thread from ``cpu``, GPU from the GPU run) and training steps done."""
    gpu_rows, cpu_rows = _rows_by_model(summary.get("complexity")), _rows_by_model(cpu)
    head = ["model", "parameters", "GMAC/s", "RTF CPU 1 thread", "RTF CPU frame by frame", "RTF GPU",
            "training steps (batch)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for key, name in COMPLEXITY_NAME.items():
        g, c = gpu_rows.get(name, {}), cpu_rows.get(name, {})
        base = g or c
        if not base:
            continue
        t = summary.get("training", {}).get(key) or {}
        steps = f"{t['steps']:,} ({t['batch_size']})" if t.get("steps") else "—"
        lines.append("| " + " | ".join([
            name, f"{base['parameters']:,}", f"{base['gmac_per_s']:.2f}", _f(c.get("rtf_cpu_1thread"), 3),
            _f(c.get("rtf_cpu_1thread_streaming"), 3), _f(g.get("rtf_gpu"), 4), steps]) + " |")
    return "\n".join(lines)


def render(summary: dict[str, Any], cpu: dict[str, Any] | None = None, short: bool = False,
           shipped: str | None = None) -> str:
    """The Markdown block: the shipped model against the equal-budget rows (when ``shipped`` names a row), the
    provenance line, the quality table of every evaluated model, the complexity table."""
    if short:
        return quality_table(summary)
    meta = summary.get("meta", {})
    lines = []
    if shipped is not None and shipped in summary.get("evals", {}) and "noisy" in summary["evals"]:
        lines += [f"The model `linseq enhance` uses by default (`{shipped}`, described in the full table below) "
                  f"beside the noisy input, the baseline and the models trained for "
                  f"{_f(summary.get('minutes'), 0)} minutes each (the shipped model trained far longer: a chain "
                  f"of runs and means of runs, in the full table):", ""]
        ci = paired_intervals(summary["evals"][shipped].get("weights_sha256"))
        lines += [headline_table(summary, shipped, ci), ""]
        if ci is not None:
            lines += [f"The intervals come from `benchmarks/speech_paired_ci.py` (`{ci['source']}`): per-clip "
                      f"differences against the noisy input's (`{ci['noisy']}`, the same clips), clips resampled "
                      f"{ci['resamples']:,} times; an interval that reaches below zero means the mean gain could be "
                      f"chance in the choice of clips.", ""]
        lines += ["Every evaluated model, in the order they were trained:", ""]
    lines += [
        f"Measured by `benchmarks/gpu_speech.sh` on **{meta.get('device', '?')}**, {str(meta.get('date', '?'))[:10]}, "
        f"commit `{meta.get('commit', '?')}`: each model trained for **{_f(summary.get('minutes'), 1)} minutes** of "
        f"wall time, {_n_models(summary)} at once on one device, on the offline pools; test set: "
        f"{_test_size(summary)} clips of 10 s per subset (WR = with reverb, NR = no reverb). "
        f"Source: `benchmarks/results/speech/results.json`.",
        "",
        quality_table(summary),
        "",
        complexity_table(summary, cpu),
    ]
    if summary.get("eval_sources"):
        lines += ["", "Evaluated after the run (same test set, checked by its manifest): " + "; ".join(
            f"{summary['evals'][k]['label']}: {v}" for k, v in summary["eval_sources"].items() if k in summary["evals"])
            + "."]
    for key, t in summary.get("training", {}).items():
        # a mean of runs (merge_speech_evals.py --averaged-runs) is described by its row label: its runs share one
        # starting checkpoint, so they form no chain
        if not t.get("steps_per_run") or key not in summary.get("evals", {}) or t.get("averaged_runs"):
            continue
        if len(t["steps_per_run"]) == 1:
            lines += ["", f"{summary['evals'][key]['label']}: trained from scratch in one run (seed {t['seeds'][0]}), "
                          f"best checkpoint at step {t['steps_per_run'][0]:,}."]
        else:
            lines += ["", f"{summary['evals'][key]['label']}: each run started from the previous run's best checkpoint "
                          f"(`linseq speech train --init-from`, fresh optimizer, new seed: {t['seeds']}); steps to each "
                          f"best checkpoint: {', '.join(f'{n:,}' for n in t['steps_per_run'])}"
                          + (f"; learning rate per run: {'; '.join(t['schedules'])}" if t.get("schedules") else "")
                          + "."]
    if summary.get("complexity_source"):
        lines += ["", f"RTF GPU column: {summary['complexity_source']} (`linseq speech rtf --no-cpu`, 10 s of audio, "
                      "one model on the device at a time)."]
    if cpu:
        lines += ["", f"CPU columns: {cpu.get('cpu', '?')}, one thread, {_f(cpu.get('audio_seconds'), 0)} s of audio "
                      f"(`benchmarks/results/speech/cpu/complexity.json`). RTF = processing time / audio time."]
    missing = sorted({m for e in summary.get("evals", {}).values() for m in e.get("missing_metrics", [])})
    if missing:
        lines += ["", f"_Not measured in this run (package missing on the GPU machine): {', '.join(missing)}._"]
    if summary.get("failures"):
        lines += ["", "_Failures in this run: " + "; ".join(f"{k}: {v}" for k, v in summary["failures"].items()) + "_"]
    return "\n".join(lines)


def _n_models(summary: dict[str, Any]) -> str:
    n = len(summary.get("models", [])) or len(summary.get("training", {}))
    return {1: "alone", 2: "both", 3: "all three", 4: "all four"}.get(n, f"all {n}")


def _test_size(summary: dict[str, Any]) -> str:
    for e in summary.get("evals", {}).values():
        n = {s: m.get("n") for s, m in e.get("subsets", {}).items()}
        return " / ".join(f"{v} {k}" for k, v in n.items())
    return "?"


def _plot_label(label: str, key: str, width: int = 34) -> str:
    """A system's name on the plot: its label when short, else its results key (``fast_m2_lightning_soup18to20``),
    so that rows described at length in the table stay readable beside their bars."""
    import textwrap

    label = label.replace(" (baseline)", "")
    return textwrap.fill(label, width) if len(label) <= 2 * width else key


def plot_results(summary: dict[str, Any], path: Path, shipped: str | None = None) -> Path | None:
    """Horizontal bars of WB-PESQ, STOI and SI-SDR per system and subset, with the noisy input's values as
    dashed lines (a bar past its line beats the noisy input) -> PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    systems = _systems(summary)
    if not systems:
        return None
    labels = [_plot_label(summary["evals"][s]["label"], s) + ("\n(shipped)" if s == shipped else "") for s in systems]
    fig, axes = plt.subplots(1, 3, figsize=(14, 0.55 * len(systems) + 1.6), sharey=True)
    height = 0.38
    noisy = summary["evals"].get("noisy", {}).get("subsets", {})
    for ax, (metric, title) in zip(axes, (("WB_PESQ", "WB-PESQ"), ("STOI", "STOI"), ("SI_SDR", "SI-SDR (dB)"))):
        for k, (subset, short) in enumerate(SUBSETS):
            vals = [summary["evals"][s]["subsets"].get(subset, {}).get(metric, float("nan")) for s in systems]
            bars = ax.barh([i + (k - 0.5) * height for i in range(len(systems))], vals, height, label=short)
            if metric in noisy.get(subset, {}):
                ax.axvline(noisy[subset][metric], color=bars.patches[0].get_facecolor(), ls="--", lw=1)
        finite = [v for s in systems for sub in summary["evals"][s]["subsets"].values()
                  for m, v in sub.items() if m == metric and v == v]
        if finite:  # zoom on the differences: bars start near the smallest value
            low, high = min(finite), max(finite)
            ax.set_xlim(low - 0.15 * (high - low + 1e-9), high + 0.1 * (high - low + 1e-9))
        ax.set_title(title)
        ax.grid(axis="x", alpha=0.3)
    axes[0].set_yticks(range(len(systems)))
    axes[0].set_yticklabels(labels, fontsize=8)
    axes[0].invert_yaxis()
    axes[-1].legend(title="dashed: noisy", fontsize=8, title_fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def load() -> tuple[dict[str, Any], dict[str, Any] | None]:
    summary = json.loads(RESULTS.read_text())
    cpu = json.loads(CPU_COMPLEXITY.read_text()) if CPU_COMPLEXITY.is_file() else None
    return summary, cpu


def replace_block(path: Path, body: str) -> None:
    text = path.read_text()
    if BEGIN not in text or END not in text:
        raise SystemExit(f"{path} has no {BEGIN} ... {END} block")
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    path.write_text(f"{head}{BEGIN}\n{body}\n{END}{tail}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", action="store_true", help=f"refill the generated block of {DOCS.relative_to(ROOT)}")
    parser.add_argument("--plot", action="store_true", help="redraw the PNG next to results.json")
    args = parser.parse_args()
    if not RESULTS.is_file():
        print(f"no {RESULTS.relative_to(ROOT)} yet; nothing to render")
        return
    summary, cpu = load()
    shipped = shipped_row()
    body = render(summary, cpu, shipped=shipped)
    if args.plot:
        plot_results(summary, RESULTS.parent / "speech_results.png", shipped=shipped)
    if args.docs:
        replace_block(DOCS, body)
        print(f"updated {DOCS.relative_to(ROOT)}")
    else:
        print(body)


if __name__ == "__main__":
    main()
