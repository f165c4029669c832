"""Render the README's Lightning performance tables (and a plot) from the newest GPU run under
benchmarks/results/lightning/<commit>/sweep.json (written by benchmarks/lightning_sweep.py).

The folder name is the commit the run measured. The linseq column uses, at each T, the measured variant whose
launch plan (sequence split) equals what the shipped code chooses at that T; every variant's numbers are in the
JSON and in the variants table.

    python benchmarks/render_lightning_table.py            # print the Markdown
    python benchmarks/render_lightning_table.py --readme   # replace the block between the markers in README.md
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "lightning"
RUN = RESULTS / "be394ae"
# runs whose code split sequences by the older rule below (later runs measured the shipped rule itself)
OLD_SPLIT_RULE = {"e37a465"}
BEGIN, END = "<!-- lightning-table:begin -->", "<!-- lightning-table:end -->"
SMS = 132  # H100 SXM multiprocessors, as the run reported


def _segments_at_run(run: str, pps: int, programs: int, blocks: int) -> int:
    """Sequence split that run ``run`` used for a variant with ``pps`` programs per SM."""
    if run not in OLD_SPLIT_RULE and 2 * programs > SMS:
        return 1
    return max(1, min(pps * SMS // programs, blocks // 4))


def _segments_shipped(programs: int, blocks: int) -> int:
    """Sequence split the shipped make_plan chooses on an H100."""
    from linseq.ops.lightning.triton.function import default_num_segments

    return default_num_segments(programs, blocks, SMS)


def _pick(rows, section, provider, T, mode):
    hit = [r for r in rows if r["section"] == section and r["provider"] == provider and r["T"] == T
           and r["mode"] == mode and r["ms"] is not None]
    return hit[0] if hit else None


def _fmt(x, digits=2):
    return "—" if x is None else f"{x:.{digits}f}"


def _both(rows, section, provider, T) -> dict:
    """mode -> the row of ``provider`` at ``T`` in ``section`` (None where not measured), for fwd and fwd+bwd."""
    return {m: _pick(rows, section, provider, T, m) for m in ("fwd", "fwdbwd")}


def _ms_pair(got: dict) -> str:
    """'fwd / fwd+bwd' milliseconds of a :func:`_both` result."""
    return f"{_fmt(got['fwd'] and got['fwd']['ms'])} / {_fmt(got['fwdbwd'] and got['fwdbwd']['ms'])}"


def shipped_rows(data: dict, run: str, heads: int = 16) -> dict[tuple[int, str], dict]:
    """(T, mode) -> the linseq row measured with the launch plan the shipped code uses."""
    from linseq.ops.lightning.triton import function as F

    rows = data["rows"]
    out = {}
    for name, settings in data["variants"].items():
        if any(getattr(F, k, v) != v for k, v in settings.items() if k != "PROGRAMS_PER_SM"):
            continue  # a launch setting the shipped code does not use
        for r in rows:
            if r["section"] != "head" or r["variant"] != name or r["ms"] is None:
                continue
            programs, blocks = r["B"] * heads, -(-r["T"] // 64)
            segments = _segments_shipped(programs, blocks)
            if segments > 1 and "STATE_SPLITS" not in settings:
                continue  # split with whole-segment state passes: runs before the sub-segments (ba3c541)
            if _segments_at_run(run, settings["PROGRAMS_PER_SM"], programs, blocks) == segments:
                out.setdefault((r["T"], r["mode"]), dict(r, segments=_segments_shipped(programs, blocks)))
    return out


def main_table(data: dict, run: str) -> str:
    rows = data["rows"]
    ours = shipped_rows(data, run)
    lengths = sorted({T for T, _ in ours})
    lines = ["| T | B | segments | fla fwd / fwd+bwd (ms) | linseq fwd / fwd+bwd (ms) | speed-up fwd / fwd+bwd "
             "| peak GiB fwd+bwd linseq / fla |", "|---|---|---|---|---|---|---|"]
    for T in lengths:
        f = _both(rows, "head", "fla", T)
        o = {m: ours.get((T, m)) for m in ("fwd", "fwdbwd")}
        ratio = [f"{f[m]['ms'] / o[m]['ms']:.2f}×" if f[m] and o[m] else "—" for m in ("fwd", "fwdbwd")]
        seg = o["fwd"]["segments"] if o["fwd"] else "—"
        lines.append(
            f"| {T // 1024}K | {o['fwd']['B'] if o['fwd'] else '—'} | {seg} "
            f"| {_ms_pair(f)} | {_ms_pair(o)} "
            f"| {' / '.join(ratio)} "
            f"| {_fmt(o['fwdbwd'] and o['fwdbwd']['peak_gib'])} / {_fmt(f['fwdbwd'] and f['fwdbwd']['peak_gib'])} |")
    return "\n".join(lines)


def summary(data: dict, run: str) -> str:
    """One sentence of measured ranges against the issue's bar (forward ≥ 1.5×, forward+backward ≥ 2× from 4K)."""
    ours = shipped_rows(data, run)

    def ratios(mode: str, lo: int, hi: int) -> str:
        vals = [_pick(data["rows"], "head", "fla", T, mode)["ms"] / r["ms"] for (T, m), r in ours.items()
                if m == mode and lo <= T <= hi and _pick(data["rows"], "head", "fla", T, mode)]
        return f"{min(vals):.2f}–{max(vals):.2f}×" if vals else "—"

    mem = [ours[k]["peak_gib"] / f["peak_gib"] for k in ours if k[1] == "fwdbwd"
           for f in [_pick(data["rows"], "head", "fla", k[0], "fwdbwd")] if f and f.get("peak_gib")]
    per_token = {T: r["ms"] / (r["B"] * T) for (T, m), r in ours.items() if m == "fwd" and T >= 4096}
    spread = max(per_token.values()) / min(per_token.values()) - 1 if per_token else float("nan")
    return (f"In this run forward+backward is {ratios('fwdbwd', 4096, 32768)} fla from 4K to 32K and "
            f"{ratios('fwdbwd', 65536, 1 << 30)} from 64K; the forward is {ratios('fwd', 4096, 32768)} from 4K to 32K "
            f"and {ratios('fwd', 65536, 1 << 30)} from 64K (bar: 1.5× forward, 2× forward+backward). Forward time per "
            f"token varies by {spread:.0%} from 4K to 128K (bar: 15 %); peak memory is "
            f"{min(mem):.0%}–{max(mem):.0%} of fla's.")


