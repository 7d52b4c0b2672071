"""Scores as a linear head over the item table, and CE over every item without the logit matrix.

A sequential model's scores are ``query @ table^T (+ bias)``: one query per row (a sequence, or a
masked position of BERT4Rec), one table row per item. :class:`LinearHead` names the three parts,
so the loss and the full-ranking evaluation can take them in pieces instead of the
``[rows x items]`` score matrix.

``loss_impl`` (the key of :func:`loss_impl_of`):

- ``dense``: the logits ``[rows, n_items]`` are materialised, then ``F.cross_entropy``;
- ``chunked``: ``torch.nn.functional.linear_cross_entropy`` with its chunked implementation
  (``LinearCrossEntropyOptions``): the rows are processed :func:`chunk_rows` at a time, each
  chunk's logits and their gradient are computed and dropped inside the op, so the peak holds one
  chunk of logits (at most :data:`CHUNK_BYTES`) instead of all of them. Loss and gradients are
  the dense path's to float round-off.

The rows per chunk are set from :data:`CHUNK_BYTES`, not by the op's ``auto`` heuristic: that one
sizes a chunk's logits like the input ``[rows, d]`` (a few rows per chunk at ``d = 64``), which
makes hundreds of small matrix products per step and is several times slower than the dense path
on CPUs.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Optional

import torch
import torch.nn.functional as F
from torch.nn import LinearCrossEntropyOptions

from recbole_ext.model.choices import configured_choice

#: the values of ``loss_impl`` (the first is the default)
LOSS_IMPLS = ("chunked", "dense")

#: the most memory one chunk's float32 logits take in ``chunked`` (32 MiB)
CHUNK_BYTES = 32 * 2**20


class LinearHead(NamedTuple):
    """A model's scores in parts: ``scores = query @ table^T + bias``.

    Shape:
        query ``[rows, d]``; table ``[n_items, d]``; bias ``[n_items]`` or None.
    """

    query: torch.Tensor
    table: torch.Tensor
    bias: Optional[torch.Tensor]

    def scores(self, start: int = 0, stop: Optional[int] = None) -> torch.Tensor:
        """The scores of items ``start .. stop - 1`` (all items by default).

        Shape:
            output ``[rows, stop - start]``.
        """
        bias = None if self.bias is None else self.bias[start:stop]
        return F.linear(self.query, self.table[start:stop], bias)


def loss_impl_of(config: Any) -> str:
    """The configured ``loss_impl`` (:data:`LOSS_IMPLS`'s first where the configuration has none).

    Raises:
        ConfigError: the value is not one of :data:`LOSS_IMPLS`.
    """
    return configured_choice(config, "loss_impl", LOSS_IMPLS)


def chunk_rows(n_items: int, chunk_bytes: int = CHUNK_BYTES) -> int:
    """Rows per chunk so that one chunk's float32 logits ``[rows, n_items]`` take ``chunk_bytes``."""
    return max(1, chunk_bytes // (4 * max(n_items, 1)))


def linear_softmax_ce(head: LinearHead, target: torch.Tensor, chunked: bool) -> torch.Tensor:
    """Mean cross-entropy of each row's target item against every item.

    Args:
        head: the scores in parts (under autocast the query may be in lower precision).
        target: the true item of each row.
        chunked: ``linear_cross_entropy``'s chunked path (no logit matrix); else the dense logits
            and ``F.cross_entropy``.

    Returns:
        The mean loss over the rows.

    Shape:
        head.query ``[rows, d]``; target ``[rows]``; output ``[]``.
    """
    if not chunked:
        return F.cross_entropy(head.scores(), target)
    query, table, bias = head
    device = query.device.type
    if torch.is_autocast_enabled(device):  # the op takes one dtype: autocast's, accumulated in float32
        dtype = torch.get_autocast_dtype(device)
        query, table = query.to(dtype), table.to(dtype)
        bias = None if bias is None else bias.to(dtype)
    else:
        query = query.to(table.dtype)
    options = LinearCrossEntropyOptions(
        chunking_method=None, batch_chunk_size=min(chunk_rows(table.shape[0], CHUNK_BYTES), max(query.shape[0], 1))
    )
    with torch.autocast(device, enabled=False):
        loss = F.linear_cross_entropy(query, table, target, linear_bias=bias, options=options)
    return loss.float()
