"""Presets and the driver that runs Part A and Part B, writes ``results.json`` and the figures."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm.auto import tqdm

from linseq.experiments.icl_softmax_regression.models import ConstructedSoftmaxGD, OneStepGD, fit_gd_learning_rate
from linseq.experiments.icl_softmax_regression.part_a import run_part_a
from linseq.experiments.icl_softmax_regression.tasks import SoftmaxRegressionTasks
from linseq.experiments.icl_softmax_regression.training import MODELS, TrainConfig, compare_with_gd, train_and_compare
from linseq.io import run_metadata, save_json

PRESETS = ("ci", "paper")


@dataclass
class Preset:
    """Everything one run of the experiment does. Sizes (n, d) are pairs; sweeps reuse runs that coincide."""

    name: str
    seed: int = 0
    train: TrainConfig = field(default_factory=TrainConfig)  # shared training settings; n, d, τ set per run
    # Part A
    part_a_n: tuple[int, ...] = (25, 200)
    part_a_d: int = 20
    part_a_R: tuple[float, ...] = (1.0, 2.0, 4.0)
    part_a_instances: int = 1000
    # Part B: the paper's loss / diff / cos-vs-step figures, one per (n, d), over `seeds` repetitions
    figures: tuple[tuple[int, int], ...] = ((200, 20), (25, 20))
    seeds: int = 3
    # sweeps (seed 0 only; a point that equals a figure run is reused)
    d_sweep_n: int = 200
    d_sweep: tuple[int, ...] = (5, 10, 20, 40)
    n_sweep_d: int = 20
    n_sweep: tuple[int, ...] = (25, 50, 100, 200)
    temperature_nd: tuple[int, int] = (25, 20)
    temperatures: tuple[float, ...] = (0.25, 0.5, 1.0, 2.0, 4.0)  # trained softmax attention
    constructed_temperatures: tuple[float, ...] = tuple(10.0 ** (k / 4) for k in range(-12, 5))


def get_preset(name: str, device: str | None = None) -> Preset:
    """``"ci"``: seconds on a CPU. ``"paper"``: the paper's sizes (n = 200 and 25, d = 20, d swept 5..40); on a
    CPU it trains for fewer steps and seeds so that it finishes in about 10 minutes on 2 cores; on CUDA it uses
    batch 512, 5000 Adam steps and 5 seeds (von Oswald et al. use batch 512 and 10k steps)."""
    if name not in PRESETS:
        raise ValueError(f"preset must be one of {PRESETS}; got {name!r}")
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} was asked for but CUDA is not available; use --device cpu")
    if name == "ci":
        return Preset(
            name="ci",
            train=TrainConfig(steps=400, batch=128, eval_every=50, eval_tasks=256, fit_tasks=4096, device=device),
            part_a_n=(10, 25), part_a_d=5, part_a_R=(1.0, 4.0), part_a_instances=200,
            figures=((25, 10),), seeds=1,
            d_sweep_n=25, d_sweep=(5, 10), n_sweep_d=10, n_sweep=(25,),
            temperature_nd=(25, 10), temperatures=(1.0, 2.0),
            constructed_temperatures=(0.01, 0.1, 1.0, 10.0),
        )
    if device.startswith("cuda"):
        train = TrainConfig(steps=5000, batch=512, eval_every=250, eval_tasks=2048, fit_tasks=16_384, device=device)
        return Preset(name="paper", train=train, seeds=5)
    train = TrainConfig(steps=1000, batch=128, eval_every=100, eval_tasks=384, fit_tasks=8192, device=device)
    return Preset(name="paper", train=train, seeds=3)


def _planned_runs(p: Preset) -> dict[tuple, set[str]]:
    """(n, d, τ, seed) → models to train, merged so that every coinciding run happens once."""
    runs: dict[tuple, set[str]] = {}

    def want(n: int, d: int, tau: float, seed: int, models) -> None:
        runs.setdefault((n, d, float(tau), seed), set()).update(models)

    for n, d in p.figures:
        for s in range(p.seeds):
            want(n, d, 1.0, p.seed + s, MODELS)
    for d in p.d_sweep:
        want(p.d_sweep_n, d, 1.0, p.seed, MODELS)
    for n in p.n_sweep:
        want(n, p.n_sweep_d, 1.0, p.seed, MODELS)
    for tau in p.temperatures:
        want(*p.temperature_nd, tau, p.seed, ("softmax_sa",))
    return runs


def _final_point(history: dict, **key) -> dict:
    point = dict(key, gd_loss=history["gd_loss"], gd_lr=history["gd_lr"])
    point.update(history["final"])
    return point


def constructed_temperature_sweep(n: int, d: int, m: int, temperatures, seed: int, tasks_count: int = 1024) -> list[dict]:
    """Untrained check of the small-logit argument: :class:`ConstructedSoftmaxGD` at each τ against one GD step
    (η fitted), in float64. Returns one dict per τ with the attention-logit spread and the comparison metrics."""
    make = lambda s: SoftmaxRegressionTasks(n, d, m, R=8.0, seed=s, dtype=torch.float64)  # noqa: E731
    gd = OneStepGD(fit_gd_learning_rate(make(seed * 1000 + 3).sample(8192)))
    batch = make(seed * 1000 + 2).sample(tasks_count)
    gd_loss = compare_with_gd(gd, gd, batch)["loss"]
    points = []
    for tau in temperatures:
        model = ConstructedSoftmaxGD(gd.lr, tau)
        metrics = compare_with_gd(model, gd, batch)
        spread = float(model.scores(batch).std(dim=-1).mean())
        points.append(dict(tau=float(tau), score_spread=spread, gd_loss=gd_loss, **metrics))
    return points


def run_experiment(preset: Preset, out_dir: str | Path, progress: bool = True, plots: bool = True) -> dict:
    """Run Part A and Part B of ``preset``; write ``out_dir/results.json`` (with :func:`linseq.io.run_metadata`)
    and, if ``plots``, the PNG figures. Returns the results dict."""
    if not isinstance(preset, Preset):
        raise TypeError(f"preset must be a Preset (see get_preset); got {type(preset).__name__}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(preset.seed)
    started = time.perf_counter()
    runs = _planned_runs(preset)
    total = len(runs) * preset.train.steps
    bar = tqdm(total=total, desc=f"icl {preset.name}", unit="step", disable=not progress)

    bar.set_postfix_str("part A (float64 identities)")
    t0 = time.perf_counter()
    part_a = run_part_a(preset.part_a_n, preset.part_a_d, preset.part_a_R, preset.part_a_instances, seed=preset.seed)
    part_a["elapsed_s"] = time.perf_counter() - t0

    histories: dict[tuple, dict] = {}
    t0 = time.perf_counter()
    for (n, d, tau, seed), models in runs.items():
        bar.set_postfix_str(f"n={n} d={d} tau={tau:g} seed={seed}")
        cfg = dataclasses.replace(preset.train, n=n, d=d, temperature=tau)
        histories[(n, d, tau, seed)] = train_and_compare(
            cfg, seed, on_step=bar.update, models=tuple(k for k in MODELS if k in models)
        )
    bar.set_postfix_str("constructed temperature sweep")
    constructed = constructed_temperature_sweep(
        *preset.temperature_nd, preset.train.m, preset.constructed_temperatures, preset.seed
    )
    bar.close()
    part_b = {
        "figures": [
            {"n": n, "d": d, "seeds": [preset.seed + s for s in range(preset.seeds)],
             "runs": [histories[(n, d, 1.0, preset.seed + s)] for s in range(preset.seeds)]}
            for n, d in preset.figures
        ],
        "d_sweep": {"n": preset.d_sweep_n, "points": [
            _final_point(histories[(preset.d_sweep_n, d, 1.0, preset.seed)], d=d) for d in preset.d_sweep]},
        "n_sweep": {"d": preset.n_sweep_d, "points": [
            _final_point(histories[(n, preset.n_sweep_d, 1.0, preset.seed)], n=n) for n in preset.n_sweep]},
        "temperature_trained": {"n": preset.temperature_nd[0], "d": preset.temperature_nd[1], "points": [
            _final_point(histories[(*preset.temperature_nd, float(t), preset.seed)], tau=float(t))
            for t in preset.temperatures]},
        "temperature_constructed": {"n": preset.temperature_nd[0], "d": preset.temperature_nd[1],
                                    "points": constructed},
        "elapsed_s": time.perf_counter() - t0,
    }
    results = {
        "meta": run_metadata(seed=preset.seed, device=preset.train.device, preset=preset.name,
                             experiment="icl_softmax_regression"),
        "config": dataclasses.asdict(preset),
        "part_a": part_a,
        "part_b": part_b,
        "elapsed_s": time.perf_counter() - started,
    }
    save_json(out_dir / "results.json", results)
    if plots:
        from linseq.experiments.icl_softmax_regression.plots import make_plots

        results["figures_written"] = [str(p) for p in make_plots(results, out_dir)]
    return results
