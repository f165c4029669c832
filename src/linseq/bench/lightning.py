"""Benchmark of the Lightning op against its peers: time per call (forward, forward+backward), peak memory,
and one-token decoding latency. Works on whatever device is present (CPU: small sizes)."""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import asdict, dataclass, field
from typing import Callable

import torch

from linseq.ops import lightning_attn, tnl_log_decay


@dataclass
class BenchConfig:
    heads: int = 16
    head_dim: int = 128
    tokens: int = 65536  # B·T held constant across lengths
    lengths: tuple[int, ...] = (1024, 2048, 4096, 8192, 16384, 32768, 65536, 131072)
    dtype: str = "bfloat16"
    decay: str = "head"  # "head" or "token"
    modes: tuple[str, ...] = ("fwd", "fwdbwd")
    providers: tuple[str, ...] = ("linseq-triton", "fla", "lightning-attn", "sdpa")
    name: str = "main"


@dataclass
class DecodeConfig:
    heads: int = 16
    head_dim: int = 128
    batches: tuple[int, ...] = (1, 16, 256)
    providers: tuple[str, ...] = ("linseq-recurrent", "fla")


@dataclass
class Measurement:
    provider: str
    T: int
    B: int
    mode: str
    ms: float | None
    peak_gib: float | None = None
    error: str | None = None
    extra: dict = field(default_factory=dict)


def _time_ms(fn: Callable[[], object], device: torch.device, grad_to_none: list | None = None) -> float:
    """Median milliseconds of ``fn``: triton.testing.do_bench (CUDA events) on the GPU, wall clock elsewhere.

    ``grad_to_none``: leaves whose ``.grad`` is reset before each call, so the backward assigns the gradients
    instead of adding them to the previous call's (the add is the optimizer's cost, not the op's)."""
    if device.type == "cuda":
        import triton

        return float(triton.testing.do_bench(fn, warmup=25, rep=100, grad_to_none=grad_to_none,
                                             return_mode="median"))
    for x in grad_to_none or ():
        x.grad = None
    fn()
    times = []
    budget = time.perf_counter() + 1.0
    while len(times) < 3 or (time.perf_counter() < budget and len(times) < 20):
        for x in grad_to_none or ():
            x.grad = None
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def _provider_call(provider: str, q, k, v, g, decay: str) -> Callable[[], torch.Tensor]:
    """A closure computing the op's output with ``provider`` on [B,T,H,D] inputs (layout changes done here)."""
    if provider.startswith("linseq-"):
        backend = provider.split("-", 1)[1]
        return lambda: lightning_attn(q, k, v, g, scale=1.0, backend=backend)[0]
    if provider == "fla":
        from fla.ops.simple_gla import chunk_simple_gla

        if decay == "head":
            return lambda: chunk_simple_gla(q, k, v, g_gamma=g, scale=1.0)[0]
        return lambda: chunk_simple_gla(q, k, v, g=g, scale=1.0)[0]
    if provider == "lightning-attn":
        if decay != "head":
            raise RuntimeError("lightning-attn supports only a per-head decay")
        from lightning_attn.ops import lightning_attn_func

        qh, kh, vh = (x.transpose(1, 2).contiguous().detach().requires_grad_(x.requires_grad) for x in (q, k, v))
        slope = (-g).float().view(-1, 1, 1).contiguous()
        return lambda: lightning_attn_func(qh, kh, vh, slope)
    if provider == "sdpa":
        qh, kh, vh = (x.transpose(1, 2).contiguous().detach().requires_grad_(x.requires_grad) for x in (q, k, v))
        return lambda: torch.nn.functional.scaled_dot_product_attention(qh, kh, vh, is_causal=True)
    raise ValueError(f"unknown provider {provider!r}")


def provider_available(provider: str, device: torch.device) -> str | None:
    """None if ``provider`` can run on ``device``, else the reason it cannot."""
    try:
        if provider == "linseq-triton":
            from linseq.ops.lightning.checks import triton_usable

            return None if device.type == "cuda" and triton_usable(device) else "needs CUDA and triton"
        if provider.startswith("linseq-"):
            return None
        if provider == "fla":
            import fla.ops.simple_gla  # noqa: F401

            return None if device.type == "cuda" else "needs CUDA"
        if provider == "lightning-attn":
            import lightning_attn.ops  # noqa: F401

            return None if device.type == "cuda" else "needs CUDA"
        if provider == "sdpa":
            return None
    except Exception as err:  # an optional peer that is missing or broken is reported, not fatal
        return f"not importable: {type(err).__name__}: {err}"
    return f"unknown provider {provider!r}"


def _inputs(B, T, H, D, dtype, decay, device, requires_grad):
    q, k, v = (torch.randn(B, T, H, D, device=device, dtype=dtype) for _ in range(3))
    if decay == "head":
        g = tnl_log_decay(H, 0, 24).to(device)
    else:
        g = torch.nn.functional.logsigmoid(torch.randn(B, T, H, device=device)) / 16
    for x in (q, k, v):
        x.requires_grad_(requires_grad)
    return q, k, v, g


