"""The LRA-style benchmark: train softmax / Lightning / EcoFormer classifiers at equal budgets on offline ListOps
and Pathfinder, measure time and memory against length, the energy model, and learned vs random hashes."""

from __future__ import annotations

import math
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from linseq.data.lra import LISTOPS_VOCAB, listops_dataset, pathfinder_dataset
from linseq.io import run_metadata, save_json
from linseq.layers.ecoformer import eco_layers, fit_model_hashes, set_attention_mode
from linseq.models.vit import ATTENTIONS, TinyViT, TokenClassifier
from linseq.ops.hashing import attention_energy
from linseq.experiments.lra.presets import LRAConfig

TASKS = ("listops", "pathfinder")


# ---- data ---------------------------------------------------------------------------------------------------------

def _listops_chunk(args):
    n, seed, cfg = args
    return listops_dataset(n, min_len=cfg["listops_min_len"], max_len=cfg["listops_max_len"], seed=seed)


def _pathfinder_chunk(args):
    n, seed, cfg = args
    return pathfinder_dataset(n, size=cfg["pathfinder_size"], seed=seed, n_seg=cfg["pathfinder_segments"],
                              n_contours=cfg["pathfinder_contours"])


def make_data(cfg: LRAConfig, task: str) -> dict[str, torch.Tensor]:
    """Train and test tensors of ``task``, generated in ``cfg.workers`` processes (seeds fixed by cfg.seed)."""
    fn = _listops_chunk if task == "listops" else _pathfinder_chunk
    n_train = cfg.listops_train if task == "listops" else cfg.pathfinder_train
    n_test = cfg.listops_test if task == "listops" else cfg.pathfinder_test
    n = n_train + n_test
    chunks = max(1, min(cfg.workers * 2, n // 50))
    sizes = [n // chunks + (i < n % chunks) for i in range(chunks)]
    jobs = [(s, cfg.seed * 100_003 + 7919 * i + (0 if task == "listops" else 1), cfg.to_dict())
            for i, s in enumerate(sizes)]
    if cfg.workers > 1:
        # spawn, not fork: forking a process whose torch thread pools are running can deadlock
        with ProcessPoolExecutor(cfg.workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            parts = list(pool.map(fn, jobs))
    else:
        parts = [fn(j) for j in jobs]
    x = torch.cat([p[0] for p in parts])
    y = torch.cat([p[1] for p in parts])
    return {"x_train": x[:n_train], "y_train": y[:n_train], "x_test": x[n_train:], "y_test": y[n_train:]}


# ---- models -------------------------------------------------------------------------------------------------------

def build_model(cfg: LRAConfig, task: str, attention: str) -> torch.nn.Module:
    eco = dict(nbits=cfg.nbits, num_anchors=cfg.num_anchors, topk=cfg.topk, normalizer=cfg.normalizer,
               shared_qk=cfg.shared_qk, fit_iterations=cfg.fit_iterations, fit_lr=cfg.fit_lr,
               fit_max_tokens=cfg.fit_max_tokens, lightning_backend=cfg.lightning_backend)
    if attention == "ecoformer":
        eco.pop("lightning_backend")
        eco["mode"] = "softmax" if cfg.pretrain_frac > 0 else "hash"
    elif attention == "lightning":
        eco = {"lightning_backend": cfg.lightning_backend}
    else:
        eco = {}
    if task == "listops":
        return TokenClassifier(vocab_size=len(LISTOPS_VOCAB), max_len=cfg.listops_max_len, dim=cfg.dim,
                               depth=cfg.depth, num_heads=cfg.num_heads, attention=attention, num_classes=10,
                               eco_kwargs=eco)
    return TinyViT(image_size=cfg.pathfinder_size, patch_size=1, dim=cfg.dim, depth=cfg.depth,
                   num_heads=cfg.num_heads, attention=attention, num_classes=2, eco_kwargs=eco)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@torch.no_grad()
def evaluate(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, device: torch.device, batch: int = 128) -> float:
    model.eval()
    correct = 0
    for i in range(0, len(x), batch):
        logits = model(x[i : i + batch].to(device))
        correct += (logits.argmax(-1).cpu() == y[i : i + batch]).sum().item()
    model.train()
    return correct / len(x)


def train_one(cfg: LRAConfig, task: str, attention: str, data: dict, device: torch.device) -> tuple[dict, torch.nn.Module]:
    """Train one classifier for ``cfg.steps`` steps (EcoFormer: softmax phase, hash fit, fine-tune)."""
    torch.manual_seed(cfg.seed)
    model = build_model(cfg, task, attention).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.steps, pct_start=0.1)
    gen = torch.Generator().manual_seed(cfg.seed)
    n = len(data["x_train"])
    switch = int(cfg.pretrain_frac * cfg.steps) if attention == "ecoformer" else -1
    fit_info, capped, losses, snapshot = None, False, [], None
    _sync(device)
    t0 = time.perf_counter()
    fit_seconds = 0.0
    step = 0
    for step in tqdm(range(cfg.steps), desc=f"{task}/{attention}", leave=False):
        if step == switch:
            snapshot = {k: v.detach().clone() for k, v in model.state_dict().items()}
            idx = torch.randperm(n, generator=gen)[: cfg.fit_batch]
            tf = time.perf_counter()
            fit_info = fit_model_hashes(model, data["x_train"][idx].to(device))
            _sync(device)
            fit_seconds = time.perf_counter() - tf
        idx = torch.randint(n, (cfg.batch_size,), generator=gen)
        logits = model(data["x_train"][idx].to(device))
        loss = F.cross_entropy(logits, data["y_train"][idx].to(device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        losses.append(loss.item())
        if time.perf_counter() - t0 > cfg.max_train_seconds:
            capped = True
            break
    if attention == "ecoformer" and fit_info is None:  # the cap came before the switch: fit now, report it
        snapshot = {k: v.detach().clone() for k, v in model.state_dict().items()}
        fit_info = fit_model_hashes(model, data["x_train"][: cfg.fit_batch].to(device))
    _sync(device)
    seconds = time.perf_counter() - t0
    acc = evaluate(model, data["x_test"], data["y_test"], device)
    tail = losses[-max(1, len(losses) // 10):]
    out = {"test_acc": acc, "train_seconds": seconds, "steps_done": step + 1, "capped": capped,
           "final_train_loss": float(np.mean(tail)), "params": sum(p.numel() for p in model.parameters())}
    if attention == "ecoformer":
        out["fit_seconds"] = fit_seconds
        out["switch_step"] = switch
    model.softmax_phase_state = snapshot  # weights at the end of the softmax phase, for the hash study
    return out, model


# ---- learned vs random hash ---------------------------------------------------------------------------------------

def hash_study(cfg: LRAConfig, model: torch.nn.Module, data: dict, device: torch.device) -> dict:
    """On a model trained with softmax attention: per-layer agreement of random / fitted hashes with the softmax
    map on a held-out batch, and test accuracy right after switching to each hash (no fine-tuning)."""
    fit_x = data["x_train"][: cfg.fit_batch].to(device)
    held_x = data["x_test"][: cfg.fit_batch].to(device)
    base = {k: v.clone() for k, v in model.state_dict().items()}
    results = {}
    for name, iters, lr in (("random", 0, cfg.fit_lr), ("fitted_reference_lr", cfg.fit_iterations, cfg.fit_lr),
                            ("fitted_larger_lr", cfg.fit_iterations, cfg.alt_fit_lr)):
        model.load_state_dict(base)
        torch.manual_seed(cfg.seed + 1)  # the same anchors and start hyperplanes for all three
        for layer in eco_layers(model):
            layer.hyperplanes.copy_(torch.randn_like(layer.hyperplanes))
            layer.fit_lr = lr
        fit_model_hashes(model, fit_x, iterations=iters)
        inputs = _layer_inputs(model, held_x)
        agree = [layer.agreement(h).mean().item() for layer, h in zip(eco_layers(model), inputs)]
        acc = evaluate(model, data["x_test"], data["y_test"], device)
        results[name] = {"agreement_per_layer": agree, "agreement": float(np.mean(agree)), "test_acc_no_finetune": acc,
                         "fit_lr": lr, "iterations": iters}
    set_attention_mode(model, "softmax")
    results["softmax_test_acc"] = evaluate(model, data["x_test"], data["y_test"], device)
    model.load_state_dict(base)
    for layer in eco_layers(model):
        layer.fit_lr = cfg.fit_lr
    return results


def _layer_inputs(model: torch.nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    """The input each EcoAttention layer receives in ``model(x)``."""
    captured = []
    hooks = [layer.register_forward_pre_hook(lambda m, args: captured.append(args[0].detach()))
             for layer in eco_layers(model)]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in hooks:
            h.remove()
    return captured


# ---- time and memory against length -------------------------------------------------------------------------------

def _saved_bytes(fn) -> int:
    """Bytes of tensors autograd saves for backward during ``fn()`` (the activation memory of training)."""
    total = 0

    def pack(t):
        nonlocal total
        total += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = fn()
    return total, out


def scaling_sweep(cfg: LRAConfig, attentions: list[str], device: torch.device) -> dict:
    """Forward+backward time (ms) and memory of one attention layer on one sequence, per length."""
    from linseq.models.vit import make_attention

    res = {"lengths": list(cfg.sweep_lengths), "batch": 1, "dim": cfg.dim, "num_heads": cfg.num_heads, "attn": {}}
    for attn in attentions:
        rows = {"fwd_bwd_ms": [], "saved_mb": [], "cuda_peak_mb": []}
        for T in tqdm(cfg.sweep_lengths, desc=f"sweep/{attn}", leave=False):
            torch.manual_seed(cfg.seed)
            kw = {}
            if attn == "ecoformer":
                kw = dict(nbits=cfg.nbits, num_anchors=cfg.num_anchors, normalizer=cfg.normalizer,
                          shared_qk=cfg.shared_qk, fit_iterations=0)
            elif attn == "lightning":
                kw = dict(lightning_backend=cfg.lightning_backend)
            layer = make_attention(attn, cfg.dim, cfg.num_heads, **kw).to(device)
            x = torch.randn(1, T, cfg.dim, device=device, requires_grad=True)
            if attn == "ecoformer":
                layer.fit_hash(x.detach(), iterations=0)
            try:
                layer(x).sum().backward()  # warm-up (kernel compilation)
                if device.type == "cuda":
                    torch.cuda.reset_peak_memory_stats(device)
                    base = torch.cuda.memory_allocated(device)
                times = []
                for _ in range(cfg.sweep_repeats):
                    _sync(device)
                    t = time.perf_counter()
                    saved, y = _saved_bytes(lambda: layer(x))
                    y.sum().backward()
                    _sync(device)
                    times.append(time.perf_counter() - t)
                rows["fwd_bwd_ms"].append(1e3 * float(np.median(times)))
                rows["saved_mb"].append(saved / 2**20)
                rows["cuda_peak_mb"].append(
                    (torch.cuda.max_memory_allocated(device) - base) / 2**20 if device.type == "cuda" else None)
            except torch.OutOfMemoryError:
                rows["fwd_bwd_ms"].append(None)
                rows["saved_mb"].append(None)
                rows["cuda_peak_mb"].append(None)
            del layer, x
        res["attn"][attn] = rows
    return res


def energy_table(cfg: LRAConfig, lengths: list[int]) -> dict:
    """The energy model per attention layer and sequence (one forward pass), softmax vs EcoFormer."""
    head_dim = cfg.dim // cfg.num_heads
    rows = []
    for T in lengths:
        s = attention_energy(T, head_dim, cfg.num_heads, kind="softmax")
        e = attention_energy(T, head_dim, cfg.num_heads, kind="ecoformer", nbits=cfg.nbits,
                             num_anchors=cfg.num_anchors, shared_qk=cfg.shared_qk, normalizer=cfg.normalizer)
        rows.append({"seq_len": T, "softmax": s, "ecoformer": e, "saving": 1 - e["energy_pj"] / s["energy_pj"]})
    return {"head_dim": head_dim, "num_heads": cfg.num_heads, "rows": rows}


# ---- the whole run ------------------------------------------------------------------------------------------------

def _lightning_probe(cfg: LRAConfig, device: torch.device) -> tuple[str, str | None]:
    """Check the Lightning backend once; fall back to the chunk backend (and say so) if it fails here."""
    from linseq.ops.lightning import lightning_attn

    try:
        q = torch.randn(1, 70, 2, 16, device=device, requires_grad=True)
        o, _ = lightning_attn(q, q, q, torch.full((2,), -0.1, device=device), backend=cfg.lightning_backend)
        o.sum().backward()
        return cfg.lightning_backend, None
    except Exception as err:  # noqa: BLE001 — reported in the JSON, not hidden
        return "chunk", f"{type(err).__name__}: {err}"[:500]


def run_lra(cfg: LRAConfig, outdir: str | Path, attentions: list[str] | None = None,
            tasks: list[str] | None = None, preset_name: str = "custom") -> dict:
    """Run the benchmark; write ``lra_results.json`` and ``lra_summary.png`` into ``outdir``; return the results."""
    attentions = list(attentions or ATTENTIONS)
    tasks = list(tasks or TASKS)
    for a in attentions:
        if a not in ATTENTIONS:
            raise ValueError(f"attention must be among {ATTENTIONS}; got {a!r}")
    for t in tasks:
        if t not in TASKS:
            raise ValueError(f"task must be among {TASKS}; got {t!r}")
    if cfg.device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device={cfg.device!r} but CUDA is not available (use the ci preset on a CPU)")
    device = torch.device(cfg.device)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    if "lightning" in attentions:
        backend, err = _lightning_probe(cfg, device)
        if err is not None:
            print(f"lightning backend {cfg.lightning_backend!r} failed here ({err}); using 'chunk'")
            cfg.lightning_backend = backend
    else:
        err = None
    results: dict = {"run_metadata": run_metadata(seed=cfg.seed, device=str(device)), "preset": preset_name,
                     "config": cfg.to_dict(), "lightning_backend_error": err, "tasks": {}, "hash_study": {}}
    for task in tasks:
        tg = time.perf_counter()
        data = make_data(cfg, task)
        task_res = {"data_seconds": time.perf_counter() - tg, "seq_len": int(data["x_train"][0].numel()),
                    "n_train": len(data["x_train"]), "n_test": len(data["x_test"]),
                    "majority_acc": float(torch.bincount(data["y_test"]).max().item() / len(data["y_test"])),
                    "attn": {}}
        for attn in attentions:
            res, model = train_one(cfg, task, attn, data, device)
            task_res["attn"][attn] = res
            print(f"{task:10s} {attn:9s} acc {res['test_acc']:.3f}  {res['train_seconds']:.1f}s"
                  + ("  (time cap hit)" if res["capped"] else ""))
            if attn == "ecoformer":
                soft = build_model(cfg, task, "ecoformer").to(device)
                # learned vs random hash, on the weights as they were at the end of the softmax phase
                soft.load_state_dict(model.softmax_phase_state)
                set_attention_mode(soft, "softmax")
                results["hash_study"][task] = hash_study(cfg, soft, data, device)
            del model
        results["tasks"][task] = task_res
    results["scaling"] = scaling_sweep(cfg, attentions, device)
    results["energy"] = energy_table(cfg, cfg.sweep_lengths)
    results["total_seconds"] = time.perf_counter() - t_start
    save_json(outdir / "lra_results.json", results)
    from linseq.experiments.lra.report import plot_results, print_energy

    plot_results(results, outdir / "lra_summary.png")
    print_energy(results)
    return results
