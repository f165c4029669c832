"""Render the measured tables and the one-paragraph statement of docs/icl.md from a ``results.json``.

Nothing here is typed by hand: every number comes from the results dict. :func:`update_markdown` rewrites the
block between ``<!-- icl-results:begin -->`` and ``<!-- icl-results:end -->`` in a Markdown file.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

BEGIN, END = "<!-- icl-results:begin -->", "<!-- icl-results:end -->"


def _ms(values: list[float], fmt: str = ".4f") -> str:
    if len(values) == 1:
        return format(values[0], fmt)
    return f"{format(statistics.fmean(values), fmt)} ± {format(statistics.pstdev(values), fmt)}"


def _final(figure: dict, model: str, key: str) -> list[float]:
    return [run["final"][model][key] for run in figure["runs"]]


def part_a_table(part_a: dict) -> str:
    """Markdown: identity errors and, per (n, R), the measured shift against both bounds."""
    c = part_a["construction"]
    lines = [
        "| exact identity (float64) | max error |",
        "|---|---|",
        f"| closed-form ∇L = AᵀJ(f − b) vs autograd (relative) | {part_a['gradient_max_rel_err']:.1e} |",
        f"| weight shift: L(x₁; A, b) − L(x₀; A, b̃) | {max(s['max_identity_err'] for s in part_a['weight_shift']):.1e} |",
        f"| data shift: L(x; A₁, b) − L(x; A, b̂) | {max(s['max_identity_err'] for s in part_a['data_shift']):.1e} |",
        f"| GD step from x₀ = 0 as one linear-attention layer (`lightning_attn`), logits (relative) | "
        f"{c['logits_rel_err_from_zero']:.1e} |",
        f"| GD step from a random x₀ as attention + residual, logits (relative) | {c['logits_rel_err_from_x0']:.1e} |",
        "",
        "| shift | n | R | instances (small-step) | max shift / Jacobian bound | median | log10 M (paper) "
        "| paper bound / shift, min (decades) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for kind, label in (("weight_shift", "weight"), ("data_shift", "data")):
        for s in part_a[kind]:
            lines.append(
                f"| {label} | {s['n']} | {s['R']:g} | {s['instances']} ({s['small_step_instances']}) | "
                f"{s['max_ratio_to_jacobian_bound']:.3g} | {s['median_ratio_to_jacobian_bound']:.3g} | "
                f"{s['log10_paper_constant']:.1f} | {s['min_log10_paper_looseness']:.1f} |"
            )
    return "\n".join(lines)


def part_b_table(part_b: dict) -> str:
    """Markdown: final metrics of each training figure (mean ± std over seeds) and the sweeps."""
    lines = [
        "| n | d | seeds | GD loss | model | loss | loss / GD | Preds Diff | Model Diff (rel.) | Model Cos |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for f in part_b["figures"]:
        gd = [r["gd_loss"] for r in f["runs"]]
        for model, label in (("linear_sa", "linear SA"), ("softmax_sa", "softmax SA")):
            loss = _final(f, model, "loss")
            ratio = [a / b for a, b in zip(loss, gd)]
            lines.append(
                f"| {f['n']} | {f['d']} | {len(f['runs'])} | {_ms(gd, '.5f')} | {label} | {_ms(loss, '.5f')} | "
                f"{_ms(ratio, '.3f')} | {_ms(_final(f, model, 'preds_diff'), '.4f')} | "
                f"{_ms(_final(f, model, 'model_rel_diff'), '.3f')} | {_ms(_final(f, model, 'model_cos'), '.4f')} |"
            )
    for key, sweep in (("d", part_b["d_sweep"]), ("n", part_b["n_sweep"])):
        fixed = "n" if key == "d" else "d"
        lines += ["", f"| {key} ({fixed} = {sweep[fixed]}) | GD loss | linear SA loss | softmax SA loss "
                  "| linear SA cos | softmax SA cos |", "|---|---|---|---|---|---|"]
        for p in sweep["points"]:
            lines.append(
                f"| {p[key]} | {p['gd_loss']:.5f} | {p['linear_sa']['loss']:.5f} | {p['softmax_sa']['loss']:.5f} | "
                f"{p['linear_sa']['model_cos']:.4f} | {p['softmax_sa']['model_cos']:.4f} |"
            )
    t, c = part_b["temperature_trained"], part_b["temperature_constructed"]
    lines += ["", f"| τ (trained softmax SA, n = {t['n']}, d = {t['d']}) | logit spread | loss / GD | Model Cos |",
              "|---|---|---|---|"]
    for p in t["points"]:
        s = p["softmax_sa"]
        lines.append(f"| {p['tau']:g} | {s['score_spread']:.3g} | {s['loss'] / p['gd_loss']:.3f} | {s['model_cos']:.4f} |")
    lines += ["", f"| τ (constructed softmax-GD layer, n = {c['n']}, d = {c['d']}) | logit spread | loss / GD "
              "| Model Cos |", "|---|---|---|---|"]
    for p in c["points"]:
        lines.append(f"| {p['tau']:.3g} | {p['score_spread']:.3g} | {p['loss'] / p['gd_loss']:.3f} | {p['model_cos']:.5f} |")
    return "\n".join(lines)


def statement(results: dict) -> str:
    """A short measured statement: what holds exactly, how loose the paper's constant is, how close each trained
    model comes to one GD step."""
    a, b = results["part_a"], results["part_b"]
    shifts = a["weight_shift"] + a["data_shift"]
    worst_ratio = max(s["max_ratio_to_jacobian_bound"] for s in shifts)
    loose = min(s["min_log10_paper_looseness"] for s in shifts)
    loose_r4 = [s["min_log10_paper_looseness"] for s in shifts if s["R"] >= 4]
    ident = max(s["max_identity_err"] for s in shifts)
    per_fig = []
    for f in b["figures"]:
        gd = [r["gd_loss"] for r in f["runs"]]
        parts = []
        for model, label in (("linear_sa", "linear"), ("softmax_sa", "softmax")):
            ratio = [x / g for x, g in zip(_final(f, model, "loss"), gd)]
            cos = _final(f, model, "model_cos")
            parts.append(f"{label} attention reaches {statistics.fmean(ratio):.3f}× the GD loss with Model Cos "
                         f"{statistics.fmean(cos):.3f} (worst seed {min(cos):.3f})")
        per_fig.append(f"at n = {f['n']}, d = {f['d']} ({len(f['runs'])} seeds) " + "; ".join(parts))
    con = b["temperature_constructed"]["points"]
    small = min(con, key=lambda p: p["score_spread"])
    large = max(con, key=lambda p: p["score_spread"])
    text = (
        f"**Measured ({results['meta']['preset']} preset, {results['meta']['device']}, commit "
        f"{results['meta']['commit']}).** "
        f"The weight-shift and data-shift reformulations hold to {ident:.0e} in float64, and the closed-form "
        f"gradient and the GD-as-attention construction agree with autograd and with `lightning_attn` to "
        f"{max(a['gradient_max_rel_err'], *a['construction'].values()):.0e}. "
        f"Over {sum(s['instances'] for s in shifts)} random instances "
        + ("every shift stays below" if worst_ratio <= 1 + 1e-9 else "SOME SHIFTS EXCEED")
        + f" the Jacobian bound ½‖A‖₂‖Δx‖ (or ½‖x‖₂‖ΔA‖₂): the largest ratio is {worst_ratio:.3g}. "
        f"The paper's bound M·‖Δ‖ with M = n^1.5·e^(10R²) is loose by at least {loose:.1f} orders of magnitude "
        f"at every R tried"
        + (f" and by at least {min(loose_r4):.1f} at R = 4, the smallest R its theorem allows" if loose_r4 else "")
        + ". Trained one-layer models against one GD step with a fitted η: "
        + "; ".join(per_fig)
        + f". The constructed softmax-attention layer equals GD as its logits shrink (Model Cos "
        f"{small['model_cos']:.5f} at logit spread {small['score_spread']:.2g}) and departs as they grow (Model Cos "
        f"{large['model_cos']:.3f}, loss {large['loss'] / large['gd_loss']:.2f}× GD at spread "
        f"{large['score_spread']:.2g})."
    )
    return text


def render_markdown(results: dict) -> str:
    """The generated block of docs/icl.md: statement, Part A tables, Part B tables."""
    return "\n\n".join([
        statement(results),
        "#### Part A: identities and bounds", part_a_table(results["part_a"]),
        "#### Part B: trained attention vs one GD step (final values)", part_b_table(results["part_b"]),
    ])


def load_results(path: str | Path) -> dict:
    """Read a results.json written by :func:`run_experiment`."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"results file not found: {path}")
    results = json.loads(path.read_text())
    for key in ("meta", "part_a", "part_b"):
        if key not in results:
            raise ValueError(f"{path} is not an icl results file: missing key {key!r}")
    return results


def update_markdown(md_path: str | Path, results: dict) -> Path:
    """Replace the block between the BEGIN/END markers of ``md_path`` with :func:`render_markdown`."""
    from linseq.io import atomic_write_bytes

    md_path = Path(md_path)
    if not md_path.is_file():
        raise FileNotFoundError(f"markdown file not found: {md_path}")
    text = md_path.read_text()
    if BEGIN not in text or END not in text:
        raise ValueError(f"{md_path} has no {BEGIN} … {END} block to fill")
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    atomic_write_bytes(md_path, (head + BEGIN + "\n" + render_markdown(results) + "\n" + END + tail).encode())
    return md_path
