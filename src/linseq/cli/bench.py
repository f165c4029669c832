"""``linseq bench``: time the Lightning op's backends and its peers on the device at hand."""

from __future__ import annotations

import argparse
import dataclasses
import datetime
from pathlib import Path

NAME = "bench"
HELP = "time Lightning attention backends and peers (fla, lightning-attn, SDPA); write JSON and a plot"
DESCRIPTION = """\
Times linear attention with decay (Lightning Attention-2) for every available backend and peer across
sequence lengths at a constant number of tokens B·T, forward and forward+backward, with peak memory;
on a GPU also head dim 64, per-token decay and one-token decoding. Prints a table, writes JSON and PNG.

Peers are used when installed: fla (`fla-core`), lightning-attn, and torch SDPA (softmax, causal).
Without arguments: on a CUDA machine the full suite (H=16, D=128, B·T=65,536, T=1K..128K, bf16);
on a CPU a small preset (H=4, D=32, B·T=2,048) that takes about a minute."""
EPILOG = """\
examples:
  linseq bench                                   # embedded default for this device
  linseq bench --lengths 4096 16384 --modes fwd  # a subset
  linseq bench --decay token --out runs/tok      # per-token decay
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", type=Path, default=None, help="output folder (default: runs/bench-<time>)")
    p.add_argument("--lengths", type=int, nargs="+", default=None, help="sequence lengths T")
    p.add_argument("--tokens", type=int, default=None, help="B·T held constant (B = tokens // T)")
    p.add_argument("--heads", type=int, default=None, help="number of heads H")
    p.add_argument("--head-dim", type=int, default=None, help="head dim K = V")
    p.add_argument("--dtype", choices=["float32", "bfloat16", "float16"], default=None)
    p.add_argument("--decay", choices=["head", "token"], default=None, help="per-head or per-token decay")
    p.add_argument("--modes", nargs="+", choices=["fwd", "fwdbwd"], default=None)
    p.add_argument("--providers", nargs="+", default=None,
                   help="linseq-triton linseq-chunk linseq-recurrent linseq-naive fla lightning-attn sdpa")
    p.add_argument("--quick", action="store_true", help="only the main configuration (skip extras on GPU)")


def _configs(args, on_gpu: bool):
    from linseq.bench.lightning import BenchConfig, DecodeConfig, cpu_default

    base = BenchConfig() if on_gpu else cpu_default()
    overrides = {
        "lengths": tuple(args.lengths) if args.lengths else None,
        "tokens": args.tokens, "heads": args.heads, "head_dim": args.head_dim, "dtype": args.dtype,
        "decay": args.decay, "modes": tuple(args.modes) if args.modes else None,
        "providers": tuple(args.providers) if args.providers else None,
    }
    for key, value in overrides.items():
        values = value if isinstance(value, tuple) else (value,)
        if any(isinstance(x, int) and x <= 0 for x in values):
            raise ValueError(f"--{key.replace('_', '-')} must be positive; got {value}")
    main = dataclasses.replace(base, **{k: v for k, v in overrides.items() if v is not None})
    configs = [main]
    customised = any(v is not None for v in overrides.values())
    decode = None
    if on_gpu and not args.quick and not customised:
        configs.append(dataclasses.replace(main, heads=32, head_dim=64, name="h32_d64",
                                           providers=("linseq-triton", "fla", "sdpa"),
                                           lengths=(2048, 32768, 131072)))
        configs.append(dataclasses.replace(main, decay="token", name="per_token_decay",
                                           providers=("linseq-triton", "fla"), lengths=(4096, 65536)))
        decode = DecodeConfig()
    return configs, decode


def run(args: argparse.Namespace) -> int:
    import torch
    from tqdm import tqdm

    from linseq.bench.lightning import measure, measure_decode, plot, table, to_rows
    from linseq.io import run_metadata, save_json

    on_gpu = torch.cuda.is_available()
    device = torch.device("cuda" if on_gpu else "cpu")
    configs, decode = _configs(args, on_gpu)
    out = args.out or Path("runs") / f"bench-{datetime.datetime.now():%Y%m%d-%H%M%S}"
    out.mkdir(parents=True, exist_ok=True)

    total = sum(len(c.providers) * len(c.lengths) * len(c.modes) for c in configs)
    total += len(decode.providers) * len(decode.batches) if decode else 0
    bar = tqdm(total=total, desc="bench", unit="run")

    def progress(msg: str) -> None:
        bar.set_postfix_str(msg)
        bar.update(1)

    summary = {"meta": run_metadata(device=str(device)), "configs": []}
    report: list[str] = []  # printed once the progress bar is done
    for cfg in configs:
        results = measure(cfg, device, progress)
        png = out / f"lightning_{cfg.name}.png"
        plot(results, str(png), f"Lightning attention, {cfg.name}: H={cfg.heads}, D={cfg.head_dim}, "
                                f"B·T={cfg.tokens}, {cfg.dtype}, {cfg.decay} decay, {summary['meta']['device']}")
        summary["configs"].append({"config": dataclasses.asdict(cfg), "results": to_rows(results), "plot": png.name})
        report.append(f"\n[{cfg.name}] median ms (H={cfg.heads}, D={cfg.head_dim}, {cfg.dtype}, {cfg.decay} decay)")
        report.append(table(results, cfg.modes))
        report += [f"  {r.provider} T={r.T} {r.mode}: {r.error}" for r in results if r.error]
        save_json(out / "lightning_bench.json", summary)  # after every config, so an interrupted run keeps it
    if decode:
        dres = measure_decode(decode, device, progress)
        summary["decode"] = {"config": dataclasses.asdict(decode), "results": to_rows(dres)}
        report.append("\n[decode] one token, median µs")
        report += [f"  {r.provider:18s} B={r.B:<4d} " + (f"{r.ms * 1e3:8.1f} µs" if r.ms else f"error: {r.error}")
                   for r in dres]
        save_json(out / "lightning_bench.json", summary)
    bar.close()
    print("\n".join(report))
    path = save_json(out / "lightning_bench.json", summary)
    print(f"\nwrote {path} and {len(configs)} plot(s) in {out}/")
    return 0
