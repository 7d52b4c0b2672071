"""numpy 2 removed aliases (``np.float``, ``np.long``, ``np.float_``...) that RecBole 1.2.1 uses."""

from __future__ import annotations

import numpy as np

# numpy names RecBole 1.2.1 still uses (``np.float``, ``np.long``, ...) mapped to what they meant.
# RecBole sets these itself in ``compatibility_settings``, but reaches ``np.float_``, which
# numpy 2 removed, and crashes before the first line of config is read.
NUMPY_ALIASES = {
    "bool": "bool_",
    "int": "int_",
    "float": "float64",
    "complex": "complex128",
    "object": "object_",
    "str": "str_",
    "long": "int_",
    "unicode": "str_",
    "float_": "float64",
    "complex_": "complex128",
    "unicode_": "str_",
}


def restore_numpy_aliases() -> None:
    """Give numpy back the removed names RecBole's code uses, where they are missing."""
    for alias, target in NUMPY_ALIASES.items():
        if alias not in np.__dict__:
            setattr(np, alias, getattr(np, target))
