"""The activations a model's config may name (one table for every model of recbole_ext), as
PyTorch's own fused functions."""

from typing import Callable, Dict

import torch
import torch.nn.functional as F
from torch import nn

#: name -> function. ``swish`` is RecBole's name for SiLU (``hidden_act: swish``); ``identity``
#: leaves a gate linear.
ACTIVATIONS: Dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "gelu": F.gelu,
    "silu": F.silu,
    "swish": F.silu,
    "relu": F.relu,
    "elu": F.elu,
    "sigmoid": torch.sigmoid,
    "tanh": torch.tanh,
    "identity": lambda x: x,
}


def activation(name: str) -> Callable[[torch.Tensor], torch.Tensor]:
    """The activation called ``name`` (a key of :data:`ACTIVATIONS`).

    Raises:
        ValueError: ``name`` is not a key (a config's type check names the choices first).
    """
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; one of {', '.join(ACTIVATIONS)}")
    return ACTIVATIONS[name]


class Activation(nn.Module):
    """:func:`activation` as a module (for ``nn.Sequential``).

    Args:
        name: a key of :data:`ACTIVATIONS`.

    Shape:
        - input: any
        - output: same as input
    """

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name
        self.fn = activation(name)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x)

    def extra_repr(self) -> str:
        return self.name
