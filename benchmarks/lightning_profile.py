"""Run the Triton Lightning forward and backward once per configuration, for a profiler to capture
(``ncu --kernel-name regex:lightning``); prints each kernel's median time too.

    python benchmarks/lightning_profile.py [T ...]      # default T = 4096 (B·T = 65,536, H=16, D=128, bf16)
"""

from __future__ import annotations

import sys

import torch
import triton

from linseq.ops import tnl_log_decay
from linseq.ops.lightning.triton.function import triton_lightning_attn

H, D, TOKENS = 16, 128, 65536


def main() -> None:
    lengths = [int(x) for x in sys.argv[1:] if x.isdigit()] or [4096]
    for T in lengths:
        B = TOKENS // T
        q, k, v = (torch.randn(B, T, H, D, device="cuda", dtype=torch.bfloat16, requires_grad=True)
                   for _ in range(3))
        g = tnl_log_decay(H, 0, 24).cuda()
        do = torch.randn_like(q)
        for ns in (1, None):
            def fwd():
                with torch.no_grad():
                    triton_lightning_attn(q, k, v, g, 1.0, None, False, None, ns)

            def fwdbwd():
                triton_lightning_attn(q, k, v, g, 1.0, None, False, None, ns)[0].backward(do)

            fwdbwd()
            torch.cuda.synchronize()
            if "--no-time" not in sys.argv:
                f = triton.testing.do_bench(fwd, warmup=10, rep=50, return_mode="median")
                fb = triton.testing.do_bench(fwdbwd, warmup=10, rep=50, return_mode="median")
                print(f"T={T} num_segments={ns}: fwd {f:.3f} ms, fwd+bwd {fb:.3f} ms", flush=True)


if __name__ == "__main__":
    main()
