"""Registers and spills of the Lightning Triton kernels for an H100 (sm_90a), compiled on a machine without a GPU.

Triton compiles for a target it is told about and its wheel ships ptxas, so register use and spill bytes (the
numbers that decide how many programs share a multiprocessor) can be read without device time. Kernel variants
(TMA loads, float32 backward operands, a register cap) are compared here before they are timed on the GPU.

    python benchmarks/lightning_registers.py [--decay head|token] [--maxnreg 168] [--warps 8] [--stages 3] [--only dq]

Shapes as the performance bar: bf16, H=16, K=V=128, 64-token blocks. The kernels file is loaded on its own (it
needs only triton), so any Python with triton ≥ 3.6 runs this; use the device's Triton version (3.6) for numbers
that match it. Pointer arguments are declared 16-byte aligned and T divisible by 16, as at real launches.
"""

from __future__ import annotations

import argparse
import collections
import importlib.util
import re
import subprocess
import tempfile
from pathlib import Path

import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource

KERNELS_FILE = Path(__file__).resolve().parents[1] / "src" / "linseq" / "ops" / "lightning" / "triton" / "kernels.py"
TARGET = GPUTarget("cuda", 90, 32)
BF16_TILES = {"Q", "Kp", "Vp", "O", "DO", "DV"}  # [B*T, H, D] tensors in the inputs' dtype
FP32_TENSORS = {"G", "LD", "H0", "HT", "LOCAL", "SEG_LD", "SEG_START", "DQ", "DK", "DHT", "DH0"}
INT_SCALARS = {"T", "NS", "SEG_LEN", "NSUB", "DK_SPLIT_STRIDE"}


def load_kernels():
    spec = importlib.util.spec_from_file_location("lightning_kernels", KERNELS_FILE)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def compile_kernel(fn, constants: dict, typed: dict | None = None, **options):
    """Compile ``fn`` for sm_90a: pointers 16-byte aligned, the listed scalars divisible by 16; ``typed`` gives
    argument types by name (e.g. host tensor descriptors)."""
    sig = dict(typed or {})
    for name in fn.arg_names:
        if name in sig:
            continue
        if name in constants:
            sig[name] = "constexpr"
        elif name in BF16_TILES:
            sig[name] = "*bf16"
        elif name in FP32_TENSORS:
            sig[name] = "*fp32"
        elif name == "CU":
            sig[name] = "*i32"
        elif name == "scale":
            sig[name] = "fp32"
        elif name in INT_SCALARS:
            sig[name] = "i32"
        else:
            raise SystemExit(f"{fn.__name__}: no type for argument {name!r}; extend lightning_registers.py")
    attrs = {(fn.arg_names.index(n),): [["tt.divisibility", 16]] for n, t in sig.items()
             if t.startswith("*") or n in ("T", "SEG_LEN")}
    return triton.compile(ASTSource(fn, sig, constants, attrs), target=TARGET, options=options)


def resource_usage(compiled) -> str:
    """``REG:n STACK:bytes ...`` from cuobjdump of the kernel's cubin."""
    tool = Path(triton.__file__).parent / "backends" / "nvidia" / "bin" / "cuobjdump"
    with tempfile.NamedTemporaryFile(suffix=".cubin") as f:
        f.write(compiled.asm["cubin"])
        f.flush()
        out = subprocess.run([str(tool), "-res-usage", f.name], capture_output=True, text=True).stdout
    line = next((ln.strip() for ln in out.splitlines() if "REG:" in ln), out.strip()[-200:])
    static = " ".join(p for p in line.split() if p.split(":")[0] in ("REG", "STACK", "SHARED"))
    return f"{static} DYN_SHARED:{compiled.metadata.shared}"  # bytes a launch asks for (limit 232,448 on sm_90)


def wgmma_counts(compiled) -> str:
    """Warpgroup MMA instructions in the kernel's PTX by shape, e.g. ``m64n32k16:8 m64n64k16:12``: one warpgroup's
    instructions per block of the main loop, so a dot that both warpgroups repeat shows up as twice the count."""
    found = collections.Counter(re.findall(r"wgmma\.mma_async\.sync\.aligned\.(m\d+n\d+k\d+)", compiled.asm["ptx"]))
    return " ".join(f"{shape}:{n}" for shape, n in sorted(found.items()))


