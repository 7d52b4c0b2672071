"""One GRU layer's recurrence on the GPU as two persistent Triton kernels: one launch runs the
whole forward loop, one the whole backward loop (BPTT).

What: the input side ``gi = x W_ih^T + b_ih (+ b_hr, b_hz)`` of all steps is one matmul done
outside (cuBLAS); the kernels take ``gi [B, L, 3H]`` and run, for PyTorch's gate order r, z, n::

    r = sigmoid(gi_r + h W_hr^T)        z = sigmoid(gi_z + h W_hz^T)
    hn = h W_hn^T + b_hn                n = tanh(gi_n + r * hn)
    h' = (1 - z) * n + z * h

Each program owns ``BLOCK`` (16) batch rows. It loads ``W_hr``, ``W_hz``, ``W_hn`` (``H x H``
each, in the input dtype) once, before the time loop, and keeps them on chip for all ``L`` steps;
per step it multiplies its ``[BLOCK, H]`` state by them with ``tl.dot`` (float32 accumulate; the
state ``h`` is carried in float32, float64 for float64 inputs). The backward kernel keeps the same
three blocks (untransposed) on chip and walks time backwards from the saved activations
``r, z, n, hn`` and the outputs ``h``; the weight gradient ``sum_t dgates_t^T h_{t-1}`` is one
matmul over all steps after the loop (:func:`gru_bwd`).

Why: cuDNN's GRU at recommender shapes (H 64-256, batch 512-4096, L 50-200) is latency-bound: a
training step is ~2L (~400) small dependent matmuls plus their pointwise kernels, each re-reading
the recurrent weights. A persistent kernel has no per-step launches and no per-step weight
traffic (prior art: "Persistent RNNs", Diamos et al. 2016; FlashRNN, Poeppel et al. 2024). The
mLSTM kernels of :mod:`recbole_ext.model.mlstm.triton_kernels` re-read their weights from L2
every step; these do not.

Precision: every dot passes ``input_precision="ieee"``, so float32 is true float32 (no TF32,
which Triton's default would silently use) and therefore runs on CUDA cores, not tensor cores;
only bfloat16/float16 use tensor cores. (cuDNN's float32 GRU uses TF32 by default,
``torch.backends.cudnn.allow_tf32``, so it is the faster opponent there.) 16-bit dots multiply
the state rounded to the input dtype (cuDNN's state is in the input dtype) with float32
accumulation. Activations, outputs and gradients are stored in the input dtype. Triton 3.9's
interpreter multiplies bfloat16 wrongly, so there (only) the bf16-rounded operands are multiplied
in float32, which gives the same products.

Limits (see :func:`why_not`): ``H`` a power of two >= 16 (``tl.arange``, ``tl.dot``), dtype
float32, bfloat16, float16 or float64, and ``3 H^2 * itemsize <= WEIGHT_BYTES`` (96 KB): H <= 128
in bf16/fp16, H <= 64 in fp32 and fp64. Compiled for sm_90 ahead of time (tests), Triton keeps the
blocks in shared memory (100 KB forward, 104 KB backward at H = 128 bf16; 52 KB at H = 64 fp32)
with no register spills at the launch settings of :func:`launch_config`. fp32 at H = 128 would
fit the 227 KB of shared memory (200 KB) but its forward spills registers (2.4 KB a thread), so
it is refused; H = 256 in bf16 needs 384 KB for the weights alone, more than an H100/H200 SM's
shared memory (227 KB), so it is refused too. Refused shapes run cuDNN under
``FastGRU(impl="auto")``; splitting H across a cluster of programs (distributed shared memory,
as FlashRNN does) would lift the limit and is not done here.

Its outputs and gradients are tested against ``nn.GRU`` through Triton's interpreter
(``TRITON_INTERPRET=1``), and its shapes by ahead-of-time compiles for H100/H200; no GPU timing
of it is recorded. ``FastGRU(impl="auto")`` times it against cuDNN at the actual shape on first
use and uses it only where it is faster.
"""

from __future__ import annotations

import os
from typing import Optional, Tuple

import torch

try:
    import triton
    import triton.language as tl
except ImportError:  # the layer then uses torch's GRU
    triton = None

if triton is not None:
    from recbole_ext.model.triton_tiles import tanh, weight_block, weight_block_t

