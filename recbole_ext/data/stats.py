"""Figures of a data set's atomic files, for ``recbole-ext data stats NAME``."""

from __future__ import annotations

import os
from typing import Dict

import pandas as pd

from recbole_ext.data.fetch import file_sha256
from recbole_ext.errors import DataFormatError


def dataset_stats(folder: str, name: str) -> Dict[str, object]:
    """Users, items, interactions, mean and longest user sequence, sparsity, and the sha256 of
    every atomic file of ``folder/name.*``."""
    path = os.path.join(folder, f"{name}.inter")
    header = pd.read_csv(path, sep="\t", nrows=0).columns
    cols = {c.split(":")[0]: c for c in header}
    if "user_id" not in cols or "item_id" not in cols:
        raise DataFormatError(f"{path}: needs user_id and item_id columns, has {list(cols)}")
    inter = pd.read_csv(path, sep="\t", usecols=[cols["user_id"], cols["item_id"]], dtype=str)
    per_user = inter.groupby(cols["user_id"]).size()
    users, items, n = len(per_user), int(inter[cols["item_id"]].nunique()), len(inter)
    files = sorted(f for f in os.listdir(folder) if f.startswith(name + ".") and not f.endswith(".json"))
    return {
        "users": users,
        "items": items,
        "interactions": n,
        "mean_sequence_length": round(n / max(users, 1), 2),
        "max_sequence_length": int(per_user.max() if users else 0),
        "sparsity": round(1 - n / max(users * items, 1), 6),
        "sha256": {f: file_sha256(os.path.join(folder, f)) for f in files},
    }