def measure(cfg: BenchConfig, device: torch.device, progress: Callable[[str], None] | None = None) -> list[Measurement]:
    """Time every provider × length × mode of ``cfg``; failures are recorded in the result, never raised."""
    dtype = getattr(torch, cfg.dtype)
    results: list[Measurement] = []
    for provider in cfg.providers:
        reason = provider_available(provider, device)
        if reason is not None:
            results.append(Measurement(provider, 0, 0, "-", None, error=reason))
            continue
        for T in cfg.lengths:
            B = max(1, cfg.tokens // T)
            for mode in cfg.modes:
                if progress:
                    progress(f"{provider} T={T} B={B} {mode}")
                results.append(_measure_one(provider, B, T, cfg, dtype, mode, device))
    return results


def _measure_one(provider, B, T, cfg, dtype, mode, device) -> Measurement:
    try:
        q, k, v, g = _inputs(B, T, cfg.heads, cfg.head_dim, dtype, cfg.decay, device, mode == "fwdbwd")
        call = _provider_call(provider, q, k, v, g, cfg.decay)
        if mode == "fwd":
            def fn():
                with torch.no_grad():
                    return call()
        else:
            do = torch.randn_like(call())

            def fn():
                call().backward(do)
        peak = None
        if device.type == "cuda":
            torch.cuda.synchronize()
            fn()  # warm-up and compilation happen before the peak is taken
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            fn()
            torch.cuda.synchronize()
            peak = torch.cuda.max_memory_allocated() / 2**30
        leaves = [x for x in (q, k, v, g) if x is not None and x.requires_grad]
        ms = _time_ms(fn, device, leaves)
        return Measurement(provider, T, B, mode, ms, peak)
    except Exception as err:  # record what a peer refuses (e.g. fla's Hopper guard) instead of aborting
        msg = f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"[:300]
        return Measurement(provider, T, B, mode, None, error=msg)
    finally:
        if device.type == "cuda":
            torch.cuda.empty_cache()


def measure_decode(cfg: DecodeConfig, device: torch.device, progress=None) -> list[Measurement]:
    """Latency of one decoding step (T=1, float32 state) per provider and batch size."""
    H, D = cfg.heads, cfg.head_dim
    results = []
    for provider in cfg.providers:
        reason = provider_available(provider, device)
        if reason is not None:
            results.append(Measurement(provider, 1, 0, "decode", None, error=reason))
            continue
        for B in cfg.batches:
            if progress:
                progress(f"decode {provider} B={B}")
            try:
                q, k, v = (torch.randn(B, 1, H, D, device=device, dtype=torch.bfloat16) for _ in range(3))
                ld = tnl_log_decay(H, 0, 24).to(device)
                state = torch.randn(B, H, D, D, device=device)
                if provider == "fla":
                    from fla.ops.simple_gla import fused_recurrent_simple_gla

                    def fn():
                        return fused_recurrent_simple_gla(
                            q, k, v, g_gamma=ld, scale=1.0, initial_state=state, output_final_state=True)
                else:
                    backend = provider.split("-", 1)[1]

                    def fn():
                        return lightning_attn(q, k, v, ld, scale=1.0, initial_state=state,
                                              output_final_state=True, backend=backend)
                with torch.no_grad():
                    ms = _time_ms(fn, device)
                floor_us = 2 * B * H * D * D * 4 / 3.0e12 * 1e6 if device.type == "cuda" else None
                results.append(Measurement(provider, 1, B, "decode", ms, extra={"state_floor_us_at_3TBps": floor_us}))
            except Exception as err:
                results.append(Measurement(provider, 1, B, "decode", None, error=f"{type(err).__name__}: {err}"[:300]))
    return results


def cpu_default() -> BenchConfig:
    """Small sizes that finish in about a minute on a laptop-class CPU."""
    return BenchConfig(heads=4, head_dim=32, tokens=1024, lengths=(128, 256, 512, 1024), dtype="float32",
                       providers=("linseq-chunk", "sdpa"), name="cpu")


def to_rows(results: list[Measurement]) -> list[dict]:
    return [asdict(r) for r in results]


def table(results: list[Measurement], modes=("fwd", "fwdbwd")) -> str:
    """A text table: one row per T, one column per provider and mode (median ms)."""
    providers = list(dict.fromkeys(r.provider for r in results if r.ms is not None))
    lengths = sorted({r.T for r in results if r.ms is not None})
    head = ["T", "B"] + [f"{p} {m}" for p in providers for m in modes]
    lines = [" | ".join(head)]
    for T in lengths:
        B = next(r.B for r in results if r.T == T)
        row = [f"{T}", f"{B}"]
        for p in providers:
            for m in modes:
                hit = [r for r in results if r.provider == p and r.T == T and r.mode == m]
                row.append(f"{hit[0].ms:.3f}" if hit and hit[0].ms is not None else "-")
        lines.append(" | ".join(row))
    return "\n".join(lines)


def plot(results: list[Measurement], path: str, title: str) -> None:
    """Time per token (ns) and peak memory vs T, one line per provider and mode."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_t, ax_m) = plt.subplots(1, 2, figsize=(12, 4.5))
    providers = list(dict.fromkeys(r.provider for r in results if r.ms is not None))
    for p in providers:
        for mode, style in (("fwd", "--"), ("fwdbwd", "-")):
            pts = sorted((r.T, r.ms * 1e6 / (r.T * r.B)) for r in results
                         if r.provider == p and r.mode == mode and r.ms is not None)
            if pts:
                ax_t.plot(*zip(*pts), style, marker="o", label=f"{p} {mode}")
        mem = sorted((r.T, r.peak_gib) for r in results
                     if r.provider == p and r.mode == "fwdbwd" and r.peak_gib is not None)
        if mem:
            ax_m.plot(*zip(*mem), marker="o", label=p)
    for ax, ylabel in ((ax_t, "time per token (ns)"), (ax_m, "peak memory, fwd+bwd (GiB)")):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("sequence length T (B·T constant)")
        ax.set_ylabel(ylabel)
        ax.grid(True, which="both", alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=7)
    ax_t.set_yscale("log")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def geometric_mean(xs: list[float]) -> float:
    return math.exp(sum(math.log(x) for x in xs) / len(xs))
