"""The top-k items of score rows, one shot or item chunk by item chunk, with one tie rule.

``torch.topk`` leaves the order of equal scores unspecified (on CPUs it is neither the lower nor
the higher index first, and CUDA's order differs), so a top-k merged from item chunks could not
match it. Every top-k of the evaluation is taken here under one rule instead:

    **higher score first; among equal scores, the lower item id first.**

Each score becomes one int64 key that orders exactly so: the float32's bits mapped to an int32
of the same order (``-0.0`` counted as ``+0.0``), times ``2^32``, plus ``2^32 - 1 - item id``.
The keys of a row are distinct, so their top-k is unique, and the top-k of the chunks' top-k
is the top-k of the row: :func:`topk_items` (one matrix) and :class:`TopKMerger` (chunks) give
the same items in the same order. Without ties this is ``torch.topk``'s result.
"""

from __future__ import annotations

from typing import Optional

import torch

_LOW31 = 0x7FFFFFFF
_LOW32 = 0xFFFFFFFF


def rank_keys(scores: torch.Tensor, first_item: int = 0) -> torch.Tensor:
    """Keys that order ``scores`` by the tie rule (larger key: ranked higher).

    Args:
        scores: float scores; column ``j`` is item ``first_item + j``.
        first_item: the item id of column 0.

    Returns:
        int64 keys, distinct within a row.

    Shape:
        scores ``[rows, items]``; output ``[rows, items]``.
    """
    bits = (scores.float() + 0.0).view(torch.int32)  # + 0.0: -0.0 becomes +0.0 (a new tensor)
    flip = bits >> 31
    bits ^= flip.bitwise_and_(_LOW31)  # negative floats: flip the magnitude bits
    del flip
    keys = bits.to(torch.int64)
    del bits
    ids = torch.arange(first_item, first_item + scores.shape[-1], device=scores.device, dtype=torch.int64)
    return keys.mul_(1 << 32).add_(_LOW32 - ids)


def items_of(keys: torch.Tensor) -> torch.Tensor:
    """The item ids of :func:`rank_keys` keys. Shape: unchanged."""
    return _LOW32 - (keys & _LOW32)


def topk_items(scores: torch.Tensor, k: int) -> torch.Tensor:
    """The ``k`` best items of each row, best first, under the tie rule.

    Shape:
        scores ``[rows, n_items]``; output ``[rows, min(k, n_items)]`` (int64 item ids).
    """
    merger = TopKMerger(k)
    merger.add(scores, 0)
    return merger.items()


class TopKMerger:
    """The running top-k of score rows seen in item chunks (any order of chunks, any sizes)."""

    def __init__(self, k: int) -> None:
        self.k = k
        self._keys: Optional[torch.Tensor] = None

    def add(self, scores: torch.Tensor, first_item: int) -> None:
        """Merge the scores of items ``first_item .. first_item + scores.shape[1] - 1``.

        Shape:
            scores ``[rows, chunk]``.
        """
        keys = rank_keys(scores, first_item)
        keys = torch.topk(keys, min(self.k, keys.shape[1]), dim=1).values  # the chunk's own top-k first
        if self._keys is not None:
            keys = torch.cat([self._keys, keys], dim=1)
            keys = torch.topk(keys, min(self.k, keys.shape[1]), dim=1).values
        self._keys = keys

    def items(self) -> torch.Tensor:
        """The top-k so far, best first. Shape: ``[rows, min(k, items seen)]``."""
        if self._keys is None:
            raise ValueError("no scores were added")
        return items_of(self._keys)
