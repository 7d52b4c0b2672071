"""The Linear Recurrent Unit (LRU) and its log-depth parallel scan, as LRURec uses them.

The LRU (Orvieto et al., "Resurrecting Recurrent Neural Networks for Long Sequences", ICML 2023)
is a linear recurrence with a complex diagonal state matrix,

    h_t = lambda * h_{t-1} + gamma * (B x_t + b),        y_t = Re(C h_t + c),

one complex ``lambda_j = exp(-exp(nu_log_j) + i exp(theta_log_j))`` per state channel ``j``, so
``|lambda_j| = exp(-exp(nu_log_j)) < 1``. At initialisation the ``lambda_j`` are uniform on the ring
``r_min <= |lambda| <= r_max`` (uniform in area: ``|lambda|^2`` uniform in ``[r_min^2, r_max^2]``)
with phases uniform in ``[0, 2 pi)``, and ``gamma_j = sqrt(1 - |lambda_j|^2)`` (a learned
normalisation, kept as ``gamma_log``) keeps the state's variance that of the input. The three
vectors are one parameter ``params_log`` ``[3, H]`` (``nu_log, theta_log, gamma_log``), as in
LRURec's reference code (https://github.com/yueqirex/LRURec, ``model/lru.py``).

Complex numbers live here as real parameters (so ``Module.double()``, mixed precision, optimisers
and checkpoints see ordinary float tensors, as FMLPRec's filter does), in PyTorch's interleaved
layout (``torch.view_as_complex``): ``in_proj`` maps ``d`` to ``2H`` outputs, the pairs
``(Re, Im)`` of ``B x + b`` (weight rows ``2j, 2j + 1`` are ``Re B_j, Im B_j``), and ``out_proj``
maps the pairs ``(Re h_j, Im h_j)`` to ``Re(C h + c)`` (weight columns ``2j, 2j + 1`` are
``Re C_j, -Im C_j``; bias ``Re c``: ``Im c`` never reaches the real output and is not kept).
``gamma`` scales the rows of ``B`` and ``b`` before the product (the same numbers as scaling
``B x + b``, without a pass over ``[B, L, H]``). The scan runs in torch's complex dtype, complex64
at least (half inputs are promoted, as the reference's ``cfloat`` always is).

:func:`lru_scan` evaluates the recurrence as the reference does (``lru_parallel``): by recursive
doubling over blocks. At level ``i`` every block of ``2^i`` steps adds ``lambda^(1..2^(i-1)) *
h[last step of its first half]`` to its second half, so after ``ceil(log2 L)`` levels every step
holds the full recurrence from a zero state: ``log2 L`` sequential steps of ``O(B L H)`` work
each. Unlike the reference, the sequence is not padded to a power of two (a shorter last block is
updated on its own) and the update runs in place on one copy, with the gradient written out (the
adjoint recurrence is the same doubling run backward in time), about four times faster than
the reference's out-of-place form, forward + backward of one layer at B 2048, L 50, d 64 on a
CPU. The scan runs forward in time only, so nothing at a step reaches an earlier one.
"""

from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.function import once_differentiable

from recbole_ext.model.layers import FastDropout, FeedForward, gather_positions


def ring_init_params_log(
    hidden: int, r_min: float, r_max: float, generator: Optional[torch.Generator] = None
) -> torch.Tensor:
    """``[nu_log; theta_log; gamma_log]`` ``[3, H]``: ``lambda`` uniform on the ring
    ``r_min <= |lambda| <= r_max`` (by area), phase uniform in ``[0, 2 pi)``, and
    ``gamma = sqrt(1 - |lambda|^2)`` (the reference's initialisation).

    Args:
        hidden: number of state channels ``H``.
        r_min: smallest modulus, ``0 <= r_min <= r_max``.
        r_max: largest modulus, ``< 1``.
        generator: random generator (``None``: the global one).

    Returns:
        the ``[3, H]`` float32 tensor.
    """
    u1 = torch.rand(hidden, generator=generator)
    u2 = torch.rand(hidden, generator=generator)
    nu_log = torch.log(-0.5 * torch.log(u1 * (r_max**2 - r_min**2) + r_min**2))
    theta_log = torch.log(u2 * 2 * math.pi)
    modulus = torch.exp(-torch.exp(nu_log))
    gamma_log = torch.log(torch.sqrt(1 - modulus**2))
    return torch.stack((nu_log, theta_log, gamma_log))


def _doubling_(h: torch.Tensor, lamb: torch.Tensor, reverse: bool = False) -> torch.Tensor:
    """The recursive doubling in place on ``h`` ``[B, L, H]``: ``h_t = lamb * h_{t-1} + h_t`` for
    every ``t``, or with ``reverse``, ``h_t = lamb * h_{t+1} + h_t`` (newest step first).

    At level ``i`` (``half = 2^(i-1) < L``) the steps fall into blocks of ``2 half`` from the start
    (the last one shorter); each block's second half gets ``lamb^(1..half) * h[last of its first
    half]``, or with ``reverse`` its first half gets ``lamb^(half..1) * h[first of its second
    half]``. The halves are disjoint, so the update is safe in place.
    """
    batch, length, hidden = h.shape
    powers, half = lamb[None, :], 1  # lamb^1 .. lamb^half
    while half < length:
        if half > 1:
            powers = torch.cat((powers, powers * powers[-1]), 0)
        full = length // (2 * half) * 2 * half
        blocks = [h[:, :full].view(batch, -1, 2 * half, hidden)] if full else []
        if length - full > half:  # a shorter last block that has a second half
            blocks.append(h[:, full:, None].transpose(1, 2))
        for block in blocks:
            if reverse:
                block[:, :, :half].addcmul_(powers.flip(0), block[:, :, half : half + 1])
            else:
                size = block.shape[2] - half
                block[:, :, half:].addcmul_(powers[:size], block[:, :, half - 1 : half])
        half *= 2
    return h


