"""Mamba4Rec's blocks (:mod:`recbole_ext.model.sequential_recommender.mamba4rec`): the Mamba
mixer with ``mamba_ssm.Mamba``'s parameters and formula, and the layer around it.

Reference code: https://github.com/chengkai-liu/Mamba4Rec (``mamba4rec.py``: ``MambaLayer``,
``FeedForward``) and ``mamba_ssm.Mamba`` (its non-fused path); the scan is
:func:`recbole_ext.model.selective_scan.selective_scan`.
"""

from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from recbole_ext.model.layers import FastDropout, FeedForward, gather_positions
from recbole_ext.model.selective_scan import selective_scan


class MambaMixer(nn.Module):
    """The Mamba block of ``mamba_ssm.Mamba`` (``d_model -> d_model``), with our selective scan.

    Args:
        d_model: input and output width ``d``.
        d_state: state size ``N`` per channel.
        d_conv: width of the causal depthwise convolution.
        expand: inner width ``E = expand * d``.
        scan_impl: ``auto | torch | chunked | mamba_ssm`` (see :mod:`recbole_ext.model.selective_scan`).
    """

    def __init__(self, d_model: int, d_state: int, d_conv: int, expand: int, scan_impl: str = "auto"):
        super().__init__()
        self.d_inner = expand * d_model
        self.d_state = d_state
        self.dt_rank = math.ceil(d_model / 16)
        self.scan_impl = scan_impl
        self.in_proj = nn.Linear(d_model, 2 * self.d_inner, bias=False)
        self.conv1d = nn.Conv1d(self.d_inner, self.d_inner, d_conv, groups=self.d_inner, padding=d_conv - 1)
        self.x_proj = nn.Linear(self.d_inner, self.dt_rank + 2 * d_state, bias=False)
        self.dt_proj = nn.Linear(self.dt_rank, self.d_inner, bias=True)
        a = torch.arange(1, d_state + 1, dtype=torch.float32).repeat(self.d_inner, 1)
        self.A_log = nn.Parameter(torch.log(a))  # A = -exp(A_log) = -(1..N): S4D-real
        self.D = nn.Parameter(torch.ones(self.d_inner))
        self.out_proj = nn.Linear(self.d_inner, d_model, bias=False)

    def mamba_dt_init(self, dt_min: float = 1e-3, dt_max: float = 0.1, floor: float = 1e-4) -> None:
        """``mamba_ssm.Mamba``'s own ``dt_proj`` initialisation (``dt_init='random'``, scale 1)."""
        bound = self.dt_rank**-0.5
        with torch.no_grad():
            nn.init.uniform_(self.dt_proj.weight, -bound, bound)
            log_dt = torch.rand(self.d_inner) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min)
            dt = torch.exp(log_dt).clamp(min=floor)
            self.dt_proj.bias.copy_(dt + torch.log(-torch.expm1(-dt)))  # inverse softplus

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        """Shape: ``[B, L, d] -> [B, L, d]`` (causal in time)."""
        length = hidden.shape[1]
        x, z = self.in_proj(hidden).chunk(2, dim=-1)
        x = F.silu(self.conv1d(x.transpose(1, 2))[..., :length].transpose(1, 2))  # causal: left padding
        dt, b, c = torch.split(self.x_proj(x), [self.dt_rank, self.d_state, self.d_state], dim=-1)
        A = -torch.exp(self.A_log)
        y = selective_scan(
            x, F.linear(dt, self.dt_proj.weight), A, b, c, self.D, z,
            delta_bias=self.dt_proj.bias, delta_softplus=True, impl=self.scan_impl,
        )  # fmt: skip
        return self.out_proj(y)


class MambaLayer(nn.Module):
    """Mixer, dropout, LayerNorm (residual only if ``residual``), then :class:`FeedForward`."""

    def __init__(self, mixer: MambaMixer, ffn: FeedForward, dropout: float, eps: float, residual: bool):
        super().__init__()
        self.mamba = mixer
        self.dropout = FastDropout(dropout)
        self.LayerNorm = nn.LayerNorm(ffn.w_1.in_features, eps=eps)
        self.ffn = ffn
        self.residual = residual

    def forward(self, x: torch.Tensor, last: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Shape: ``[B, L, d] -> [B, L, d]``, or ``-> [B, d]`` at positions ``last`` ``[B]``."""
        h = self.mamba(x)
        if last is not None:  # everything after the mixer is per position
            h, x = gather_positions(h, last), gather_positions(x, last)
        h = self.dropout(h)
        h = self.LayerNorm(h + x if self.residual else h)
        return self.ffn(h)