#: the most bytes the three ``H x H`` recurrent blocks may take on chip (see the module docstring)
WEIGHT_BYTES = 96 * 1024
#: no software pipelining of the time loop (it would stage the weight blocks several times over)
NUM_STAGES = 1
DTYPES = (torch.float32, torch.bfloat16, torch.float16, torch.float64)


def why_not(device: torch.device, dtype: torch.dtype, hidden: int) -> Optional[str]:
    """Why the kernels cannot run a GRU of width ``hidden`` on ``device`` in ``dtype``, or ``None``.

    Args:
        device: where the tensors are.
        dtype: what the recurrence runs in.
        hidden: ``H``.

    Returns:
        A short reason, or ``None`` when they can.
    """
    if triton is None:
        return "Triton is not installed"
    if device.type != "cuda" and os.environ.get("TRITON_INTERPRET") != "1":
        return f"the input is on {device}, not CUDA (TRITON_INTERPRET=1 runs the kernels on the CPU)"
    if hidden < 16 or hidden & (hidden - 1):
        return f"hidden_size {hidden} is not a power of two >= 16"
    if dtype not in DTYPES:
        return f"dtype {dtype} is not float32, bfloat16, float16 or float64"
    kb = 3 * hidden * hidden * torch.empty((), dtype=dtype).element_size() // 1024
    if kb * 1024 > WEIGHT_BYTES:
        return (
            f"3 x {hidden}^2 recurrent weights in {dtype} ({kb} KB) exceed the {WEIGHT_BYTES // 1024} KB kept on chip"
        )
    return None


def applies(x: torch.Tensor, hidden: int) -> bool:
    """Whether the kernels can run a GRU of width ``hidden`` over ``x`` (its device and dtype)."""
    return why_not(x.device, x.dtype, hidden) is None


def launch_config(hidden: int, dtype: torch.dtype) -> Tuple[int, int]:
    """``(BLOCK, num_warps)``: batch rows per program and warps per program for both kernels.

    Chosen from ahead-of-time compiles for sm_90 (``tests/test_gru_triton.py``), not from GPU
    timings: 16 rows (more rows per program spill registers at H = 128), 8 warps for 16-bit
    inputs and 16 for float32 (the IEEE float32 dot runs on CUDA cores and needs more registers),
    4 where H <= 32.
    """
    if hidden <= 32:
        return 16, 4
    return 16, 8 if dtype in (torch.bfloat16, torch.float16) else 16