def kernel_cases(decay: str = "head") -> dict[str, tuple]:
    """name -> (kernel, constexpr arguments, typed arguments) for the shipped kernels and their opt-in variants."""
    k = load_kernels()
    shape = dict(H=16, K=128, V=128, BT=64, BK=128, BV=128, DECAY={"head": 1, "token": 2}[decay], IS_VARLEN=False)
    desc = {n: "tensordesc<bf16[64, 1, 128]>" for n in ("QD", "KD", "VD")}  # host descriptors of FWD_TMA
    shipped = dict(UNCHAIN=True, SCALE_OUT=True)  # function.UNCHAIN_DOTS, SCALE_OUTPUTS
    fwd = dict(shape, HAS_H0=False, STORE_STATE=False, STATE_ONLY=False, SPLIT=False, PRECISION="tf32", REVERSED=False,
               **shipped)
    cases = {
        "forward": (k.lightning_fwd_kernel, dict(fwd, USE_TMA=False, QD=None, KD=None, VD=None), None),
        "forward, TMA loads": (k.lightning_fwd_kernel, dict(fwd, USE_TMA=True), desc),
    }
    state = dict(fwd, STATE_ONLY=True, SPLIT=True, USE_TMA=False, QD=None, KD=None, VD=None)
    cases["forward state pass"] = (k.lightning_fwd_kernel, dict(state, REVERSED=False), None)
    cases["forward state pass, reversed"] = (k.lightning_fwd_kernel, dict(state, REVERSED=True), None)
    dq = dict(shape, HAS_H0=False, USE_TMA=False, DOD=None, KD=None, VD=None, UNCHAIN=True)
    cases["dq"] = (k.lightning_bwd_dq_kernel, dict(dq, PRECISION="tf32", F32=False), None)
    cases["dq, float32 operands"] = (k.lightning_bwd_dq_kernel, dict(dq, PRECISION="tf32x3", F32=True), None)
    for want in ("dk", "dv"):
        flags = dict(shape, HAS_DHT=False, STORE_DH0=False, STATE_ONLY=False, SPLIT=False, WANT_DK=want == "dk",
                     WANT_DV=want == "dv", USE_TMA=False, QD=None, KD=None, VD=None, DOD=None, REVERSED=False,
                     **shipped)
        cases[want] = (k.lightning_bwd_dkdv_kernel, dict(flags, PRECISION="tf32", F32=False), None)
        # float32 operands run on 32-token blocks when the state tile is large (function.lightning_backward)
        cases[f"{want}, float32 operands"] = (k.lightning_bwd_dkdv_kernel,
                                              dict(flags, PRECISION="tf32x3", F32=True, BT=32), None)
    # the kernels before be394ae: Triton's chained-dot layout (each block's 64-row dots on both warpgroups)
    chained = dict(UNCHAIN=False, SCALE_OUT=False)
    cases["forward, chained layout"] = (k.lightning_fwd_kernel, dict(cases["forward"][1], **chained), None)
    cases["dq, chained layout"] = (k.lightning_bwd_dq_kernel, dict(cases["dq"][1], UNCHAIN=False), None)
    for want in ("dk", "dv"):
        cases[f"{want}, chained layout"] = (k.lightning_bwd_dkdv_kernel, dict(cases[want][1], **chained), None)
    # one dk/dv sweep for both outputs (DKDV_SEPARATE=False, DKDV_BLOCK_T=64): q and dO read once
    cases["dk+dv fused"] = (k.lightning_bwd_dkdv_kernel, dict(cases["dk"][1], WANT_DV=True), None)
    ds = dict(flags, STATE_ONLY=True, SPLIT=True, WANT_DK=True, WANT_DV=True, PRECISION="tf32", F32=False)
    cases["dS state pass"] = (k.lightning_bwd_dkdv_kernel, dict(ds, REVERSED=False), None)
    cases["dS state pass, reversed"] = (k.lightning_bwd_dkdv_kernel, dict(ds, REVERSED=True), None)
    return cases


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--decay", choices=("head", "token"), default="head")
    p.add_argument("--warps", type=int, default=8, help="warps per program (shipped: 8 for a 128×128 state)")
    p.add_argument("--stages", type=int, default=3, help="pipeline stages (shipped: 3 when shared memory allows)")
    p.add_argument("--maxnreg", type=int, default=None, help="cap registers per thread (e.g. 128: 2 programs/SM)")
    p.add_argument("--only", default=None, help="compile only the cases whose name contains this text")
    p.add_argument("--wgmma", action="store_true", help="also print the warpgroup MMA instructions by shape")
    args = p.parse_args()
    options = dict(num_warps=args.warps, num_stages=args.stages, **({"maxnreg": args.maxnreg} if args.maxnreg else {}))
    print(f"triton {triton.__version__}, sm_90a, bf16, H=16, K=V=128, BT=64, {args.decay} decay, "
          f"{args.warps} warps, {args.stages} stages" + (f", maxnreg {args.maxnreg}" if args.maxnreg else ""))
    for name, (fn, constants, typed) in kernel_cases(args.decay).items():
        if args.only and args.only not in name:
            continue
        try:
            compiled = compile_kernel(fn, constants, typed, **options)
            extra = f" WGMMA {wgmma_counts(compiled)}" if args.wgmma else ""
            print(f"  {name:28s} {resource_usage(compiled)}{extra}")
        except Exception as err:  # one failing variant should not hide the others
            print(f"  {name:28s} ERROR {type(err).__name__}: {str(err)[:200]}")


if __name__ == "__main__":
    main()
