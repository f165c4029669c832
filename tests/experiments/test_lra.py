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
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA"):
            run_lra(_tiny("ci", device="cuda"), tmp_path)


def test_cli_help_lists_the_subcommand(capsys):
    from linseq.cli.main import main

    with pytest.raises(SystemExit):
        main(["lra", "--help"])
    assert "--preset" in capsys.readouterr().out
