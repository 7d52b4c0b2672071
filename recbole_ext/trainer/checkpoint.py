"""Checkpoints that hold only tensors and plain data.

RecBole pickles its whole ``Config`` (enums, ``torch.device``) into checkpoints. torch >= 2.6
loads with ``weights_only=True`` by default and refuses those files, and loading them with
``weights_only=False`` runs whatever code a tampered file holds. Ours hold plain types only,
are written atomically (temporary file in the same folder, then ``os.replace``) and are read
with ``weights_only=True``.
"""

from __future__ import annotations

import enum
import os
import tempfile
from typing import Any

import numpy as np
import torch


def to_plain(obj: Any) -> Any:
    """Convert config values to types ``torch.load(weights_only=True)`` accepts."""
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if isinstance(obj, enum.Enum):
        return obj.name
    if isinstance(obj, torch.device):
        return str(obj)
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu()
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, dict):
        return {str(k): to_plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set)):
        return [to_plain(v) for v in obj]
    return str(obj)


def atomic_torch_save(obj: Any, path: str) -> None:
    """``torch.save`` to a temporary file beside ``path``, fsync, then rename over ``path``."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".pth", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def safe_load(path: str, map_location=None) -> dict:
    """Load a checkpoint with ``weights_only=True`` (no code can run)."""
    return torch.load(path, map_location=map_location, weights_only=True)
