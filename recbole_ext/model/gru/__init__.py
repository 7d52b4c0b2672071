"""A GRU for recbole_ext's models whose recurrence can run as persistent Triton kernels on CUDA:
:class:`FastGRU` (:mod:`.layer`, a drop-in for a batch-first ``nn.GRU``), :func:`swap_gru`, and
the kernels (:mod:`.triton_gru`). Importing this package compiles nothing: the kernels are
compiled by Triton when a layer first runs them."""

from recbole_ext.model.gru.layer import GRU_IMPLS, FastGRU, swap_gru

__all__ = ["GRU_IMPLS", "FastGRU", "swap_gru"]
