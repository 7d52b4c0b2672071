"""Memory given back between runs of one process (a comparison's models, a tuning's trials)."""

import ctypes
import gc

import torch


def release_memory() -> None:
    """Collect garbage, empty the CUDA allocator's cache, and give freed heap back to the OS
    (``malloc_trim``, where the C library has it) so the next run's resident memory starts low."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass
