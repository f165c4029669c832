"""Part B: train one-layer softmax and linear self-attention on in-context softmax-regression tasks and compare
them with one step of GD (learning rate fitted), by loss, Preds Diff, Model Diff and Model Cos over training."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch

from linseq.experiments.icl_softmax_regression.models import (
    LinearSelfAttention,
    OneStepGD,
    SoftmaxSelfAttention,
    fit_gd_learning_rate,
    query_loss,
    query_sensitivity,
)
from linseq.experiments.icl_softmax_regression.tasks import SoftmaxRegressionTasks, TaskBatch

MODELS = ("softmax_sa", "linear_sa")


@dataclass
class TrainConfig:
    """One Part B training run (both attention models see the same task batches)."""

    n: int = 25  # context rows (paper: 25 and 200)
    d: int = 10  # dimension (paper: 20; swept 5..40)
    m: int = 25  # query rows
    R: float | None = 8.0  # norm bound; with rows ~ N(0, I/d) it rarely binds at these sizes
    noise: float = 0.0
    sigma_x: float = 1.0
    steps: int = 1000
    batch: int = 256
    lr: float = 1e-2  # Adam peak learning rate; cosine decay to lr_final_fraction·lr over the run
    lr_final_fraction: float = 0.05
    init_scale: float = 0.002  # linear SA: von Oswald et al.'s LSA init scale (research note §1.5)
    softmax_init_scale: float = 0.05  # softmax SA: from 0.002 it barely leaves its plateau in 1k steps (measured)
    temperature: float = 1.0  # softmax-attention logit multiplier τ
    eval_every: int = 100
    eval_tasks: int = 1024
    fit_tasks: int = 8192  # tasks used to fit GD's η
    device: str = "cpu"
    extra: dict = field(default_factory=dict)


def _subset(tasks: TaskBatch, sl: slice) -> TaskBatch:
    return TaskBatch(tasks.A[sl], tasks.b[sl], tasks.A_query[sl], tasks.b_query[sl], tasks.x_star[sl])


@torch.no_grad()
def compare_with_gd(model: torch.nn.Module, gd: OneStepGD, tasks: TaskBatch, chunk: int = 512) -> dict[str, float]:
    """Metrics of ``model`` against ``gd`` on ``tasks`` (means over tasks, and over query rows for sensitivities):
    ``loss`` ½‖p − b'‖², ``preds_diff`` ‖p − p_GD‖₂, ``model_diff`` ‖∂z_i/∂a'_i − x₁‖₂, ``model_rel_diff`` the
    same over ‖x₁‖₂, ``model_cos`` cos(∂z_i/∂a'_i, x₁)."""
    sums = {"loss": 0.0, "preds_diff": 0.0, "model_diff": 0.0, "model_rel_diff": 0.0, "model_cos": 0.0}
    B = tasks.A.shape[0]
    for start in range(0, B, chunk):
        part = _subset(tasks, slice(start, start + chunk))
        z, sens = query_sensitivity(model, part)  # [b,m], [b,m,d]
        x1 = gd.weights(part).unsqueeze(1).expand_as(sens)  # GD's sensitivity is x₁ for every query row
        p, p_gd = torch.softmax(z, -1), torch.softmax(gd(part), -1)
        diff = (sens - x1).norm(dim=-1)
        sums["loss"] += float(query_loss(z, part.b_query).sum())
        sums["preds_diff"] += float((p - p_gd).norm(dim=-1).sum())
        sums["model_diff"] += float(diff.mean(-1).sum())
        sums["model_rel_diff"] += float((diff / x1.norm(dim=-1).clamp_min(1e-30)).mean(-1).sum())
        sums["model_cos"] += float(torch.nn.functional.cosine_similarity(sens, x1, dim=-1).mean(-1).sum())
    return {k: v / B for k, v in sums.items()}


def train_and_compare(
    cfg: TrainConfig,
    seed: int,
    on_step: Callable[[int], None] | None = None,
    models: tuple[str, ...] = MODELS,
) -> dict:
    """Train both attention models for ``cfg.steps`` Adam steps on fresh tasks and log metrics against one GD step.

    Returns a dict: ``gd_lr``, ``gd_loss``, ``steps`` (eval points), per model a dict of metric lists
    (``loss, preds_diff, model_diff, model_rel_diff, model_cos``; softmax also ``score_spread``), and ``final``.
    ``on_step(k)`` is called after every k training steps (for a progress bar). ``models`` picks a subset of
    ``("softmax_sa", "linear_sa")``.
    """
    unknown = set(models) - set(MODELS)
    if unknown or not models:
        raise ValueError(f"models must be a non-empty subset of {MODELS}; got {models!r}")
    torch.manual_seed(seed)
    dev = torch.device(cfg.device)
    make = lambda s: SoftmaxRegressionTasks(  # noqa: E731
        cfg.n, cfg.d, cfg.m, R=cfg.R, noise=cfg.noise, sigma_x=cfg.sigma_x, seed=s, device=dev
    )
    train_tasks = make(seed * 1000 + 1)
    eval_batch = make(seed * 1000 + 2).sample(cfg.eval_tasks)
    gd = OneStepGD(fit_gd_learning_rate(make(seed * 1000 + 3).sample(cfg.fit_tasks)))
    gen = torch.Generator().manual_seed(seed)
    built = {
        "softmax_sa": SoftmaxSelfAttention(cfg.d, cfg.softmax_init_scale, cfg.temperature, generator=gen).to(dev),
        "linear_sa": LinearSelfAttention(cfg.d, cfg.init_scale, generator=gen).to(dev),
    }
    models = {k: built[k] for k in MODELS if k in models}
    opts = {k: torch.optim.Adam(m.parameters(), lr=cfg.lr, betas=(0.9, 0.98)) for k, m in models.items()}
    scheds = {
        k: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=cfg.steps, eta_min=cfg.lr * cfg.lr_final_fraction)
        for k, o in opts.items()
    }
    gd_metrics = compare_with_gd(gd, gd, eval_batch)
    history: dict = {"gd_lr": gd.lr, "gd_loss": gd_metrics["loss"], "steps": []}
    for k in models:
        history[k] = {key: [] for key in ("loss", "preds_diff", "model_diff", "model_rel_diff", "model_cos")}
    if "softmax_sa" in models:
        history["softmax_sa"]["score_spread"] = []

    def evaluate(step: int) -> None:
        history["steps"].append(step)
        for name, model in models.items():
            for key, value in compare_with_gd(model, gd, eval_batch).items():
                history[name][key].append(value)
        if "softmax_sa" in models:  # the spread of attention logits on eval tasks
            with torch.no_grad():
                models["softmax_sa"](_subset(eval_batch, slice(0, 256)))
            history["softmax_sa"]["score_spread"].append(models["softmax_sa"].last_score_spread)

    evaluate(0)
    done = 0
    for step in range(1, cfg.steps + 1):
        batch = train_tasks.sample(cfg.batch)
        for name, model in models.items():
            opts[name].zero_grad(set_to_none=True)
            query_loss(model(batch), batch.b_query).mean().backward()
            opts[name].step()
            scheds[name].step()
        if step % cfg.eval_every == 0 or step == cfg.steps:
            evaluate(step)
            if on_step is not None:
                on_step(step - done)
                done = step
    history["final"] = {name: {k: v[-1] for k, v in history[name].items()} for name in models}
    return history
