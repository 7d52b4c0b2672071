"""Whether the devices a command names exist on this machine: ``--device`` (one device) and
``--devices`` (CUDA indices, one process each), checked before any work starts."""

from __future__ import annotations

import os
from typing import Sequence, Tuple

from recbole_ext.errors import UserError


def cuda_indices() -> Tuple[str, ...]:
    """The CUDA device indices ``CUDA_VISIBLE_DEVICES`` may name here: those it lists when it
    is set, else ``0 .. count - 1``; none without CUDA."""
    import torch  # noqa: PLC0415 - argument checks stay torch-free but a device's

    if not torch.cuda.is_available():
        return ()
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        return tuple(d.strip() for d in listed.split(",") if d.strip().isdigit())
    return tuple(str(i) for i in range(torch.cuda.device_count()))


def check_device(name: str) -> None:
    """``name`` is ``cpu`` or a CUDA device this machine has (a one-line UserError otherwise)."""
    import torch  # noqa: PLC0415 - argument checks stay torch-free but a device's

    try:
        device = torch.device(name)
    except RuntimeError:
        device = None
    if device is None or device.type not in ("cpu", "cuda"):
        raise UserError(f"--device {name} is not a device: cpu, cuda or cuda:N")
    visible = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if device.type == "cuda" and (device.index or 0) >= visible:
        raise UserError(f"--device {name}: this machine has {visible} CUDA device(s)")


def check_device_indices(value: str, devices: Sequence[str]) -> None:
    """Each of ``devices`` (``--devices``, given as ``value``) is a CUDA index of this machine
    (:func:`cuda_indices`): a run is never started on the CPU in place of a device named."""
    present = cuda_indices()
    missing = [d for d in devices if d not in present]
    if missing:
        have = f"CUDA devices {','.join(present)}" if present else "no CUDA device"
        raise UserError(f"--devices {value}: this machine has {have}; leave --devices out to run on the CPU")
