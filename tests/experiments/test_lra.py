"""The offline LRA generators and the benchmark's code paths (the GPU preset at tiny sizes on the CPU)."""

import json

import numpy as np
import pytest
import torch

from linseq.data.lra import (
    LISTOPS_VOCAB,
    evaluate_listops_tokens,
    listops_dataset,
    listops_expression,
    pathfinder_dataset,
)
from linseq.experiments.lra import markdown_tables, preset, run_lra


def test_listops_labels_agree_with_an_independent_stack_evaluator():
    seed = int(torch.randint(1 << 30, ()).item())
    x, y = listops_dataset(60, min_len=20, max_len=120, seed=seed)
    lengths = (x != 0).sum(1)
    assert torch.all((lengths >= 20) & (lengths <= 120))
    for row, label in zip(x, y):
        assert evaluate_listops_tokens(row) == label.item()
    assert len(set(y.tolist())) > 3


def test_listops_evaluator_on_hand_written_expressions():
    tok = {t: i for i, t in enumerate(LISTOPS_VOCAB)}
    ids = lambda s: [tok[t] for t in s.split()]  # noqa: E731
    assert evaluate_listops_tokens(ids("[MAX 2 9 [MIN 4 7 ] 0 ]")) == 9
    assert evaluate_listops_tokens(ids("[MED 1 3 8 6 ]")) == 4  # median 4.5 rounded down
    assert evaluate_listops_tokens(ids("[SM 7 8 [MIN 3 5 ] ]")) == 8
    with pytest.raises(ValueError):
        evaluate_listops_tokens(ids("[MAX 2 9"))


def test_listops_rejects_bad_lengths():
    with pytest.raises(ValueError, match="min_len"):
        listops_expression(np.random.default_rng(0), min_len=10, max_len=5)
    with pytest.raises(ValueError, match="seq_len"):
        listops_dataset(2, min_len=5, max_len=50, seq_len=40)


def test_pathfinder_images_are_balanced_binary_ink():
    imgs, labels = pathfinder_dataset(40, size=24, seed=int(torch.randint(1 << 30, ()).item()), n_seg=4)
    assert imgs.shape == (40, 24, 24) and imgs.dtype == torch.uint8
    assert labels.sum().item() == 20
    assert set(imgs.unique().tolist()) <= {0, 255}
    assert torch.all((imgs > 0).flatten(1).sum(1) > 10)
    with pytest.raises(ValueError, match="size"):
        pathfinder_dataset(2, size=8)


def _tiny(name, **kw):
    base = dict(device="cpu", listops_train=48, listops_test=24, listops_min_len=16, listops_max_len=64,
                pathfinder_train=48, pathfinder_test=24, batch_size=8, steps=4, sweep_lengths=[64, 96],
                sweep_repeats=1, fit_iterations=2, workers=1, dim=16)
    base.update(kw)
    return preset(name, **base)


def test_full_preset_code_path_runs_at_tiny_sizes(tmp_path):
    # the GPU preset's settings (32×32 Pathfinder with its contours, process-pool generation) at tiny sizes
    cfg = _tiny("full", workers=2)
    assert cfg.pathfinder_size == 32
    results = run_lra(cfg, tmp_path, preset_name="full-tiny")
    saved = json.loads((tmp_path / "lra_results.json").read_text())
    assert "run_metadata" in saved and saved["run_metadata"]["seed"] == cfg.seed
    assert (tmp_path / "lra_summary.png").stat().st_size > 0
    for task in ("listops", "pathfinder"):
        for attn in ("softmax", "lightning", "ecoformer"):
            assert 0.0 <= saved["tasks"][task]["attn"][attn]["test_acc"] <= 1.0
        assert set(saved["hash_study"][task]) >= {"random", "fitted_reference_lr", "fitted_larger_lr"}
    assert saved["tasks"]["pathfinder"]["seq_len"] == 1024
    table = markdown_tables(results)
    assert "| pathfinder | 1024 |" in table and "saving" in table


def test_parallel_jobs_match_the_sequential_structure(tmp_path, capsys):
    # jobs=2: the trainings run in two spawned processes (data through temporary files), the sweep after them
    cfg = _tiny("ci", jobs=2, workers=2, steps=3, listops_max_len=48, sweep_lengths=[32])
    results = run_lra(cfg, tmp_path, ["softmax", "ecoformer"], ["listops", "pathfinder"], preset_name="ci-jobs2")
    out = capsys.readouterr().out
    assert out.count("steps") >= 4 and "data: listops" in out
    for task in ("listops", "pathfinder"):
        assert list(results["tasks"][task]["attn"]) == ["softmax", "ecoformer"]  # the order of the arguments
        for res in results["tasks"][task]["attn"].values():
            assert res["steps_done"] == 3 and res["warmup_seconds"] >= 0 and len(res["loss_curve"]) == 3
        assert set(results["hash_study"][task]) >= {"random", "fitted_reference_lr", "softmax_test_acc"}
    assert results["config"]["jobs"] == 2 and results["train_wall_seconds"] > 0
    assert "| listops | 48 |" in markdown_tables(results)
    partial = {k: v for k, v in results.items() if k != "scaling"}  # lra_results.partial.json, before the sweep
    assert "One attention layer" not in markdown_tables(partial) and "saving" in markdown_tables(partial)


