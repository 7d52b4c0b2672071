"""Full-ranking evaluation whose memory does not grow with the catalogue.

RecBole scores a batch against every item at once (``[rows, n_items]`` floats) and its
collector adds an int32 matrix of the same shape to find the positives in the top-k: at
10^6 items a batch of 4096 sequences needs over 30 GB. Here:

- :class:`TopKCollector` (RecBole's ``Collector``) collects a one-shot batch as RecBole does
  (``torch.topk``), and a chunked batch's top-k (taken under the tie rule of
  :mod:`recbole_ext.evaluation.topk`) by finding the positives among the top-k ids, so no
  positives matrix is built.
- :class:`ChunkedFullSortMixin` (in the trainer) keeps RecBole's one-shot scores while
  ``rows x n_items x 16`` bytes (the float32 scores and their int64 rank keys at the peak) fit in
  ``full_sort_memory_mb``; above it, it returns the top-k itself, computed in item chunks of that
  size when the model gives its scores as a :class:`~recbole_ext.model.linear_head.LinearHead`
  (``full_sort_head``), else in row chunks of ``full_sort_predict``. Item 0 and each row's
  history are excluded as RecBole excludes them. The chunked top-k equals the one-shot top-k
  under the same tie rule (:func:`~recbole_ext.evaluation.topk.topk_items`), ties included;
  only where scores tie at the k-th place can it differ from ``torch.topk``'s arbitrary pick.
  An evaluation that needs every score (GAUC's mean rank) stays one-shot.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Optional, Tuple

import numpy as np
import torch
from recbole.evaluator import Collector

from recbole_ext.evaluation.topk import TopKMerger, topk_items

#: bytes per (row, item) of a top-k at its peak: the float32 score, its int64 rank key and an int32 step
BYTES_PER_SCORE = 16


class TopK(NamedTuple):
    """A batch's top-k items, handed to :class:`TopKCollector` in place of its scores.

    Shape:
        items ``[rows, k]`` (int64 item ids, best first).
    """

    items: torch.Tensor


class TopKCollector(Collector):
    """RecBole's ``Collector``, which also takes a :class:`TopK` (a chunked evaluation's top-k)
    in place of a batch's scores: then ``rec.items`` and ``rec.topk`` come from it, and no
    ``[rows, n_items]`` positives matrix is built. A batch of scores is RecBole's own collection."""

    def eval_batch_collect(self, scores_tensor, interaction, positive_u, positive_i) -> None:
        """Collect one batch (RecBole's signature; ``scores_tensor`` may be a :class:`TopK`).

        Shape:
            scores_tensor ``[rows, n_items]`` or a :class:`TopK`; positive_u, positive_i ``[positives]``.
        """
        if not isinstance(scores_tensor, TopK):
            super().eval_batch_collect(scores_tensor, interaction, positive_u, positive_i)
            return
        if self.register.need("rec.items"):
            self.data_struct.update_tensor("rec.items", scores_tensor.items)
        if self.register.need("rec.topk"):
            self.data_struct.update_tensor("rec.topk", topk_hits(scores_tensor.items, positive_u, positive_i))


