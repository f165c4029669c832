"""Tables and plots of the LRA-style benchmark, generated from its result JSON (never typed by hand).

``python -m linseq.experiments.lra.report RESULTS.json [--markdown OUT.md]`` prints the README tables.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def _fmt(v, spec=".3f"):
    return "—" if v is None else format(v, spec)


def _jobs_note(results: dict) -> str:
    jobs = results.get("config", {}).get("jobs", 1)
    if jobs <= 1:
        return ""
    return (f" The trainings ran {jobs} at a time on the one device (train s: wall time while sharing it; compare "
            "speed in the scaling table).")


def markdown_tables(results: dict) -> str:
    """The README tables: accuracy and training time per task and attention, hash study, energy, scaling."""
    meta = results["run_metadata"]
    lines = [f"Preset `{results.get('preset')}` on {meta['device']} (torch {meta['torch']}, commit {meta['commit']}, "
             f"seed {meta.get('seed')}); total {results['total_seconds']:.0f} s." + _jobs_note(results), ""]
    lines += ["| task | seq len | train / test | majority | attention | test acc | train s | steps | capped |",
              "|---|---|---|---|---|---|---|---|---|"]
    for task, tr in results["tasks"].items():
        for attn, r in tr["attn"].items():
            lines.append(f"| {task} | {tr['seq_len']} | {tr['n_train']} / {tr['n_test']} | {tr['majority_acc']:.3f} | "
                         f"{attn} | {r['test_acc']:.3f} | {r['train_seconds']:.1f} | {r['steps_done']} | "
                         f"{'yes' if r['capped'] else 'no'} |")
    lines += _long_listops_lines(results)
    if results.get("hash_study"):
        lines += ["", "Learned vs random hash, on the EcoFormer model's weights at the end of its softmax phase "
                  "(agreement: per-query AUC of code similarity on the softmax map's top-k vs bottom-k keys, "
                  "held-out batch; accuracy right after switching to the hash, before fine-tuning):", "",
                  "| task | hash | fit lr | agreement | test acc (no fine-tune) |", "|---|---|---|---|---|"]
        for task, hs in results["hash_study"].items():
            for name in ("random", "fitted_reference_lr", "fitted_larger_lr"):
                h = hs[name]
                lines.append(f"| {task} | {name} | {h['fit_lr'] if h['iterations'] else '—'} | {h['agreement']:.3f} | "
                             f"{h['test_acc_no_finetune']:.3f} |")
            lines.append(f"| {task} | (softmax attention) | — | 1 | {hs['softmax_test_acc']:.3f} |")
    en = results["energy"]
    lines += ["", f"Energy model per attention layer and sequence (H={en['num_heads']}, head dim {en['head_dim']}; "
              "3.7 pJ/mul, 0.9 pJ/add):", "",
              "| seq len | softmax mul | softmax add | softmax µJ | EcoFormer mul | EcoFormer add | EcoFormer µJ | saving |",
              "|---|---|---|---|---|---|---|---|"]
    for r in en["rows"]:
        s, e = r["softmax"], r["ecoformer"]
        lines.append(f"| {r['seq_len']} | {s['mul']:.3g} | {s['add']:.3g} | {s['energy_pj'] / 1e6:.3g} | "
                     f"{e['mul']:.3g} | {e['add']:.3g} | {e['energy_pj'] / 1e6:.3g} | {100 * r['saving']:.1f}% |")
    if "scaling" not in results:  # lra_results.partial.json: the run stopped before the scaling sweep
        return "\n".join(lines) + "\n"
    sc = results["scaling"]
    attns = list(sc["attn"])
    lines += ["", f"One attention layer, one sequence (D={sc['dim']}, H={sc['num_heads']}), forward+backward: "
              "median ms / MB saved for backward" + (" / CUDA peak MB" if sc["attn"][attns[0]]["cuda_peak_mb"][0]
                                                      is not None else "") + ":", "",
              "| seq len | " + " | ".join(attns) + " |", "|---" * (len(attns) + 1) + "|"]
    for i, T in enumerate(sc["lengths"]):
        cells = []
        for a in attns:
            row = sc["attn"][a]
            cell = f"{_fmt(row['fwd_bwd_ms'][i], '.2f')} ms / {_fmt(row['saved_mb'][i], '.1f')} MB"
            if row["cuda_peak_mb"][i] is not None:
                cell += f" / {row['cuda_peak_mb'][i]:.1f} MB"
            cells.append(cell)
        lines.append(f"| {T} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _long_listops_lines(results: dict) -> list[str]:
    """A table of ListOps accuracy on the test examples in LRA's length range (500+ tokens), when the run has it
    (its ListOps lengths start below 500)."""
    tr = results["tasks"].get("listops", {})
    if "n_test_500plus" not in tr:
        return []
    lines = ["", f"ListOps test examples of 500+ tokens (LRA's length range): {tr['n_test_500plus']} of "
             f"{tr['n_test']}, majority {tr['majority_acc_500plus']:.3f}:", "",
             "| attention | test acc (500+ tokens) |", "|---|---|"]
    lines += [f"| {a} | {r['test_acc_500plus']:.3f} |" for a, r in tr["attn"].items() if "test_acc_500plus" in r]
    return lines


def print_energy(results: dict) -> None:
    """Print the energy table (softmax vs EcoFormer) to stdout."""
    print("energy per attention layer and sequence (3.7 pJ/mul, 0.9 pJ/add):")
    for r in results["energy"]["rows"]:
        print(f"  T={r['seq_len']:6d}  softmax {r['softmax']['energy_pj'] / 1e6:10.3f} µJ   "
              f"ecoformer {r['ecoformer']['energy_pj'] / 1e6:8.3f} µJ   saving {100 * r['saving']:5.1f}%")


def plot_results(results: dict, path: str | Path) -> Path:
    """Four panels: test accuracy per task/attention, time vs length, memory vs length, energy vs length."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 4, figsize=(18, 4))
    tasks = list(results["tasks"])
    attns = list(results["scaling"]["attn"])
    ax = axes[0]
    width = 0.8 / max(1, len(attns))
    for j, a in enumerate(attns):
        accs = [results["tasks"][t]["attn"].get(a, {}).get("test_acc", 0) for t in tasks]
        ax.bar([i + j * width for i in range(len(tasks))], accs, width, label=a)
    for i, t in enumerate(tasks):
        ax.hlines(results["tasks"][t]["majority_acc"], i - width / 2, i + len(attns) * width - width / 2,
                  colors="k", linestyles=":")
    ax.set_xticks([i + width * (len(attns) - 1) / 2 for i in range(len(tasks))], tasks)
    ax.set_ylabel("test accuracy (dotted: majority class)")
    ax.legend()
    sc = results["scaling"]
    for ax, key, label in ((axes[1], "fwd_bwd_ms", "forward+backward ms"), (axes[2], "saved_mb", "MB saved for backward")):
        for a in attns:
            ys = sc["attn"][a][key]
            pts = [(T, y) for T, y in zip(sc["lengths"], ys) if y is not None]
            if pts:
                ax.plot(*zip(*pts), marker="o", label=a)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("sequence length")
        ax.set_ylabel(label)
        ax.legend()
    ax = axes[3]
    rows = results["energy"]["rows"]
    Ts = [r["seq_len"] for r in rows]
    ax.plot(Ts, [r["softmax"]["energy_pj"] / 1e6 for r in rows], marker="o", label="softmax")
    ax.plot(Ts, [r["ecoformer"]["energy_pj"] / 1e6 for r in rows], marker="o", label="ecoformer")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("sequence length")
    ax.set_ylabel("energy model, µJ per layer and sequence")
    ax.legend()
    fig.suptitle(f"LRA-style benchmark, preset {results.get('preset')} on {results['run_metadata']['device']}")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Render the README tables of an LRA benchmark result JSON.")
    p.add_argument("results", type=Path)
    p.add_argument("--markdown", type=Path, default=None, help="also write the tables to this file")
    args = p.parse_args(argv)
    if not args.results.is_file():
        raise SystemExit(f"results file not found: {args.results}")
    text = markdown_tables(json.loads(args.results.read_text()))
    if args.markdown:
        args.markdown.write_text(text)
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
