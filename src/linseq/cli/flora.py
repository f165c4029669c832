"""`linseq flora`: inspect a saved FLoRA adapter, or (without arguments) run a small wrap/train/merge/save demo."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

NAME = "flora"
HELP = "inspect a FLoRA adapter folder, or run a small wrap / merge / save demo"
DESCRIPTION = (
    "With --adapter DIR: print the adapter's config and, per wrapped module, its ranks and parameter count.\n"
    "Without it: wrap a small convolutional network with FLoRA, train a few steps on random data, check that the\n"
    "merged model gives the same outputs, and save the adapter to --out."
)
EPILOG = "example:\n  linseq flora --out runs/flora_demo\n  linseq flora --adapter runs/flora_demo/adapter"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--adapter", default=None, help="folder with adapter_config.json + adapter_model.safetensors")
    parser.add_argument("--out", default="runs/flora_demo", help="where the demo writes its adapter (default %(default)s)")
    parser.add_argument("--rank", type=int, default=4, help="FLoRA rank of the demo (default %(default)s)")


def describe_adapter(folder: Path) -> int:
    from safetensors import safe_open

    from linseq.adapters import CONFIG_NAME, WEIGHTS_NAME

    config_file, weights_file = folder / CONFIG_NAME, folder / WEIGHTS_NAME
    for f in (config_file, weights_file):
        if not f.is_file():
            raise FileNotFoundError(f"adapter folder {str(folder)!r} has no {f.name}")
    config = json.loads(config_file.read_text())
    print(json.dumps(config, indent=2))
    modules: dict[str, dict[str, tuple[int, ...]]] = {}
    with safe_open(str(weights_file), framework="pt") as f:
        for key in f.keys():
            module, _, tensor = key.partition(".flora_") if ".flora_" in key else key.partition(".modules_to_save.")
            modules.setdefault(module, {})[tensor] = tuple(f.get_slice(key).get_shape())
    total = 0
    for module, tensors in sorted(modules.items()):
        n = sum(math.prod(s) for s in tensors.values())
        total += n
        ranks = tensors.get("core")
        kind = f"ranks {list(ranks)}" if ranks is not None else "saved in full"
        print(f"{module:50s} {kind:24s} {n:>10,d} params")
    print(f"{len(modules)} modules, {total:,d} adapter parameters")
    return 0


def run_demo(out: Path, rank: int) -> int:
    import torch
    from torch import nn
    from tqdm import tqdm

    from linseq.adapters import FloraConfig, FloraModel, get_flora_model

    def make_base() -> nn.Module:
        torch.manual_seed(0)
        return nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 16, 3, padding=1, groups=4),
                             nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10))

    model = get_flora_model(make_base(), FloraConfig(r=rank, target_modules="all-conv", modules_to_save=["6"]))
    model.print_trainable_parameters()
    x, y = torch.randn(32, 3, 12, 12), torch.randint(0, 10, (32,))
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    for _ in tqdm(range(30), desc="train"):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    folder = model.save_pretrained(out / "adapter")
    with torch.no_grad():
        adapted = model(x)
        reloaded = FloraModel.from_pretrained(make_base(), folder)(x)
        merged = model.merge_and_unload()(x)
    print(f"max |merged - adapted| = {(merged - adapted).abs().max().item():.2e}; "
          f"max |reloaded - adapted| = {(reloaded - adapted).abs().max().item():.2e}")
    print(f"adapter written to {folder}")
    return 0


def run(args: argparse.Namespace) -> int:
    if args.rank < 1:
        raise ValueError(f"--rank must be >= 1; got {args.rank}")
    if args.adapter is not None:
        return describe_adapter(Path(args.adapter))
    return run_demo(Path(args.out), args.rank)
