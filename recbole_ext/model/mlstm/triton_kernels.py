"""mLSTM recurrence on the GPU as two Triton kernels: one launch for the whole forward loop and
one for the whole backward loop (BPTT), instead of several kernel launches per step and op.

Each program owns ``BLOCK_B`` rows of the batch and steps through time with its states in
registers; per step it multiplies by ``W_hm`` and the four ``H x H`` blocks of ``W_mh`` (read
from the L2 cache each step; at H = 128 they are 320 KB) with ``tl.dot`` in IEEE float32
(no TF32) or float64. The kernels write exactly what the TorchScript pair
(:func:`recbole_ext.model.mlstm.recurrence._mlstm_recurrence_fwd` / ``_bwd``) writes, so the weight
gradients are formed the same way after the loop. They are correct but slow: with 16 rows a
program, a 2048 batch is 128 programs, each re-reading 320 KB of weights every step, and on an
H200 at L=200, H=128 a training step's recurrence took 296 ms against TorchScript's 42 ms; so
only ``impl="triton"`` runs them, never ``"auto"``. They apply when Triton is installed, the
tensors are on a CUDA device (or ``TRITON_INTERPRET=1`` is set, which runs them on the CPU, as
the tests do), ``H`` is a power of two of at least 16 (``tl.dot`` and ``tl.arange``) and the
dtype is float32 or float64.
"""

from __future__ import annotations

import os
from typing import Tuple

import torch

try:
    import triton
    import triton.language as tl
except ImportError:  # the layer then uses the TorchScript recurrence
    triton = None

if triton is not None:
    from recbole_ext.model.triton_tiles import tanh, weight_block, weight_block_t

BLOCK_B = 16
#: no software pipelining of the time loop: with Triton's default of 3 stages the H x H weight
#: blocks are staged several times over (at H = 128, 256 KB of shared memory, more than an H100
#: or H200 has per block, 227 KB); with one stage the kernels need 72 KB
NUM_STAGES = 1


def applies(x: torch.Tensor, hidden: int) -> bool:
    """Whether the Triton kernels can run the recurrence of ``x`` (see the module docstring)."""
    return (
        triton is not None
        and (x.is_cuda or os.environ.get("TRITON_INTERPRET") == "1")
        and hidden >= 16
        and hidden & (hidden - 1) == 0
        and x.dtype in (torch.float32, torch.float64)
    )


if triton is not None:

    @triton.jit
    def _block(B, H: tl.constexpr, BLOCK: tl.constexpr):
        """This program's rows: the row mask and the offsets into ``[B, H]`` and ``[B, 4H]``."""
        rows = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
        cols = tl.arange(0, H)
        return (rows < B)[:, None], rows[:, None] * H + cols[None, :], rows[:, None] * 4 * H + cols[None, :]

    @triton.jit
    def _store_gates(ptr, H: tl.constexpr, i, f, g, o, mask):
        """Store the four ``[BLOCK, H]`` gate blocks side by side in a ``[B, 4H]`` row block."""
        tl.store(ptr, i, mask=mask)
        tl.store(ptr + H, f, mask=mask)
        tl.store(ptr + 2 * H, g, mask=mask)
        tl.store(ptr + 3 * H, o, mask=mask)

    @triton.jit
    def _fwd_kernel(
        xg, xm, h0, c0, w_mh, w_hm, b_hm, hs, cs, hms, ms, acts, L, B, H: tl.constexpr, BLOCK: tl.constexpr
    ):
        mask, off, goff = _block(B, H, BLOCK)
        h = tl.load(h0 + off, mask=mask, other=0.0)
        c = tl.load(c0 + off, mask=mask, other=0.0)
        bias = tl.load(b_hm + tl.arange(0, H))[None, :]
        for t in range(L):
            hm = tl.dot(h, weight_block_t(w_hm, 0, H), input_precision="ieee") + bias
            m = tl.load(xm + t * B * H + off, mask=mask, other=0.0) * hm
            g0 = xg + t * B * 4 * H + goff
            zi = tl.load(g0, mask=mask, other=0.0) + tl.dot(m, weight_block_t(w_mh, 0, H), input_precision="ieee")
            zf = tl.load(g0 + H, mask=mask, other=0.0) + tl.dot(m, weight_block_t(w_mh, H, H), input_precision="ieee")
            zg = tl.load(g0 + 2 * H, mask=mask, other=0.0) + tl.dot(
                m, weight_block_t(w_mh, 2 * H, H), input_precision="ieee"
            )
            zo = tl.load(g0 + 3 * H, mask=mask, other=0.0) + tl.dot(
                m, weight_block_t(w_mh, 3 * H, H), input_precision="ieee"
            )
            i, f, g, o = tl.sigmoid(zi), tl.sigmoid(zf), tanh(zg), tl.sigmoid(zo)
            c = f * c + i * g
            h = o * tanh(c)
            _store_gates(acts + t * B * 4 * H + goff, H, i, f, g, o, mask)
            tl.store(hms + t * B * H + off, hm, mask=mask)
            tl.store(ms + t * B * H + off, m, mask=mask)
            tl.store(hs + t * B * H + off, h, mask=mask)
            tl.store(cs + t * B * H + off, c, mask=mask)

    @triton.jit
    def _bwd_kernel(
        grad_h,
        grad_c,
        c0,
        xm,
        w_mh,
        w_hm,
        cs,
        acts,
        d_gates,
        d_m,
        d_h0,
        d_c0,
        L,
        B,
        H: tl.constexpr,
        BLOCK: tl.constexpr,
    ):
        mask, off, goff = _block(B, H, BLOCK)
        dh = tl.zeros((BLOCK, H), dtype=d_h0.dtype.element_ty)
        dc = tl.zeros((BLOCK, H), dtype=d_h0.dtype.element_ty)
        for s in range(L):
            t = L - 1 - s
            a0 = acts + t * B * 4 * H + goff
            i = tl.load(a0, mask=mask, other=0.0)
            f = tl.load(a0 + H, mask=mask, other=0.0)
            g = tl.load(a0 + 2 * H, mask=mask, other=0.0)
            o = tl.load(a0 + 3 * H, mask=mask, other=0.0)
            c_t = tl.load(cs + t * B * H + off, mask=mask, other=0.0)
            before = tl.load(cs + tl.maximum(t - 1, 0) * B * H + off, mask=mask, other=0.0)
            c_prev = tl.where(t > 0, before, tl.load(c0 + off, mask=mask, other=0.0))
            tc = tanh(c_t)
            dh = tl.load(grad_h + t * B * H + off, mask=mask, other=0.0) + dh
            dct = tl.load(grad_c + t * B * H + off, mask=mask, other=0.0) + dc + dh * o * (1.0 - tc * tc)
            dgi = dct * g * i * (1.0 - i)
            dgf = dct * c_prev * f * (1.0 - f)
            dgg = dct * i * (1.0 - g * g)
            dgo = dh * tc * o * (1.0 - o)
            _store_gates(d_gates + t * B * 4 * H + goff, H, dgi, dgf, dgg, dgo, mask)
            dm = tl.dot(dgi, weight_block(w_mh, 0, H), input_precision="ieee")
            dm += tl.dot(dgf, weight_block(w_mh, H, H), input_precision="ieee")
            dm += tl.dot(dgg, weight_block(w_mh, 2 * H, H), input_precision="ieee")
            dm += tl.dot(dgo, weight_block(w_mh, 3 * H, H), input_precision="ieee")
            tl.store(d_m + t * B * H + off, dm, mask=mask)
            dmx = dm * tl.load(xm + t * B * H + off, mask=mask, other=0.0)
            dh = tl.dot(dmx, weight_block(w_hm, 0, H), input_precision="ieee")
            dc = dct * f
        tl.store(d_h0 + off, dh, mask=mask)
        tl.store(d_c0 + off, dc, mask=mask)


