"""Evaluation on the ranks of a data-parallel run: each rank a contiguous share of the rows, the
metrics from every rank's gathered per-user rows.

RecBole 1.2.1 evaluates through a padding ``DistributedSampler`` (some users twice) and averages
per-batch metrics across ranks. Here each rank evaluates its own share of the rows, none padded
(:func:`shard_loader`), and the collector's per-row entries are gathered before the metrics are
computed (:func:`gather_struct`), so a data-parallel run's metrics equal one process's.
"""

from __future__ import annotations

import torch

from recbole_ext.distributed import all_gather

#: the evaluation collector's keys that hold one row per evaluated user or row
PER_ROW_KEYS = ("rec.items", "rec.topk", "rec.meanrank", "rec.score", "data.label")


def shard_bounds(n: int, rank_: int, world: int) -> range:
    """The contiguous share of ``n`` rows that rank ``rank_`` of ``world`` evaluates (shares
    differ in size by at most one; none is padded)."""
    return range(n * rank_ // world, n * (rank_ + 1) // world)


def shard_loader(loader, rank_: int, world: int) -> None:
    """Make an evaluation loader built as for one process iterate only this rank's share.

    A RecBole loader is a ``torch.utils.data.DataLoader`` over the list ``range(sample_size)``
    of row (or user) indices, read in order; the list is cut in place to this rank's share, so
    batches, the loader's length and its ``collate_fn`` all follow.
    """
    indices = loader.__dict__["dataset"]  # RecBole maps the attribute `dataset` to its data set
    share = shard_bounds(len(indices), rank_, world)
    indices[:] = [indices[i] for i in share]


def gather_struct(struct) -> None:
    """Replace the per-row entries of an evaluation ``DataStruct`` (RecBole's collector, this
    rank's share) by all ranks' rows in rank order: the full evaluation, as one process has it."""
    local = {k: struct._data_dict[k] for k in PER_ROW_KEYS if k in struct._data_dict}
    parts = all_gather(local)
    for key in sorted({k for part in parts for k in part}):
        pieces = [part[key] for part in parts if key in part and part[key].numel() > 0]
        if pieces:
            struct._data_dict[key] = torch.cat(pieces, dim=0)
