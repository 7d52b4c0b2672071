"""Triton helpers shared by the recurrence kernels of recbole_ext (mLSTM's and the GRU's): a
``tanh`` from ``tl.sigmoid`` and the loads of one ``H x H`` block of a row-major ``[*, H]``
weight, as it is or transposed. ``triton`` is ``None`` where Triton is not installed (the
kernels' modules then fall back to PyTorch)."""

from __future__ import annotations

try:
    import triton
    import triton.language as tl
except ImportError:
    triton = None

if triton is not None:

    @triton.jit
    def tanh(x):
        """``tanh(x) = 2 sigmoid(2x) - 1``."""
        return 2.0 * tl.sigmoid(2.0 * x) - 1.0

    @triton.jit
    def weight_block_t(w, row0, H: tl.constexpr):
        """The ``H x H`` block of rows ``row0..row0+H`` of a ``[*, H]`` weight, transposed:
        ``[k, j] = w[row0 + j, k]``."""
        k = tl.arange(0, H)
        return tl.load(w + (row0 + k[None, :]) * H + k[:, None])

    @triton.jit
    def weight_block(w, row0, H: tl.constexpr):
        """The ``H x H`` block of rows ``row0..row0+H`` of a ``[*, H]`` weight."""
        k = tl.arange(0, H)
        return tl.load(w + (row0 + k[:, None]) * H + k[None, :])
