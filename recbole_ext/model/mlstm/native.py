"""The mLSTM recurrence, forward and backward, as a C++ extension built on first use (``impl="native"``).

``csrc/mlstm_cpu.cpp`` runs the recurrence of one multiplicative-LSTM layer on the CPU.
``forward`` has the gate nonlinearities as loops the compiler vectorises and returns exactly the
tensors the TorchScript forward
(:func:`recbole_ext.model.mlstm.recurrence._mlstm_recurrence_fwd`) returns. ``backward`` is the
BPTT loop: per step one fused loop over the rows for all element-wise gate gradients (the
TorchScript backward spends most of its time on those small element-wise ops and their
allocations) and two ATen matmuls into buffers allocated once per call; it returns exactly what
:func:`recbole_ext.model.mlstm.recurrence._mlstm_recurrence_bwd` returns (which remains the
backward of ``impl="fused"``, on CUDA too, and the fallback). It needs a C++ compiler (and ninja) at run
time; the first use compiles it (about 30-70 s) into PyTorch's extension cache
(``$TORCH_EXTENSIONS_DIR``, default ``~/.cache/torch_extensions``). When it cannot be built, or
``RECBOLE_EXT_NO_NATIVE=1`` is set, :func:`native_extension` returns ``None`` and the layer uses
the TorchScript forward and backward (one warning, no error). PyTorch's builder waits as long as
its build folder holds a ``lock`` file; a process killed while building leaves one behind, so a
lock older than :data:`STALE_LOCK_S` is removed first (:func:`clear_stale_lock`).
"""

from __future__ import annotations

import os
import time
import warnings
from logging import getLogger
from typing import Optional

import torch

SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "csrc", "mlstm_cpu.cpp")
EXTENSION_NAME = "recbole_ext_mlstm_cpu"
CFLAGS = ["-O3", "-march=native", "-ffast-math"]
#: a build lock older than this (seconds) belongs to a build that died (a build takes about a minute)
STALE_LOCK_S = 600

_state = {"tried": False, "module": None, "error": None}


def native_extension():
    """The compiled extension, building it on the first call; ``None`` if it cannot be built."""
    if _state["tried"]:
        return _state["module"]
    _state["tried"] = True
    if os.environ.get("RECBOLE_EXT_NO_NATIVE"):
        _state["error"] = "RECBOLE_EXT_NO_NATIVE is set"
        return None
    try:
        from torch.utils.cpp_extension import load  # noqa: PLC0415 - the C++ builder loads on first use only

        getLogger().info("mLSTM: loading its C++ recurrence (compiled on first use, about 30 s)")
        clear_stale_lock(_build_directory())
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


def _build_directory() -> Optional[str]:
    """Where PyTorch's builder puts this extension (``None`` if this torch does not say)."""
    try:
        from torch.utils.cpp_extension import _get_build_directory  # noqa: PLC0415 - as load above

        return _get_build_directory(EXTENSION_NAME, verbose=False)
    except Exception:  # noqa: BLE001 - a private helper of torch's: without it, no clean-up
        return None


def clear_stale_lock(build_dir: Optional[str], now: Optional[float] = None) -> bool:
    """Remove ``build_dir/lock`` when it is older than :data:`STALE_LOCK_S` (a killed build's);
    returns whether it did. A younger lock is a build in progress and stays."""
    if not build_dir:
        return False
    lock = os.path.join(build_dir, "lock")
    try:
        age = (time.time() if now is None else now) - os.path.getmtime(lock)
    except OSError:
        return False
    if age <= STALE_LOCK_S:
        return False
    try:
        os.remove(lock)
    except OSError:
        return False
    getLogger().warning(f"mLSTM: removed a build lock left {age:.0f} s ago by a build that did not finish: {lock}")
    return True


def build_error() -> Optional[str]:
    """Why the extension is unavailable (``None`` if it loaded or was never tried)."""
    return _state["error"]


def native_applies(*tensors: torch.Tensor) -> bool:
    """Whether the C++ recurrence can run on these tensors (CPU, float32/float64)."""
    return all(t.device.type == "cpu" and t.dtype in (torch.float32, torch.float64) for t in tensors)


class BufferPool:
    """Reusable work buffers for the C++ recurrence's saved tensors (``hms``, ``ms``, ``acts``).

    Freshly allocated large CPU tensors are fresh pages: filling them page-faults, and for
    the buffers a training step saves this cost more than the recurrence itself (B=256, L=50,
    H=64: forward 27.6 ms with fresh buffers, 10.9 ms without the faults). Buffers are leased
    to one forward call and come back when its autograd node is freed (after ``backward``, or
    when the graph is dropped), never while a retained graph may still read them. Keyed by
    ``(batch, hidden, dtype)``; each buffer holds up to the longest sequence seen and is used
    through a leading-dimension slice (contiguous). At most ``keep`` free sets per key and
    ``max_keys`` keys are kept.
    """

    def __init__(self, keep: int = 2, max_keys: int = 4) -> None:
        self.keep = keep
        self.max_keys = max_keys
        self._free: "dict" = {}

    def take(self, length: int, batch: int, hidden: int, dtype: torch.dtype):
        """A lease on ``(hms, ms, acts)`` of shapes ``[length, batch, hidden]`` (twice) and
        ``[length, batch, 4 * hidden]``; drop the lease to return the buffers."""
        key = (batch, hidden, dtype)
        sets = self._free.get(key)
        while sets:
            full = sets.pop()
            if full[0].shape[0] >= length:
                break
        else:
            full = (
                torch.empty(length, batch, hidden, dtype=dtype),
                torch.empty(length, batch, hidden, dtype=dtype),
                torch.empty(length, batch, 4 * hidden, dtype=dtype),
            )
        return _Lease(self, key, full, length)

    def _give(self, key, full) -> None:
        sets = self._free.pop(key, [])
        if len(sets) < self.keep:
            sets.append(full)
        self._free[key] = sets  # most recently used last
        while len(self._free) > self.max_keys:
            self._free.pop(next(iter(self._free)))


class _Lease:
    """The buffers of one forward call; returned to the pool when garbage-collected."""

    __slots__ = ("pool", "key", "full", "views")

    def __init__(self, pool: BufferPool, key, full, length: int) -> None:
        self.pool, self.key, self.full = pool, key, full
        self.views = tuple(t[:length] for t in full)

    def __del__(self) -> None:
        self.pool._give(self.key, self.full)


POOL = BufferPool()
