"""Compare launch variants of the Triton Lightning kernels against fla in one GPU call.

H=16, D=128, bf16, B·T = 65,536, per-head decay (the issue's bar), then per-token decay and decoding for the
default variant. Measurements go through linseq.bench (same timing and peak-memory code as ``linseq bench``);
the JSON is rewritten after every measurement, so a run cut short by its time limit keeps what it measured.

    python benchmarks/lightning_sweep.py OUT.json [--lengths 4096,16384] [--variants sep3,sep3_pps1]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import time
from dataclasses import asdict

import torch

from linseq.bench.lightning import BenchConfig, DecodeConfig, _measure_one, measure_decode
from linseq.io import run_metadata
from linseq.ops.lightning.triton import function as F

# name -> settings of linseq.ops.lightning.triton.function (other sections run with the module's defaults)
_SHIPPED = dict(NUM_STAGES=None, DKDV_SEPARATE=True, DKDV_BLOCK_T=None, PROGRAMS_PER_SM=1, FWD_VALUE_BLOCK=None,
                FWD_NUM_WARPS=None, FWD_BLOCK_T=None, FWD_TMA=False, BWD_TMA=False, STATE_PASS_REVERSED=False,
                STATE_PASS_WARPS=4, STATE_PASS_STAGES=2, STATE_SPLITS=None, STATE_PROGRAMS_PER_SM=2,
                STATE_PASS_BLOCK_T=None, SMALL_TILE_PROGRAMS_PER_SM=2, UNCHAIN_DOTS=True, SCALE_OUTPUTS=True)
# the plan shipped until dcf8f94: two fused-pass programs per SM in the split rule, whole-segment state passes
_PREVIOUS = {**_SHIPPED, "PROGRAMS_PER_SM": 2, "STATE_SPLITS": 1, "STATE_PASS_WARPS": None, "STATE_PASS_STAGES": None}
VARIANTS = {
    "sub": _SHIPPED,
    "prev": _PREVIOUS,
    # one fused wave, but whole-segment state passes (isolates the sub-segments)
    "pps1_nosub": {**_SHIPPED, "STATE_SPLITS": 1},
    # sub-segmented state passes at 8 warps (127 registers: also two programs per SM)
    "sub_w8": {**_SHIPPED, "STATE_PASS_WARPS": None},
    # (not yet timed) twice the sub-segments; plain-sum state passes; 128-token state-pass blocks (fewer, larger loads)
    "sub_spps4": {**_SHIPPED, "STATE_PROGRAMS_PER_SM": 4},
    # the kernels before the chained-dot layout workaround (Triton's flash-attention layout, each 64-row dot of a
    # block computed on both warpgroups) and with it but the decay still applied to the 16-bit operands (be394ae:
    # 2.21 and 1.57 ms fwd+bwd at 4K against 1.47 shipped)
    "chained": {**_SHIPPED, "UNCHAIN_DOTS": False, "SCALE_OUTPUTS": False},
    "unchain_only": {**_SHIPPED, "SCALE_OUTPUTS": False},
    "sub_rev": {**_SHIPPED, "STATE_PASS_REVERSED": True},
    "sub_bt128": {**_SHIPPED, "STATE_PASS_BLOCK_T": 128, "STATE_PASS_WARPS": 8},
    # the split rule of ba3c541 for 64×64 state tiles (H=32, D=64): one program slot per multiprocessor
    "fill1": {**_SHIPPED, "SMALL_TILE_PROGRAMS_PER_SM": 1},
    "fill4": {**_SHIPPED, "SMALL_TILE_PROGRAMS_PER_SM": 4},
    "sep3": _PREVIOUS,
    # forward programs own 64-wide V slices: twice the programs, so the sequence split starts at 32K, not 16K
    "fwdv64": {**_SHIPPED, "FWD_VALUE_BLOCK": 64},
    "fwdv64_w8": {**_SHIPPED, "FWD_VALUE_BLOCK": 64, "FWD_NUM_WARPS": 8},
    # 32-token forward blocks: smaller attention and output tiles, perhaps two programs per multiprocessor
    "fwdbt32": {**_SHIPPED, "FWD_BLOCK_T": 32},
    "fwdbt32_s2": {**_SHIPPED, "FWD_BLOCK_T": 32, "NUM_STAGES": 2},
    # q, k, v tiles of the forward through Hopper TMA descriptors: no per-element address registers
    "fwdtma": {**_SHIPPED, "FWD_TMA": True},
    "tma": {**_SHIPPED, "FWD_TMA": True, "BWD_TMA": True},
    # the split's state-only passes (T >= 16K here): plain sums of decay-weighted products (no rescaling between
    # the dots), and/or 4 warps with 2 stages (255 registers: two programs per multiprocessor)
    "srev": {**_PREVIOUS, "STATE_PASS_REVERSED": True},
    "sw4": {**_PREVIOUS, "STATE_PASS_WARPS": 4, "STATE_PASS_STAGES": 2},
    "srev_w4": {**_PREVIOUS, "STATE_PASS_REVERSED": True, "STATE_PASS_WARPS": 4, "STATE_PASS_STAGES": 2},
    "sep3_pps1": {**_PREVIOUS, "PROGRAMS_PER_SM": 1},
    "sep3_pps4": {**_PREVIOUS, "PROGRAMS_PER_SM": 4},
    "sep3_pps8": {**_PREVIOUS, "PROGRAMS_PER_SM": 8},
    "fused64_s3": {**_SHIPPED, "DKDV_SEPARATE": False, "DKDV_BLOCK_T": 64},
}
LENGTHS = (1024, 2048, 4096, 8192, 16384, 32768, 65536, 131072)


def gpu_state() -> dict | None:
    """SM clock (MHz), temperature (°C) and power (W) right after a measurement, from nvidia-smi (None without it):
    kernels that keep one program per multiprocessor follow the SM clock, so runs are compared with it."""
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=clocks.sm,temperature.gpu,power.draw",
                              "--format=csv,noheader,nounits"], capture_output=True, text=True, timeout=10).stdout
        clock, temp, power = (float(x) for x in out.splitlines()[0].split(","))
    except (OSError, ValueError, IndexError, subprocess.SubprocessError):
        return None
    return {"sm_clock_mhz": clock, "temperature_c": temp, "power_w": power}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out")
    p.add_argument("--lengths", default=",".join(map(str, LENGTHS)))
    p.add_argument("--variants", default=",".join(VARIANTS),
                   help="the first runs in the 'head' section at --lengths, the others in 'variants'")
    p.add_argument("--other-lengths", default=None,
                   help="lengths of the variants, token and h32 sections (default: --lengths)")
    p.add_argument("--h32-variants", default="sub",
                   help="variants timed in the h32 section (the first is the shipped one the README reports)")
    p.add_argument("--sections", default="head,decode,token,h32,variants,peers",
                   help="run in this order. head: per-head decay, fla and the first variant; decode: one token; "
                        "token: per-token decay; h32: H=32, D=64 (both with the shipped settings); variants: "
                        "the other variants, per-head decay; peers: lightning-attn 0.0.5 and torch SDPA (causal "
                        "softmax) at --lengths, as the head section")
    args = p.parse_args()
    lengths = tuple(int(x) for x in args.lengths.split(","))
    other_lengths = tuple(int(x) for x in (args.other_lengths or args.lengths).split(","))
    variants = args.variants.split(",")
    device = torch.device("cuda")
    rows: list[dict] = []
    doc = {"meta": run_metadata(), "variants": VARIANTS, "rows": rows}

    def record(section: str, variant: str, m) -> None:
        rows.append(dict(section=section, variant=variant, **asdict(m), gpu_state=gpu_state()))
        ms = f"{m.ms:.3f} ms" if m.ms is not None else m.error
        print(f"{section:10s} {variant:11s} {m.provider:14s} T={m.T:<6d} B={m.B:<4d} {m.mode:7s} {ms}", flush=True)
        with open(args.out, "w") as f:
            json.dump(doc, f, indent=1)

    def run(section: str, variant: str, provider: str, cfg: BenchConfig, T_list) -> None:
        for T in T_list:
            for mode in cfg.modes:
                record(section, variant, _measure_one(provider, max(1, cfg.tokens // T), T, cfg, torch.bfloat16,
                                                      mode, device))

    def use(name: str) -> None:
        for key, value in VARIANTS[name].items():
            setattr(F, key, value)

    t0 = time.time()
    head = BenchConfig(decay="head")
    for section in args.sections.split(","):
        if section == "head":
            run("head", "-", "fla", head, lengths)
            use(variants[0])
            run("head", variants[0], "linseq-triton", head, lengths)
            use("sub")
        elif section == "variants":
            for name in variants[1:]:
                use(name)
                run("head", name, "linseq-triton", head, other_lengths)
            use("sub")
        elif section == "peers":
            for provider in ("lightning-attn", "sdpa"):
                run("peers", "-", provider, head, lengths)
        elif section == "decode":
            for m in measure_decode(DecodeConfig(), device):
                record("decode", "-", m)
        elif section in ("token", "h32"):
            cfg = BenchConfig(decay="token") if section == "token" else BenchConfig(heads=32, head_dim=64)
            extra = args.h32_variants.split(",")[1:] if section == "h32" else []
            for T in other_lengths:  # all providers per length, so a run cut short still has pairs
                run(section, "-", "fla", cfg, (T,))
                run(section, "default", "linseq-triton", cfg, (T,))
                for name in extra:
                    use(name)
                    run(section, name, "linseq-triton", cfg, (T,))
                    use("sub")
        else:
            raise SystemExit(f"unknown section {section!r}")
    print(f"sweep done in {time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()
