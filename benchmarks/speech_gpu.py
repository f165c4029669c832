"""One GPU call: build the test set, train four speech models concurrently for equal wall time, evaluate them with
the noisy input and the spectral-gating baseline, measure GPU real-time factors, write JSON + Markdown + a plot.

    python3 benchmarks/speech_gpu.py OUT_DIR          (benchmarks/gpu_speech.sh wraps it)

Environment:
  SPEECH_MINUTES     training wall budget per model, minutes (default 5); cut, with a log line, to what lets the
                     trainings end on their own before their deadline (TRAINER_OVERHEAD_S beside the budget)
  SPEECH_POOLS       pools folder (default data/speech_pools)
  SPEECH_TOTAL_S     hard deadline for the whole script, seconds (default 510), from GPU_CALL_T0 (the call's start,
                     set by gpu_check.sh) when given; leave ~250 s after training:
                     on 16 busy cores one model's 300-clip evaluation took over 110 s (2026-11-23, H100 run
                     3e69673, where all four were stopped). Stragglers are stopped, and the
                     results gathered so far are written
  SPEECH_MODELS      subset of: fullsubnet fast_m2 fast_m8 fast_m2_lightning (default all four)
  SPEECH_KEEP        checkpoints copied into OUT_DIR/checkpoints (default all four; the device returns files of
                     at most 16 MiB, so gpu_check.sh splits its tar of OUT_DIR into 15 MiB parts)
  SPEECH_TEST_N      clips per test subset (default 150)
  SPEECH_PRESET      training preset (default gpu; ci = tiny models, for a CPU smoke run of this script)
  SPEECH_REFERENCES  reference systems evaluated beside the models (default "noisy baseline"; empty: none, when an
                     earlier run on the same test set, same pools manifest, has them)
  SPEECH_INIT_FROM   folder holding <model name>/ checkpoints: each training starts from those weights (train further)
  SPEECH_SEED        training seed (default 0; give a new one with SPEECH_INIT_FROM for fresh mixtures)
  SPEECH_TRAIN_ARGS  extra `linseq speech train` arguments for every training, e.g. "--lr 6e-4 --lr-schedule cosine
                     --warmup-steps 200" (split on spaces)
  SPEECH_EVAL_ONLY   space-separated NAME=FOLDER checkpoints evaluated without training (after the trainings end,
                     beside their evaluations), e.g. a carried FullSubNet checkpoint
  SPEECH_RTF         1 (default) measures GPU real-time factors at the end; 0 skips them
  SPEECH_MODEL_EVAL  1 (default) evaluates each trained model on the device; 0 leaves that to a CPU afterwards
                     (`linseq speech eval`, about 15 min on 2 cores): one model's 300 clips took over 90 s on the
                     device (2026-12-06, H200), time a training call would rather train. Trainings then run up to
                     30 s before SPEECH_TOTAL_S instead of 90
  SPEECH_WORKERS     DataLoader workers per training (default: the table below for four at once; fewer
                     trainings share 12 evenly)
  SPEECH_EVAL_WORKERS  metric processes per evaluation (default 4)
  CPU cores: 16 assumed; DataLoader workers are split between the trainings.

Every step runs in its own process with a log in OUT_DIR/logs/; a failure of one model leaves the others' results.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODELS = {  # name: (train args, DataLoader workers)
    "fullsubnet": (["--model", "fullsubnet"], 2),
    "fast_m2": (["--model", "fast_fullsubnet", "--shrink", "2"], 3),
    "fast_m8": (["--model", "fast_fullsubnet", "--shrink", "8"], 4),
    "fast_m2_lightning": (["--model", "fast_fullsubnet", "--shrink", "2", "--sequence", "lightning"], 3),
}
# deadlines count from the start of the whole device call when gpu_check.sh gives it (its installs and the pesq
# build come first: on 2026-11-23 a 575 s budget counted from here overran the call's 600 s limit)
T0 = float(os.environ.get("GPU_CALL_T0") or time.time())
TOTAL_WORKERS = 12  # DataLoader workers of all trainings together (16 cores, the rest for the main processes)


def log(msg: str) -> None:
    print(f"[{time.time() - T0:6.0f}s] {msg}", flush=True)


class Job:
    """A child process with a log file and a deadline."""

    def __init__(self, name: str, argv: list[str], logfile: Path, deadline: float, nice: int = 0) -> None:
        self.name, self.deadline = name, deadline
        self.log = open(logfile, "w")
        pre = ["nice", "-n", str(nice)] if nice else []
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(pre + argv, stdout=self.log, stderr=subprocess.STDOUT, cwd=ROOT, env=env)
        self.rc: int | None = None
        log(f"start {name}: {' '.join(argv[2:])}")

    def poll(self) -> int | None:
        if self.rc is None:
            rc = self.proc.poll()
            if rc is None and time.time() > self.deadline:
                self.proc.terminate()
                try:
                    rc = self.proc.wait(20)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    rc = self.proc.wait()
                log(f"{self.name}: stopped at its deadline")
                rc = 124
            if rc is not None:
                self.rc = rc
                self.log.close()
                log(f"done {self.name}: rc={rc}")
        return self.rc


def kept(out: Path) -> str:
    """The checkpoints copied into OUT/checkpoints, or 'none'."""
    names = sorted(p.name for p in (out / "checkpoints").iterdir() if p.is_dir())
    return " ".join(names) or "none"


def wait_all(jobs: list[Job]) -> None:
    while any(j.poll() is None for j in jobs):
        time.sleep(2)


def linseq(*args: str) -> list[str]:
    return [sys.executable, "-m", "linseq", *args]


def gather(out: Path, names: list[str], summary: dict) -> dict:
    """Collect the evaluations, training summaries and GPU timings into OUT/results.json, results.md and a plot."""
    from linseq.io import run_metadata

    summary["meta"] = run_metadata()
    summary["evals"] = {}
    for f in sorted((out / "eval").glob("eval_*.json")):
        data = json.loads(f.read_text())
        data.pop("per_clip", None)
        summary["evals"][f.stem[len("eval_"):]] = data
    summary["training"] = {}
    for name in names:
        f = out / "train" / f"{name}_metrics.json"
        if f.is_file():
            m = json.loads(f.read_text())
            t = {k: m.get(k) for k in ("steps", "elapsed_s", "steps_per_second", "best", "parameters")}
            t.update(batch_size=m["config"]["batch_size"], amp=m["config"]["amp_resolved"])
            summary["training"][name] = t
    if (out / "complexity.json").is_file():
        summary["complexity"] = json.loads((out / "complexity.json").read_text())
    (out / "results.json").write_text(json.dumps(summary, indent=1, default=str))
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        from render_speech_table import plot_results, render

        (out / "results.md").write_text(render(summary) + "\n")
        plot_results(summary, out / "speech_results.png")
        print(render(summary, short=True))
    except Exception as err:  # the JSON is what matters; the table can be rendered later
        log(f"rendering failed: {type(err).__name__}: {err}")
    return summary


TRAINER_OVERHEAD_S = 60  # a trainer's time outside its budget: imports, data, model, final validation and save;
# two runs that were given their deadline minus 30 s overran it by 34 s or more and lost their last steps
# (2026-12-07, H100, runs 13 and 14)


def fit_training_minutes(minutes: float, seconds_left: float, overhead_s: float = TRAINER_OVERHEAD_S) -> float:
    """The training budget in minutes that lets a trainer started now finish before a deadline ``seconds_left``
    away: ``minutes``, or less. Raises ``ValueError`` when it would have to be cut below a minute."""
    fitted = min(minutes, (seconds_left - overhead_s) / 60)
    if fitted < min(minutes, 1.0):
        raise ValueError(f"{seconds_left:.0f} s to the deadline leave no room for training (a trainer needs about "
                         f"{overhead_s:g} s besides its budget); raise SPEECH_TOTAL_S or lower SPEECH_MINUTES")
    return fitted


def main() -> int:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/speech_gpu").resolve()
    for sub in ("logs", "eval", "train", "checkpoints"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    minutes = float(os.environ.get("SPEECH_MINUTES", "5"))
    pools = Path(os.environ.get("SPEECH_POOLS", "data/speech_pools"))
    pools = pools if pools.is_absolute() else ROOT / pools
    deadline = T0 + float(os.environ.get("SPEECH_TOTAL_S", "510"))
    names = os.environ.get("SPEECH_MODELS", " ".join(MODELS)).split()
    keep = os.environ.get("SPEECH_KEEP", " ".join(MODELS)).split()
    test_n = os.environ.get("SPEECH_TEST_N", "150")
    preset = os.environ.get("SPEECH_PRESET", "gpu")
    init_dir = os.environ.get("SPEECH_INIT_FROM")  # folder of <model name>/ checkpoints to train further
    seed = os.environ.get("SPEECH_SEED", "0")
    model_eval = os.environ.get("SPEECH_MODEL_EVAL", "1") != "0"
    runs = Path("/tmp/speech_runs")
    test_dir = Path("/tmp/speech_test_set")
    summary: dict = {"minutes": minutes, "models": names, "pools": str(pools), "preset": preset, "failures": {},
                     "init_from": init_dir, "seed": seed,
                     "model_eval": model_eval}

    def nothing_to_do(failure: str, detail: str, message: str) -> int:
        log(message)
        summary["failures"][failure] = detail
        (out / "results.json").write_text(json.dumps(summary, indent=1))
        return 1

    if not (pools / "manifest.json").is_file():
        return nothing_to_do("pools", "missing", f"no pools at {pools} (carry data/speech_pools); nothing to do")
    train_deadline = min(deadline - (90 if model_eval else 30), time.time() + minutes * 60 + 120)
    try:
        fitted = fit_training_minutes(minutes, train_deadline - time.time())
    except ValueError as err:
        return nothing_to_do("budget", str(err), str(err))

    # 1. test set (one process, not niced: every evaluation waits for it)
    build = Job("test_set", [sys.executable, "-c",
                             "import sys; from linseq.data.speech import build_test_set; "
                             "build_test_set(sys.argv[1], sys.argv[2], num_per_subset=int(sys.argv[3]), progress=False)",
                             str(pools), str(test_dir), test_n], out / "logs" / "test_set.log", deadline)

    # 2. four trainings on one GPU, equal wall budget
    if fitted < minutes:
        log(f"training budget cut from {minutes:g} to {fitted:.2f} min, so the trainings end on their own before "
            f"the deadline (their start and final validation take about {TRAINER_OVERHEAD_S} s)")
    minutes = summary["train_minutes"] = fitted
    trains = {}
    for name in names:
        args, workers = MODELS[name]
        # the table splits 12 workers four ways; fewer trainings share them (one alone ran 10 steps/s on 3
        # workers against 18 on 12: 2026-12-07, H100, data-bound)
        workers = int(os.environ.get("SPEECH_WORKERS", max(workers, TOTAL_WORKERS // len(names))))
        if init_dir:
            args = [*args, "--init-from", str(Path(init_dir).resolve() / name)]
        args = [*args, "--seed", seed, *os.environ.get("SPEECH_TRAIN_ARGS", "").split()]
        trains[name] = Job(f"train {name}", linseq(
            "speech", "train", "--preset", preset, *args, "--data", str(pools), "--out", str(runs / name),
            "--minutes", str(minutes), "--workers", str(workers), "--val-every", "1000000",
            "--val-every-seconds", str(max(30.0, minutes * 60 / 5)), "--val-items", "24", "--no-progress",
        ), out / "logs" / f"train_{name}.log", train_deadline)

    # 3. noisy and baseline evaluations once the test set exists, niced, while the models train
    evals: dict[str, Job] = {}
    while build.poll() is None:
        time.sleep(2)
    if build.rc == 0:
        shutil.copy(test_dir / "manifest.json", out / "test_set_manifest.json")
        for system in os.environ.get("SPEECH_REFERENCES", "noisy baseline").split():
            evals[system] = Job(f"eval {system}", linseq(
                "speech", "eval", "--checkpoint", system, "--test-set", str(test_dir), "--out", str(out / "eval"),
                "--workers", "3", "--no-progress", "--device", "cpu"), out / "logs" / f"eval_{system}.log", deadline,
                nice=15)
    else:
        summary["failures"]["test_set"] = f"rc={build.rc}"

    # 4. each model is evaluated as soon as its training ends; the SPEECH_EVAL_ONLY checkpoints once all have ended
    def eval_checkpoint(name: str, ckpt: Path) -> Job:
        return Job(f"eval {name}", linseq(
            "speech", "eval", "--checkpoint", str(ckpt), "--name", name, "--test-set", str(test_dir),
            "--out", str(out / "eval"), "--workers", os.environ.get("SPEECH_EVAL_WORKERS", "4"), "--no-progress",
            "--device", "auto"), out / "logs" / f"eval_{name}.log", deadline)

    eval_only = {}
    for item in os.environ.get("SPEECH_EVAL_ONLY", "").split():
        name, _, folder = item.partition("=")
        eval_only[name] = Path(folder).resolve()
    pending = dict(trains)
    while pending or eval_only or any(j.poll() is None for j in evals.values()):
        for name, job in list(pending.items()):
            if job.poll() is None:
                continue
            del pending[name]
            ckpt = runs / name / "best"
            if not (ckpt / "model.safetensors").is_file():
                summary["failures"][f"train {name}"] = f"rc={job.rc}, no checkpoint"
                continue
            if job.rc != 0:
                summary["failures"][f"train {name}"] = f"rc={job.rc} (best checkpoint kept)"
            for f in ("metrics.json", "loss.png"):
                if (runs / name / f).is_file():
                    shutil.copy(runs / name / f, out / "train" / f"{name}_{f}")
            if name in keep:
                shutil.copytree(ckpt, out / "checkpoints" / name, dirs_exist_ok=True)
            if build.rc == 0 and model_eval:
                evals[name] = eval_checkpoint(name, ckpt)
        if not pending and eval_only:
            for name, folder in eval_only.items() if build.rc == 0 else ():
                evals[name] = eval_checkpoint(name, folder)
            eval_only = {}
        time.sleep(2)
    for name, job in evals.items():
        if job.rc != 0:
            summary["failures"][f"eval {name}"] = f"rc={job.rc}"

    # 5. GPU real-time factors (after the evaluations, so the GPU is free), unless SPEECH_RTF=0
    if os.environ.get("SPEECH_RTF", "1") != "0":
        rtf = Job("rtf", linseq("speech", "rtf", "--no-cpu", "--out", str(out), "--repeats", "5", "--no-progress",
                                "--seconds", "10"),
                  out / "logs" / "rtf.log", min(deadline, time.time() + 120))
        wait_all([rtf])
        if rtf.rc != 0:
            summary["failures"]["rtf"] = f"rc={rtf.rc}"

    # 6. gather
    gather(out, names, summary)
    if summary["failures"]:
        log(f"failures: {summary['failures']}")
    log(f"wrote {out}/results.json, results.md, speech_results.png, checkpoints: {kept(out)}")
    return 0 if not summary["failures"] else 1


if __name__ == "__main__":
    sys.exit(main())
