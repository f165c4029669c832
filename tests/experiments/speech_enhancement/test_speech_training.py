"""Training reduces the loss on tiny synthetic data; drop-band; checkpoint round trip, errors, resume."""

import json
import math

import pytest
import torch
from safetensors.torch import load_file
from torch.utils.data import Dataset

from linseq.experiments.speech_enhancement.checkpoint import (
    build_model, find_checkpoint, load_speech_model, save_speech_checkpoint, weights_sha256,
)
from linseq.experiments.speech_enhancement.synthetic import SyntheticMixtures
from linseq.experiments.speech_enhancement.metrics import si_sdr
from linseq.experiments.speech_enhancement.training import (
    TrainConfig, crm_loss, make_validation_set, negative_si_sdr, plot_history, scheduled_lr, train_speech,
)
from linseq.models.speech import FastFullSubNet, FullSubNet
from linseq.models.speech.fullsubnet import gather_bins


class FixedSet(Dataset):
    """The same few items every epoch, so a handful of steps must lower the loss on them."""

    def __init__(self, n=4, seconds=0.5):
        base = SyntheticMixtures(n, seconds, seed=int(torch.randint(0, 10**6, ())))
        self.items = [base[i] for i in range(n)]

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


def _cfg(tmp_path, **kw):
    base = dict(model="fast_fullsubnet", tiny=True, batch_size=4, steps=6, val_every=3, num_workers=0, val_items=2,
                val_seconds=1.0, log_every=1, out=str(tmp_path / "run"), device="cpu", save_dtype="float16")
    base.update(kw)
    return TrainConfig(**base)


def test_training_reduces_loss_and_writes_checkpoints(tmp_path):
    data = FixedSet()
    noisy, clean = (torch.stack(t) for t in zip(*data.items))
    cfg = _cfg(tmp_path, steps=12, val_every=12, lr=3e-3, val_items=1)
    torch.manual_seed(cfg.seed)
    with torch.no_grad():
        before = crm_loss(build_model(cfg.model_settings()), noisy, clean).item()
    result = train_speech(cfg, data, make_validation_set(SyntheticMixtures(1, 1.0, seed=5), 1), progress=False)
    assert result["steps"] == 12 and len(result["history"]) == 12
    run = tmp_path / "run"
    trained, _ = load_speech_model(run / "last")
    with torch.no_grad():
        after = crm_loss(trained, noisy, clean).item()
    assert after < 0.9 * before, (before, after)
    for f in ("best/model.safetensors", "best/config.json", "last/optimizer.safetensors", "metrics.json", "loss.png"):
        assert (run / f).is_file(), f
    config = json.loads((run / "best" / "config.json").read_text())
    assert config["model"] == "fast_fullsubnet" and config["shrink_size"] == 2 and config["dtype"] == "float16"
    assert config["step"] == 12 and "score" in config["metrics"]
    assert json.loads((run / "metrics.json").read_text())["meta"]["commit"]


def test_si_sdr_loss_matches_the_metric_and_reaches_the_model(tmp_path):
    ref, est = torch.randn(3, 4000, dtype=torch.float64), torch.randn(3, 4000, dtype=torch.float64)
    est = 0.7 * ref + 0.3 * est
    expected = -sum(si_sdr(r.numpy(), e.numpy()) for r, e in zip(ref, est)) / 3
    assert abs(negative_si_sdr(est, ref).item() - expected) < 1e-6
    plain, mixed = _extra_term_reaches_the_model(tmp_path, sisdr_weight=0.01)
    assert mixed.item() != plain.item()


def _extra_term_reaches_the_model(tmp_path, **weights):
    """crm_loss without and with an extra wave term on two synthetic pairs; asserts that the term alone gives the
    weights a gradient and returns (plain, mixed)."""
    noisy, clean = (torch.stack(t) for t in zip(*FixedSet(n=2).items))
    model = build_model(_cfg(tmp_path).model_settings())
    plain = crm_loss(model, noisy, clean)
    mixed = crm_loss(model, noisy, clean, **weights)
    model.zero_grad()
    (mixed - plain).backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
    return plain, mixed


