"""Training loop, checkpoints, resume and the train/generate command line, at tiny sizes."""

import pytest
import torch
from safetensors.torch import load_file

pytest.importorskip("transformers")

from linseq.cli.main import main  # noqa: E402
from linseq.models.lm import LinseqForCausalLM, LinseqLMConfig  # noqa: E402
from linseq.models.lm.checkpoint import load_model  # noqa: E402
from linseq.models.lm.training import TrainOptions, lr_at, train_lm  # noqa: E402
from linseq.models.lm.presets import PRESETS  # noqa: E402


@pytest.fixture
def corpus_dir(tmp_path):
    root = tmp_path / "corpus"
    root.mkdir()
    words = ["alpha", "beta", "gamma", "delta", "def", "return", "(", ")", ":"]
    for i in range(12):
        idx = torch.randint(0, len(words), (300,)).tolist()
        (root / f"f{i}.py").write_text(" ".join(words[j] for j in idx))
    return root


def _options(corpus_dir, out, **kw):
    base = dict(data=str(corpus_dir), out=str(out), steps=6, batch_size=2, seq_len=16, eval_every=6, eval_batches=1,
                checkpoint_every=2, progress=False, seed=int(torch.randint(0, 1000, ())),
                model_overrides=dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64))
    base.update(kw)
    return TrainOptions(**base)


class _Interrupt(Exception):
    pass


def test_interrupted_run_resumed_from_checkpoint_ends_with_identical_weights(corpus_dir, tmp_path):
    straight = _options(corpus_dir, tmp_path / "a")
    train_lm(straight)

    def kill_after_step_3(step):  # the checkpoint of step 2 exists; step 3 is lost and must be redone
        if step == 3:
            raise _Interrupt

    interrupted = _options(corpus_dir, tmp_path / "b", seed=straight.seed)
    with pytest.raises(_Interrupt):
        train_lm(interrupted, on_step=kill_after_step_3)
    assert load_file(str(tmp_path / "b" / "checkpoint" / "model.safetensors"))  # a complete checkpoint is there
    summary = train_lm(_options(corpus_dir, tmp_path / "b", seed=straight.seed, resume=True))
    a = load_file(str(tmp_path / "a" / "checkpoint" / "model.safetensors"))
    b = load_file(str(tmp_path / "b" / "checkpoint" / "model.safetensors"))
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name
    assert summary["step"] == 6 and summary["tokens_seen"] == 6 * 2 * 16


def test_eco_schedule_fits_hashes_mid_run_and_resumes_identically(corpus_dir, tmp_path):
    eco = dict(attn_pattern="eco", eco_softmax_steps=3)
    straight = _options(corpus_dir, tmp_path / "a", **eco)
    summary = train_lm(straight)
    assert summary["eco_softmax_steps"] == 3 and summary["eco_fit"]["step"] == 3
    assert 0.0 <= summary["eco_fit"]["agreement_fitted"] <= 1.0
    model = load_model(tmp_path / "a")
    assert model.config.eco_mode == "hash"
    assert all(layer.attn.mode == "hash" and bool(layer.attn.fitted) for layer in model.model.layers)

    def stop_before_the_fit(step):  # checkpoint of step 2 exists; the resumed run performs the fit at step 3
        if step == 2:
            raise _Interrupt

    with pytest.raises(_Interrupt):
        train_lm(_options(corpus_dir, tmp_path / "b", seed=straight.seed, **eco), on_step=stop_before_the_fit)
    assert load_model(tmp_path / "b").config.eco_mode == "softmax"
    train_lm(_options(corpus_dir, tmp_path / "b", seed=straight.seed, resume=True, **eco))
    a = load_file(str(tmp_path / "a" / "checkpoint" / "model.safetensors"))
    b = load_file(str(tmp_path / "b" / "checkpoint" / "model.safetensors"))
    for name in a:
        assert torch.equal(a[name], b[name]), name


def test_eco_softmax_steps_without_eco_layers_is_refused(corpus_dir, tmp_path):
    with pytest.raises(ValueError, match="eco-softmax-steps"):
        train_lm(_options(corpus_dir, tmp_path / "run", eco_softmax_steps=2))


def test_validation_loss_drops_and_metrics_are_written(corpus_dir, tmp_path):
    summary = train_lm(_options(corpus_dir, tmp_path / "run", steps=20, batch_size=4, eval_every=20, eval_batches=2,
                                   lr=1e-2))
    assert summary["final_val_bpb"] < summary["initial_val_bpb"] - 1.0
    assert (tmp_path / "run" / "metrics.json").is_file() and (tmp_path / "run" / "loss.png").is_file()
    assert "device" in summary["run_metadata"]


def test_learning_rate_warms_up_then_decays_to_min():
    p = PRESETS["tiny"]
    lrs = [lr_at(s, p) for s in range(p.steps)]
    peak = lrs.index(max(lrs))
    assert peak == p.warmup_steps - 1 and max(lrs) == pytest.approx(p.lr)
    assert all(x >= y for x, y in zip(lrs[peak:], lrs[peak + 1 :]))
    assert lrs[-1] == pytest.approx(p.min_lr, rel=1e-3)


def test_cli_train_then_generate_streams_text(corpus_dir, tmp_path, capsys):
    out = tmp_path / "cli"
    rc = main(["train", "--data", str(corpus_dir), "--out", str(out), "--steps", "2", "--batch-size", "2",
               "--seq-len", "16", "--pattern", "hybrid", "--eval-every", "2", "--no-progress"])
    assert rc == 0
    assert "bits/byte" in capsys.readouterr().out
    args = ["generate", "--checkpoint", str(out), "--prompt", "def ", "--max-tokens", "12", "--seed", "7",
            "--top-k", "20", "--top-p", "0.9"]
    assert main(args) == 0
    first = capsys.readouterr().out
    assert first.startswith("def ") and len(first.encode()) >= 4 + 1
    assert main(args) == 0
    assert capsys.readouterr().out == first  # same seed, same text
    model = load_model(out)
    assert model.config.mixer_types[-1] == "softmax"


def _error_line(capsys):
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err
    return err


def test_missing_checkpoint_is_one_clear_line(tmp_path, capsys):
    assert main(["generate", "--checkpoint", str(tmp_path / "nope")]) == 2
    assert "no checkpoint" in _error_line(capsys)


def test_corrupt_checkpoint_is_one_clear_line(tmp_path, capsys):
    LinseqForCausalLM(LinseqLMConfig(hidden_size=16, num_hidden_layers=1, num_attention_heads=2)).save_pretrained(tmp_path)
    (tmp_path / "model.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{garbage")
    capsys.readouterr()
    assert main(["generate", "--checkpoint", str(tmp_path)]) == 2
    assert "corrupt checkpoint" in _error_line(capsys)


def test_empty_corpus_is_one_clear_line(tmp_path, capsys):
    (tmp_path / "blank.txt").write_text("")
    assert main(["train", "--data", str(tmp_path), "--out", str(tmp_path / "o"), "--no-progress"]) == 2
    assert "empty corpus" in _error_line(capsys)


def test_prompt_longer_than_softmax_limit_is_one_clear_line(tmp_path, capsys):
    config = LinseqLMConfig(hidden_size=16, num_hidden_layers=2, num_attention_heads=2, attn_pattern="hybrid",
                            max_position_embeddings=10)
    LinseqForCausalLM(config).save_pretrained(tmp_path)
    capsys.readouterr()
    assert main(["generate", "--checkpoint", str(tmp_path), "--prompt", "x" * 11]) == 2
    assert "longer than" in _error_line(capsys)
