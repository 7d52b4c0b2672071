"""Figures of a data set's atomic files, for ``recbole-ext data stats NAME``."""

from __future__ import annotations

import hashlib
import os
from typing import Dict

import pandas as pd

from recbole_ext.data.atomic_files import check_interaction_columns, read_atomic_columns, read_header
from recbole_ext.data.cards import data_card
from recbole_ext.data.fetch import file_sha256
from recbole_ext.data.temporal_split import run_times


def interaction_counts(inter: pd.DataFrame) -> Dict[str, object]:
    """Users, items and interactions as the file holds them (no padding id), the mean and
    longest user sequence, and the sparsity ``1 - interactions / (users * items)``
    (``inter``: :func:`read_interactions`)."""
    per_user = inter.groupby("user_id").size()
    users, items, n = len(per_user), int(inter["item_id"].nunique()), len(inter)
    return {
        "users": users,
        "items": items,
        "interactions": n,
        "mean_sequence_length": round(n / max(users, 1), 2),
        "max_sequence_length": int(per_user.max() if users else 0),
        "sparsity": round(1 - n / max(users * items, 1), 6),
    }


def dataset_stats(folder: str, name: str) -> Dict[str, object]:
    """:func:`interaction_counts`, the held-out items of a leave-one-out split by time
    (:func:`held_out_stats`, when there is a timestamp column), the data set's card
    (:func:`recbole_ext.data.cards.data_card`: leakage, sequentiality, popularity) and the
    sha256 of every atomic file of ``folder/name.*``."""
    inter = read_interactions(folder, name)
    figures = interaction_counts(inter)
    if "timestamp" in inter.columns and figures["users"]:
        figures["held_out"] = held_out_stats(inter)
    if figures["users"]:
        figures.update(data_card(inter))
    files = sorted(f for f in os.listdir(folder) if f.startswith(name + ".") and not f.endswith(".json"))
    figures["sha256"] = {f: file_sha256(os.path.join(folder, f)) for f in files}
    return figures


def read_interactions(folder: str, name: str) -> pd.DataFrame:
    """``user_id``, ``item_id`` and (when the file has it) ``timestamp`` of ``folder/name.inter``
    in file order, ids as text and times as numbers, read and checked as training reads them
    (:func:`recbole_ext.data.atomic_files.read_atomic_columns`): a malformed file is one
    DataFormatError here as there."""
    path = os.path.join(folder, f"{name}.inter")
    header = read_header(path, "\t", "utf-8")
    fields = {field: ftype for _, field, ftype in header}
    time_field = "timestamp" if "timestamp" in fields else None
    check_interaction_columns(path, fields, None, "user_id", "item_id", time_field)
    chosen = [entry for entry in header if entry[1] in ("user_id", "item_id", time_field)]
    return read_atomic_columns(path, "\t", "utf-8", header, chosen, time_field)


def held_out_stats(inter: pd.DataFrame) -> Dict[str, object]:
    """The test and validation items of a leave-one-out split in time order (each user's last
    and second-to-last interaction; times compared as a run compares them (float32,
    :func:`recbole_ext.data.temporal_split.run_times`), equal times in file order, as RecBole's
    stable sort keeps them):
    how often equal times decide them, their popularity (interactions in the file, which the
    ``pop100`` negatives follow), and a hash of the ``(user, test item)`` pairs. Two copies of a
    data set with the same ids hold out the same items exactly when the hashes agree; with other
    ids, the tie shares and popularity figures still compare.

    Args:
        inter: ``user_id``, ``item_id`` and ``timestamp`` columns (strings), in file order.
    """
    frame = inter.assign(_t=run_times(inter["timestamp"]), _row=range(len(inter)))
    frame = frame.sort_values(["user_id", "_t", "_row"], kind="stable")
    popularity = frame["item_id"].map(frame["item_id"].value_counts())
    rank = frame.groupby("user_id").cumcount(ascending=False)  # 0: the last interaction
    last, second = frame[rank == 0], frame[rank == 1]
    prev_time = frame["_t"].where(rank == 1).groupby(frame["user_id"]).max()
    third_time = frame["_t"].where(rank == 2).groupby(frame["user_id"]).max()
    test_tied = (last.set_index("user_id")["_t"] == prev_time.reindex(last["user_id"]).values).mean()
    valid_tied = (second.set_index("user_id")["_t"] == third_time.reindex(second["user_id"]).values).mean()
    pairs = "\n".join(f"{u}\t{i}" for u, i in sorted(zip(last["user_id"], last["item_id"])))
    return {
        "test_time_tied_share": round(float(test_tied), 4),
        "valid_time_tied_share": round(float(valid_tied), 4),
        "test_item_popularity_mean": round(float(popularity[rank == 0].mean()), 2),
        "test_item_popularity_median": float(popularity[rank == 0].median()),
        "valid_item_popularity_mean": round(float(popularity[rank == 1].mean()), 2),
        "test_pairs_sha256": hashlib.sha256(pairs.encode()).hexdigest(),
    }
