"""Data-parallel training through torchrun on the CPU (gloo): two processes, one checkpoint, one report."""

import json
import os
import shutil
import subprocess
import sys

import pytest


def _torchrun() -> str | None:
    local = os.path.join(os.path.dirname(sys.executable), "torchrun")
    return local if os.path.exists(local) else shutil.which("torchrun")


@pytest.mark.skipif(_torchrun() is None, reason="torchrun not installed")
def test_torchrun_two_processes_train_and_report_once(tmp_path):
    corpus = tmp_path / "corpus.py"
    corpus.write_text("def add_one(x):\n    return x + 1\n" * 300)
    out = tmp_path / "run"
    cmd = [_torchrun(), "--standalone", "--nproc_per_node=2", "-m", "linseq.cli.main", "train",
           "--data", str(corpus), "--out", str(out), "--steps", "3", "--batch-size", "2", "--seq-len", "64",
           "--eval-every", "3", "--eval-batches", "1", "--checkpoint-every", "3", "--device", "cpu", "--no-progress"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=180, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.count("validation:") == 1, done.stdout
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["world_size"] == 2
    assert metrics["final_val_bpb"] < metrics["initial_val_bpb"]
    assert (out / "checkpoint" / "model.safetensors").exists()
