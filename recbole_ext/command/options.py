"""The option values every request shares: lists, seeds, devices, output folders, required options."""

from __future__ import annotations

from typing import List, Optional, Tuple

from recbole_ext.devices import check_device_indices
from recbole_ext.errors import UserError
from recbole_ext.fileio import folder_problem


def split_list(value: Optional[str]) -> List[str]:
    """``"a, b,c"`` -> ``["a", "b", "c"]`` (empty entries dropped)."""
    return [v.strip() for v in (value or "").split(",") if v.strip()]


def option_key(arg: str) -> Optional[str]:
    """The key of a ``--key=value`` string, or ``None`` for any other form."""
    return arg[2:].split("=", 1)[0] if arg.startswith("--") and "=" in arg else None


def parse_seeds(value: Optional[str]) -> Optional[Tuple[int, ...]]:
    """``"1,2,3"`` -> ``(1, 2, 3)``; ``None`` for no value."""
    if not value:
        return None
    try:
        return tuple(int(s) for s in split_list(value))
    except ValueError:
        raise UserError(f"--seeds takes integers separated by commas, got '{value}'") from None


def parse_devices(value: Optional[str]) -> Tuple[str, ...]:
    """``"0,1"`` -> ``("0", "1")``; each a device index (what ``CUDA_VISIBLE_DEVICES`` takes)."""
    devices = tuple(split_list(value))
    if any(not d.isdigit() for d in devices) or len(set(devices)) != len(devices):
        raise UserError(f"--devices takes distinct device indices separated by commas, got '{value}'")
    if devices:  # no device is looked for (nor torch imported) when none is named
        check_device_indices(value, devices)
    return devices


def writable_folder(option: str, folder: Optional[str]) -> None:
    """``folder`` (an output folder an option names) is a folder or can be made, and takes files."""
    problem = folder_problem(folder) if folder else None
    if problem:
        raise UserError(f"{option}: {problem}")


def need(what: str, value, hint: str) -> None:
    """A required option is there: else one line naming it and how to give it."""
    if not value:
        raise UserError(f"no {what} given: {hint}")