def test_stoi_term_reaches_the_model_and_bad_weights_are_refused(tmp_path):
    plain, mixed = _extra_term_reaches_the_model(tmp_path, stoi_weight=0.5)
    assert -0.5 <= (mixed - plain).item() <= 0.5
    for bad in ({"stoi_weight": -1.0}, {"sisdr_weight": float("nan")}):
        with pytest.raises(ValueError, match="stoi_weight"):
            TrainConfig.from_preset("ci", out=str(tmp_path / "x"), **bad).check()


@pytest.mark.parametrize("ema_decay", [0.0, 0.8])
def test_resume_continues_exactly(tmp_path, ema_decay):
    data = FixedSet(n=8)
    val = make_validation_set(SyntheticMixtures(1, 1.0, seed=6), 1)
    full = train_speech(_cfg(tmp_path / "a", seed=3, ema_decay=ema_decay), data, val, progress=False)

    class Stop(Exception):
        pass

    def interrupt(step, loss):
        if step == 5:
            raise Stop

    with pytest.raises(Stop):
        train_speech(_cfg(tmp_path / "b", seed=3, ema_decay=ema_decay), data, val, progress=False, on_step=interrupt)
    resumed = train_speech(_cfg(tmp_path / "b", seed=3, resume=True, ema_decay=ema_decay), data, val, progress=False)
    assert resumed["steps"] == full["steps"] == 6
    a, _ = load_speech_model(tmp_path / "a" / "run" / "last")
    b, _ = load_speech_model(tmp_path / "b" / "run" / "last")
    for (name, p), q in zip(a.state_dict().items(), b.state_dict().values()):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6, msg=name)
    if ema_decay:  # the weight average resumes too
        ema_a, ema_b = (load_file(str(tmp_path / r / "run" / "last" / "ema.safetensors")) for r in "ab")
        for name, p in ema_a.items():
            torch.testing.assert_close(p, ema_b[name], rtol=1e-5, atol=1e-6, msg=name)
    assert [h["loss"] for h in resumed["history"]] == pytest.approx([h["loss"] for h in full["history"]], rel=1e-5)


def test_training_with_ema_validates_and_keeps_the_average(tmp_path):
    cfg = _cfg(tmp_path, steps=4, val_every=4, val_items=1, save_dtype="float32", lr=3e-3, ema_decay=0.5)
    train_speech(cfg, FixedSet(), make_validation_set(SyntheticMixtures(1, 1.0, seed=5), 1), progress=False)
    best, config = load_speech_model(tmp_path / "run" / "best")
    average = load_file(str(tmp_path / "run" / "last" / "ema.safetensors"))
    raw = load_file(str(tmp_path / "run" / "last" / "model.safetensors"))
    assert config["train_config"]["ema_decay"] == 0.5
    moved = False
    for name, value in best.state_dict().items():
        torch.testing.assert_close(value, average[name], msg=name)  # best/ holds the average, not the raw weights
        moved |= not torch.equal(average[name], raw[name])
    assert moved
    with pytest.raises(ValueError, match=r"ema_decay must be in \[0, 1\)"):
        train_speech(_cfg(tmp_path, steps=1, ema_decay=1.0, out=str(tmp_path / "x")), FixedSet(), [], progress=False)


def test_progress_false_draws_no_bar(tmp_path, capsys):
    """A parameter named progress was shadowed by a helper of the same name, so the bar always ran and filled
    device logs with it."""
    val = make_validation_set(SyntheticMixtures(1, 1.0, seed=5), 1)
    train_speech(_cfg(tmp_path, steps=4, val_every=2, val_items=1), FixedSet(), val, progress=False)
    out = capsys.readouterr()
    assert "step" not in out.err
    # but each validation leaves one line, so a run stopped from outside keeps a trace in its log
    lines = [ln for ln in out.out.splitlines() if ln.startswith("validation at step")]
    assert [ln.split()[3] for ln in lines] == ["2", "4"] and "(best so far)" in lines[0] and "STOI" in lines[0]
    train_speech(_cfg(tmp_path, steps=2, val_every=2, val_items=1, out=str(tmp_path / "bar")), FixedSet(), val)
    assert "step" in capsys.readouterr().err


