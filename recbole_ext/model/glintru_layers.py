"""GLINT-RU's own blocks (the GLINTRU model): the time convolutions, the gated GRU expert, the
gated MLP and the activations its gates may use (the attention expert is in
:mod:`recbole_ext.model.linear_attention`)."""

from typing import Callable, Dict, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from recbole_ext.model.gru import FastGRU
from recbole_ext.model.layers import FastDropout

#: The activations a GLINT-RU gate may use (``gate_act``, ``selective_act``, ``mlp_act``): the
#: reference's GELU (data-aware gate, gated MLP) and SiLU (selective gate), and the alternatives
#: of an activation ablation; ``identity`` leaves the gate linear.
GATE_ACTIVATIONS: Dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "gelu": F.gelu,
    "silu": F.silu,
    "relu": F.relu,
    "sigmoid": torch.sigmoid,
    "tanh": torch.tanh,
    "identity": lambda x: x,
}


def gate_activation(name: str) -> Callable[[torch.Tensor], torch.Tensor]:
    """The activation called ``name`` (a key of :data:`GATE_ACTIVATIONS`)."""
    if name not in GATE_ACTIVATIONS:
        raise ValueError(f"unknown gate activation {name!r}; one of {', '.join(GATE_ACTIVATIONS)}")
    return GATE_ACTIVATIONS[name]


class Activation(nn.Module):
    """:func:`gate_activation` as a module (for ``nn.Sequential``)."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name
        self.fn = gate_activation(name)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Shape: any -> the same."""
        return self.fn(x)

    def extra_repr(self) -> str:
        return self.name


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
        selective_act: the selective gate's activation (:data:`GATE_ACTIVATIONS`; ``silu``).
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
        act: the gate's activation (:data:`GATE_ACTIVATIONS`).
    """

    def __init__(self, hidden_size: int, dropout_prob: float = 0.3, act: str = "gelu") -> None:
        super().__init__()
        self.act = gate_activation(act)
        self.dense_value = nn.Linear(hidden_size, hidden_size)
        self.dense_gate = nn.Linear(hidden_size, hidden_size)
        self.dense_out = nn.Linear(hidden_size, hidden_size)
        self.dropout = FastDropout(dropout_prob)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        """Shape: ``[..., d] -> [..., d]``."""
        return self.dropout(self.dense_out(self.dense_value(h) * self.act(self.dense_gate(h))))
