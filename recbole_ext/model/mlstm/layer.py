"""Multiplicative-LSTM layers (Krause et al. 2016), batch first: input projections for all steps
at once, the recurrence through :mod:`recbole_ext.model.mlstm.recurrence`."""

from __future__ import annotations

import math
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from recbole_ext.model.mlstm.native import native_applies, native_extension
from recbole_ext.model.mlstm.recurrence import (
    _mlstm_recurrence_autograd,
    _mlstm_recurrence_scripted,
    _MLSTMRecurrence,
)

MLSTM_IMPLS = ("auto", "native", "fused", "script", "loop", "triton")


def _triton_kernels(x: torch.Tensor, hidden: int):
    """:mod:`recbole_ext.model.mlstm.triton_kernels`, or a ``ValueError`` saying why its kernels
    cannot run the recurrence of ``x``."""
    from recbole_ext.model.mlstm import triton_kernels as mlstm_triton  # noqa: PLC0415 - Triton is optional

    if not mlstm_triton.applies(x, hidden):
        raise ValueError(
            "impl='triton' needs Triton installed, a CUDA tensor (or TRITON_INTERPRET=1), a hidden "
            f"size that is a power of two >= 16 and float32/float64 (got {x.device}, {hidden}, {x.dtype})"
        )
    return mlstm_triton