if triton is not None:

    @triton.jit
    def _mm(a, w, DOT: tl.constexpr, STATE: tl.constexpr, PRECISION: tl.constexpr):
        """``a @ w`` with ``a`` rounded to the weights' dtype first (``DOT`` is that dtype, or
        float32 where the interpreter cannot multiply it: bfloat16; exact, as bf16 products are)."""
        return tl.dot(a.to(w.dtype).to(DOT), w.to(DOT), input_precision=PRECISION, out_dtype=STATE)

    @triton.jit
    def _rows(B, L, H: tl.constexpr, BLOCK: tl.constexpr):
        """This program's row mask and its offsets at ``t = 0`` into ``[B, H]``, ``[B, L, H]``,
        ``[B, L, 3H]`` and ``[B, L, 4H]`` (int64: ``B L 4H`` may pass 2^31)."""
        rows = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
        r = rows.to(tl.int64)[:, None]
        c = tl.arange(0, H)[None, :]
        return (rows < B)[:, None], r * H + c, r * L * H + c, r * L * 3 * H + c, r * L * 4 * H + c

    @triton.jit
    def _fwd_kernel(
        gi, h0, w_hh, b_hn, hs, acts, L, B, H: tl.constexpr, BLOCK: tl.constexpr, SAVE: tl.constexpr,
        DOT: tl.constexpr, STATE: tl.constexpr, PRECISION: tl.constexpr,
    ):  # fmt: skip
        mask, off_h, off_s, off_g, off_a = _rows(B, L, H, BLOCK)
        w_r, w_z, w_n = (
            weight_block_t(w_hh, 0, H),
            weight_block_t(w_hh, H, H),
            weight_block_t(w_hh, 2 * H, H),
        )  # on chip for all steps
        b_n = tl.load(b_hn + tl.arange(0, H)).to(STATE)[None, :]
        h = tl.load(h0 + off_h, mask=mask, other=0.0).to(STATE)
        for t in range(L):
            g = gi + off_g + t * 3 * H
            hr = _mm(h, w_r, DOT, STATE, PRECISION)
            hz = _mm(h, w_z, DOT, STATE, PRECISION)
            hn = _mm(h, w_n, DOT, STATE, PRECISION) + b_n
            r = tl.sigmoid(tl.load(g, mask=mask, other=0.0).to(STATE) + hr)
            z = tl.sigmoid(tl.load(g + H, mask=mask, other=0.0).to(STATE) + hz)
            n = tanh(tl.load(g + 2 * H, mask=mask, other=0.0).to(STATE) + r * hn)
            h = n + z * (h - n)
            tl.store(hs + off_s + t * H, h.to(hs.dtype.element_ty), mask=mask)
            if SAVE:
                a = acts + off_a + t * 4 * H
                tl.store(a, r.to(acts.dtype.element_ty), mask=mask)
                tl.store(a + H, z.to(acts.dtype.element_ty), mask=mask)
                tl.store(a + 2 * H, n.to(acts.dtype.element_ty), mask=mask)
                tl.store(a + 3 * H, hn.to(acts.dtype.element_ty), mask=mask)

    @triton.jit
    def _bwd_kernel(
        grad_hs, h0, w_hh, hs, acts, d_gi, d_hn, d_h0, L, B, H: tl.constexpr, BLOCK: tl.constexpr,
        DOT: tl.constexpr, STATE: tl.constexpr, PRECISION: tl.constexpr,
    ):  # fmt: skip
        mask, off_h, off_s, off_g, off_a = _rows(B, L, H, BLOCK)
        w_r, w_z, w_n = (
            weight_block(w_hh, 0, H),
            weight_block(w_hh, H, H),
            weight_block(w_hh, 2 * H, H),
        )  # on chip for all steps
        first = tl.load(h0 + off_h, mask=mask, other=0.0).to(STATE)
        dh = tl.zeros((BLOCK, H), dtype=STATE)
        for s in range(L):
            t = L - 1 - s
            a = acts + off_a + t * 4 * H
            r = tl.load(a, mask=mask, other=0.0).to(STATE)
            z = tl.load(a + H, mask=mask, other=0.0).to(STATE)
            n = tl.load(a + 2 * H, mask=mask, other=0.0).to(STATE)
            hn = tl.load(a + 3 * H, mask=mask, other=0.0).to(STATE)
            before = tl.load(hs + off_s + tl.maximum(t - 1, 0) * H, mask=mask, other=0.0).to(STATE)
            h_prev = tl.where(t > 0, before, first)
            dh += tl.load(grad_hs + off_s + t * H, mask=mask, other=0.0).to(STATE)
            dgz = dh * (h_prev - n) * z * (1.0 - z)
            dgn = dh * (1.0 - z) * (1.0 - n * n)
            dhn = dgn * r
            dgr = dgn * hn * r * (1.0 - r)
            g = d_gi + off_g + t * 3 * H
            tl.store(g, dgr.to(d_gi.dtype.element_ty), mask=mask)
            tl.store(g + H, dgz.to(d_gi.dtype.element_ty), mask=mask)
            tl.store(g + 2 * H, dgn.to(d_gi.dtype.element_ty), mask=mask)
            tl.store(d_hn + off_s + t * H, dhn.to(d_hn.dtype.element_ty), mask=mask)
            dh = dh * z + _mm(dgr, w_r, DOT, STATE, PRECISION)
            dh += _mm(dgz, w_z, DOT, STATE, PRECISION)
            dh += _mm(dhn, w_n, DOT, STATE, PRECISION)
        tl.store(d_h0 + off_h, dh.to(d_h0.dtype.element_ty), mask=mask)


def _consts(dtype: torch.dtype) -> dict:
    """The kernels' compile-time dot dtype, state dtype and dot precision for inputs of ``dtype``."""
    dot = {torch.float32: tl.float32, torch.bfloat16: tl.bfloat16, torch.float16: tl.float16, torch.float64: tl.float64}
    interpreted = os.environ.get("TRITON_INTERPRET") == "1"  # whose bfloat16 dot returns garbage (Triton 3.9)
    return {
        "DOT": tl.float32 if interpreted and dtype == torch.bfloat16 else dot[dtype],
        "STATE": tl.float64 if dtype == torch.float64 else tl.float32,
        "PRECISION": "ieee",
    }


