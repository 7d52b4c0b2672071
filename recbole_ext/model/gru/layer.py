"""``FastGRU``: a drop-in for a batch-first ``nn.GRU`` that can run its recurrence as the
persistent Triton kernels of :mod:`recbole_ext.model.gru.triton_gru`, and :func:`swap_gru`,
which puts it in place of the ``nn.GRU`` inside a model (GRU4Rec's, GLINT-RU's expert's).

``FastGRU`` subclasses ``nn.GRU``: the parameters are the same objects under the same names
(``weight_ih_l0``, ``weight_hh_l0``, ``bias_ih_l0``, ``bias_hh_l0``, ...), so state dicts move
between the two either way, ``isinstance(m, nn.GRU)`` initialisers still find it, and
``impl="torch"`` is ``nn.GRU.forward`` itself (cuDNN on CUDA, with its flattened weights).

The Triton path computes the input side of all steps as one matmul per layer, then the
recurrence in one kernel launch forward and one backward; layers are stacked here, with
``nn.GRU``'s dropout between them (same distribution, not the same random draws as cuDNN).
``impl="auto"`` times it against cuDNN at the actual shape on first use and takes the faster
(:meth:`FastGRU.forward`); no GPU timing of it is recorded in ``docs/gpu.md``.
"""

from __future__ import annotations

import warnings
from typing import Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from recbole_ext.model.gru import triton_gru
from recbole_ext.model.gru.triton_gru import GRURecurrence

GRU_IMPLS = ("auto", "torch", "triton")
#: ``impl="auto"``'s decisions on CUDA, per shape, dtype, device, layer configuration and grad mode
AUTO_CHOICE: Dict[tuple, str] = {}
#: timed repetitions (after one warm-up call) of each implementation in ``impl="auto"``'s check
AUTO_REPS = 5


