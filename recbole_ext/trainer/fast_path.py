"""The trainer's device fast path: no host read per training step, mixed precision, compilation.

- :class:`LossTotal` sums the per-step losses on their device (float64, in step order, the
  additions RecBole makes on the host), so an epoch reads the device once instead of calling
  ``.item()`` after every step; the logged totals are the same numbers.
- ``precision`` (``fp32`` default, ``tf32``, ``bf16``): ``bf16`` runs the model's forward passes
  (training and evaluation) under ``torch.autocast``; losses of the usual kinds autocast to
  float32 and evaluation scores are cast to float32 before the metrics. ``tf32`` lets float32
  matrix products, cuDNN convolutions and cuDNN RNNs use TensorFloat-32 on GPUs that have it
  (process-wide torch settings; no effect on CPUs); ``fp32`` and ``bf16`` switch all of them off
  (PyTorch's default leaves cuDNN's on).
- ``compile`` (``False`` default, ``True`` or a backend name): ``torch.compile`` of the model's
  ``forward`` (the encoder every loss and score goes through). On CUDA an RNN module (``nn.GRU``,
  ``nn.LSTM``) stays inside the compiled graph (Dynamo's ``allow_rnn``: the cuDNN recurrence is
  one extern call of the graph, forward and backward); elsewhere it is the one graph break, as
  PyTorch's default has it (on a CPU the recurrence would be unrolled step by step into the
  graph: GLINTRU at length 50 took 268 s to compile instead of 94 s).
"""

from __future__ import annotations

import contextlib
from typing import Optional, Tuple, Union

import torch

from recbole_ext.errors import ConfigError

PRECISIONS = ("fp32", "tf32", "bf16")


class LossTotal:
    """Running sum of an epoch's losses, kept on the device until :meth:`value` is read."""

    def __init__(self) -> None:
        self._sum: Optional[torch.Tensor] = None
        self._parts = False

    def add(self, losses: Union[torch.Tensor, Tuple[torch.Tensor, ...]]) -> torch.Tensor:
        """Add one step's loss (or tuple of loss parts); returns the loss to back-propagate."""
        if isinstance(losses, tuple):
            self._parts = True
            step = torch.stack([part.detach().to(torch.float64).reshape(()) for part in losses])
            loss = sum(losses)
        else:
            step = losses.detach().to(torch.float64).reshape(())  # one element, as .item() reads
            loss = losses
        self._sum = step if self._sum is None else self._sum + step
        return loss

    def value(self) -> Union[None, float, Tuple[float, ...]]:
        """The total (a tuple for loss parts), read from the device once; ``None`` if empty."""
        if self._sum is None:
            return None
        total = self._sum.tolist()
        return tuple(total) if self._parts else total


def check_precision(precision: Optional[str]) -> str:
    """The precision setting (``fp32`` when unset), or a ConfigError naming the choices."""
    precision = precision or "fp32"
    if precision not in PRECISIONS:
        raise ConfigError(f"invalid configuration: precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    return precision


def set_tf32(enabled: bool) -> None:
    """Allow (or not) TensorFloat-32 in float32 matrix products and in cuDNN (its convolutions
    and RNNs share one switch)."""
    torch.backends.cuda.matmul.allow_tf32 = enabled
    torch.backends.cudnn.allow_tf32 = enabled


def autocast(precision: str, device: torch.device):
    """``torch.autocast`` to bfloat16 for ``bf16``, else a context that does nothing."""
    if precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def rnn_in_graph(device: torch.device) -> bool:
    """Whether a compiled forward on ``device`` keeps RNN modules inside its graph (CUDA: the
    cuDNN RNN op is one node of the graph; see the module docstring)."""
    return device.type == "cuda"


def compile_forward(model: torch.nn.Module, setting, rnn: Optional[bool] = None) -> None:
    """``torch.compile`` the model's ``forward`` in place when ``setting`` asks for it.

    Args:
        model: the recommender; its ``forward`` is replaced by the compiled one on the instance
            (its parameters and ``state_dict`` are untouched).
        setting: ``False``/``None`` (nothing), ``True`` (the default backend, inductor) or a
            backend name such as ``"aot_eager"``.
        rnn: trace RNN modules into the graph; ``None``: :func:`rnn_in_graph` of the model's device.
    """
    if not setting:
        return
    backend = "inductor" if setting is True else str(setting)
    compiled = torch.compile(model.forward, backend=backend)
    if rnn is None:
        first = next(model.parameters(), None)
        rnn = first is not None and rnn_in_graph(first.device)
    if not rnn:
        model.forward = compiled
        return
    from torch import _dynamo  # noqa: PLC0415 - torch._dynamo takes seconds to import

    def forward(*args, **kwargs):
        with _dynamo.config.patch(allow_rnn=True):
            return compiled(*args, **kwargs)

    model.forward = forward
