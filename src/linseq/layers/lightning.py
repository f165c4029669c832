"""TransNormerLLM's NormAttention token mixer on the Lightning op (also MiniMax-01's lightning layer by options)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from linseq.layers.checks import resolve_head_dim
from linseq.layers.norms import make_norm
from linseq.ops import lightning_attn, tnl_log_decay

FEATURE_MAPS = ("silu", "relu", "elu+1", "identity")
DECAY_MODES = ("tnl", "learned", "gate", "none")
OUTPUT_GATES = ("linear", "sigmoid", "silu", "none")
MODES = ("parallel", "recurrent")


def apply_feature_map(x: torch.Tensor, kind: str) -> torch.Tensor:
    """The non-negative (or identity) map applied to q and k: silu, relu, elu+1 or identity."""
    if kind == "silu":
        return F.silu(x)
    if kind == "relu":
        return F.relu(x)
    if kind == "elu+1":
        return F.elu(x) + 1.0
    return x


class LightningAttention(nn.Module):
    """Gated linear attention with decay and output normalisation (TransNormerLLM NormAttention).

    ``q, k = φ(W_q x), φ(W_k x)``; ``v = W_v x``; ``u = W_u x``; ``o = LightningAttn(q, k, v, λ)`` with scale 1;
    ``y = W_o (Norm(o) ⊙ gate(u))``. There is no softmax-style denominator: the norm after the product keeps
    gradients bounded (TransNormer, Qin et al. 2022, §3). The fused ``qkvu_proj`` keeps TransNormerLLM's split order
    q, k, v, u so its checkpoints map one-to-one.

    Args:
        hidden_size: model width D.
        num_heads: H.
        head_dim: per-head width of q, k and v (default ``D // H``).
        layer_idx, num_layers: position of this layer in the stack; the ``"tnl"`` decay depends on them.
        feature_map: φ on q and k: ``"silu"`` (TransNormerLLM, MiniMax-01), ``"relu"``, ``"elu+1"``, ``"identity"``.
        decay: ``"tnl"`` the fixed TransNormerLLM / MiniMax-01 schedule :func:`linseq.ops.tnl_log_decay`;
            ``"learned"`` one learnable decay per head, initialised to that schedule; ``"gate"`` a per-token,
            per-head decay ``logsigmoid(W_g x) / gate_normalizer`` (GLA-style); ``"none"`` no decay.
        output_gate: ``"linear"`` (TransNormerLLM: u as is), ``"sigmoid"`` (MiniMax-01), ``"silu"``, ``"none"``.
        norm: ``"srms"`` (TransNormerLLM), ``"rms"`` (MiniMax-01) or ``"layer"``, over the concatenated heads.
        gate_normalizer: divides the per-token log decay of ``decay="gate"`` (GLA uses 16).
        backend: Lightning backend for multi-token calls; single-token calls use ``"recurrent"`` when ``"auto"``.

    Shapes: ``x [B, T, D] -> y [B, T, D]``; the state is ``[B, H, head_dim, head_dim]`` float32.
    """

    def __init__(
        self,
        hidden_size: int,
        num_heads: int,
        head_dim: int | None = None,
        *,
        layer_idx: int = 0,
        num_layers: int = 1,
        feature_map: str = "silu",
        decay: str = "tnl",
        output_gate: str = "linear",
        norm: str = "srms",
        gate_normalizer: float = 16.0,
        norm_eps: float = 1e-6,
        bias: bool = False,
        backend: str = "auto",
    ) -> None:
        super().__init__()
        head_dim = resolve_head_dim(hidden_size, num_heads, head_dim)
        for name, value, allowed in (
            ("feature_map", feature_map, FEATURE_MAPS), ("decay", decay, DECAY_MODES),
            ("output_gate", output_gate, OUTPUT_GATES),
        ):
            if value not in allowed:
                raise ValueError(f"{name} must be one of {allowed}; got {value!r}")
        if not 0 <= layer_idx < num_layers:
            raise ValueError(f"layer_idx must be in [0, num_layers={num_layers}); got {layer_idx}")
        self.hidden_size, self.num_heads, self.head_dim = hidden_size, num_heads, head_dim
        self.layer_idx, self.num_layers = layer_idx, num_layers
        self.feature_map, self.decay, self.output_gate = feature_map, decay, output_gate
        self.gate_normalizer, self.backend = float(gate_normalizer), backend
        inner = num_heads * head_dim
        n_proj = 3 if output_gate == "none" else 4
        self.qkvu_proj = nn.Linear(hidden_size, n_proj * inner, bias=bias)
        self.out_proj = nn.Linear(inner, hidden_size, bias=bias)
        self.norm = make_norm(norm, inner, norm_eps)
        if decay == "learned":
            self.decay_param = nn.Parameter(torch.empty(num_heads))  # log λ = -softplus(decay_param)
        if decay == "gate":
            self.gate_proj = nn.Linear(hidden_size, num_heads, bias=True)
        self._fixed_decay: dict[torch.device, torch.Tensor] = {}
        self.reset_decay_parameters()

    def schedule_log_decay(self) -> torch.Tensor:
        """The TransNormerLLM / MiniMax-01 per-head log decay of this layer, ``[H]`` float32 on CPU."""
        return tnl_log_decay(self.num_heads, self.layer_idx, self.num_layers)

    @torch.no_grad()
    def reset_decay_parameters(self) -> None:
        """Initialise the decay's own parameters: the learned decay starts at the fixed schedule."""
        if self.decay == "learned":
            rate = (-self.schedule_log_decay()).double().clamp_min(1e-8)
            self.decay_param.copy_(torch.log(torch.expm1(rate)).to(self.decay_param.dtype))
        if self.decay == "gate":
            nn.init.normal_(self.gate_proj.weight, std=0.02)
            # start near λ ≈ 0.99^(1/normalizer)-ish: a slow forget gate, as GLA's init does in spirit
            nn.init.constant_(self.gate_proj.bias, 4.0)

    def log_decay(self, x: torch.Tensor) -> torch.Tensor | None:
        """Log decay for input ``x [B, T, D]``: ``[H]`` (tnl, learned), ``[B, T, H]`` (gate) or None, float32."""
        if self.decay == "tnl":
            cached = self._fixed_decay.get(x.device)
            if cached is None:
                cached = self._fixed_decay[x.device] = self.schedule_log_decay().to(x.device)
            return cached
        if self.decay == "learned":
            return -F.softplus(self.decay_param.float())
        if self.decay == "gate":
            return F.logsigmoid(self.gate_proj(x).float()) / self.gate_normalizer
        return None

    def forward(
        self,
        x: torch.Tensor,
        state: torch.Tensor | None = None,
        output_state: bool = False,
        mode: str | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Mix tokens.

        Args:
            x: ``[B, T, D]``.
            state: ``[B, H, head_dim, head_dim]`` float32 state carried from earlier tokens, or None.
            output_state: also return the state after the last token.
            mode: ``"parallel"`` (chunked, for training and prefill), ``"recurrent"`` (token by token, for
                decoding) or None: recurrent when T == 1 and the backend is ``"auto"``, else the layer's backend.

        Returns:
            ``(y [B, T, D], state [B, H, head_dim, head_dim] float32 or None)``.
        """
        if x.dim() != 3 or x.shape[-1] != self.hidden_size:
            raise ValueError(f"x must have shape [B, T, {self.hidden_size}]; got {tuple(x.shape)}")
        if mode is not None and mode not in MODES:
            raise ValueError(f"mode must be one of {MODES} or None; got {mode!r}")
        B, T, _ = x.shape
        H, Dh = self.num_heads, self.head_dim
        parts = self.qkvu_proj(x).view(B, T, -1, H, Dh).unbind(dim=2)  # each [B,T,H,Dh]
        q = apply_feature_map(parts[0], self.feature_map)
        k = apply_feature_map(parts[1], self.feature_map)
        v = parts[2]
        if mode == "recurrent" or (mode is None and T == 1 and self.backend == "auto"):
            backend = "recurrent"
        elif mode == "parallel" and self.backend == "recurrent":
            backend = "auto"
        else:
            backend = self.backend
        o, final = lightning_attn(
            q, k, v, self.log_decay(x), scale=1.0, initial_state=state,
            output_final_state=output_state, backend=backend,
        )
        o = self.norm(o.reshape(B, T, H * Dh))  # [B,T,H*Dh]
        if self.output_gate != "none":
            u = parts[3].reshape(B, T, H * Dh)
            if self.output_gate == "sigmoid":
                u = torch.sigmoid(u)
            elif self.output_gate == "silu":
                u = F.silu(u)
            o = o * u
        return self.out_proj(o), final

    def state_shape(self, batch_size: int) -> tuple[int, int, int, int]:
        """Shape of this layer's recurrent state: ``(B, H, head_dim, head_dim)``; constant in sequence length."""
        return (batch_size, self.num_heads, self.head_dim, self.head_dim)

    def extra_repr(self) -> str:
        return (
            f"heads={self.num_heads}, head_dim={self.head_dim}, layer={self.layer_idx}/{self.num_layers}, "
            f"feature_map={self.feature_map}, decay={self.decay}, output_gate={self.output_gate}"
        )

