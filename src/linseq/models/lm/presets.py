"""Named model + training presets for ``linseq train``."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

from linseq.models.lm.configuration import LinseqLMConfig


@dataclass(frozen=True)
class Preset:
    """A model size and the training schedule that goes with it.

    Attributes:
        model: keyword arguments of :class:`LinseqLMConfig`.
        seq_len: training window in tokens (bytes).
        batch_size: windows per optimizer step per process.
        steps: optimizer steps.
        lr, min_lr: peak and final learning rate of the warmup + cosine schedule.
        warmup_steps: linear warmup length.
        weight_decay, grad_clip: AdamW decay on matrices; global gradient-norm clip.
        eval_every, eval_batches: validation period (steps) and size (batches of ``batch_size`` windows).
        checkpoint_every: checkpoint period in steps (a final checkpoint is always written).
    """

    model: dict[str, Any] = field(default_factory=dict)
    seq_len: int = 256
    batch_size: int = 16
    steps: int = 400
    lr: float = 2e-3
    min_lr: float = 2e-4
    warmup_steps: int = 40
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    eval_every: int = 100
    eval_batches: int = 8
    checkpoint_every: int = 100

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


PRESETS: dict[str, Preset] = {
    # A few minutes on a 2-core CPU: 4 Lightning layers of width 128 (~0.7M parameters), 300 steps of 8x128 bytes.
    "tiny": Preset(
        model=dict(hidden_size=128, num_hidden_layers=4, num_attention_heads=4, intermediate_size=256),
        seq_len=128, batch_size=8, steps=300, lr=2e-3, min_lr=2e-4, warmup_steps=30,
        eval_every=50, eval_batches=8, checkpoint_every=50,
    ),
    # One GPU: 12 layers of width 768 (~92M parameters), 2K-byte windows.
    "small": Preset(
        model=dict(
            hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=2048,
            max_position_embeddings=8192,
        ),
        seq_len=2048, batch_size=16, steps=5000, lr=6e-4, min_lr=6e-5, warmup_steps=200,
        eval_every=250, eval_batches=16, checkpoint_every=500,
    ),
}


def preset_config(name: str, **overrides: Any) -> tuple[LinseqLMConfig, Preset]:
    """The model config and training schedule of preset ``name``; ``overrides`` replace model config fields
    (e.g. ``attn_pattern="hybrid"``)."""
    if name not in PRESETS:
        raise ValueError(f"preset must be one of {sorted(PRESETS)}; got {name!r}")
    preset = PRESETS[name]
    model_kwargs = {**preset.model, **overrides}
    return LinseqLMConfig(**model_kwargs), replace(preset, model=model_kwargs)
