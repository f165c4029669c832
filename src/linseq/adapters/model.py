"""Wrap any nn.Module with FLoRA adapters: find targets, inject, freeze, report, merge, save and load.

The lifecycle mirrors Hugging Face PEFT (``get_peft_model`` / ``save_pretrained`` / ``from_pretrained`` /
``merge_and_unload``), so a PEFT user finds the same verbs; LoRA itself is left to PEFT.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import re
from pathlib import Path
from typing import Any, Iterator

import torch
from torch import nn

from linseq.adapters.config import PEFT_TYPE, TARGET_ALL_CONV, TARGET_ALL_LINEAR, FloraConfig
from linseq.adapters.layer import FloraLayer, resolve_ranks, wrapper_for

__all__ = [
    "CONFIG_NAME",
    "WEIGHTS_NAME",
    "FloraModel",
    "ModulesToSaveWrapper",
    "get_flora_model",
    "inject_flora",
]

CONFIG_NAME = "adapter_config.json"
WEIGHTS_NAME = "adapter_model.safetensors"
_SUPPORTED_TEXT = "nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Embedding"


class ModulesToSaveWrapper(nn.Module):
    """Keeps the original module frozen and trains a copy of it (``modules_to_save``), as PEFT does, so that
    disabling or unloading the adapter gives back the original."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.original_module = module
        self.modules_to_save = copy.deepcopy(module)
        self.adapter_enabled = True

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        active = self.modules_to_save if self.adapter_enabled else self.original_module
        return active(*args, **kwargs)


def _name_matches(name: str, spec: list[str] | str) -> bool:
    """A list matches exact names or dotted suffixes; a string is a regex matched against the whole name."""
    if isinstance(spec, str):
        return re.fullmatch(spec, name) is not None
    return any(name == t or name.endswith("." + t) for t in spec)


def _output_embedding(model: nn.Module) -> nn.Module | None:
    getter = getattr(model, "get_output_embeddings", None)
    if callable(getter):
        try:
            return getter()
        except (NotImplementedError, AttributeError):
            return None
    return None


