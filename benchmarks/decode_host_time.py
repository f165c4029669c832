"""Host time of one decoding step, with the kernel launch stubbed out, on any machine (no GPU needed).

A one-token step of the fused recurrent kernel takes a few µs on the GPU, so its latency is host time: argument
checks, tensor preparation and the Triton launch. This times the first two per call (the launch is replaced by a
no-op), at B = 1, H = 16, D = 128, so changes to that path can be measured between device sessions.

    python benchmarks/decode_host_time.py [--out RESULT.json] [--label TEXT]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

import linseq.ops.lightning.triton.decode as decode
from linseq.io import run_metadata
from linseq.ops import tnl_log_decay
from linseq.ops.lightning.checks import check_lightning_args


class _NoLaunch:
    def __getitem__(self, grid):
        return lambda *args, **kwargs: None


def per_call_us(fn, n: int = 2000, repeats: int = 7) -> float:
    """Median over ``repeats`` rounds of the mean time per call (a shared VM's timings jump from round to round)."""
    for _ in range(200):
        fn()
    rounds = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        rounds.append((time.perf_counter() - t0) / n * 1e6)
    return statistics.median(rounds)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=None, help="also write the figures (with run metadata) as JSON")
    p.add_argument("--label", default="", help="what was measured, stored in the JSON")
    args = p.parse_args()
    torch.set_num_threads(1)
    decode.lightning_decode_kernel = _NoLaunch()
    B, H, D = 1, 16, 128
    q, k, v = (torch.randn(B, 1, H, D, dtype=torch.bfloat16) for _ in range(3))
    log_decay, state = tnl_log_decay(H, 0, 24), torch.randn(B, H, D, D)
    with torch.no_grad():
        checks = per_call_us(lambda: check_lightning_args(q, k, v, log_decay, 1.0, state, None, "recurrent"))
        prep = per_call_us(lambda: decode.fused_recurrent_forward(q, k, v, log_decay, 1.0, state, True, None))
    print(f"B={B}, H={H}, D={D}: argument checks {checks:.1f} µs, preparation without the launch {prep:.1f} µs")
    if args.out:
        args.out.write_text(json.dumps({"meta": run_metadata(), "label": args.label, "B": B, "H": H, "D": D,
                                        "checks_us": checks, "preparation_us": prep}, indent=1))
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
