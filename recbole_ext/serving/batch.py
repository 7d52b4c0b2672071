"""Batch recommendations: ``user<TAB>item item item`` lines in, ``user, rank, item, score`` rows
(TSV with a header) out, written atomically."""

from __future__ import annotations

import os
from typing import Dict, List, Union

from recbole_ext.errors import UserError
from recbole_ext.fileio import atomic_open
from recbole_ext.serving.recommender import Recommendation, Recommender, _as_recommender


def read_histories(path: str) -> Dict[str, List[str]]:
    """Read ``user<TAB>item item item`` lines (blank lines and ``#`` comments skipped)."""
    histories: Dict[str, List[str]] = {}
    try:
        f = open(path, encoding="utf-8")
    except OSError as e:
        raise UserError(f"cannot read items file {path}: {e.strerror}") from None
    with f:
        for n, line in enumerate(f, 1):
            line = line.rstrip("\n")
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            if "\t" not in line:
                raise UserError(f"{path}:{n}: expected 'user<TAB>item item ...', got {line[:60]!r}")
            user, items = line.split("\t", 1)
            histories[user.strip()] = items.replace(",", " ").split()
    return histories


def write_recommendations(path: str, recs: Dict[str, Recommendation]) -> None:
    """Write ``user, rank, item, score`` TSV rows (with a header) atomically."""
    with atomic_open(path, "w", suffix=".tsv") as f:
        f.write("user\trank\titem\tscore\n")
        for user, rows in recs.items():
            for rank, (item, score) in enumerate(rows, 1):
                f.write(f"{user}\t{rank}\t{item}\t{score:.6g}\n")


def recommend_file(
    checkpoint: Union[str, os.PathLike, Recommender],
    items_file: str,
    output: str,
    k: int = 10,
    exclude_seen: bool = False,
    trust_checkpoint: bool = False,
) -> Dict[str, Recommendation]:
    """Batch form: histories from ``items_file``, top-k rows to ``output`` (see the module docstring)."""
    rec = _as_recommender(checkpoint, trust_checkpoint)
    recs = rec.recommend_many(read_histories(items_file), k, exclude_seen)
    write_recommendations(output, recs)
    return recs