def section_table(data: dict, section: str) -> str | None:
    rows = [r for r in data["rows"] if r["section"] == section and r["variant"] in ("-", "default")]
    lengths = sorted({r["T"] for r in rows if r["ms"] is not None})
    if not lengths:
        return None
    lines = ["| T | B | fla fwd / fwd+bwd (ms) | linseq fwd / fwd+bwd (ms) | speed-up fwd / fwd+bwd |",
             "|---|---|---|---|---|"]
    for T in lengths:
        f, o = _both(rows, section, "fla", T), _both(rows, section, "linseq-triton", T)
        ratio = [f"{f[m]['ms'] / o[m]['ms']:.2f}×" if f[m] and o[m] else "—" for m in ("fwd", "fwdbwd")]
        B = next(r["B"] for r in rows if r["T"] == T)
        lines.append(f"| {T // 1024}K | {B} | {_ms_pair(f)} | {_ms_pair(o)} | {' / '.join(ratio)} |")
    return "\n".join(lines)


PEER_NAMES = {"lightning-attn": "lightning-attn 0.0.5", "sdpa": "torch SDPA (causal softmax)"}


def peers_table(data: dict, run: str) -> str | None:
    """The other peers' times at each T (fwd / fwd+bwd ms) and linseq's speed-up over each in the same run."""
    rows = [r for r in data["rows"] if r["section"] == "peers"]
    providers = list(dict.fromkeys(r["provider"] for r in rows))
    lengths = sorted({r["T"] for r in rows if r["ms"] is not None})
    if not lengths:
        return None
    ours = shipped_rows(data, run)
    head = " | ".join(f"{PEER_NAMES.get(p, p)} fwd / fwd+bwd (ms) | linseq speed-up" for p in providers)
    lines = [f"| T | B | {head} |", "|---|---|" + "---|---|" * len(providers)]
    for T in lengths:
        cells = []
        for p in providers:
            got = _both(rows, "peers", p, T)
            cells.append(_ms_pair(got))
            cells.append(" / ".join(f"{got[m]['ms'] / ours[(T, m)]['ms']:.1f}×" if got[m] and (T, m) in ours else "—"
                                    for m in ("fwd", "fwdbwd")))
        B = next(r["B"] for r in rows if r["T"] == T)
        lines.append(f"| {T // 1024}K | {B} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _variant_cells(rows: list[dict], section: str, variant: str, lengths) -> list[str]:
    """'fwd / fwd+bwd' ms of one linseq variant at each length (— where it was not measured)."""
    ours = [r for r in rows if r["variant"] == variant]
    return [_ms_pair(_both(ours, section, "linseq-triton", T)) for T in lengths]


def section_variants_table(data: dict, section: str) -> str | None:
    """linseq fwd / fwd+bwd (ms) of every variant timed in ``section`` beside the shipped settings (None if none)."""
    from linseq.ops.lightning.triton import function as F

    rows = [r for r in data["rows"] if r["section"] == section and r["provider"] == "linseq-triton"]
    names = ["default"] + [n for n in data["variants"] if any(r["variant"] == n for r in rows)]
    if len(names) == 1:
        return None
    lengths = sorted({r["T"] for r in rows})
    lines = ["| variant | " + " | ".join(f"{T // 1024}K" for T in lengths) + " |", "|---|" + "---|" * len(lengths)]
    for n in names:
        cells = _variant_cells(rows, section, n, lengths)
        label = "shipped" if n == "default" else f"`{n}` " + ", ".join(
            f"{k}={v}" for k, v in data["variants"][n].items() if getattr(F, k, None) != v)
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def variants_table(data: dict) -> str:
    rows = [r for r in data["rows"] if r["section"] == "head" and r["provider"] == "linseq-triton"]
    names = [n for n in data["variants"] if any(r["variant"] == n for r in rows)]
    lengths = sorted({r["T"] for r in rows})
    lines = ["| variant | " + " | ".join(f"{T // 1024}K" for T in lengths) + " |",
             "|---|" + "---|" * len(lengths)]
    for n in names:
        cells = _variant_cells(rows, "head", n, lengths)
        settings = data["variants"][n]
        if n == names[0]:
            label = f"`{n}` (shipped)"
        else:  # only what differs from the first (shipped) variant
            base = data["variants"][names[0]]
            diff = {k: v for k, v in settings.items() if base.get(k) != v}
            label = f"`{n}` " + (", ".join(f"{k}={v}" for k, v in diff.items()) or "same settings")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def repeat_table(run: Path) -> str | None:
    """Speed-ups of the shipped plan over fla in ``run`` and in every later run that measured both (same kernels):
    how much the ratios move from one run to the next."""
    start = json.loads((run / "sweep.json").read_text())["meta"]["date"]
    runs = []
    for folder in RESULTS.iterdir():
        if (folder / "sweep.json").is_file():
            data = json.loads((folder / "sweep.json").read_text())
            if data["meta"]["date"] >= start:
                runs.append((data["meta"]["date"], folder, data))
    runs.sort(key=lambda x: x[0])  # by measurement time
    table, times = {}, {"fla": {}, "linseq": {}}
    for date, folder, data in runs:
        ours = shipped_rows(data, folder.name)
        cells = {}
        for (T, mode), r in ours.items():
            f = _pick(data["rows"], "head", "fla", T, mode)
            if f:
                cells[(T, mode)] = f["ms"] / r["ms"]
                times["fla"].setdefault((T, mode), []).append(f["ms"])
                times["linseq"].setdefault((T, mode), []).append(r["ms"])
        if cells:
            table[(date, folder.name)] = cells
    if len(table) < 2:
        return None
    spread = {who: max((max(v) / min(v) - 1 for v in t.values() if len(v) > 1), default=0.0)
              for who, t in times.items()}
    lengths = sorted({T for cells in table.values() for T, _ in cells})
    lines = ["| run | " + " | ".join(f"{T // 1024}K" for T in lengths) + " |", "|---|" + "---|" * len(lengths)]
    for (date, name), cells in table.items():
        row = [" / ".join(f"{cells[(T, m)]:.2f}×" if (T, m) in cells else "—" for m in ("fwd", "fwdbwd"))
               for T in lengths]
        lines.append(f"| `{name}` {date[11:16]} UTC | " + " | ".join(row) + " |")
    return (f"Run to run: speed-up over fla (fwd / fwd+bwd) of the same shipped kernels and plan in this run and the "
            f"later ones that measured both. At a given T and mode, fla's times differ by at most "
            f"{spread['fla']:.0%} between these runs and linseq's by up to {spread['linseq']:.0%}; linseq's kernels "
            "keep one program per multiprocessor, so they probably follow the SM clock (not recorded):\n\n"
            + "\n".join(lines))


def decode_table(data: dict) -> str | None:
    rows = [r for r in data["rows"] if r["section"] == "decode" and r["ms"] is not None]
    if not rows:
        return None
    batches = sorted({r["B"] for r in rows})
    lines = ["| provider | " + " | ".join(f"B={b}" for b in batches) + " |", "|---|" + "---|" * len(batches)]
    for p in dict.fromkeys(r["provider"] for r in rows):
        cells = [_fmt(next((r["ms"] * 1e3 for r in rows if r["provider"] == p and r["B"] == b), None), 0)
                 for b in batches]
        lines.append(f"| {p} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def latest_with(section: str, run: Path) -> tuple[Path, dict] | None:
    """``run`` if it measured linseq in ``section``, else the most recent other run under RESULTS that did."""
    found = []
    for folder in [run] + sorted(p for p in RESULTS.iterdir() if p.is_dir() and p != run):
        f = folder / "sweep.json"
        if not f.is_file():
            continue
        data = json.loads(f.read_text())
        if any(r["section"] == section and r["ms"] is not None and r["provider"] != "fla" for r in data["rows"]):
            if folder == run:
                return folder, data
            found.append((data["meta"].get("date", ""), folder, data))
    if not found:
        return None
    _, folder, data = max(found, key=lambda x: x[0])
    return folder, data


def plot(data: dict, path: Path, run: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ours = shipped_rows(data, run)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, mode, title in zip(axes, ("fwd", "fwdbwd"), ("forward", "forward + backward")):
        for label, get in (("fla chunk_simple_gla", lambda T: _pick(data["rows"], "head", "fla", T, mode)),
                           ("linseq triton", lambda T: ours.get((T, mode)))):
            pts = [(T, get(T)) for T in sorted({T for T, _ in ours})]
            pts = [(T, r["ms"] / (r["B"] * T) * 1e6) for T, r in pts if r]
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=label)
        ax.set_xscale("log", base=2)
        ax.set_xlabel("sequence length T (B·T = 65,536)")
        ax.set_ylabel("ns per token")
        ax.set_ylim(bottom=0)
        ax.set_title(f"{title}, H=16, D=128, bf16")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(f"Lightning attention on {data['meta']['device']}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def render(run: Path = RUN) -> str:
    data = json.loads((run / "sweep.json").read_text())
    meta = data["meta"]
    out = [f"Measured on **{meta['device']}**, {meta['date'][:10]}, commit `{run.name}`, torch {meta['torch']}, "
           f"triton {meta['triton']}; median of `triton.testing.do_bench`, `.grad` reset between calls; "
           f"bf16, per-head decay, B·T = 65,536. Source: `{(run / 'sweep.json').relative_to(ROOT)}`.", "",
           "**H=16, D=128** — fla 0.6.0 `chunk_simple_gla(g_gamma=log_decay, scale=1.0)` vs linseq `backend=\"triton\"`",
           "", main_table(data, run.name), "", summary(data, run.name), "",
           f"![Lightning attention, H=16, D=128]({(run / 'lightning_h16_d128.png').relative_to(ROOT)})", ""]
    repeats = repeat_table(run)
    if repeats:
        out += [repeats, ""]

    def source(section: str) -> tuple[dict | None, str, str]:
        """(data, note, run name) of the run the section's table comes from: this run, or the latest that has it."""
        hit = latest_with(section, run)
        if hit is None:
            return None, "", ""
        folder, other = hit
        if folder == run:
            return other, "", folder.name
        device = other["meta"].get("device")
        on = f"on {device}, " if device and device != meta.get("device") else ""
        return other, (f" — from run `{folder.name}` ({on}{other['meta']['date'][:16].replace('T', ' ')} UTC; "
                       f"not measured in `{run.name}`)"), folder.name

    other, note, name = source("peers")
    table = peers_table(other, name) if other else None
    if table:
        out += ["**Other peers**, H=16, D=128, per-head decay, speed-up of linseq in the same run" + note, "",
                table, ""]

    for section, title in (("token", "**Per-token decay**, H=16, D=128 — fla `chunk_simple_gla(g=...)`"),
                           ("h32", "**H=32, D=64**, per-head decay")):
        other, note, _ = source(section)
        table = section_table(other, section) if other else None
        out += [title + note, "", table if table else "_not measured_", ""]
        extra = section_variants_table(other, section) if other else None
        if extra:
            out += ["Variants timed in the same section (linseq fwd / fwd+bwd ms):", "", extra, ""]
    other, note, _ = source("decode")
    dec = decode_table(other) if other else None
    out += ["**Decoding one token** (µs per step, H=16, D=128, float32 state; linseq `recurrent` backend vs fla "
            "`fused_recurrent_simple_gla`)" + note, "", dec if dec else "_not measured_", "",
            "Launch variants measured in the same run (fwd / fwd+bwd ms; see `benchmarks/results/lightning/NOTES.md`):",
            "", variants_table(data), ""]
    return "\n".join(out).rstrip() + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--readme", action="store_true", help="rewrite the marked block of README.md")
    ap.add_argument("--run", type=Path, default=RUN, help="results folder named after the measured commit")
    args = ap.parse_args()
    text = render(args.run)
    plot(json.loads((args.run / "sweep.json").read_text()), args.run / "lightning_h16_d128.png", args.run.name)
    if not args.readme:
        print(text)
        return
    readme = ROOT / "README.md"
    src = readme.read_text()
    start, stop = src.index(BEGIN) + len(BEGIN), src.index(END)
    readme.write_text(src[:start] + "\n" + text + src[stop:])
    print(f"updated {readme}")


if __name__ == "__main__":
    main()
