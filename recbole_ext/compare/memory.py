"""Peak memory of one run: the GPU's allocator peak, or the process's resident-set peak read
from ``/proc`` (Linux)."""

from __future__ import annotations

import threading
from typing import Optional

import psutil
import torch

from recbole_ext.memory import release_memory


def _proc_status_mb(key: str) -> Optional[float]:
    """A ``kB`` line of ``/proc/self/status`` (``VmRSS``, ``VmHWM``) in MB, or None."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return None


def _rss_mb() -> Optional[float]:
    rss = _proc_status_mb("VmRSS")
    if rss is not None:
        return rss
    try:
        return psutil.Process().memory_info().rss / 2**20
    except Exception:  # noqa: BLE001
        return None


def _hwm_mb() -> Optional[float]:
    return _proc_status_mb("VmHWM")


def _reset_hwm() -> bool:
    """Reset the kernel's peak-RSS mark of this process (Linux >= 4.0); False where refused."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


class PeakMemory:
    """Peak memory of one model's training and test, in MiB.

    - GPU: ``torch.cuda.max_memory_allocated`` after ``reset_peak_memory_stats`` (tensors only,
      not the CUDA context or the allocator's cache); beside it ``peak_reserved_gib``, the
      allocator's peak reserved memory (``torch.cuda.max_memory_reserved``) in GiB, the figure
      RecBole's own log prints (``None`` on the CPU).
    - CPU: peak resident memory of the process while the model ran: the kernel's ``VmHWM`` after
      resetting it through ``/proc/self/clear_refs``; where that is refused, ``psutil``/``VmRSS``
      sampled every 20 ms by a thread. ``peak_mb`` is the growth over the resident memory at the
      start (Python, torch and the shared data set are already resident then and are not counted);
      ``peak_rss_mb`` is the whole process. Memory freed by an earlier model and kept by the
      allocator can hide part of the growth, so we collect garbage and ``malloc_trim`` first.
    """

    def __init__(self, device):
        self.device = torch.device(device)
        self.peak_mb: Optional[float] = None
        self.peak_rss_mb: Optional[float] = None
        self.peak_reserved_gib: Optional[float] = None
        self.method = ""
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._sampled = 0.0

    def __enter__(self) -> "PeakMemory":
        release_memory()
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self.method = "torch.cuda.max_memory_allocated"
            return self
        self.start_mb = _rss_mb() or 0.0
        if _reset_hwm() and _hwm_mb() is not None:
            self.method = "CPU peak RSS growth (VmHWM, reset per model)"
        else:
            self.method = "CPU peak RSS growth (sampled every 20 ms)"
            self._sampled = self.start_mb
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.02):
            self._sampled = max(self._sampled, _rss_mb() or 0.0)

    def __exit__(self, *exc) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.peak_mb = torch.cuda.max_memory_allocated(self.device) / 2**20
            self.peak_reserved_gib = torch.cuda.max_memory_reserved(self.device) / 2**30
            return
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            peak = max(self._sampled, _rss_mb() or 0.0)
        else:
            peak = _hwm_mb() or 0.0
        self.peak_rss_mb = peak
        self.peak_mb = max(0.0, peak - self.start_mb)
