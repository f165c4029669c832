"""The LRA-style benchmark: train softmax / Lightning / EcoFormer classifiers at equal budgets on offline ListOps
and Pathfinder, measure time and memory against length, the energy model, and learned vs random hashes."""

from __future__ import annotations

import copy
import math
import multiprocessing
import os
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
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
LRA_LISTOPS_MIN_LEN = 500  # LRA's ListOps lengths are 500-2000; accuracy on that range is reported separately
# (the result keys end in "500plus"; report.py reads them by that name)


# ---- data ---------------------------------------------------------------------------------------------------------

def _listops_chunk(args):
    n, seed, cfg = args
    return listops_dataset(n, min_len=cfg["listops_min_len"], max_len=cfg["listops_max_len"], seed=seed)


def _pathfinder_chunk(args):
    n, seed, cfg = args
    return pathfinder_dataset(n, size=cfg["pathfinder_size"], seed=seed, n_seg=cfg["pathfinder_segments"],
                              n_contours=cfg["pathfinder_contours"])


def _spawn_pool(workers: int) -> ProcessPoolExecutor:
    # spawn, not fork: forking a process whose torch thread pools (or CUDA context) are running can deadlock
    return ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))


def make_data(cfg: LRAConfig, task: str, pool: ProcessPoolExecutor | None = None) -> dict[str, torch.Tensor]:
    """Train and test tensors of ``task``, generated in ``cfg.workers`` processes (seeds fixed by cfg.seed); pass
    ``pool`` to reuse one process pool across tasks."""
    fn = _listops_chunk if task == "listops" else _pathfinder_chunk
    n_train = cfg.listops_train if task == "listops" else cfg.pathfinder_train
    n_test = cfg.listops_test if task == "listops" else cfg.pathfinder_test
    n = n_train + n_test
    chunks = max(1, min(cfg.workers * 2, n // 50))
    sizes = [n // chunks + (i < n % chunks) for i in range(chunks)]
    jobs = [(s, cfg.seed * 100_003 + 7919 * i + (0 if task == "listops" else 1), cfg.to_dict())
            for i, s in enumerate(sizes)]
    if pool is not None:
        parts = list(pool.map(fn, jobs))
    elif cfg.workers > 1:
        with _spawn_pool(cfg.workers) as own:
            parts = list(own.map(fn, jobs))
    else:
        parts = [fn(j) for j in jobs]
    x = torch.cat([p[0] for p in parts])
    y = torch.cat([p[1] for p in parts])
    return {"x_train": x[:n_train], "y_train": y[:n_train], "x_test": x[n_train:], "y_test": y[n_train:]}


def make_all_data(cfg: LRAConfig, tasks: list[str]) -> tuple[dict[str, dict], dict[str, float]]:
    """Data of every task (one shared process pool when ``cfg.workers > 1``) and the seconds each took."""
    data, seconds = {}, {}
    pool = _spawn_pool(cfg.workers) if cfg.workers > 1 else None
    try:
        for task in tasks:
            t = time.perf_counter()
            data[task] = make_data(cfg, task, pool)
            seconds[task] = time.perf_counter() - t
    finally:
        if pool is not None:
            pool.shutdown()
    return data, seconds


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
def predict(model: torch.nn.Module, x: torch.Tensor, device: torch.device, batch: int = 128) -> torch.Tensor:
    """Predicted classes ``[N]`` (on the CPU) of ``model`` on ``x``, in eval mode."""
    model.eval()
    preds = [model(x[i : i + batch].to(device)).argmax(-1).cpu() for i in range(0, len(x), batch)]
    model.train()
    return torch.cat(preds)


def evaluate(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, device: torch.device, batch: int = 128) -> float:
    """Accuracy of ``model`` on ``(x, y)``."""
    return (predict(model, x, device, batch) == y).sum().item() / len(y)


def long_listops_mask(x: torch.Tensor) -> torch.Tensor | None:
    """ListOps test examples within LRA's length range (``LRA_LISTOPS_MIN_LEN`` tokens or more), or None when
    there are none or all are (then the subset says nothing beyond the whole test set)."""
    mask = (x != 0).sum(1) >= LRA_LISTOPS_MIN_LEN
    return mask if 0 < int(mask.sum()) < len(mask) else None


def _cos(start: float, end: float, frac: float) -> float:
    return end + (start - end) / 2.0 * (math.cos(math.pi * frac) + 1)


def one_cycle(position: float, total: int, max_lr: float, warmup_frac: float) -> tuple[float, float]:
    """Learning rate and Adam beta1 of PyTorch's ``OneCycleLR`` (default factors, cosine, momentum cycled between
    0.95 and 0.85) at ``position`` in steps of ``total`` — a float, so a schedule can also follow elapsed time."""
    warm_end, last = float(warmup_frac * total) - 1, total - 1
    low = max_lr / 25.0
    position = min(max(position, 0.0), float(last))
    if 0 < warm_end and position <= warm_end:
        frac = position / warm_end
        return _cos(low, max_lr, frac), _cos(0.95, 0.85, frac)
    frac = (position - warm_end) / (last - warm_end)
    return _cos(max_lr, low / 1e4, frac), _cos(0.85, 0.95, frac)


def _warm_up(model: torch.nn.Module, cfg: LRAConfig, attention: str, data: dict, device: torch.device) -> float:
    """One untimed forward+backward+optimizer step on a copy of ``model`` (and, for EcoFormer, a hash fit and a
    hash-mode step too), so kernel compilation (Triton JIT, cuBLAS set-up) stays out of the timed training.
    The model and the random number generators are left as they were; returns the seconds it took."""
    t = time.perf_counter()
    cpu_rng = torch.get_rng_state()
    cuda_rng = torch.cuda.get_rng_state_all() if device.type == "cuda" else None
    twin = copy.deepcopy(model)
    x = data["x_train"][: cfg.batch_size].to(device)
    y = data["y_train"][: cfg.batch_size].to(device)
    opt = torch.optim.AdamW(twin.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    switches = attention == "ecoformer" and cfg.pretrain_frac > 0
    for hashed in (False, True) if switches else (False,):
        if hashed:  # the hash-mode step the model reaches after its softmax phase
            fit_model_hashes(twin, data["x_train"][: min(2, cfg.fit_batch)].to(device), iterations=1)
        F.cross_entropy(twin(x), y).backward()
        torch.nn.utils.clip_grad_norm_(twin.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
    _sync(device)
    del twin, opt
    torch.set_rng_state(cpu_rng)
    if cuda_rng is not None:
        torch.cuda.set_rng_state_all(cuda_rng)
    return time.perf_counter() - t


def _loss_curve(losses: list[float], points: int = 20) -> list[float]:
    """Mean training loss over ``points`` equal stretches of the run (fewer when there were fewer steps)."""
    parts = np.array_split(np.asarray(losses, dtype=float), min(points, len(losses)))
    return [float(p.mean()) for p in parts if len(p)]


def train_one(cfg: LRAConfig, task: str, attention: str, data: dict, device: torch.device,
              progress_bar: bool = True) -> tuple[dict, torch.nn.Module]:
    """Train one classifier for ``cfg.steps`` steps or ``cfg.max_train_seconds`` (EcoFormer: softmax phase, hash
    fit, fine-tune). A warm-up step on a copy of the model runs first, outside the timed part."""
    torch.manual_seed(cfg.seed)
    model = build_model(cfg, task, attention).to(device)
    warmup_seconds = _warm_up(model, cfg, attention, data, device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    gen = torch.Generator().manual_seed(cfg.seed)
    n = len(data["x_train"])
    fit_info, capped, losses, snapshot, switch_step = None, False, [], None, -1
    _sync(device)
    t0 = time.perf_counter()
    fit_seconds = 0.0
    step = 0
    switch_at = int(cfg.pretrain_frac * cfg.steps)  # EcoFormer: the step its softmax phase ends
    for step in tqdm(range(cfg.steps), desc=f"{task}/{attention}", leave=False, disable=not progress_bar):
        position = float(step)  # in steps; with anneal_by_time, elapsed time can move it further
        if cfg.anneal_by_time:
            position = max(position, (cfg.steps - 1) * (time.perf_counter() - t0) / cfg.max_train_seconds)
        if attention == "ecoformer" and fit_info is None and position >= switch_at:
            snapshot = {k: v.detach().clone() for k, v in model.state_dict().items()}
            idx = torch.randperm(n, generator=gen)[: cfg.fit_batch]
            tf = time.perf_counter()
            fit_info = fit_model_hashes(model, data["x_train"][idx].to(device))
            _sync(device)
            fit_seconds, switch_step = time.perf_counter() - tf, step
        lr, beta1 = one_cycle(position, cfg.steps, cfg.lr, cfg.warmup_frac)
        for group in opt.param_groups:
            group["lr"], group["betas"] = lr, (beta1, group["betas"][1])
        idx = torch.randint(n, (cfg.batch_size,), generator=gen)
        logits = model(data["x_train"][idx].to(device))
        loss = F.cross_entropy(logits, data["y_train"][idx].to(device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(loss.item())
        if time.perf_counter() - t0 > cfg.max_train_seconds:
            capped = True
            break
    if attention == "ecoformer" and fit_info is None:  # the cap came before the switch: fit now, report it
        snapshot = {k: v.detach().clone() for k, v in model.state_dict().items()}
        fit_info = fit_model_hashes(model, data["x_train"][: cfg.fit_batch].to(device))
        switch_step = step + 1
    _sync(device)
    seconds = time.perf_counter() - t0
    preds = predict(model, data["x_test"], device)
    acc = (preds == data["y_test"]).sum().item() / len(preds)
    tail = losses[-max(1, len(losses) // 10):]
    out = {"test_acc": acc, "train_seconds": seconds, "steps_done": step + 1, "capped": capped,
           "final_train_loss": float(np.mean(tail)), "params": sum(p.numel() for p in model.parameters()),
           "warmup_seconds": warmup_seconds, "steps_per_second": (step + 1) / seconds,
           "loss_curve": _loss_curve(losses)}
    long = long_listops_mask(data["x_test"]) if task == "listops" else None
    if long is not None:
        hits = (preds[long] == data["y_test"][long]).sum().item()
        out[f"test_acc_{LRA_LISTOPS_MIN_LEN}plus"] = hits / int(long.sum())
    if attention == "ecoformer":
        out["fit_seconds"] = fit_seconds
        out["switch_step"] = switch_step
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


def _set_tf32(device: torch.device) -> None:
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True


def _train_and_study(cfg: LRAConfig, task: str, attn: str, data: dict, device: torch.device,
                     progress_bar: bool = True) -> tuple[dict, dict | None]:
    """Train one (task, attention) model; for EcoFormer also run the hash study on its softmax-phase weights."""
    res, model = train_one(cfg, task, attn, data, device, progress_bar)
    study = None
    if attn == "ecoformer":
        soft = build_model(cfg, task, "ecoformer").to(device)
        soft.load_state_dict(model.softmax_phase_state)
        set_attention_mode(soft, "softmax")
        study = hash_study(cfg, soft, data, device)
    return res, study


def _train_job(cfg_dict: dict, task: str, attn: str, data_path: str, threads: int) -> tuple[dict, dict | None]:
    """One training in a worker process (``cfg.jobs > 1``); the task's data comes from ``data_path``."""
    torch.set_num_threads(threads)
    cfg = LRAConfig(**cfg_dict)
    device = torch.device(cfg.device)
    _set_tf32(device)
    data = torch.load(data_path, mmap=True)
    return _train_and_study(cfg, task, attn, data, device, progress_bar=False)


def _print_result(task: str, attn: str, res: dict) -> None:
    long = res.get(f"test_acc_{LRA_LISTOPS_MIN_LEN}plus")
    print(f"{task:10s} {attn:9s} acc {res['test_acc']:.3f}"
          + (f" ({LRA_LISTOPS_MIN_LEN}+ tokens {long:.3f})" if long is not None else "")
          + f"  {res['train_seconds']:.1f}s  {res['steps_done']} steps" + ("  (time cap hit)" if res["capped"] else ""),
          flush=True)


def _train_parallel(cfg: LRAConfig, pairs: list[tuple[str, str]], data: dict[str, dict]) -> dict:
    """Run the trainings of ``pairs`` in ``cfg.jobs`` spawned processes sharing the device; data goes through
    temporary files (one per task, memory-mapped by the workers)."""
    jobs = min(cfg.jobs, len(pairs))
    threads = max(1, (os.cpu_count() or 1) // jobs)
    out: dict = {}
    with tempfile.TemporaryDirectory(prefix="linseq-lra-") as tmp:
        paths = {}
        for task in dict.fromkeys(t for t, _ in pairs):
            paths[task] = str(Path(tmp) / f"{task}.pt")
            torch.save(data[task], paths[task])
        pool = _spawn_pool(jobs)
        futures = {pool.submit(_train_job, cfg.to_dict(), t, a, paths[t], threads): (t, a) for t, a in pairs}
        try:
            for fut in as_completed(futures):
                task, attn = futures[fut]
                try:
                    out[task, attn] = fut.result()
                except Exception as err:
                    raise RuntimeError(f"training {task}/{attn} failed in its worker process: {err}") from err
                _print_result(task, attn, out[task, attn][0])
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
    return out


def train_all(cfg: LRAConfig, tasks: list[str], attentions: list[str], data: dict[str, dict],
              device: torch.device) -> dict[tuple[str, str], tuple[dict, dict | None]]:
    """Every (task, attention) training with its hash study (EcoFormer): one after another when ``cfg.jobs`` is 1,
    else ``cfg.jobs`` at once in separate processes on the same device."""
    pairs = [(t, a) for t in tasks for a in attentions]
    if cfg.jobs > 1 and len(pairs) > 1:
        return _train_parallel(cfg, pairs, data)
    out = {}
    for task, attn in pairs:
        out[task, attn] = _train_and_study(cfg, task, attn, data[task], device)
        _print_result(task, attn, out[task, attn][0])
    return out


def _check_args(cfg: LRAConfig, attentions: list[str], tasks: list[str]) -> None:
    for a in attentions:
        if a not in ATTENTIONS:
            raise ValueError(f"attention must be among {ATTENTIONS}; got {a!r}")
    for t in tasks:
        if t not in TASKS:
            raise ValueError(f"task must be among {TASKS}; got {t!r}")
    if cfg.jobs < 1 or cfg.workers < 1:
        raise ValueError(f"jobs and workers must be >= 1; got jobs={cfg.jobs}, workers={cfg.workers}")
    if cfg.device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device={cfg.device!r} but CUDA is not available (use the ci preset on a CPU)")


def run_lra(cfg: LRAConfig, outdir: str | Path, attentions: list[str] | None = None,
            tasks: list[str] | None = None, preset_name: str = "custom") -> dict:
    """Run the benchmark; write ``lra_results.json`` and ``lra_summary.png`` into ``outdir``; return the results.
    The scaling sweep runs after every training has finished, on an otherwise idle device."""
    attentions = list(attentions or ATTENTIONS)
    tasks = list(tasks or TASKS)
    _check_args(cfg, attentions, tasks)
    device = torch.device(cfg.device)
    _set_tf32(device)
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
    data, data_seconds = make_all_data(cfg, tasks)
    print("data: " + ", ".join(f"{t} {len(d['x_train'])}+{len(d['x_test'])} in {data_seconds[t]:.1f}s"
                                for t, d in data.items()), flush=True)
    t_train = time.perf_counter()
    trained = train_all(cfg, tasks, attentions, data, device)
    results["train_wall_seconds"] = time.perf_counter() - t_train
    for task in tasks:
        d = data[task]
        task_res = {"data_seconds": data_seconds[task], "seq_len": int(d["x_train"][0].numel()),
                    "n_train": len(d["x_train"]), "n_test": len(d["x_test"]),
                    "majority_acc": float(torch.bincount(d["y_test"]).max().item() / len(d["y_test"])),
                    "attn": {}}
        long = long_listops_mask(d["x_test"]) if task == "listops" else None
        if long is not None:
            y_long = d["y_test"][long]
            task_res[f"n_test_{LRA_LISTOPS_MIN_LEN}plus"] = len(y_long)
            task_res[f"majority_acc_{LRA_LISTOPS_MIN_LEN}plus"] = torch.bincount(y_long).max().item() / len(y_long)
        for attn in attentions:
            res, study = trained[task, attn]
            task_res["attn"][attn] = res
            if study is not None:
                results["hash_study"][task] = study
        results["tasks"][task] = task_res
    del data, trained
    results["energy"] = energy_table(cfg, cfg.sweep_lengths)
    results["total_seconds"] = time.perf_counter() - t_start
    save_json(outdir / "lra_results.partial.json", results)  # the trainings survive a failure in the sweep
    results["scaling"] = scaling_sweep(cfg, attentions, device)
    results["total_seconds"] = time.perf_counter() - t_start
    save_json(outdir / "lra_results.json", results)
    (outdir / "lra_results.partial.json").unlink()
    from linseq.experiments.lra.report import plot_results, print_energy

    plot_results(results, outdir / "lra_summary.png")
    print_energy(results)
    return results
