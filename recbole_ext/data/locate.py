"""Find a data set's atomic files offline, or say clearly where they were looked for.

RecBole downloads a missing data set after asking on stdin, from links that no longer work.
recbole_ext looks in these places, in order, and uses the first folder that holds
``<dataset>.inter``:

1. ``<data_path>/<dataset>/`` with the ``data_path`` the user configured (default ``datasets/``);
2. ``datasets/<dataset>/`` in the current folder and beside the package (a source checkout);
3. ``../shared/datasets/<dataset>/`` beside the current folder and beside the checkout;
4. RecBole's bundled example data (``recbole/dataset_example/<dataset>``, ml-100k only).

If none has it, :class:`~recbole_ext.errors.DatasetNotFoundError` lists every path tried and
how to get the data; :class:`recbole_ext.config.Config` then fetches a registry data set
(:mod:`recbole_ext.data.fetch`).
"""

from __future__ import annotations

import os
from typing import List, Optional

from recbole_ext.errors import DatasetNotFoundError
from recbole_ext._paths import RECBOLE_DIR, REPO_DIR


def candidate_dirs(dataset: str, data_path: Optional[str]) -> List[str]:
    roots = []
    if data_path:
        roots.append(data_path)
    for base in (os.getcwd(), REPO_DIR):
        roots.append(os.path.join(base, "datasets"))
    for base in (os.getcwd(), REPO_DIR):
        roots.append(os.path.join(base, "..", "shared", "datasets"))
    roots.append(os.path.join(RECBOLE_DIR, "dataset_example"))
    seen, dirs = set(), []
    for root in roots:
        d = os.path.normpath(os.path.join(root, dataset))
        if d not in seen:
            seen.add(d)
            dirs.append(d)
    return dirs


def locate_dataset(dataset: str, data_path: Optional[str]) -> str:
    """Return the folder holding ``<dataset>.inter`` (see the module docstring for the order)."""
    tried = candidate_dirs(dataset, data_path)
    for d in tried:
        if os.path.isfile(os.path.join(d, f"{dataset}.inter")):
            return d
    raise DatasetNotFoundError(
        f"data set '{dataset}' not found: no {dataset}.inter in "
        + ", ".join(tried)
        + f". Put RecBole atomic files at datasets/{dataset}/{dataset}.inter (see datasets/README.md), "
        "set data_path, convert raw files with 'recbole-ext convert', or name a data set of the "
        "registry ('recbole-ext data list'), which fetches itself"
    )