class FastGRU(nn.GRU):
    """Batch-first GRU with ``nn.GRU``'s parameters and a choice of recurrence.

    Args:
        input_size: ``D``.
        hidden_size: ``H``.
        num_layers: stacked layers.
        bias: with ``bias_ih_l*`` and ``bias_hh_l*``.
        batch_first: must be ``True`` (accepted so that ``nn.GRU``'s call reads the same).
        dropout: dropout on each layer's output except the last, in training.
        impl: ``"torch"`` (``nn.GRU.forward``: cuDNN on CUDA), ``"triton"`` (the persistent
            kernels; a ``ValueError`` says why when they cannot run), or ``"auto"`` (torch, except
            on CUDA where the kernels apply and a one-time timing at the call's shape finds them
            faster).
        device, dtype: of the parameters, as for ``nn.GRU``.
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = True,
        dropout: float = 0.0,
        impl: str = "auto",
        device: Optional[torch.device] = None,
        dtype: Optional[torch.dtype] = None,
    ) -> None:
        if impl not in GRU_IMPLS:
            raise ValueError(f"impl must be one of {GRU_IMPLS}, got {impl!r}")
        if not batch_first:
            raise ValueError("FastGRU is batch-first only (batch_first=True)")
        super().__init__(input_size, hidden_size, num_layers, bias, True, dropout, device=device, dtype=dtype)
        self.impl = impl
        self.last_impl: Optional[str] = None  # what the last call ran, for reports

    @classmethod
    def from_gru(cls, gru: nn.GRU, impl: str = "auto") -> "FastGRU":
        """A ``FastGRU`` holding ``gru``'s very parameters (not copies: optimizers that hold them
        keep training them).

        Args:
            gru: a batch-first, unidirectional ``nn.GRU`` without projections.
            impl: as for the constructor.

        Returns:
            The new module, in ``gru``'s training mode.
        """
        if not gru.batch_first or gru.bidirectional or gru.proj_size:
            raise ValueError("only a batch-first, unidirectional nn.GRU without proj_size can be swapped")
        p = gru.weight_ih_l0
        fast = cls(
            gru.input_size, gru.hidden_size, gru.num_layers, gru.bias, True, gru.dropout, impl, p.device, p.dtype
        )
        for name in gru._flat_weights_names:
            setattr(fast, name, getattr(gru, name))  # nn.RNNBase.__setattr__ keeps _flat_weights in step
        fast.flatten_parameters()
        return fast.train(gru.training)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, impl={self.impl!r}"

    def forward(self, x: torch.Tensor, h0: Optional[torch.Tensor] = None) -> Tuple[torch.Tensor, torch.Tensor]:
        """Run all layers over all steps.

        ``impl="auto"`` on CUDA, where the kernels apply, times both implementations forward and
        backward (:data:`AUTO_REPS` calls each, ``torch.cuda.Event``) on the first call at each
        shape, dtype and device, on detached copies and with the RNG state restored, and keeps the
        faster (:data:`AUTO_CHOICE`); a new batch size (an epoch's last batch) is timed once more.

        Args:
            x: input sequence, batch first.
            h0: initial state per layer; zeros when ``None``.

        Returns:
            ``(out, h_n)``: the last layer's state at every step, and every layer's last state.

        Shape:
            - x: ``[B, L, D]``; h0: ``[num_layers, B, H]``
            - out: ``[B, L, H]``; h_n: ``[num_layers, B, H]``
        """
        impl = self._choose(x, h0)
        self.last_impl = impl
        if impl == "torch":
            return super().forward(x, h0)
        return self._triton_forward(x, h0)

    def _run_dtype(self, x: torch.Tensor) -> torch.dtype:
        """The dtype the recurrence runs in: autocast's where it is on (as for ``nn.GRU``), else ``x``'s."""
        if torch.is_autocast_enabled(x.device.type):
            return torch.get_autocast_dtype(x.device.type)
        return x.dtype

    def _why_not_triton(self, x: torch.Tensor, h0: Optional[torch.Tensor]) -> Optional[str]:
        """Why the Triton path cannot run this call, or ``None``."""
        if not isinstance(x, torch.Tensor) or x.dim() != 3:
            return "it takes a batched [B, L, D] tensor (no PackedSequence, no unbatched input)"
        if h0 is not None and tuple(h0.shape) != (self.num_layers, x.size(0), self.hidden_size):
            return f"h0 must be [{self.num_layers}, {x.size(0)}, {self.hidden_size}], got {list(h0.shape)}"
        return triton_gru.why_not(x.device, self._run_dtype(x), self.hidden_size)

    def _choose(self, x: torch.Tensor, h0: Optional[torch.Tensor]) -> str:
        """``"torch"`` or ``"triton"`` for this call (see :meth:`forward`)."""
        if self.impl == "torch":
            return "torch"
        reason = self._why_not_triton(x, h0)
        if self.impl == "triton":
            if reason is not None:
                raise ValueError(f"FastGRU(impl='triton') cannot run here: {reason}")
            return "triton"
        if reason is not None or not x.is_cuda:
            return "torch"
        return self._decide(x, h0)

    def _decide(self, x: torch.Tensor, h0: Optional[torch.Tensor]) -> str:
        """The faster implementation at this call's shape, timed once and cached."""
        grad = torch.is_grad_enabled()
        key = (tuple(x.shape), self._run_dtype(x), x.device, self.hidden_size, self.num_layers, self.bias, grad)
        if key not in AUTO_CHOICE:
            try:
                fast = self._time("triton", x, h0)
            except Exception as err:  # e.g. out of shared memory or registers on this GPU
                warnings.warn(
                    f"FastGRU: Triton kernels failed ({type(err).__name__}: {err}); using torch", stacklevel=3
                )
                AUTO_CHOICE[key] = "torch"
            else:
                AUTO_CHOICE[key] = "triton" if fast < self._time("torch", x, h0) else "torch"
        return AUTO_CHOICE[key]

    def _time(self, impl: str, x: torch.Tensor, h0: Optional[torch.Tensor]) -> float:
        """Milliseconds per call of ``impl`` (forward, and backward when grad is on) at this shape.

        Runs on detached inputs and takes gradients with ``torch.autograd.grad``, so no ``.grad``
        changes; the RNG state (dropout) is restored afterwards.
        """
        x = x.detach().requires_grad_(x.requires_grad)
        h0 = None if h0 is None else h0.detach().requires_grad_(h0.requires_grad)
        run = super().forward if impl == "torch" else self._triton_forward
        wrt: List[torch.Tensor] = [t for t in (x, h0) if t is not None and t.requires_grad]
        wrt += [p for p in self.parameters() if p.requires_grad]
        backward = torch.is_grad_enabled() and bool(wrt)

        def call() -> None:
            out, h_n = run(x, h0)
            if backward:
                torch.autograd.grad((out, h_n), wrt, (torch.ones_like(out), torch.ones_like(h_n)), allow_unused=True)

        with torch.random.fork_rng(devices=[x.device] if x.is_cuda else []):
            call()  # warm-up: compiles the kernels, picks cuDNN's algorithm
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            for _ in range(AUTO_REPS):
                call()
            end.record()
            end.synchronize()
        return start.elapsed_time(end) / AUTO_REPS

    def _triton_forward(self, x: torch.Tensor, h0: Optional[torch.Tensor]) -> Tuple[torch.Tensor, torch.Tensor]:
        """All layers through the Triton kernels (same arguments and returns as :meth:`forward`)."""
        dtype = self._run_dtype(x)
        with torch.autocast(device_type=x.device.type, enabled=False):
            out = x.to(dtype)
            hx = out.new_zeros(self.num_layers, out.size(0), self.hidden_size) if h0 is None else h0.to(dtype)
            last = []
            for k in range(self.num_layers):
                if k > 0 and self.dropout > 0 and self.training:
                    out = F.dropout(out, self.dropout, True)
                out = self._triton_layer(out, hx[k], k, dtype)
                last.append(out[:, -1])
            return out, torch.stack(last)

    def _triton_layer(self, x: torch.Tensor, h0: torch.Tensor, k: int, dtype: torch.dtype) -> torch.Tensor:
        """Layer ``k`` over ``x [B, L, D_k]`` from ``h0 [B, H]``; returns ``[B, L, H]``.

        ``b_ih`` and the r, z parts of ``b_hh`` go into the input matmul; the n part of ``b_hh``
        stays inside the recurrence, where ``r`` multiplies it.
        """
        hid = self.hidden_size
        w_ih = getattr(self, f"weight_ih_l{k}").to(dtype)
        w_hh = getattr(self, f"weight_hh_l{k}").to(dtype)
        if self.bias:
            b_ih = getattr(self, f"bias_ih_l{k}").to(dtype)
            b_hh = getattr(self, f"bias_hh_l{k}").to(dtype)
            b_gi = b_ih + torch.cat([b_hh[: 2 * hid], torch.zeros_like(b_hh[2 * hid :])])
            b_hn = b_hh[2 * hid :]
        else:
            b_gi, b_hn = None, w_hh.new_zeros(hid)
        gi = F.linear(x, w_ih, b_gi)
        return GRURecurrence.apply(gi, h0, w_hh, b_hn)


def swap_gru(module: nn.Module, impl: str = "auto") -> int:
    """Replace every batch-first, unidirectional ``nn.GRU`` inside ``module`` (at any depth) by a
    :class:`FastGRU` holding the same parameters (:meth:`FastGRU.from_gru`).

    ``nn.GRU`` modules that are not batch first, bidirectional or projected, and ``FastGRU``
    modules, are left as they are. A GRU registered twice becomes one ``FastGRU``, registered twice.

    Args:
        module: the model, changed in place.
        impl: the new modules' ``impl``.

    Returns:
        How many ``nn.GRU`` modules were replaced.
    """
    done: Dict[int, FastGRU] = {}

    def visit(parent: nn.Module) -> None:
        for name, child in list(parent.named_children()):
            if type(child) is nn.GRU and child.batch_first and not child.bidirectional and not child.proj_size:
                if id(child) not in done:
                    done[id(child)] = FastGRU.from_gru(child, impl)
                setattr(parent, name, done[id(child)])
            else:
                visit(child)

    visit(module)
    return len(done)