def gru_fwd(
    gi: torch.Tensor, h0: torch.Tensor, w_hh: torch.Tensor, b_hn: torch.Tensor, save: bool = True
) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
    """Run the forward kernel.

    Args:
        gi: input-side pre-activations, ``b_ih`` and the r, z parts of ``b_hh`` included.
        h0: initial state.
        w_hh: recurrent weight (``weight_hh_l*``: rows r, z, n).
        b_hn: the n part of ``b_hh`` (zeros for a bias-free GRU).
        save: also write the activations the backward kernel needs.

    Returns:
        ``(hs, acts)``: ``h_t`` of every step, and ``r, z, n, hn`` side by side (``None`` unless ``save``).

    Shape:
        - gi: ``[B, L, 3H]``; h0: ``[B, H]``; w_hh: ``[3H, H]``; b_hn: ``[H]``
        - hs: ``[B, L, H]``; acts: ``[B, L, 4H]``
    """
    batch, steps, three_h = gi.shape
    hidden = three_h // 3
    gi, h0, w_hh, b_hn = (t.contiguous() for t in (gi, h0, w_hh, b_hn))
    hs = gi.new_empty(batch, steps, hidden)
    acts = gi.new_empty(batch, steps, 4 * hidden) if save else None
    block, warps = launch_config(hidden, gi.dtype)
    _fwd_kernel[(triton.cdiv(batch, block),)](
        gi, h0, w_hh, b_hn, hs, hs if acts is None else acts, steps, batch, H=hidden, BLOCK=block, SAVE=save,
        num_stages=NUM_STAGES, num_warps=warps, **_consts(gi.dtype),
    )  # fmt: skip
    return hs, acts


def gru_bwd(
    grad_hs: torch.Tensor, h0: torch.Tensor, w_hh: torch.Tensor, hs: torch.Tensor, acts: torch.Tensor
) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Run the backward kernel, then form the recurrent weight gradients over all steps at once.

    Args:
        grad_hs: gradient of the loss w.r.t. ``hs``.
        h0, w_hh: as given to :func:`gru_fwd`.
        hs, acts: what :func:`gru_fwd` returned.

    Returns:
        Gradients of ``gi``, ``h0``, ``w_hh`` and ``b_hn``.

    Shape:
        - grad_hs, hs: ``[B, L, H]``; acts: ``[B, L, 4H]``
        - returns ``[B, L, 3H]``, ``[B, H]``, ``[3H, H]``, ``[H]``
    """
    batch, steps, hidden = hs.shape
    grad_hs, h0, w_hh = grad_hs.contiguous(), h0.contiguous(), w_hh.contiguous()
    d_gi = hs.new_empty(batch, steps, 3 * hidden)
    d_hn = torch.empty_like(hs)
    d_h0 = torch.empty_like(h0)
    block, warps = launch_config(hidden, hs.dtype)
    _bwd_kernel[(triton.cdiv(batch, block),)](
        grad_hs, h0, w_hh, hs, acts, d_gi, d_hn, d_h0, steps, batch, H=hidden, BLOCK=block,
        num_stages=NUM_STAGES, num_warps=warps, **_consts(hs.dtype),
    )  # fmt: skip
    # gradient w.r.t. h W_hh^T + b_hh: r and z parts as for gi, the n part before r multiplies it
    d_gh = torch.cat([d_gi[:, :, : 2 * hidden], d_hn], 2).reshape(-1, 3 * hidden)
    h_prev = torch.cat([h0.unsqueeze(1), hs[:, :-1]], 1).reshape(-1, hidden)
    d_w_hh = torch.mm(d_gh.t(), h_prev)
    d_b_hn = d_hn.sum(dim=(0, 1), dtype=torch.promote_types(hs.dtype, torch.float32)).to(hs.dtype)
    return d_gi, d_h0, d_w_hh, d_b_hn


class GRURecurrence(torch.autograd.Function):
    """Autograd wrapper of the two kernels: ``hs = GRURecurrence.apply(gi, h0, w_hh, b_hn)`` (see
    :func:`gru_fwd` for the arguments and shapes); gradients flow to all four."""

    @staticmethod
    def forward(ctx, gi, h0, w_hh, b_hn):  # type: ignore[override]
        save = any(ctx.needs_input_grad)  # forward runs under no_grad; this says whether a backward may come
        hs, acts = gru_fwd(gi, h0, w_hh, b_hn, save=save)
        ctx.save_for_backward(h0, w_hh, hs, acts)
        return hs

    @staticmethod
    def backward(ctx, grad_hs):  # type: ignore[override]
        h0, w_hh, hs, acts = ctx.saved_tensors
        return gru_bwd(grad_hs, h0, w_hh, hs, acts)
