"""Compare launch variants of the Triton Lightning kernels in one GPU call (H=16, D=128, bf16, B·T=65,536).

Varies the parallelism target (programs per SM, which sets the sequence split), pipeline stages and the dk/dv
block, and prints median ms of forward and forward+backward per variant and T. Writes JSON to $1 (or stdout only).

    python benchmarks/lightning_sweep.py OUT.json
"""

from __future__ import annotations

import itertools
import json
import sys

import torch
import triton

from linseq.io import run_metadata
from linseq.ops import lightning_attn, tnl_log_decay
from linseq.ops.lightning.triton import function as F

H, D, TOKENS = 16, 128, 65536
LENGTHS = (4096, 16384, 65536)
VARIANTS = list(itertools.product((1, 2, 4), (2, 3), (None, 64)))  # programs/SM, stages, dk/dv block


def time_variant(T: int) -> tuple[float, float]:
    B = TOKENS // T
    q, k, v = (torch.randn(B, T, H, D, device="cuda", dtype=torch.bfloat16, requires_grad=True) for _ in range(3))
    g = tnl_log_decay(H, 0, 24).cuda()
    do = torch.randn_like(q)

    def fwd():
        with torch.no_grad():
            lightning_attn(q, k, v, g, scale=1.0)

    def fwdbwd():
        lightning_attn(q, k, v, g, scale=1.0)[0].backward(do)

    return (triton.testing.do_bench(fwd, warmup=25, rep=100, return_mode="median"),
            triton.testing.do_bench(fwdbwd, warmup=25, rep=100, return_mode="median"))


def main() -> None:
    rows = []
    for per_sm, stages, dkdv_bt in VARIANTS:
        F.PROGRAMS_PER_SM, F.NUM_STAGES, F.DKDV_BLOCK_T = per_sm, stages, dkdv_bt
        for T in LENGTHS:
            try:
                f, fb = time_variant(T)
                rows.append(dict(programs_per_sm=per_sm, stages=stages, dkdv_block=dkdv_bt, T=T, fwd=f, fwdbwd=fb))
                print(f"per_sm={per_sm} stages={stages} dkdv_bt={dkdv_bt} T={T}: fwd {f:.3f} ms, fwd+bwd {fb:.3f} ms",
                      flush=True)
            except Exception as err:  # a variant that fails to compile is reported, the sweep goes on
                print(f"per_sm={per_sm} stages={stages} dkdv_bt={dkdv_bt} T={T}: {type(err).__name__}: {err}"[:300])
    if len(sys.argv) > 1:
        with open(sys.argv[1], "w") as f:
            json.dump({"meta": run_metadata(), "rows": rows}, f, indent=2)


if __name__ == "__main__":
    main()