def test_listops_accuracy_in_the_lra_length_range_is_reported():
    from linseq.experiments.lra.runner import long_listops_mask

    x = torch.zeros(4, 600, dtype=torch.long)
    x[:, :100] = 1
    assert long_listops_mask(x) is None  # no example of 500+ tokens
    x[1:3, :550] = 1
    assert long_listops_mask(x).tolist() == [False, True, True, False]
    softmax = {"test_acc": 0.75, "test_acc_500plus": 0.5, "train_seconds": 1.0, "steps_done": 3, "capped": False}
    listops = {"seq_len": 600, "n_train": 8, "n_test": 4, "majority_acc": 0.5, "n_test_500plus": 2,
               "majority_acc_500plus": 0.5, "attn": {"softmax": softmax}}
    results = {"run_metadata": {"device": "cpu", "torch": "x", "commit": "y"}, "total_seconds": 1.0,
               "energy": {"num_heads": 2, "head_dim": 8, "rows": []}, "tasks": {"listops": listops}}
    assert "| softmax | 0.500 |" in markdown_tables(results) and "500+ tokens" in markdown_tables(results)


def test_warm_up_leaves_training_unchanged_and_the_schedule_follows_time(monkeypatch):
    from linseq.experiments.lra import runner
    from linseq.experiments.lra.runner import make_data, one_cycle, train_one

    cfg = _tiny("ci", steps=3, pretrain_frac=0.5)
    data = make_data(cfg, "listops")
    warm, _ = train_one(cfg, "listops", "ecoformer", data, torch.device("cpu"), progress_bar=False)
    monkeypatch.setattr(runner, "_warm_up", lambda *args: 0.0)
    cold, _ = train_one(cfg, "listops", "ecoformer", data, torch.device("cpu"), progress_bar=False)
    assert warm["loss_curve"] == cold["loss_curve"] and warm["test_acc"] == cold["test_acc"]
    assert warm["switch_step"] == 1 and warm["warmup_seconds"] > 0  # int(0.5 * 3), as before
    opt = torch.optim.AdamW([torch.zeros(1, requires_grad=True)], lr=2e-3)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=150, pct_start=0.1)
    for step in range(150):  # the same schedule as OneCycleLR, step for step
        assert one_cycle(step, 150, 2e-3, 0.1) == (opt.param_groups[0]["lr"], opt.param_groups[0]["betas"][0])
        opt.step()
        sched.step()
    # the time cap comes long before 10,000 steps; the hash switch follows the clock (about half-way), not the steps
    capped, _ = train_one(_tiny("ci", steps=10_000, max_train_seconds=1.5, anneal_by_time=True), "listops",
                          "ecoformer", data, torch.device("cpu"), progress_bar=False)
    assert capped["capped"] and 0 < capped["switch_step"] <= capped["steps_done"] < 10_000


def test_ci_preset_with_one_attention_and_reference_normalizer(tmp_path):
    results = run_lra(_tiny("ci", normalizer="reference"), tmp_path, ["ecoformer"], ["listops"])
    assert list(results["tasks"]["listops"]["attn"]) == ["ecoformer"]


def test_bad_benchmark_arguments_raise(tmp_path):
    with pytest.raises(ValueError, match="preset"):
        preset("huge")
    with pytest.raises(ValueError, match="unknown config"):
        preset("ci", colour="red")
    with pytest.raises(ValueError, match="attention"):
        run_lra(_tiny("ci"), tmp_path, ["performer"])
    with pytest.raises(ValueError, match="task"):
        run_lra(_tiny("ci"), tmp_path, ["softmax"], ["imdb"])
    with pytest.raises(ValueError, match="jobs"):
        run_lra(_tiny("ci", jobs=0), tmp_path, ["softmax"])
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA"):
            run_lra(_tiny("ci", device="cuda"), tmp_path)


def test_cli_help_lists_the_subcommand(capsys):
    from linseq.cli.main import main

    with pytest.raises(SystemExit):
        main(["lra", "--help"])
    text = capsys.readouterr().out
    assert "--preset" in text and "--jobs" in text and "gpu" in text


def test_gpu_preset_runs_six_trainings_at_once_with_a_time_schedule():
    cfg = preset("gpu")
    assert cfg.jobs == 6 and cfg.anneal_by_time and cfg.device == "cuda"
    assert cfg.listops_max_len == 2000 and cfg.pathfinder_size == 32
