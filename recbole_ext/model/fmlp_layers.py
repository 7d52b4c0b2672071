"""FMLPRec's blocks (:mod:`recbole_ext.model.sequential_recommender.fmlprec`): the learnable
filter in the frequency domain, its layer, and the filter-enhanced block.

Reference code: https://github.com/Woeee/FMLP-Rec (``modules.py``: ``FilterLayer``,
``Intermediate``, ``Layer``).
"""

from __future__ import annotations

from typing import Callable, Optional

import torch
from torch import nn

from recbole_ext.model.layers import FastDropout, FeedForward, gather_positions

#: standard deviation of the filter weight's real and imaginary parts at initialisation (the reference's)
FILTER_INIT_STD = 0.02


def learnable_filter(x: torch.Tensor, complex_weight: torch.Tensor) -> torch.Tensor:
    """``irfft(rfft(x) * W, n=L)`` along the sequence, both transforms orthonormal.

    Args:
        x: the sequence, real.
        complex_weight: ``W`` as ``[..., L // 2 + 1, d, 2]`` (real and imaginary parts last).

    Shape:
        - x: ``[B, L, d]``
        - output: ``[B, L, d]``, in ``x``'s dtype
    """
    length = x.shape[1]
    work = x.float() if x.dtype in (torch.float16, torch.bfloat16) else x
    spectrum = torch.fft.rfft(work, dim=1, norm="ortho")
    weight = torch.view_as_complex(complex_weight.to(work.dtype).contiguous())
    return torch.fft.irfft(spectrum * weight, n=length, dim=1, norm="ortho").to(x.dtype)


class FilterLayer(nn.Module):
    """``LayerNorm(x + Dropout(filter(x)))``, the reference's ``FilterLayer``.

    Args:
        max_length: the sequence length ``L`` the filter has weights for.
        hidden_size: width ``d``.
        dropout: drop probability after the filter.
        eps: LayerNorm epsilon.
    """

    def __init__(self, max_length: int, hidden_size: int, dropout: float, eps: float):
        super().__init__()
        shape = (1, max_length // 2 + 1, hidden_size, 2)
        self.complex_weight = nn.Parameter(torch.randn(shape) * FILTER_INIT_STD)
        self.out_dropout = FastDropout(dropout)
        self.LayerNorm = nn.LayerNorm(hidden_size, eps=eps)

    def forward(self, x: torch.Tensor, positions: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Shape: ``[B, L, d] -> [B, L, d]``, or ``-> [B, d]`` at ``positions`` ``[B]``."""
        h = learnable_filter(x, self.complex_weight)
        if positions is not None:  # what follows is per position
            h, x = gather_positions(h, positions), gather_positions(x, positions)
        return self.LayerNorm(self.out_dropout(h) + x)


class FilterBlock(nn.Module):
    """A filter-enhanced block: :class:`FilterLayer`, then the point-wise
    :class:`~recbole_ext.model.layers.FeedForward` (the reference's ``Intermediate``)."""

    def __init__(
        self,
        max_length: int,
        hidden_size: int,
        inner_size: int,
        dropout: float,
        activation: Callable[[torch.Tensor], torch.Tensor],
        eps: float,
    ):
        super().__init__()
        self.filterlayer = FilterLayer(max_length, hidden_size, dropout, eps)
        # the reference's Intermediate: one dropout, after the second map; its weights' names
        self.intermediate = FeedForward(
            hidden_size, inner_size, dropout, eps, activation, inner_dropout=False, names=("dense_1", "dense_2")
        )

    def forward(self, x: torch.Tensor, positions: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Shape: ``[B, L, d] -> [B, L, d]``, or ``-> [B, d]`` at ``positions`` ``[B]``."""
        return self.intermediate(self.filterlayer(x, positions))