def test_init_from_starts_from_the_checkpoint_weights_and_refuses_another_model(tmp_path):
    val = make_validation_set(SyntheticMixtures(1, 1.0, seed=5), 1)
    train_speech(_cfg(tmp_path, steps=2, val_every=2, val_items=1, save_dtype="float32"), FixedSet(), val, progress=False)
    source, _ = load_speech_model(tmp_path / "run" / "best")
    cfg = _cfg(tmp_path, steps=1, val_every=1, val_items=1, lr=1e-12, out=str(tmp_path / "more"),
               init_from=str(tmp_path / "run"), save_dtype="float32")
    result = train_speech(cfg, FixedSet(), val, progress=False)
    # the run records which weights it started from, so a result can name its parent checkpoint
    assert result["config"]["init_weights_sha256"] == weights_sha256(tmp_path / "run")
    first = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert first["config"]["init_weights_sha256"] is None
    # and which weights its best/ holds, so a mean of several runs' checkpoints can name them without evaluating each
    assert first["best"]["weights_sha256"] == weights_sha256(tmp_path / "run" / "best")
    assert result["best"]["weights_sha256"] == weights_sha256(tmp_path / "more" / "best")
    further, _ = load_speech_model(tmp_path / "more" / "last")
    for (name, a), (_, b) in zip(source.state_dict().items(), further.state_dict().items()):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-9, msg=name)  # lr 1e-12: one step moves nothing
    other = _cfg(tmp_path, steps=1, out=str(tmp_path / "other"), init_from=str(tmp_path / "run"), model="fullsubnet")
    with pytest.raises(ValueError, match="--init-from .* does not match"):
        train_speech(other, FixedSet(), val, progress=False)


def test_cosine_schedule_with_warmup_reaches_lr_min_at_the_end_of_the_budget(tmp_path):
    cfg = _cfg(tmp_path, steps=8, val_every=8, val_items=1, lr=2e-3, lr_schedule="cosine", lr_min=1e-4,
               warmup_steps=3)
    result = train_speech(cfg, FixedSet(), make_validation_set(SyntheticMixtures(1, 1.0, seed=5), 1), progress=False)
    lrs = [h["lr"] for h in result["history"]]  # log_every=1: the lr of each of the 8 steps
    expected = [(1e-4 + 0.95e-3 * (1 + math.cos(math.pi * s / 8))) * min(1.0, (s + 1) / 3) for s in range(8)]
    assert lrs == pytest.approx(expected, rel=1e-12)
    assert lrs[0] == pytest.approx(2e-3 / 3) and max(lrs) < 2e-3 and lrs[-1] < 2e-4
    # a wall-time budget: progress is the elapsed fraction; the constant schedule ignores it
    cfg = _cfg(tmp_path, steps=None, max_minutes=1.0, lr=2e-3, lr_schedule="cosine", lr_min=0.0)
    assert scheduled_lr(cfg, 10, 0.5) == pytest.approx(1e-3) and scheduled_lr(cfg, 10, 1.0) == 0.0
    assert scheduled_lr(_cfg(tmp_path, lr=2e-3), 10, 0.9) == 2e-3
    with pytest.raises(ValueError, match="lr_min <= lr"):
        train_speech(_cfg(tmp_path, lr_schedule="cosine", lr=1e-4, lr_min=1e-3), FixedSet(), [], progress=False)
    with pytest.raises(ValueError, match="lr_schedule must be one of"):
        train_speech(_cfg(tmp_path, lr_schedule="step"), FixedSet(), [], progress=False)


def test_drop_band_matches_full_forward_on_kept_bins():
    model = FullSubNet(fb_hidden_size=16, sb_hidden_size=8).eval()
    mag = torch.rand(3, 257, 9)
    out, bins = model.forward_drop_band(mag, 2)
    assert out.shape == (3, 2, 128, 9) and bins.shape == (3, 128)
    assert torch.equal(bins[1], torch.arange(1, 256, 2))
    torch.testing.assert_close(out, gather_bins(model(mag), bins), rtol=1e-5, atol=1e-6)
    model.train()
    x = torch.randn(3, 4000) * 0.1
    loss = crm_loss(model, x, 0.5 * x, drop_band=2)
    loss.backward()
    assert torch.isfinite(loss) and model.sb_model.layers[0].weight_ih_l0.grad is not None