def recurrence_fwd(xg, xm, h0, c0, w_mh, w_hm, b_hm) -> Tuple[torch.Tensor, ...]:
    """Same arguments and returns as :func:`recbole_ext.model.mlstm.recurrence._mlstm_recurrence_fwd`."""
    n_steps, batch, hidden = xm.shape
    xg, xm, h0, c0 = (t.contiguous() for t in (xg, xm, h0, c0))
    hs, cs, hms, ms = (torch.empty_like(xm) for _ in range(4))
    acts = torch.empty_like(xg)
    grid = (triton.cdiv(batch, BLOCK_B),)
    _fwd_kernel[grid](
        xg,
        xm,
        h0,
        c0,
        w_mh.contiguous(),
        w_hm.contiguous(),
        b_hm.contiguous(),
        hs,
        cs,
        hms,
        ms,
        acts,
        n_steps,
        batch,
        H=hidden,
        BLOCK=BLOCK_B,
        num_stages=NUM_STAGES,
    )
    return hs, cs, hms, ms, acts


def recurrence_bwd(grad_h, grad_c, h0, c0, xm, w_mh, w_hm, hs, cs, hms, ms, acts) -> Tuple[torch.Tensor, ...]:
    """Same arguments and returns as :func:`recbole_ext.model.mlstm.recurrence._mlstm_recurrence_bwd`."""
    n_steps, batch, hidden = xm.shape
    d_gates = torch.empty_like(acts)
    d_m = torch.empty_like(xm)
    d_h0, d_c0 = torch.empty_like(h0), torch.empty_like(c0)
    grid = (triton.cdiv(batch, BLOCK_B),)
    _bwd_kernel[grid](
        grad_h,
        grad_c,
        c0.contiguous(),
        xm,
        w_mh.contiguous(),
        w_hm.contiguous(),
        cs,
        acts,
        d_gates,
        d_m,
        d_h0,
        d_c0,
        n_steps,
        batch,
        H=hidden,
        BLOCK=BLOCK_B,
        num_stages=NUM_STAGES,
    )
    d_hm = d_m * xm
    d_xm = d_m * hms
    h_prev = torch.cat([h0.unsqueeze(0), hs[:-1]], 0)
    d_w_mh = torch.mm(d_gates.reshape(-1, 4 * hidden).t(), ms.reshape(-1, hidden))
    d_w_hm = torch.mm(d_hm.reshape(-1, hidden).t(), h_prev.reshape(-1, hidden))
    d_b_hm = d_hm.sum(dim=(0, 1))
    return d_gates, d_xm, d_h0, d_c0, d_w_mh, d_w_hm, d_b_hm, d_b_hm
