"""A data set's counts as the paper's Table 1 prints them, beside the paper's.

The paper counts users and items with RecBole's padding id (one more than the file holds);
:func:`our_counts` gives the data set's counts (:func:`recbole_ext.data.stats.interaction_counts`)
in the same convention, and :func:`paper_file_counts` the paper's as a file holds them, for the
setting line's comparison (:func:`recbole_ext.reproduce.resolved.copy_sentence`).
"""

from __future__ import annotations

from typing import Dict, Optional

from recbole_ext.data.stats import interaction_counts, read_interactions
from recbole_ext.reproduce.preset import DatasetPreset, PaperTable

#: the columns the paper counts with the padding id
PADDED = ("users", "items")
#: the columns compared to tell a copy from the paper's data set
COMPARED = ("users", "items", "interactions")


def counts_table(section: DatasetPreset) -> Optional[PaperTable]:
    """The data set's counts table of the preset (kind ``dataset``), if it has one."""
    return next((t for t in section.tables.values() if t.kind == "dataset"), None)


def our_counts(folder: str, name: str) -> Dict[str, float]:
    """``folder/name.inter``'s counts in Table 1's columns and units: users and items with the
    padding id, interactions, interactions per user, sparsity in percent (without the padding
    id, as the paper computes it)."""
    counts = interaction_counts(read_interactions(folder, name))
    users, items, n = int(counts["users"]), int(counts["items"]), int(counts["interactions"])
    return {
        "users": users + 1,
        "items": items + 1,
        "interactions": n,
        "avg_length": n / max(users, 1),
        "sparsity": 100.0 * (1 - n / max(users * items, 1)),
    }


def file_counts(counts: Dict[str, float]) -> Dict[str, int]:
    """Users, items and interactions as a file holds them (the padding id taken off)."""
    return {k: int(counts[k]) - (1 if k in PADDED else 0) for k in COMPARED if counts.get(k) is not None}


def paper_file_counts(section: DatasetPreset) -> Dict[str, int]:
    """The paper's Table 1 counts of ``section`` as a file holds them (``{}`` without a table)."""
    table = counts_table(section)
    if table is None or section.name not in table.rows:
        return {}
    return file_counts({c: table.value(section.name, c) for c in table.columns if c in COMPARED})