def test_checkpoint_round_trip_fp16_and_errors(tmp_path):
    model = FastFullSubNet(shrink_size=8, sb_hidden_size=16, sequence_model="lstm").eval()
    path = save_speech_checkpoint(tmp_path / "ck", model, {"step": 7}, dtype=torch.float16)
    loaded, config = load_speech_model(path)
    assert config["shrink_size"] == 8 and config["step"] == 7 and config["sb_hidden_size"] == 16
    for (name, p), q in zip(model.state_dict().items(), loaded.state_dict().values()):
        torch.testing.assert_close(p.half().float(), q, msg=name)
    assert find_checkpoint(tmp_path / "ck") == path
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_speech_model(tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match="expected config.json"):
        load_speech_model(tmp_path)
    (path / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="corrupt checkpoint"):
        load_speech_model(path)
    (path / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match="config.json is unreadable"):
        load_speech_model(path)


def test_average_of_checkpoints_has_the_mean_weights_and_refuses_other_models(tmp_path, capsys):
    from linseq.cli.main import main
    from linseq.experiments.speech_enhancement.checkpoint import average_speech_checkpoints, weights_sha256

    paths = []
    for seed in range(3):
        torch.manual_seed(seed)  # three different draws of one small model
        model = FastFullSubNet(shrink_size=8, sb_hidden_size=16, sequence_model="lightning")
        paths.append(save_speech_checkpoint(tmp_path / f"ck{seed}", model, {"step": 10 * seed}))
    out = average_speech_checkpoints(paths, tmp_path / "soup", dtype=torch.float32)
    soup, config = load_speech_model(out)
    states = [load_speech_model(p)[0].state_dict() for p in paths]
    for name, value in soup.state_dict().items():
        torch.testing.assert_close(value, sum(s[name] for s in states) / 3, msg=name)
    assert not torch.equal(states[0][next(iter(states[0]))], states[1][next(iter(states[1]))])
    assert [s["step"] for s in config["averaged_from"]] == [0, 10, 20]
    assert config["averaged_from"][2]["weights_sha256"] == weights_sha256(paths[2])
    other = save_speech_checkpoint(tmp_path / "other", FastFullSubNet(shrink_size=2, sb_hidden_size=16,
                                                                      sequence_model="lightning"))
    with pytest.raises(ValueError, match="different models.*shrink_size"):
        average_speech_checkpoints([paths[0], other], tmp_path / "bad")
    with pytest.raises(ValueError, match="at least two"):
        average_speech_checkpoints(paths[:1], tmp_path / "bad")
    assert not (tmp_path / "bad").exists()
    # the command line: float16 by default, and it says what to do next
    assert main(["speech", "average", *map(str, paths[:2]), "--out", str(tmp_path / "cli")]) == 0
    assert "next: linseq speech eval --checkpoint" in capsys.readouterr().out
    assert json.loads((tmp_path / "cli" / "config.json").read_text())["dtype"] == "float16"


def test_config_errors(tmp_path):
    with pytest.raises(ValueError, match="set steps or max_minutes"):
        train_speech(_cfg(tmp_path, steps=None), FixedSet(), [], progress=False)
    with pytest.raises(ValueError, match="preset must be one of"):
        TrainConfig.from_preset("huge")
    with pytest.raises(ValueError, match="model must be one of"):
        TrainConfig(model="demucs").model_settings()


def test_loss_plot_handles_negative_losses(tmp_path):
    """With the wave-level terms the logged loss goes below zero; the plot then switches to a linear axis instead
    of warning and drawing an empty log axis."""
    pytest.importorskip("matplotlib")
    import warnings

    history = [{"step": 10 * i, "loss": 0.05 - 0.02 * i} for i in range(1, 6)]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = plot_history(history, [{"step": 50, "score": 0.7}], tmp_path / "loss.png", "t", "cRM MSE + 0.1 × (−STOI)")
    assert out is not None and out.stat().st_size > 0
