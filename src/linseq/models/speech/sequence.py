"""One stage of a (Fast) FullSubNet: a stack of sequence layers plus an optional linear head.

``kind="lstm"``: unidirectional ``nn.LSTM`` layers, as published.
``kind="lightning"``: each layer is ``h = W_in x``; ``y = h + LightningAttention(h)`` (linseq's gated linear
attention with TransNormerLLM decay), run in parallel mode offline (Triton kernels on a GPU, chunked PyTorch
elsewhere) and in recurrent mode when streaming.
Both carry a constant-size state, so ``forward(x, state)`` on consecutive chunks equals one call on the whole input.
"""

from __future__ import annotations

import torch
from torch import nn

from linseq.layers.lightning import LightningAttention

SEQUENCE_MODELS = ("lstm", "lightning")
LIGHTNING_HEAD_DIM = 64

State = list  # one entry per layer: (h, c) for LSTM, a [N, H, Dh, Dh] tensor for Lightning


class LightningSeqLayer(nn.Module):
    """``x [N, T, in] -> [N, T, hidden]``: input projection, then a residual LightningAttention."""

    def __init__(self, input_size: int, hidden_size: int, layer_idx: int, num_layers: int) -> None:
        super().__init__()
        num_heads = max(1, hidden_size // LIGHTNING_HEAD_DIM)
        self.in_proj = nn.Linear(input_size, hidden_size)
        self.attn = LightningAttention(
            hidden_size, num_heads, LIGHTNING_HEAD_DIM, layer_idx=layer_idx, num_layers=num_layers, backend="auto",
        )

    def forward(self, x: torch.Tensor, state: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.in_proj(x)
        mode = "recurrent" if x.shape[1] == 1 else "parallel"
        y, new_state = self.attn(h, state=state, output_state=True, mode=mode)
        return h + y, new_state

    def macs_per_step(self) -> int:
        a = self.attn
        inner = a.num_heads * a.head_dim
        n_proj = 3 if a.output_gate == "none" else 4
        recur = 2 * a.num_heads * a.head_dim * a.head_dim  # state update k^T v and read-out q S
        gate = inner if a.output_gate != "none" else 0
        return (self.in_proj.in_features * self.in_proj.out_features + a.hidden_size * n_proj * inner + recur
                + gate + inner * a.hidden_size)


def _lstm_one_step(
    layer: nn.LSTM, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor] | None
) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
    """One time step of a one-layer ``nn.LSTM`` (``x [N, 1, in]``) through ``torch.lstm_cell``: same result, but
    without the per-call weight preparation of the fused kernel, which dominates when streaming frame by frame
    (about 20x faster on one CPU thread for a 512-wide layer)."""
    if state is None:
        zeros = x.new_zeros(x.shape[0], layer.hidden_size)
        h, c = zeros, zeros
    else:
        h, c = state[0][0], state[1][0]
    h, c = torch.lstm_cell(x[:, 0], (h, c), layer.weight_ih_l0, layer.weight_hh_l0, layer.bias_ih_l0, layer.bias_hh_l0)
    return h[:, None], (h[None], c[None])


class SequenceStage(nn.Module):
    """Stacked sequence layers ``input_size -> hidden_size`` and an optional ``Linear(hidden, output_size)``.

    Shapes: ``x [N, T, input_size] -> y [N, T, output_size or hidden_size]``.
    """

    def __init__(
        self, input_size: int, hidden_size: int, num_layers: int, output_size: int = 0, activation: str | None = None,
        kind: str = "lstm",
    ) -> None:
        super().__init__()
        if kind not in SEQUENCE_MODELS:
            raise ValueError(f"sequence_model must be one of {SEQUENCE_MODELS}; got {kind!r}")
        self.kind, self.input_size, self.hidden_size, self.num_layers = kind, input_size, hidden_size, num_layers
        sizes = [input_size] + [hidden_size] * num_layers
        if kind == "lstm":
            self.layers = nn.ModuleList(nn.LSTM(sizes[i], hidden_size, batch_first=True) for i in range(num_layers))
        else:
            self.layers = nn.ModuleList(
                LightningSeqLayer(sizes[i], hidden_size, i, num_layers) for i in range(num_layers)
            )
        self.head = nn.Linear(hidden_size, output_size) if output_size else None
        if activation not in (None, "relu"):
            raise ValueError(f"activation must be None or 'relu'; got {activation!r}")
        self.activation = activation

    def forward(self, x: torch.Tensor, state: State | None = None) -> tuple[torch.Tensor, State]:
        """``x [N, T, in]``, optional carried state -> ``(y [N, T, out], new state)``."""
        new_state: State = []
        for i, layer in enumerate(self.layers):
            s = None if state is None else state[i]
            if isinstance(layer, nn.LSTM) and x.shape[1] == 1:
                x, s = _lstm_one_step(layer, x, s)
            else:
                x, s = layer(x, s)
            new_state.append(s)
        if self.head is not None:
            x = self.head(x)
        if self.activation == "relu":
            x = torch.relu(x)
        return x, new_state

    def macs_per_step(self) -> int:
        """Multiply-accumulates per time step per sequence, from the weight shapes (element-wise ops not counted).

        LSTM layer ``in -> h``: ``4h(in + h)``; Linear ``in -> out``: ``in * out``; Lightning: see
        :meth:`LightningSeqLayer.macs_per_step`.
        """
        total = 0
        for layer in self.layers:
            if isinstance(layer, nn.LSTM):
                total += 4 * layer.hidden_size * (layer.input_size + layer.hidden_size)
            else:
                total += layer.macs_per_step()
        if self.head is not None:
            total += self.head.in_features * self.head.out_features
        return total
