"""Figures in the style of the paper's: loss vs step, Preds/Model Diff and Model Cos vs step with ±std bands,
loss vs d (and n), temperature, and measured shift vs bound on a log scale. All drawn from the results dict."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

COLORS = {"gd": "black", "softmax_sa": "tab:red", "linear_sa": "tab:blue"}
LABELS = {"gd": "1 step of GD (η fitted)", "softmax_sa": "softmax self-attention", "linear_sa": "linear self-attention"}


def _band(ax, steps, runs, color, label):
    arr = np.asarray(runs, dtype=float)  # [seeds, evals]
    mean, std = arr.mean(0), arr.std(0)
    ax.plot(steps, mean, color=color, label=label)
    ax.fill_between(steps, mean - std, mean + std, color=color, alpha=0.2, linewidth=0)


def plot_training_figure(figure: dict, path: Path) -> Path:
    """Panels (a) loss vs step and (b–d) Preds Diff, Model Diff (relative), Model Cos vs step, mean ± std."""
    runs, steps = figure["runs"], figure["runs"][0]["steps"]
    fig, axes = plt.subplots(1, 4, figsize=(17, 3.8))
    gd = np.asarray([r["gd_loss"] for r in runs])
    axes[0].axhline(gd.mean(), color=COLORS["gd"], ls="--", label=LABELS["gd"])
    axes[0].axhspan(gd.mean() - gd.std(), gd.mean() + gd.std(), color="grey", alpha=0.2)
    for model in ("softmax_sa", "linear_sa"):
        _band(axes[0], steps, [r[model]["loss"] for r in runs], COLORS[model], LABELS[model])
        for ax, key in zip(axes[1:], ("preds_diff", "model_rel_diff", "model_cos")):
            _band(ax, steps, [r[model][key] for r in runs], COLORS[model], LABELS[model])
    axes[0].set_yscale("log")
    titles = ("(a) query loss ½‖p − b′‖²", "(b) Preds Diff ‖p − p_GD‖₂", "(c) Model Diff ‖∂z/∂a′ − x₁‖ / ‖x₁‖",
              "(d) Model Cos cos(∂z/∂a′, x₁)")
    for ax, title in zip(axes, titles):
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("training step")
        ax.grid(alpha=0.3)
    axes[3].set_ylim(min(0.0, axes[3].get_ylim()[0]), 1.02)
    axes[0].legend(fontsize=8)
    fig.suptitle(f"trained attention vs one GD step: n = {figure['n']}, d = {figure['d']}, "
                 f"{len(runs)} seeds (band = ±1 std)", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_sweeps(part_b: dict, path: Path) -> Path:
    """Final loss vs d (at fixed n) and vs n (at fixed d) for GD and both attention models; cos on a twin axis."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    for ax, sweep, key in ((axes[0], part_b["d_sweep"], "d"), (axes[1], part_b["n_sweep"], "n")):
        pts = sweep["points"]
        xs = [p[key] for p in pts]
        ax.plot(xs, [p["gd_loss"] for p in pts], "o--", color=COLORS["gd"], label=LABELS["gd"])
        for model in ("softmax_sa", "linear_sa"):
            ax.plot(xs, [p[model]["loss"] for p in pts], "o-", color=COLORS[model], label=LABELS[model])
        ax.set_xscale("log", base=2)
        ax.set_xticks(xs, [str(x) for x in xs])
        ax.set_xlabel(key)
        ax.set_ylabel("final query loss")
        fixed = "n" if key == "d" else "d"
        ax.set_title(f"loss vs {key} ({fixed} = {sweep[fixed]})", fontsize=10)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_temperature(part_b: dict, path: Path) -> Path:
    """Model Cos and loss / GD loss against the spread of attention logits: the constructed softmax layer
    (curve) and trained softmax attention at each fixed temperature (points)."""
    con, trained = part_b["temperature_constructed"], part_b["temperature_trained"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    xs = [p["score_spread"] for p in con["points"]]
    axes[0].plot(xs, [p["model_cos"] for p in con["points"]], "o-", color="tab:green",
                 label="constructed softmax-GD layer")
    axes[1].plot(xs, [p["loss"] / p["gd_loss"] for p in con["points"]], "o-", color="tab:green",
                 label="constructed softmax-GD layer")
    for p in trained["points"]:
        s = p["softmax_sa"]
        axes[0].scatter(s["score_spread"], s["model_cos"], color=COLORS["softmax_sa"], zorder=3)
        axes[0].annotate(f"τ={p['tau']:g}", (s["score_spread"], s["model_cos"]), fontsize=7)
        axes[1].scatter(s["score_spread"], s["loss"] / p["gd_loss"], color=COLORS["softmax_sa"], zorder=3)
    axes[0].scatter([], [], color=COLORS["softmax_sa"], label="trained softmax attention (fixed τ)")
    axes[1].scatter([], [], color=COLORS["softmax_sa"], label="trained softmax attention (fixed τ)")
    axes[0].set_ylabel("Model Cos with one GD step")
    axes[1].set_ylabel("query loss / GD loss")
    for ax in axes:
        ax.set_xscale("log")
        ax.set_xlabel("spread of attention logits over keys (mean std_j s_ij)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"softmax attention is one GD step while its logits are small (n = {con['n']}, d = {con['d']})",
                 fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_shift_vs_bound(part_a: dict, path: Path) -> Path:
    """Measured target shift ‖b̃ − b‖ (weight shift) and ‖b̂ − b‖ (data shift) against the Jacobian bound and the
    paper's bound M·‖Δ‖, log10 on both axes; the diagonal is 'bound = measured'."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    markers = ["o", "s", "^", "D", "v", "P"]
    for ax, kind, title in ((axes[0], "weight", "weight shift (one GD step)"),
                            (axes[1], "data", "data shift (one softmax SA layer)")):
        lo, hi = np.inf, -np.inf
        for i, (setting, pts) in enumerate(part_a["points"].items()):
            p = pts[kind]
            shift = np.log10(np.asarray(p["shift"]))
            jac = np.log10(np.asarray(p["jacobian_bound"]))
            paper = np.asarray(p["log10_paper_bound"])
            mk = markers[i % len(markers)]
            ax.scatter(shift, jac, s=6, marker=mk, color="tab:blue", alpha=0.5,
                       label="½‖A‖‖Δx‖ / ½‖x‖‖ΔA‖ (Jacobian)" if i == 0 else None)
            ax.scatter(shift, paper, s=6, marker=mk, color="tab:red", alpha=0.5,
                       label=f"paper M·‖Δ‖, {setting}")
            lo, hi = min(lo, shift.min()), max(hi, shift.max())
        ax.plot([lo, hi], [lo, hi], "k--", lw=1, label="bound = measured")
        ax.set_xlabel("log10 measured shift ‖b′ − b‖₂")
        ax.set_ylabel("log10 bound")
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="center right")
    fig.suptitle("target shift vs bound (float64; M = n^1.5·exp(10R²))", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def make_plots(results: dict, out_dir: str | Path) -> list[Path]:
    """Write every figure of ``results`` into ``out_dir``; returns the paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    part_b = results["part_b"]
    paths = [plot_training_figure(f, out_dir / f"training_n{f['n']}_d{f['d']}.png") for f in part_b["figures"]]
    paths.append(plot_sweeps(part_b, out_dir / "loss_vs_d_and_n.png"))
    paths.append(plot_temperature(part_b, out_dir / "temperature.png"))
    paths.append(plot_shift_vs_bound(results["part_a"], out_dir / "shift_vs_bound.png"))
    return paths