def _set_submodule(root: nn.Module, name: str, module: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = root.get_submodule(parent_name) if parent_name else root
    setattr(parent, child, module)


def _rank_for(name: str, config: FloraConfig) -> int | tuple[int, ...]:
    for key, value in config.rank_pattern.items():
        if name == key or name.endswith("." + key) or re.fullmatch(key, name):
            return value
    return config.r


def _select_targets(model: nn.Module, config: FloraConfig, skip: set[str]) -> list[str]:
    """Names of the modules ``config`` targets; raises for a target that matches nothing or an unsupported type."""
    spec = config.target_modules
    head = _output_embedding(model) if spec == TARGET_ALL_LINEAR else None
    names: list[str] = []
    for name, module in model.named_modules():
        if not name or any(name == s or name.startswith(s + ".") for s in skip):
            continue
        if config.exclude_modules is not None and _name_matches(name, config.exclude_modules):
            continue
        if spec == TARGET_ALL_LINEAR:
            if isinstance(module, nn.Linear) and wrapper_for(module) is not None and module is not head:
                if head is None and name.split(".")[-1] == "lm_head":
                    continue  # the output head of models without get_output_embeddings()
                names.append(name)
        elif spec == TARGET_ALL_CONV:
            if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
                names.append(name)
        elif _name_matches(name, spec):
            if wrapper_for(module) is None:
                raise TypeError(
                    f"target module {name!r} is a {type(module).__name__}, which FLoRA does not support; "
                    f"supported types: {_SUPPORTED_TEXT}. Narrow target_modules or add it to exclude_modules"
                )
            names.append(name)
    if not names:
        some = [n for n, m in model.named_modules() if n and wrapper_for(m) is not None][:8]
        raise ValueError(
            f"target_modules={spec!r} (exclude_modules={config.exclude_modules!r}) matched no module of "
            f"{type(model).__name__}; some adaptable modules are {some}"
        )
    return names


def inject_flora(model: nn.Module, config: FloraConfig) -> nn.Module:
    """Replace the targeted modules of ``model`` in place with FLoRA wrappers, wrap ``modules_to_save``, and
    freeze everything but the adapters and the saved modules. Returns ``model`` (low-level form of
    :func:`get_flora_model`, like PEFT's ``inject_adapter_in_model``)."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module; got {type(model).__name__}")
    if not isinstance(config, FloraConfig):
        raise TypeError(f"config must be a FloraConfig; got {type(config).__name__}")
    if any(isinstance(m, (FloraLayer, ModulesToSaveWrapper)) for m in model.modules()):
        raise ValueError("model already carries FLoRA adapters; unload() them before injecting new ones")

    saved: list[str] = []
    for spec_name in config.modules_to_save or []:
        hits = [n for n, _ in model.named_modules() if n and _name_matches(n, [spec_name])]
        if not hits:
            raise ValueError(f"modules_to_save entry {spec_name!r} matches no module of {type(model).__name__}")
        saved.extend(hits)

    targets = _select_targets(model, config, skip=set(saved))
    for p in model.parameters():
        p.requires_grad_(False)
    for name in targets:
        module = model.get_submodule(name)
        if isinstance(module, nn.Embedding) and module.max_norm is not None:
            raise TypeError(f"target module {name!r} is an nn.Embedding with max_norm, which FLoRA does not support")
        cls = wrapper_for(module)
        n_spatial = module.weight.dim() - 2 if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d)) else 0
        ranks = resolve_ranks(module.weight.shape, _rank_for(name, config), config.spatial_r, n_spatial, name)
        _set_submodule(model, name, cls(module, ranks, config.scale, config.dropout, config.init))
    for name in saved:
        wrapper = ModulesToSaveWrapper(model.get_submodule(name))
        wrapper.modules_to_save.requires_grad_(True)
        _set_submodule(model, name, wrapper)
    return model


def get_flora_model(model: nn.Module, config: FloraConfig) -> "FloraModel":
    """One call: wrap ``model`` (modified in place) with FLoRA as ``config`` says and freeze its base weights.

    Example::

        cfg = FloraConfig(r=8, target_modules="all-linear", modules_to_save=["classifier"])
        model = get_flora_model(base, cfg)
        model.print_trainable_parameters()
    """
    return FloraModel(model, config)


class FloraModel(nn.Module):
    """A model with FLoRA adapters. Calls go to the wrapped model; adapter verbs live here."""

    def __init__(self, model: nn.Module, config: FloraConfig) -> None:
        super().__init__()
        self.model = inject_flora(model, config)
        self.config = config

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self.model(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            if name == "model":
                raise
            return getattr(self.model, name)

    # ---- inspection -------------------------------------------------------------------------------------------
    def flora_layers(self) -> Iterator[tuple[str, FloraLayer]]:
        """``(name, layer)`` for every FLoRA-wrapped module, names relative to the wrapped model."""
        for name, module in self.model.named_modules():
            if isinstance(module, FloraLayer):
                yield name, module

    def _saved_modules(self) -> Iterator[tuple[str, ModulesToSaveWrapper]]:
        for name, module in self.model.named_modules():
            if isinstance(module, ModulesToSaveWrapper):
                yield name, module

    def get_nb_trainable_parameters(self) -> tuple[int, int]:
        """``(trainable, total)`` parameter counts of the wrapped model (total includes the adapters)."""
        trainable = sum(p.numel() for p in self.model.parameters() if p.requires_grad)
        total = sum(p.numel() for p in self.model.parameters())
        return trainable, total

    def print_trainable_parameters(self) -> None:
        trainable, total = self.get_nb_trainable_parameters()
        print(f"trainable params: {trainable:,d} || all params: {total:,d} || trainable%: {100 * trainable / total:.4f}")

    def adapter_summary(self) -> list[dict[str, Any]]:
        """One row per wrapped module: name, type, weight shape, ranks, adapter parameters."""
        return [
            {
                "module": name,
                "type": type(layer.base_layer).__name__,
                "weight_shape": list(layer.weight_shape),
                "ranks": list(layer.ranks),
                "params": layer.num_adapter_params(),
            }
            for name, layer in self.flora_layers()
        ]

    # ---- enable / disable -------------------------------------------------------------------------------------
    def _set_enabled(self, enabled: bool) -> None:
        for _, layer in self.flora_layers():
            if not enabled and layer.merged:
                layer.unmerge()
            layer.adapter_enabled = enabled
        for _, wrapper in self._saved_modules():
            wrapper.adapter_enabled = enabled

    def enable_adapter_layers(self) -> None:
        self._set_enabled(True)

    def disable_adapter_layers(self) -> None:
        """Run the base model alone (merged adapters are unmerged first; saved modules fall back to originals)."""
        self._set_enabled(False)

    @contextlib.contextmanager
    def disable_adapter(self) -> Iterator[None]:
        """``with model.disable_adapter():`` runs the base model, then restores the adapters."""
        self.disable_adapter_layers()
        try:
            yield
        finally:
            self.enable_adapter_layers()

    # ---- merge ------------------------------------------------------------------------------------------------
    def merge_adapter(self, safe_merge: bool = False) -> None:
        """Add every ΔW into its base weight in place (forward then costs what the base model costs)."""
        for _, layer in self.flora_layers():
            layer.merge(safe_merge=safe_merge)

    def unmerge_adapter(self) -> None:
        for _, layer in self.flora_layers():
            layer.unmerge()

    def _strip(self, merge: bool, safe_merge: bool = False) -> nn.Module:
        for name, layer in list(self.flora_layers()):
            if merge and layer.adapter_enabled:
                layer.merge(safe_merge=safe_merge)
            else:
                layer.unmerge()
            _set_submodule(self.model, name, layer.base_layer)
        for name, wrapper in list(self._saved_modules()):
            keep = wrapper.modules_to_save if merge and wrapper.adapter_enabled else wrapper.original_module
            _set_submodule(self.model, name, keep)
        return self.model

    def merge_and_unload(self, safe_merge: bool = False) -> nn.Module:
        """Merge the adapters and return the plain model: original module types, no adapter code in forward,
        trained copies of ``modules_to_save`` in place of the originals."""
        return self._strip(merge=True, safe_merge=safe_merge)

    def unload(self) -> nn.Module:
        """Remove the adapters without merging and return the original model."""
        return self._strip(merge=False)

    # ---- save / load ------------------------------------------------------------------------------------------
    def adapter_state_dict(self) -> dict[str, torch.Tensor]:
        """Only the adapter tensors, keyed by their names in the wrapped model:
        ``<module>.flora_core``, ``<module>.flora_factors.<mode>``, ``<module>.modules_to_save.<tensor>``."""
        out: dict[str, torch.Tensor] = {}
        for name, layer in self.flora_layers():
            out[f"{name}.flora_core"] = layer.flora_core
            for i, factor in enumerate(layer.flora_factors):
                out[f"{name}.flora_factors.{i}"] = factor
        for name, wrapper in self._saved_modules():
            for key, tensor in wrapper.modules_to_save.state_dict(keep_vars=True).items():
                out[f"{name}.modules_to_save.{key}"] = tensor
        return out

    def save_pretrained(self, save_directory: str | os.PathLike) -> Path:
        """Write ``adapter_config.json`` and ``adapter_model.safetensors`` (adapter tensors only) atomically.
        Returns the folder."""
        from safetensors.torch import save as st_save

        from linseq import __version__
        from linseq.io import atomic_write_bytes

        folder = Path(save_directory)
        if folder.exists() and not folder.is_dir():
            raise ValueError(f"save_directory must be a folder; {str(folder)!r} is a file")
        tensors = {k: v.detach().cpu().contiguous().clone() for k, v in self.adapter_state_dict().items()}
        data = st_save(tensors, metadata={"format": "pt", "peft_type": PEFT_TYPE})
        atomic_write_bytes(folder / WEIGHTS_NAME, data)
        cfg = self.config.to_dict() | {"linseq_version": __version__}
        atomic_write_bytes(folder / CONFIG_NAME, (json.dumps(cfg, indent=2) + "\n").encode())
        return folder

    @torch.no_grad()
    def load_adapter_weights(self, tensors: dict[str, torch.Tensor], source: str = "state dict") -> None:
        """Copy ``tensors`` into the adapter; every key and shape must match this model's adapter exactly."""
        own = self.adapter_state_dict()
        missing = sorted(set(own) - set(tensors))
        unexpected = sorted(set(tensors) - set(own))
        if missing or unexpected:
            raise ValueError(
                f"adapter in {source} does not fit this model: {len(missing)} missing keys {missing[:5]}, "
                f"{len(unexpected)} unexpected keys {unexpected[:5]}"
            )
        for key, target in own.items():
            value = tensors[key]
            if tuple(value.shape) != tuple(target.shape):
                raise ValueError(
                    f"adapter in {source} does not fit this model: {key!r} has shape {tuple(value.shape)}, "
                    f"the model expects {tuple(target.shape)}"
                )
            target.copy_(value.to(dtype=target.dtype, device=target.device))

    @classmethod
    def from_pretrained(
        cls, model: nn.Module, adapter_path: str | os.PathLike, is_trainable: bool = False
    ) -> "FloraModel":
        """Wrap ``model`` with the adapter saved in ``adapter_path`` (a folder from :meth:`save_pretrained`).

        With ``is_trainable=False`` (default, as in PEFT) the adapter is frozen and the model put in eval mode.
        """
        from safetensors.torch import load_file

        folder = Path(adapter_path)
        config_file, weights_file = folder / CONFIG_NAME, folder / WEIGHTS_NAME
        for f in (config_file, weights_file):
            if not f.is_file():
                raise FileNotFoundError(f"adapter_path {str(folder)!r} has no {f.name}")
        data = json.loads(config_file.read_text())
        if data.get("peft_type") != PEFT_TYPE:
            raise ValueError(f"{config_file} is a {data.get('peft_type')!r} adapter, not {PEFT_TYPE!r}")
        flora = cls(model, FloraConfig.from_dict(data))
        flora.load_adapter_weights(load_file(str(weights_file)), source=str(weights_file))
        if not is_trainable:
            for p in flora.parameters():
                p.requires_grad_(False)
            flora.eval()
        return flora

