"""The multiplicative LSTM of recbole_ext's ``mLSTM`` model: the layers (:mod:`.layer`), the
recurrence (:mod:`.recurrence`), its C++ forward and backward for the CPU (:mod:`.native`, ``csrc/``) and its
Triton kernels for CUDA (:mod:`.triton_kernels`). Importing this package builds nothing: the C++
loop is compiled when a layer is made, the Triton kernels when a layer first runs on CUDA."""

from recbole_ext.model.mlstm.layer import MLSTM_IMPLS, MultiplicativeLSTM, MultiplicativeLSTMLayer

__all__ = ["MLSTM_IMPLS", "MultiplicativeLSTM", "MultiplicativeLSTMLayer"]
