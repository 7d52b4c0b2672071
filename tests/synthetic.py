"""Small generated data for the tests and for ``benchmarks/gpu_suite.py --smoke`` (no pytest here,
so the suite can import it on a machine without pytest)."""

from __future__ import annotations

import os

import numpy as np


def write_inter(folder: str, name: str, rows, header=("user_id:token", "item_id:token", "timestamp:float")) -> str:
    """Write an atomic ``.inter`` file ``folder/name/name.inter``; returns ``folder``."""
    d = os.path.join(folder, name)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, f"{name}.inter"), "w") as f:
        f.write("\t".join(header) + "\n")
        for r in rows:
            f.write("\t".join(str(x) for x in r) + "\n")
    return folder


def rule_sequences(n_users: int = 200, n_items: int = 40, length: int = 20, seed: int = 0):
    """Sequences where the next item is ``perm[current]`` 90% of the time (else random)."""
    rng = np.random.default_rng(seed)
    perm = rng.permutation(np.arange(1, n_items + 1))
    rows = []
    for u in range(1, n_users + 1):
        item = int(rng.integers(1, n_items + 1))
        for t in range(length):
            rows.append((u, item, t))
            item = int(perm[item - 1]) if rng.random() < 0.9 else int(rng.integers(1, n_items + 1))
    return rows
