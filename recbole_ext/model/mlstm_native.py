"""The mLSTM forward recurrence as a C++ extension, built on first use (``impl="native"``).

``csrc/mlstm_cpu.cpp`` runs the recurrence of one multiplicative-LSTM layer on the CPU with the
gate nonlinearities as loops the compiler vectorises; it computes exactly what the TorchScript
forward (:func:`recbole_ext.model.layers._mlstm_recurrence_fwd`) computes and returns the same
tensors, so the TorchScript backward pass is shared. It needs a C++ compiler (and ninja) at run
time; the first use compiles it (about 30 s) into PyTorch's extension cache
(``$TORCH_EXTENSIONS_DIR``, default ``~/.cache/torch_extensions``). When it cannot be built, or
``RECBOLE_EXT_NO_NATIVE=1`` is set, :func:`native_extension` returns ``None`` and the layer uses
the TorchScript forward (one warning, no error).
"""

from __future__ import annotations

import os
import warnings
from typing import Optional

import torch

SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "csrc", "mlstm_cpu.cpp")
EXTENSION_NAME = "recbole_ext_mlstm_cpu"
CFLAGS = ["-O3", "-march=native", "-ffast-math"]

_state = {"tried": False, "module": None, "error": None}


def native_extension(build: bool = True):
    """The compiled extension, building it on the first call; ``None`` if it cannot be built.

    Args:
        build: if False, only return an extension already loaded in this process.
    """
    if _state["tried"] or not build:
        return _state["module"]
    _state["tried"] = True
    if os.environ.get("RECBOLE_EXT_NO_NATIVE"):
        _state["error"] = "RECBOLE_EXT_NO_NATIVE is set"
        return None
    try:
        from logging import getLogger

        from torch.utils.cpp_extension import load

        getLogger().info("mLSTM: loading its C++ recurrence (compiled on first use, about 30 s)")
        _state["module"] = load(name=EXTENSION_NAME, sources=[SOURCE], extra_cflags=CFLAGS, verbose=False)
    except Exception as exc:  # no compiler, no ninja, no headers: fall back, say so once
        _state["error"] = f"{type(exc).__name__}: {str(exc).strip().splitlines()[-1] if str(exc).strip() else ''}"
        warnings.warn(
            f"mLSTM: the C++ recurrence could not be built ({_state['error']}); "
            "using the TorchScript one (same results, slower)",
            RuntimeWarning,
            stacklevel=2,
        )
    return _state["module"]


def build_error() -> Optional[str]:
    """Why the extension is unavailable (``None`` if it loaded or was never tried)."""
    return _state["error"]


def native_applies(*tensors: torch.Tensor) -> bool:
    """Whether the C++ recurrence can run on these tensors (CPU, float32/float64)."""
    return all(t.device.type == "cpu" and t.dtype in (torch.float32, torch.float64) for t in tensors)
