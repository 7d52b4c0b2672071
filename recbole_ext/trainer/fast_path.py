"""The trainer's device fast path: no host read per training step, mixed precision, compilation.

- :class:`LossTotal` sums the per-step losses on their device (float64, in step order, the
  additions RecBole makes on the host), so an epoch reads the device once instead of calling
  ``.item()`` after every step; the logged totals are the same numbers.
- ``precision`` (``fp32`` default, ``tf32``, ``bf16``): ``bf16`` runs the model's forward passes
  (training and evaluation) under ``torch.autocast``; losses of the usual kinds autocast to
  float32 and evaluation scores are cast to float32 before the metrics. ``tf32`` lets float32
  matrix products and convolutions use TensorFloat-32 on GPUs that have it (a process-wide torch
  setting; no effect on CPUs).
- ``compile`` (``False`` default, ``True`` or a backend name): ``torch.compile`` of the model's
  ``forward`` (the encoder every loss and score goes through).
"""

from __future__ import annotations

import contextlib
from typing import Optional, Tuple, Union

import torch

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
    """The precision setting (``fp32`` when unset), or a ``ValueError`` naming the choices."""
    precision = precision or "fp32"
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    return precision


def set_tf32(enabled: bool) -> None:
    """Allow (or not) TensorFloat-32 in float32 matrix products and cuDNN convolutions."""
    torch.backends.cuda.matmul.allow_tf32 = enabled
    torch.backends.cudnn.allow_tf32 = enabled


def autocast(precision: str, device: torch.device):
    """``torch.autocast`` to bfloat16 for ``bf16``, else a context that does nothing."""
    if precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def compile_forward(model: torch.nn.Module, setting) -> None:
    """``torch.compile`` the model's ``forward`` in place when ``setting`` asks for it.

    Args:
        model: the recommender; its ``forward`` is replaced by the compiled one on the instance
            (its parameters and ``state_dict`` are untouched).
        setting: ``False``/``None`` (nothing), ``True`` (the default backend, inductor) or a
            backend name such as ``"aot_eager"``.
    """
    if not setting:
        return
    backend = "inductor" if setting is True else str(setting)
    model.forward = torch.compile(model.forward, backend=backend)