class _LRUScan(torch.autograd.Function):
    """``h_t = lamb h_{t-1} + u_t`` by :func:`_doubling_` on a copy of ``u``, with the gradient
    written out (PyTorch's conjugate convention): the adjoint ``g_t = dL/dh_t + conj(lamb) g_{t+1}``
    is the same doubling backward in time, ``dL/du = g``, ``dL/dlamb = sum_t g_t conj(h_{t-1})``."""

    @staticmethod
    def forward(ctx, lamb: torch.Tensor, u: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        h = _doubling_(u.clone(memory_format=torch.contiguous_format), lamb)
        ctx.save_for_backward(lamb, h)
        return h

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_h: torch.Tensor):  # type: ignore[override]
        lamb, h = ctx.saved_tensors
        g = _doubling_(grad_h.clone(memory_format=torch.contiguous_format), lamb.conj(), reverse=True)
        grad_lamb = None
        if ctx.needs_input_grad[0]:
            grad_lamb = (g[:, 1:] * h[:, :-1].conj()).reshape(-1, h.shape[2]).sum(0)
        return grad_lamb, g


def lru_scan(lamb: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """``h_t = lamb * h_{t-1} + u_t`` along dim 1 from ``h_{-1} = 0``, by recursive doubling
    (``ceil(log2 L)`` sequential steps of ``O(B L H)`` work each).

    Args:
        lamb: the diagonal of the state matrix, complex.
        u: the inputs, complex, of ``lamb``'s dtype.

    Returns:
        ``h``, the shape and dtype of ``u`` (contiguous).

    Shape:
        - lamb: ``[H]``
        - u: ``[B, L, H]``
        - output: ``[B, L, H]``
    """
    return _LRUScan.apply(lamb, u)


class LRULayer(nn.Module):
    """``LayerNorm(x + Dropout(Re(C h + c)))`` with ``h`` the LRU's states (reference ``LRULayer``).

    Args:
        d_model: input and output width ``d``.
        hidden: state channels ``H`` (the reference: ``2 d``).
        dropout: drop probability on the LRU's output.
        r_min, r_max: the ring of the initial eigenvalues.
        eps: LayerNorm epsilon.
    """

    def __init__(self, d_model: int, hidden: int, dropout: float, r_min: float, r_max: float, eps: float):
        super().__init__()
        self.hidden = hidden
        self.params_log = nn.Parameter(ring_init_params_log(hidden, r_min, r_max))
        self.in_proj = nn.Linear(d_model, 2 * hidden)  # x -> (Re, Im) of (B x + b)_j, j = 1..H
        self.out_proj = nn.Linear(2 * hidden, d_model)  # (Re, Im) of h_j -> Re(C h + c)
        self.dropout = FastDropout(dropout)
        self.layer_norm = nn.LayerNorm(d_model, eps=eps)

    def eigenvalues(self, dtype: torch.dtype) -> torch.Tensor:
        """``lambda`` ``[H]`` as a complex tensor with real parts of ``dtype``."""
        nu, theta, _ = torch.exp(self.params_log.to(dtype))
        return torch.exp(torch.complex(-nu, theta))

    def states(self, x: torch.Tensor) -> torch.Tensor:
        """The complex states ``h`` (complex64 at least). Shape: ``[B, L, d] -> [B, L, H]``."""
        gamma = torch.exp(self.params_log[2]).repeat_interleave(2)  # scales both parts of B_j, b_j
        u = F.linear(x, self.in_proj.weight * gamma[:, None], self.in_proj.bias * gamma)  # (Re, Im) pairs
        work = torch.promote_types(u.dtype, torch.float32)
        u = torch.view_as_complex(u.to(work).unflatten(-1, (self.hidden, 2)))
        return lru_scan(self.eigenvalues(work), u)

    def forward(self, x: torch.Tensor, last: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Shape: ``[B, L, d] -> [B, L, d]`` (causal), or ``-> [B, d]`` at positions ``last`` ``[B]``."""
        h = self.states(x)
        if last is not None:  # everything after the scan is per position
            h, x = gather_positions(h, last), gather_positions(x, last)
        y = self.out_proj(torch.view_as_real(h).flatten(-2).to(x.dtype))
        return self.layer_norm(self.dropout(y) + x)


class LRUBlock(nn.Module):
    """:class:`LRULayer`, then :class:`FeedForward` (reference ``LRUBlock``)."""

    def __init__(self, lru: LRULayer, ffn: FeedForward):
        super().__init__()
        self.lru_layer = lru
        self.feed_forward = ffn

    def forward(self, x: torch.Tensor, last: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Shape: ``[B, L, d] -> [B, L, d]``, or ``-> [B, d]`` at positions ``last`` ``[B]``."""
        return self.feed_forward(self.lru_layer(x, last))
