"""FLoRA adapter configuration: a dataclass in the style of PEFT's ``LoraConfig``."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

PEFT_TYPE = "FLORA"
TARGET_ALL_LINEAR = "all-linear"
TARGET_ALL_CONV = "all-conv"
INITS = ("orthogonal", "kaiming")


@dataclass
class FloraConfig:
    """What to adapt with FLoRA and how.

    FLoRA (Si et al., arXiv 2405.14739) writes the update of an N-mode weight ``W [d_1, ..., d_N]`` as a Tucker
    product ``ΔW = scale · G ×_1 U_1 ×_2 U_2 ... ×_N U_N`` with a core ``G [r_1, ..., r_N]`` and one factor
    ``U_i [d_i, r_i]`` per mode. Modes follow PyTorch's weight layout: ``[out, in]`` for nn.Linear,
    ``[num_embeddings, embedding_dim]`` for nn.Embedding and ``[out, in/groups, *kernel]`` for nn.ConvNd.
    An adapter adds ``Π r_i + Σ d_i r_i`` parameters per wrapped module.
    """

    r: int | tuple[int, ...] = 8
    """Rank per mode. An int is a ceiling applied to every mode, capped by that mode's size (so a 3x3 kernel gets
    spatial ranks ``min(r, 3)`` and a depthwise conv gets in-rank 1). A tuple gives the exact rank of each mode
    and must have one entry per mode of every target; an entry larger than its mode is an error."""

    spatial_r: int | None = None
    """Rank ceiling for the kernel (spatial) modes of convolutions when ``r`` is an int; None means ``r``."""

    scale: float = 1.0
    """The flat multiplier ``s`` of ΔW (FLoRA's own code uses a flat scale, not LoRA's alpha/r). With the default
    orthogonal factors ``||ΔW||_F = scale · ||G||_F`` whatever the layer size, so one scale suits all layers."""

    target_modules: list[str] | str | None = None
    """Which modules to adapt: a list of names (exact, or a suffix after a dot: ``"q_proj"`` matches
    ``"layers.0.attn.q_proj"``), a regular expression (full match on the module name), ``"all-linear"`` (every
    nn.Linear except the model's output embedding / LM head) or ``"all-conv"`` (every nn.Conv1d/2d/3d)."""

    exclude_modules: list[str] | str | None = None
    """Modules never to adapt, matched like ``target_modules`` (list = names/suffixes, str = regex)."""

    rank_pattern: dict[str, Any] = field(default_factory=dict)
    """Per-module overrides of ``r``: regex or suffix key -> int or tuple, e.g. ``{"conv1": (4, 1, 3, 3)}``."""

    modules_to_save: list[str] | None = None
    """Extra modules (e.g. a new classification head) trained in full and stored with the adapter."""

    dropout: float = 0.0
    """Dropout on the adapter branch's input (FLoRA's ``drop_rate``). With 0 a convolution runs once on
    ``W + ΔW``; with dropout > 0 the branch runs as a second convolution."""

    init: str = "orthogonal"
    """Factor initialisation: ``"orthogonal"`` (orthonormal columns; ours) or ``"kaiming"`` (kaiming-normal with
    a=sqrt(3), as in the reference code). The core is always zero, so a fresh adapter changes nothing."""

    base_model_name_or_path: str | None = None
    """Recorded in adapter_config.json so one knows which model the adapter belongs to."""

    peft_type: str = PEFT_TYPE
    """Always ``"FLORA"``; written to adapter_config.json like PEFT's ``peft_type``."""

    def __post_init__(self) -> None:
        if isinstance(self.r, list):
            self.r = tuple(self.r)
        check_ranks(self.r, "r")
        if self.spatial_r is not None and (not isinstance(self.spatial_r, int) or self.spatial_r < 1):
            raise ValueError(f"spatial_r must be a positive int or None; got {self.spatial_r!r}")
        if not isinstance(self.scale, (int, float)) or self.scale != self.scale:
            raise ValueError(f"scale must be a finite number; got {self.scale!r}")
        if not 0.0 <= float(self.dropout) < 1.0:
            raise ValueError(f"dropout must be in [0, 1); got {self.dropout!r}")
        if self.init not in INITS:
            raise ValueError(f"init must be one of {INITS}; got {self.init!r}")
        if self.target_modules is None:
            raise ValueError(
                "target_modules is required: a list of module names, a regex, "
                f"{TARGET_ALL_LINEAR!r} or {TARGET_ALL_CONV!r}"
            )
        if isinstance(self.target_modules, tuple):
            self.target_modules = list(self.target_modules)
        if isinstance(self.exclude_modules, tuple):
            self.exclude_modules = list(self.exclude_modules)
        if self.peft_type != PEFT_TYPE:
            raise ValueError(f"peft_type must be {PEFT_TYPE!r}; got {self.peft_type!r}")
        self.rank_pattern = {k: (tuple(v) if isinstance(v, list) else v) for k, v in self.rank_pattern.items()}
        for key, value in self.rank_pattern.items():
            check_ranks(value, f"rank_pattern[{key!r}]")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (tuples become lists)."""
        out = dataclasses.asdict(self)
        out["r"] = list(self.r) if isinstance(self.r, tuple) else self.r
        out["rank_pattern"] = {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.rank_pattern.items()}
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "FloraConfig":
        """Inverse of :meth:`to_dict`; unknown keys are an error (a file written by something else)."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known - {"linseq_version"})
        if unknown:
            raise ValueError(f"adapter config has unknown fields {unknown}; expected a subset of {sorted(known)}")
        return cls(**{k: v for k, v in data.items() if k in known})

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2) + "\n"


def check_ranks(r: Any, name: str) -> None:
    """Raise ValueError unless ``r`` is a positive int or a non-empty tuple of positive ints."""
    if isinstance(r, bool):
        raise TypeError(f"{name} must be an int or a tuple of ints; got {r!r}")
    if isinstance(r, int):
        if r < 1:
            raise ValueError(f"{name} must be >= 1; got {r}")
        return
    if isinstance(r, tuple) and r and all(isinstance(x, int) and not isinstance(x, bool) for x in r):
        if min(r) < 1:
            raise ValueError(f"every rank in {name} must be >= 1; got {r}")
        return
    raise TypeError(f"{name} must be an int or a tuple of ints; got {r!r}")
