"""Every Triton kernel variant compiles for an H100 (sm_90a) with the installed Triton, without a GPU.

The interpreter runs the kernels' Python but not the compiler, so an error that only compilation finds (Triton
3.6 rejected a helper with two differently typed returns) would otherwise first show on the device. The check
runs benchmarks/lightning_registers.py in a child process: this process interprets kernels (conftest), and Triton
cannot compile and interpret in one process."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("triton")
TOOL = Path(__file__).resolve().parents[3] / "benchmarks" / "lightning_registers.py"


def _compile(*args: str) -> list[str]:
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    run = subprocess.run([sys.executable, str(TOOL), *args], capture_output=True, text=True, env=env, timeout=600)
    if run.returncode != 0 and "backends" in run.stderr and "nvidia" in run.stderr:
        pytest.skip(f"this Triton has no CUDA backend: {run.stderr.strip().splitlines()[-1]}")
    assert run.returncode == 0, run.stderr[-2000:]
    return [ln for ln in run.stdout.splitlines()[1:] if ln.strip()]


def test_every_kernel_variant_compiles_for_sm90():
    lines = _compile("--decay", "token", "--wgmma")
    assert len(lines) == 17, lines  # one line per case of kernel_cases()
    failed = [ln for ln in lines if "REG:" not in ln]
    assert not failed, "\n".join(failed)
    # Each block's QKᵀ-sized dot (64×64 out of 128-deep operands) is 8 m64n32k16 instructions per warpgroup when the
    # two warpgroups split it, 16 when Triton's chained-dot layout makes both compute all of it (be394ae: 33 % of
    # forward+backward time on an H100). A compiler change that brings the repetition back fails here.
    wgmma = {ln.split("REG:")[0].strip(): dict(x.split(":") for x in ln.split("WGMMA")[1].split()) for ln in lines}
    for kernel in ("forward", "dq", "dk", "dv"):
        assert wgmma[kernel].get("m64n32k16") == "8", (kernel, wgmma[kernel])
        assert wgmma[f"{kernel}, chained layout"].get("m64n32k16") == "16", (kernel, wgmma[f"{kernel}, chained layout"])


def test_float32_operand_dkdv_sweeps_fit_shared_memory_with_per_head_decay():
    """At the block and stages the launch uses (32 tokens, three stages), the float32-operand dk and dv sweeps fit
    the 232,448 bytes of an sm_90 block; at 64 tokens the dv sweep asked for 262,144 and failed on the GPU."""
    from linseq.ops.lightning.triton.function import dkdv_block_t

    assert dkdv_block_t(128, 128, float32_operands=True) == 32  # the block the tool compiles these sweeps at
    lines = _compile("--decay", "head", "--only", "float32 operands", "--stages", "3")
    sweeps = [ln for ln in lines if ln.strip().startswith(("dk", "dv"))]
    assert len(sweeps) == 2, lines
    for ln in sweeps:
        assert "DYN_SHARED:" in ln, ln
        assert int(ln.rsplit("DYN_SHARED:", 1)[1].split()[0]) <= 232448, ln