class MultiplicativeLSTMLayer(nn.Module):
    """One multiplicative-LSTM layer over a batch-first sequence.

    Parameters (PyTorch's LSTM naming where one exists): ``weight_ih`` ``[4H, D]``, ``bias``
    ``[4H]`` (one bias; an ``nn.LSTM``'s ``bias_ih + bias_hh``), ``weight_mh`` ``[4H, H]`` (gates
    from ``m_t``, the role of ``weight_hh``), ``weight_im`` ``[H, D]``, ``bias_im`` ``[H]``,
    ``weight_hm`` ``[H, H]``, ``bias_hm`` ``[H]``. All start uniform in ``±1/sqrt(H)``, as
    ``nn.LSTM`` and the reference code.

    Args:
        input_size: ``D``.
        hidden_size: ``H``.
        impl: ``"native"`` (forward and backward loops in C++,
            :mod:`recbole_ext.model.mlstm.native`, built on first use), ``"fused"`` (scripted forward and
            hand-written backward loops), ``"script"`` (TorchScript loop under autograd),
            ``"loop"`` (Python loop under autograd), ``"triton"`` (forward and backward loops
            as one Triton kernel each, :mod:`recbole_ext.model.mlstm.triton_kernels`; CUDA; slower
            than ``"fused"`` there), or ``"auto"`` (default: ``"native"`` on the CPU when the
            extension builds, else ``"fused"``). All compute the same
            function; they differ in speed only.
    """

    def __init__(self, input_size: int, hidden_size: int, impl: str = "auto") -> None:
        super().__init__()
        if impl not in MLSTM_IMPLS:
            raise ValueError(f"impl must be one of {MLSTM_IMPLS}, got {impl!r}")
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.impl = impl
        self.weight_ih = nn.Parameter(torch.empty(4 * hidden_size, input_size))
        self.weight_mh = nn.Parameter(torch.empty(4 * hidden_size, hidden_size))
        self.bias = nn.Parameter(torch.empty(4 * hidden_size))
        self.weight_im = nn.Parameter(torch.empty(hidden_size, input_size))
        self.bias_im = nn.Parameter(torch.empty(hidden_size))
        self.weight_hm = nn.Parameter(torch.empty(hidden_size, hidden_size))
        self.bias_hm = nn.Parameter(torch.empty(hidden_size))
        self.reset_parameters()
        if impl in ("auto", "native"):
            native_extension()  # build (or load) now, not inside the first timed epoch

    def reset_parameters(self) -> None:
        bound = 1.0 / math.sqrt(self.hidden_size)
        for p in self.parameters():
            nn.init.uniform_(p, -bound, bound)

    def forward(
        self, x: torch.Tensor, state: Optional[Tuple[torch.Tensor, torch.Tensor]] = None
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """Run the layer over all steps.

        Args:
            x: input sequence (batch first).
            state: ``(h_0, c_0)``, zeros when ``None``.

        Returns:
            ``(h, c)``: hidden and cell state at every step.

        Shape:
            - x: ``[B, L, D]``; h_0, c_0: ``[B, H]``
            - h, c: ``[B, L, H]``
        """
        if torch.is_autocast_enabled(x.device.type):
            # mixed precision: the recurrence carries its state over every step, so the layer
            # runs in its weights' precision (the C++ loop and the scripted BPTT take one dtype)
            dtype = self.weight_ih.dtype
            with torch.autocast(device_type=x.device.type, enabled=False):
                return self._forward(x.to(dtype), None if state is None else (state[0].to(dtype), state[1].to(dtype)))
        return self._forward(x, state)

    def _forward(
        self, x: torch.Tensor, state: Optional[Tuple[torch.Tensor, torch.Tensor]]
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        b, _, _ = x.shape
        hid = self.hidden_size
        if state is None:
            h0 = x.new_zeros(b, hid)
            c0 = x.new_zeros(b, hid)
        else:
            h0, c0 = state
        impl = self.impl
        native = kernels = None
        if impl == "triton":
            kernels = _triton_kernels(x, hid)
        if impl in ("auto", "native"):
            native = native_extension() if native_applies(x, h0, c0) else None
            impl = "native" if native is not None else "fused"
        self.last_impl = impl  # what ran, for reports
        training = torch.is_grad_enabled() and any(t.requires_grad for t in (x, h0, c0, *self.parameters()))
        if native is not None and not training:
            # inference: one matmul over all steps, batch first; the C++ loop reads the
            # time-major views without copying them, and saves nothing for a backward pass
            proj = F.linear(x, torch.cat([self.weight_ih, self.weight_im]), torch.cat([self.bias, self.bias_im]))
            xg = proj[:, :, : 4 * hid].transpose(0, 1)
            xm = proj[:, :, 4 * hid :].transpose(0, 1)
            hs, cs = native.forward(xg, xm, h0, c0, self.weight_mh, self.weight_hm, self.bias_hm, False)[:2]
            return hs.transpose(0, 1), cs.transpose(0, 1)
        # input-side terms of every step, time-major: two matmuls over all steps ([L, B, 4H] and
        # [L, B, H]; one [L, B, 5H] matmul split in two costs more, in the slices' backward)
        xt = x.transpose(0, 1).contiguous()
        xg = F.linear(xt, self.weight_ih, self.bias)
        xm = F.linear(xt, self.weight_im, self.bias_im)
        if impl in ("native", "fused", "triton"):  # C++, TorchScript or Triton loops
            hs, cs = _MLSTMRecurrence.apply(
                xg, xm, h0, c0, self.weight_mh, self.weight_hm, self.bias_hm, native, kernels
            )
        elif impl == "script":
            hs, cs = _mlstm_recurrence_scripted(xg, xm, h0, c0, self.weight_mh, self.weight_hm, self.bias_hm)
        else:
            hs, cs = _mlstm_recurrence_autograd(xg, xm, h0, c0, self.weight_mh, self.weight_hm, self.bias_hm)
        return hs.transpose(0, 1), cs.transpose(0, 1)


class MultiplicativeLSTM(nn.Module):
    """Stacked multiplicative LSTM (batch first); dropout between layers as ``nn.LSTM``.

    Args:
        input_size: ``D``.
        hidden_size: ``H``.
        num_layers: stacked layers.
        dropout: dropout on each layer's output ``h`` except the last.
        impl: see :class:`MultiplicativeLSTMLayer`.
    """

    def __init__(
        self, input_size: int, hidden_size: int, num_layers: int = 1, dropout: float = 0.0, impl: str = "auto"
    ) -> None:
        super().__init__()
        if num_layers < 1:
            raise ValueError(f"num_layers must be >= 1, got {num_layers}")
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.layers = nn.ModuleList(
            MultiplicativeLSTMLayer(input_size if k == 0 else hidden_size, hidden_size, impl) for k in range(num_layers)
        )
        self.dropout = nn.Dropout(dropout)

    def forward(
        self, x: torch.Tensor, state: Optional[Tuple[torch.Tensor, torch.Tensor]] = None
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """Args: x, and optional ``(h_0, c_0)`` per layer. Returns ``(h, c)`` of the last layer at every step.

        Shape:
            - x: ``[B, L, D]``; h_0, c_0: ``[num_layers, B, H]``
            - h, c: ``[B, L, H]``
        """
        h = x
        c = x
        for k, layer in enumerate(self.layers):
            if k > 0:
                h = self.dropout(h)
            h, c = layer(h, None if state is None else (state[0][k], state[1][k]))
        return h, c


# ============================================================== VAE blocks (MultVAE, SVAE models)
