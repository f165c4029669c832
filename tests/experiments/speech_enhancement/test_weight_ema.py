"""WeightEMA: the moving average of a model's weights, and a training run that validates and keeps it."""

import pytest
import torch
from safetensors.torch import load_file

from linseq.experiments.speech_enhancement.checkpoint import load_speech_model
from linseq.experiments.speech_enhancement.synthetic import SyntheticMixtures
from linseq.experiments.speech_enhancement.training import TrainConfig, make_validation_set, train_speech
from linseq.experiments.speech_enhancement.weight_ema import WeightEMA


def test_each_update_moves_the_average_by_the_step_decay():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(5, 3), torch.nn.BatchNorm1d(3))
    ema = WeightEMA(model, decay=0.9)
    assert [ema.decay_at(s) for s in (0, 1, 80, 10_000)] == pytest.approx([0.1, 2 / 11, 81 / 90, 0.9])
    expected = {k: v.clone() for k, v in model.state_dict().items()}
    for step in range(3):
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn_like(p))
        model(torch.randn(4, 5))  # moves the BatchNorm statistics and its integer batch counter
        ema.update(model, step)
        d = ema.decay_at(step)
        for k, v in model.state_dict().items():
            expected[k] = d * expected[k] + (1 - d) * v if v.is_floating_point() else v.clone()
    for k, v in ema.model.state_dict().items():
        torch.testing.assert_close(v, expected[k], msg=k)
    assert ema.model.state_dict()["1.num_batches_tracked"].item() == 3  # copied, not averaged
    assert not any(p.requires_grad for p in ema.model.parameters())
    for bad in (0.0, 1.0, -0.5):
        with pytest.raises(ValueError, match="ema decay must be in"):
            WeightEMA(model, bad)


class _Items(torch.utils.data.Dataset):
    def __init__(self):
        base = SyntheticMixtures(4, 0.5, seed=11)
        self.items = [base[i] for i in range(4)]

    def __len__(self):
        return 4

    def __getitem__(self, i):
        return self.items[i]


def test_training_with_ema_validates_and_keeps_the_average(tmp_path):
    cfg = TrainConfig(model="fast_fullsubnet", tiny=True, batch_size=4, steps=4, val_every=4, num_workers=0,
                      val_items=1, val_seconds=1.0, out=str(tmp_path / "run"), device="cpu", save_dtype="float32",
                      lr=3e-3, ema_decay=0.5)
    train_speech(cfg, _Items(), make_validation_set(SyntheticMixtures(1, 1.0, seed=5), 1), progress=False)
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
        train_speech(TrainConfig(steps=1, ema_decay=1.0, out=str(tmp_path / "x")), _Items(), [], progress=False)
