"""WeightEMA: the moving average of a model's weights (a training run that keeps it: test_speech_training.py)."""

import pytest
import torch

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
