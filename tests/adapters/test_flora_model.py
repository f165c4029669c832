"""FLoRA model lifecycle: targeting, save/load round trip, and the errors users hit."""

from __future__ import annotations

import copy
import json

import pytest
import torch
from safetensors.torch import load_file
from torch import nn

from linseq.adapters import CONFIG_NAME, WEIGHTS_NAME, FloraConfig, FloraModel, get_flora_model


class TinyNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(40, 16)
        self.conv = nn.Conv1d(16, 16, 3, padding=1, groups=4)
        self.blocks = nn.ModuleList([nn.ModuleDict({"q_proj": nn.Linear(16, 16), "mlp": nn.Linear(16, 16)})] * 1)
        self.lm_head = nn.Linear(16, 40)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        h = self.embed(idx)  # [B, T, 16]
        h = self.conv(h.transpose(1, 2)).transpose(1, 2)
        for block in self.blocks:
            h = h + block["mlp"](torch.tanh(block["q_proj"](h)))
        return self.lm_head(h)


def _randomize(flora: FloraModel) -> None:
    with torch.no_grad():
        for name, p in flora.named_parameters():
            if "flora_" in name or "modules_to_save" in name:
                p.add_(0.2 * torch.randn_like(p))


def test_save_then_load_gives_identical_outputs(tmp_path):
    base = TinyNet()
    cfg = FloraConfig(r=(4, 3), target_modules=["embed", "q_proj", "mlp"], modules_to_save=["lm_head"], scale=2.0)
    flora = get_flora_model(copy.deepcopy(base), cfg)
    _randomize(flora)
    idx = torch.randint(0, 40, (3, 11))
    expected = flora(idx)
    flora.save_pretrained(tmp_path / "adapter")
    loaded = FloraModel.from_pretrained(copy.deepcopy(base), tmp_path / "adapter")
    assert torch.equal(loaded(idx), expected)
    assert not any(p.requires_grad for p in loaded.parameters())
    for key, value in flora.adapter_state_dict().items():
        assert torch.equal(loaded.adapter_state_dict()[key], value)


def test_saved_file_holds_only_adapter_tensors_with_stable_keys(tmp_path):
    flora = get_flora_model(TinyNet(), FloraConfig(r=2, target_modules=["conv", "q_proj"], modules_to_save=["lm_head"]))
    flora.save_pretrained(tmp_path)
    tensors = load_file(str(tmp_path / WEIGHTS_NAME))
    expected = {"conv.flora_core", "blocks.0.q_proj.flora_core", "lm_head.modules_to_save.weight",
                "lm_head.modules_to_save.bias"}
    expected |= {f"conv.flora_factors.{i}" for i in range(3)} | {f"blocks.0.q_proj.flora_factors.{i}" for i in range(2)}
    assert set(tensors) == expected
    config = json.loads((tmp_path / CONFIG_NAME).read_text())
    assert config["peft_type"] == "FLORA" and config["target_modules"] == ["conv", "q_proj"]
    assert FloraConfig.from_dict(config) == flora.config


def test_all_linear_skips_the_lm_head():
    flora = get_flora_model(TinyNet(), FloraConfig(r=2, target_modules="all-linear"))
    assert {row["module"] for row in flora.adapter_summary()} == {"blocks.0.q_proj", "blocks.0.mlp"}


def test_regex_and_exclusions_select_modules():
    cfg = FloraConfig(r=2, target_modules=r"blocks\.\d+\.(q_proj|mlp)", exclude_modules=["mlp"])
    flora = get_flora_model(TinyNet(), cfg)
    assert [row["module"] for row in flora.adapter_summary()] == ["blocks.0.q_proj"]


def test_trained_adapter_changes_outputs_and_disable_restores_them():
    base = TinyNet()
    flora = get_flora_model(copy.deepcopy(base), FloraConfig(r=4, target_modules="all-linear"))
    opt = torch.optim.Adam([p for p in flora.parameters() if p.requires_grad], lr=1e-2)
    idx = torch.randint(0, 40, (4, 9))
    for _ in range(3):
        opt.zero_grad()
        nn.functional.cross_entropy(flora(idx).flatten(0, 1), idx.flatten()).backward()
        opt.step()
    assert not torch.allclose(flora(idx), base(idx))
    with flora.disable_adapter():
        assert torch.equal(flora(idx), base(idx))


def test_target_matching_nothing_is_an_error():
    with pytest.raises(ValueError, match="matched no module"):
        get_flora_model(TinyNet(), FloraConfig(target_modules=["v_proj"]))
    with pytest.raises(ValueError, match="matched no module"):
        get_flora_model(TinyNet(), FloraConfig(target_modules="all-conv", exclude_modules=["conv"]))


def test_unsupported_module_type_is_an_error():
    with pytest.raises(TypeError, match="does not support"):
        get_flora_model(TinyNet(), FloraConfig(target_modules=["blocks"]))
    mha = nn.Sequential(nn.MultiheadAttention(8, 2))
    with pytest.raises(TypeError, match="NonDynamicallyQuantizableLinear"):
        get_flora_model(mha, FloraConfig(target_modules=["out_proj"]))


def test_rank_larger_than_mode_is_an_error():
    with pytest.raises(ValueError, match="larger than the mode"):
        get_flora_model(TinyNet(), FloraConfig(r=(4, 5, 4), target_modules=["conv"]))  # in/groups = 4
    with pytest.raises(ValueError, match="one entry per mode"):
        get_flora_model(TinyNet(), FloraConfig(r=(4, 4), target_modules=["conv"]))


def test_bad_config_values_are_errors():
    with pytest.raises(ValueError, match="target_modules"):
        FloraConfig(r=4)
    with pytest.raises(ValueError, match="r must be >= 1"):
        FloraConfig(r=0, target_modules="all-linear")
    with pytest.raises(TypeError, match="r must be an int"):
        FloraConfig(r=2.5, target_modules="all-linear")


def test_adapter_that_does_not_fit_the_model_is_an_error(tmp_path):
    flora = get_flora_model(TinyNet(), FloraConfig(r=2, target_modules=["q_proj"]))
    flora.save_pretrained(tmp_path)
    config = json.loads((tmp_path / CONFIG_NAME).read_text())
    config["r"] = 3  # the weights file holds rank-2 tensors
    (tmp_path / CONFIG_NAME).write_text(json.dumps(config))
    with pytest.raises(ValueError, match="does not fit this model"):
        FloraModel.from_pretrained(TinyNet(), tmp_path)
    config["r"], config["target_modules"] = 2, ["q_proj", "mlp"]
    (tmp_path / CONFIG_NAME).write_text(json.dumps(config))
    with pytest.raises(ValueError, match="missing keys"):
        FloraModel.from_pretrained(TinyNet(), tmp_path)
    with pytest.raises(FileNotFoundError, match=CONFIG_NAME):
        FloraModel.from_pretrained(TinyNet(), tmp_path / "nowhere")


def test_injecting_twice_is_an_error():
    flora = get_flora_model(TinyNet(), FloraConfig(r=2, target_modules=["q_proj"]))
    with pytest.raises(ValueError, match="already carries"):
        get_flora_model(flora.model, FloraConfig(r=2, target_modules=["mlp"]))