def topk_hits(items: torch.Tensor, positive_u: torch.Tensor, positive_i: torch.Tensor) -> torch.Tensor:
    """RecBole's ``rec.topk`` row: 1 where a top-k item is a positive, then the positives' count.

    Shape:
        items ``[rows, k]``; positive_u, positive_i ``[positives]``; output ``[rows, k + 1]`` int64.
    """
    rows = items.shape[0]
    span = int(max(int(items.max()) if items.numel() else 0, int(positive_i.max()) if positive_i.numel() else 0)) + 1
    device = items.device
    pairs = torch.unique(positive_u.to(device).long() * span + positive_i.to(device).long())  # a pair counts once
    row_ids = torch.arange(rows, device=device).unsqueeze(1)
    hits = torch.isin(row_ids * span + items, pairs).int()
    counts = torch.bincount(pairs // span, minlength=rows)[:rows].unsqueeze(1)
    return torch.cat([hits, counts], dim=1)  # int64, as RecBole's (its int32 sum is int64)


def one_shot_fits(rows: int, n_items: int, memory_mb: float) -> bool:
    """Whether a batch's one-shot scores and rank keys fit in ``memory_mb`` MiB."""
    return rows * n_items * BYTES_PER_SCORE <= memory_mb * 2**20


def chunk_items(rows: int, memory_mb: float, k: int) -> int:
    """Items per chunk so that a chunk's scores and keys fit in ``memory_mb`` (at least ``k``)."""
    return max(k, int(memory_mb * 2**20) // (max(rows, 1) * BYTES_PER_SCORE))


def mask_excluded(scores: torch.Tensor, first_item: int, history: Optional[Tuple[torch.Tensor, torch.Tensor]]) -> None:
    """Set item 0 and the history's (row, item) pairs of this chunk to -inf, in place.

    Shape:
        scores ``[rows, chunk]``, items ``first_item ..``; history ``([h], [h])`` or None.
    """
    if first_item == 0:
        scores[:, 0] = -np.inf
    if history is not None:
        rows, items = history
        inside = (items >= first_item) & (items < first_item + scores.shape[1])
        scores[rows[inside], items[inside] - first_item] = -np.inf


def topk_in_item_chunks(
    head: Any, n_items: int, k: int, memory_mb: float, history: Optional[Tuple[torch.Tensor, torch.Tensor]] = None
) -> torch.Tensor:
    """The top-k of a :class:`~recbole_ext.model.linear_head.LinearHead`'s scores over items
    ``0 .. n_items - 1``, item chunk by item chunk, item 0 and ``history`` excluded.

    Args:
        head: the scores in parts (``head.scores(start, stop)``).
        n_items: the catalogue's size, item 0 (padding) included.
        k: how many items per row.
        memory_mb: the most memory one chunk's scores and rank keys take.
        history: ``(rows, items)`` pairs excluded, or None.

    Returns:
        The item ids, best first, under the tie rule of :mod:`recbole_ext.evaluation.topk`.

    Shape:
        head.query ``[rows, d]``; output ``[rows, min(k, n_items)]``.
    """
    merger = TopKMerger(k)
    step = chunk_items(head.query.shape[0], memory_mb, k)
    for start in range(0, n_items, step):
        scores = head.scores(start, min(start + step, n_items)).float()
        mask_excluded(scores, start, history)
        merger.add(scores, start)
    return merger.items()


class ChunkedFullSortMixin:
    """Put in front of a RecBole trainer: ``_full_sort_batch_eval`` in chunks above
    ``full_sort_memory_mb`` (see the module docstring), and :class:`TopKCollector`."""

    def __init__(self, config, model) -> None:
        super().__init__(config, model)
        self.eval_collector = TopKCollector(config)
        self.full_sort_memory_mb: float = float(config["full_sort_memory_mb"] or np.inf)

    def _full_sort_batch_eval(self, batched_data):
        """RecBole's batch (scores as float32), or a :class:`TopK` in place of the scores."""
        interaction, history_index, positive_u, positive_i = batched_data
        rows, n_items = len(interaction), self.tot_item_num
        if one_shot_fits(rows, n_items, self.full_sort_memory_mb) or self.eval_collector.register.need("rec.meanrank"):
            interaction, scores, positive_u, positive_i = super()._full_sort_batch_eval(batched_data)
            return interaction, scores.float(), positive_u, positive_i
        k = max(self.eval_collector.topk)
        interaction = interaction.to(self.device)
        history = None if history_index is None else tuple(h.to(self.device) for h in history_index)
        head = getattr(self.model, "full_sort_head", None)
        if head is not None:
            items = topk_in_item_chunks(head(interaction), self.tot_item_num, k, self.full_sort_memory_mb, history)
        else:
            items = self._topk_in_row_chunks(interaction, history, rows, k)
        return interaction, TopK(items), positive_u, positive_i

    def _topk_in_row_chunks(self, interaction, history, rows: int, k: int) -> torch.Tensor:
        """Top-k of ``full_sort_predict``, a few rows at a time. Shape: ``[rows, k]``."""
        step = max(1, int(self.full_sort_memory_mb * 2**20) // (self.tot_item_num * BYTES_PER_SCORE))
        out = []
        for start in range(0, rows, step):
            stop = min(start + step, rows)
            scores = self.model.full_sort_predict(interaction[torch.arange(start, stop)])
            scores = scores.view(-1, self.tot_item_num).float()
            part = None
            if history is not None:
                inside = (history[0] >= start) & (history[0] < stop)
                part = (history[0][inside] - start, history[1][inside])
            mask_excluded(scores, 0, part)
            out.append(topk_items(scores, k))
        return torch.cat(out)
