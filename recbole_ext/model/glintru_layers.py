"""GLINT-RU's own blocks (the GLINTRU model): the time convolutions, the gated GRU expert, the
gated MLP and one GLINT-RU block (the attention expert is in
:mod:`recbole_ext.model.linear_attention`)."""

import dataclasses
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from recbole_ext.model.activations import Activation, activation
from recbole_ext.model.gru import FastGRU
from recbole_ext.model.layers import FastDropout, gather_positions
from recbole_ext.model.linear_attention import EluNormLinearAttention


class TimeConv1d(nn.Module):
    """1-D convolution over time on ``[B, L, d]`` tensors, keeping the length ``L``.

    ``causal=False`` pads ``(k - 1) // 2`` steps before and the rest after (for ``k = 3``: one
    each side, as ``nn.Conv1d(..., padding=1)``); ``causal=True`` pads ``k - 1`` steps before,
    so position ``t`` sees only positions ``<= t``.

    Args:
        channels: input and output channels ``d``.
        kernel_size: ``k``.
        causal: left padding only.
    """

    def __init__(self, channels: int, kernel_size: int = 3, causal: bool = False) -> None:
        super().__init__()
        if kernel_size < 1:
            raise ValueError(f"kernel_size must be >= 1, got {kernel_size}")
        self.conv = nn.Conv1d(channels, channels, kernel_size=kernel_size)
        total = kernel_size - 1
        self.pad = (total, 0) if causal else (total // 2, total - total // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Shape: ``[B, L, d] -> [B, L, d]``."""
        y = F.pad(x.transpose(1, 2), self.pad)
        return self.conv(y).transpose(1, 2)

    def window(self, positions: torch.Tensor, length: int) -> Tuple[torch.Tensor, torch.Tensor]:
        """The input positions the output at ``positions`` reads, and which of them lie inside
        the sequence (the others are the zero padding).

        Shape: positions ``[B]`` -> (indices ``[B, k]`` clamped into ``[0, L)``, inside ``[B, k]``).
        """
        offsets = torch.arange(-self.pad[0], self.pad[1] + 1, device=positions.device)
        idx = positions[:, None] + offsets[None, :]
        inside = (idx >= 0) & (idx < length)
        return idx.clamp(0, length - 1), inside

    def at_window(self, window: torch.Tensor) -> torch.Tensor:
        """The output at one position from its window of inputs (zeros where padded).

        Shape: window ``[B, k, d]`` -> ``[B, d]``.
        """
        return torch.einsum("bkc,ock->bo", window, self.conv.weight) + self.conv.bias


class NoTimeConv(nn.Module):
    """The identity with :class:`TimeConv1d`'s interface (GLINT-RU's "without the temporal
    convolution" ablation)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Shape: ``[B, L, d] -> [B, L, d]`` (unchanged)."""
        return x

    def window(self, positions: torch.Tensor, length: int) -> Tuple[torch.Tensor, torch.Tensor]:
        """Shape: positions ``[B]`` -> (indices ``[B, 1]``, inside ``[B, 1]``, all true)."""
        return positions[:, None], torch.ones_like(positions[:, None], dtype=torch.bool)

    def at_window(self, window: torch.Tensor) -> torch.Tensor:
        """Shape: window ``[B, 1, d]`` -> ``[B, d]``."""
        return window[:, 0]


class GatedGRUExpert(nn.Module):
    """GLINT-RU's GRU expert: ``conv(Linear(x))`` -> bias-free GRU -> Linear, times the selective
    gate ``Dropout(Linear(act(Linear(h1))))`` (``act``: SiLU in the reference), then a second time
    convolution.

    Args:
        hidden_size: ``d``.
        kernel_size: kernel of both time convolutions.
        num_layers: GRU layers.
        gate_dropout_prob: dropout at the end of the selective gate (0.3 in the reference).
        causal: causal time convolutions.
        gru_impl: the GRU's recurrence (:class:`~recbole_ext.model.gru.FastGRU`): ``torch``
            (``nn.GRU``: cuDNN on GPUs), ``triton`` or ``auto``.
        temporal_conv: ``False``: no time convolutions (both are the identity; an ablation).
        selective_act: the selective gate's activation (:data:`~recbole_ext.model.activations.ACTIVATIONS`; ``silu``).
    """

    def __init__(
        self,
        hidden_size: int,
        kernel_size: int = 3,
        num_layers: int = 1,
        gate_dropout_prob: float = 0.3,
        causal: bool = False,
        gru_impl: str = "torch",
        temporal_conv: bool = True,
        selective_act: str = "silu",
    ) -> None:
        super().__init__()
        conv = (lambda: TimeConv1d(hidden_size, kernel_size, causal)) if temporal_conv else NoTimeConv
        self.dense_in = nn.Linear(hidden_size, hidden_size)
        self.conv_in = conv()
        self.gru = FastGRU(hidden_size, hidden_size, num_layers=num_layers, bias=False, batch_first=True, impl=gru_impl)
        self.projection = nn.Linear(hidden_size, hidden_size)
        self.selective_gate = nn.Sequential(
            nn.Linear(hidden_size, hidden_size // 2),
            Activation(selective_act),
            nn.Linear(hidden_size // 2, hidden_size),
            FastDropout(gate_dropout_prob),
        )
        self.conv_out = conv()

    def forward(self, x: torch.Tensor, positions: Optional[torch.Tensor] = None) -> torch.Tensor:
        """The expert at every position, or only at ``positions`` (one per row): the GRU runs
        over the whole sequence either way; the projection and gate then run only on the
        ``kernel_size`` steps the output convolution reads there.

        Shape:
            - x: ``[B, L, d]``; positions: ``[B]`` (optional)
            - output: ``[B, L, d]``, or ``[B, d]`` with ``positions``
        """
        h1 = self.conv_in(self.dense_in(x))
        out, _ = self.gru(h1)
        if positions is None:
            return self.conv_out(self.projection(out) * self.selective_gate(h1))
        idx, inside = self.conv_out.window(positions, x.shape[1])
        rows = torch.arange(x.shape[0], device=x.device)[:, None]
        y = self.projection(out[rows, idx]) * self.selective_gate(h1[rows, idx])
        return self.conv_out.at_window(y * inside[..., None].to(y.dtype))


class GatedMLP(nn.Module):
    """``Linear(Linear(h) * act(Linear(h)))`` then dropout (GLINT-RU's output MLP, ``act`` GELU in
    the reference; the residual LayerNorm is applied by the caller, which the reference shares
    with the mixing block).

    Args:
        hidden_size: ``d``.
        dropout_prob: dropout on the output (0.3 in the reference).
        act: the gate's activation (:data:`~recbole_ext.model.activations.ACTIVATIONS`).
    """

    def __init__(self, hidden_size: int, dropout_prob: float = 0.3, act: str = "gelu") -> None:
        super().__init__()
        self.act = activation(act)
        self.dense_value = nn.Linear(hidden_size, hidden_size)
        self.dense_gate = nn.Linear(hidden_size, hidden_size)
        self.dense_out = nn.Linear(hidden_size, hidden_size)
        self.dropout = FastDropout(dropout_prob)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        """Shape: ``[..., d] -> [..., d]``."""
        return self.dropout(self.dense_out(self.dense_value(h) * self.act(self.dense_gate(h))))


@dataclasses.dataclass(frozen=True)
class BlockSettings:
    """The keys of one GLINT-RU block (each is a config key of the GLINTRU model of that name)."""

    hidden_size: int
    n_heads: int
    num_layers: int
    kernel_size: int
    hidden_dropout_prob: float
    gate_dropout_prob: float
    mix_dropout_prob: float
    mlp_dropout_prob: float
    layer_norm_eps: float
    causal: bool
    share_layer_norm: bool
    gru_impl: str
    experts: str
    temporal_conv: bool
    gated_mlp: bool
    gate_act: str
    selective_act: str
    mlp_act: str


def add_block_layers(owner: nn.Module, s: BlockSettings) -> None:
    """Give ``owner`` the layers of one block, under the names the GLINTRU model's first block
    has always had (``attention``, ``gru_expert``, ``expert_logits``, ``data_gate``,
    ``mix_dense``, ``LayerNorm``, ``mlp``, ``mlp_LayerNorm``), in the order of its checkpoints.

    Args:
        owner: the module the layers are registered on (the model itself for its first block,
            a :class:`GLINTRUBlock` for every later one).
        s: the block's keys.
    """
    d = s.hidden_size
    owner.block_settings = s
    if s.experts != "gru":
        owner.attention = EluNormLinearAttention(d, s.n_heads, s.hidden_dropout_prob, s.layer_norm_eps)
    if s.experts != "attention":
        owner.gru_expert = GatedGRUExpert(
            d, s.kernel_size, s.num_layers, s.gate_dropout_prob, s.causal, s.gru_impl, s.temporal_conv, s.selective_act
        )
    if s.experts == "both":
        owner.expert_logits = nn.Parameter(torch.tensor([0.5, 0.5]))
    owner.data_gate = nn.Linear(d, d)
    owner.data_gate_act = activation(s.gate_act)
    owner.mix_dense = nn.Linear(d, d)
    owner.mix_dropout = FastDropout(s.mix_dropout_prob)
    owner.LayerNorm = nn.LayerNorm(d, eps=s.layer_norm_eps)
    if s.gated_mlp:
        owner.mlp = GatedMLP(d, s.mlp_dropout_prob, s.mlp_act)
        owner.mlp_LayerNorm = owner.LayerNorm if s.share_layer_norm else nn.LayerNorm(d, eps=s.layer_norm_eps)


def block_forward(
    owner: nn.Module, x: torch.Tensor, key_mask: Optional[torch.Tensor], at: Optional[torch.Tensor]
) -> torch.Tensor:
    """One block on the layers :func:`add_block_layers` gave ``owner``: the experts mixed by
    ``softmax(expert_logits)`` (one expert alone under ``experts: gru | attention``), times the
    data-aware gate, projected, dropped out and added to ``x`` under a LayerNorm; then the gated
    MLP with the same residual LayerNorm. Everything after the experts is per position, so with
    ``at`` it runs at those positions only.

    Shape:
        - x: ``[B, L, d]``; key_mask: ``[B, L]`` or None; at: ``[B]`` or None
        - output: ``[B, L, d]``, or ``[B, d]`` with ``at``
    """
    s: BlockSettings = owner.block_settings
    gate = owner.data_gate_act(owner.data_gate(x if at is None else gather_positions(x, at)))
    if s.experts == "gru":
        mixed = owner.gru_expert(x, at)
    elif s.experts == "attention":
        mixed = owner.attention(x, key_mask, at)
    else:
        attention_out = owner.attention(x, key_mask, at)  # first: the reference's order of dropout draws
        w = F.softmax(owner.expert_logits, dim=0)
        mixed = w[0] * owner.gru_expert(x, at) + w[1] * attention_out
    if at is not None:
        x = gather_positions(x, at)
    h = owner.LayerNorm(owner.mix_dropout(owner.mix_dense(mixed * gate)) + x)
    return owner.mlp_LayerNorm(owner.mlp(h) + h) if s.gated_mlp else h


class GLINTRUBlock(nn.Module):
    """A GLINT-RU block after the first (``n_blocks > 1``): :func:`add_block_layers`'s layers and
    :func:`block_forward`.

    Args:
        settings: the block's keys.
    """

    def __init__(self, settings: BlockSettings) -> None:
        super().__init__()
        add_block_layers(self, settings)

    def forward(
        self, x: torch.Tensor, key_mask: Optional[torch.Tensor] = None, at: Optional[torch.Tensor] = None
    ) -> torch.Tensor:
        """Shape: x ``[B, L, d]``, key_mask ``[B, L]``, at ``[B]`` -> ``[B, L, d]`` (``[B, d]`` with ``at``)."""
        return block_forward(self, x, key_mask, at)
