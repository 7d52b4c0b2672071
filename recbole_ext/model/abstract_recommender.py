"""Base classes shared by the models of recbole_ext.

``SequenceEncoderRecommender`` is the one place where a sequence representation is turned into
item scores and losses. A subclass only builds its encoder and implements :meth:`forward`
(``item_seq, item_seq_len -> [B, d]``); scoring against the (tied) item embedding table, an
optional learned item bias, CE and BPR losses, ``predict``, ``full_sort_predict`` and
``predict_candidates`` (used by the trainer's fast sampled evaluation) are written here once.
"""

from __future__ import annotations

from typing import Optional

import torch
from recbole.model.abstract_recommender import SequentialRecommender
from torch import nn

from recbole_ext.model.linear_head import LinearHead, linear_softmax_ce, loss_impl_of
from recbole_ext.model.loss import bpr_loss


class SequenceEncoderRecommender(SequentialRecommender):
    """A sequential recommender that encodes a sequence, then scores items by dot product.

    Subclasses must create ``self.item_embedding`` (``nn.Embedding(n_items, d, padding_idx=0)``)
    and implement :meth:`forward`. Set ``item_bias: True`` in the config to add a learned
    per-item bias to every score.

    Config keys read here: ``loss_type`` (``CE`` or ``BPR``), ``item_bias`` (bool, optional),
    ``loss_impl`` (``dense`` or ``chunked``: CE with or without the ``[B, n_items]`` logits,
    :mod:`recbole_ext.model.linear_head`).
    RecBole derives the input type from ``loss_type`` (CE: pointwise, BPR: pairwise with one
    sampled negative in ``NEG_ITEM_ID``).
    """

    def __init__(self, config, dataset):
        super().__init__(config, dataset)

        # load parameters info
        self.loss_type: str = config["loss_type"]
        self.use_item_bias: bool = bool(config["item_bias"]) if "item_bias" in config else False
        self.loss_impl: str = loss_impl_of(config)

        if self.loss_type not in ("CE", "BPR"):
            raise ValueError(f"loss_type must be 'CE' or 'BPR', got {self.loss_type!r}")
        self.item_bias: Optional[nn.Parameter] = nn.Parameter(torch.zeros(self.n_items)) if self.use_item_bias else None

    # ------------------------------------------------------------------ encoder
    def forward(self, item_seq: torch.Tensor, item_seq_len: torch.Tensor) -> torch.Tensor:
        """Encode each sequence into one vector.

        Shape:
            - item_seq: ``[B, L]`` item ids, 0 is padding (right-padded, as RecBole builds them)
            - item_seq_len: ``[B]``
            - output: ``[B, d]``
        """
        raise NotImplementedError

    def item_table(self) -> torch.Tensor:
        """The output item representations, ``[n_items, d]`` (tied to the input embedding)."""
        return self.item_embedding.weight

    # ------------------------------------------------------------------ scoring
    def score_all(self, seq_output: torch.Tensor) -> torch.Tensor:
        """Scores of every item. Shape: ``[B, d] -> [B, n_items]``."""
        scores = seq_output @ self.item_table().t()
        if self.item_bias is not None:
            scores = scores + self.item_bias
        return scores

    def head(self, seq_output: torch.Tensor) -> LinearHead:
        """The scores of :meth:`score_all` in parts (query, item table, bias)."""
        return LinearHead(seq_output, self.item_table(), self.item_bias)

    def score_items(self, seq_output: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Scores of given items per sequence.

        Shape:
            - seq_output: ``[B, d]``
            - items: ``[B]`` or ``[B, C]``
            - output: same shape as ``items``
        """
        emb = self.item_table()[items]
        if items.dim() == 1:
            scores = (seq_output * emb).sum(-1)
        else:
            scores = torch.einsum("bd,bcd->bc", seq_output, emb)
        if self.item_bias is not None:
            scores = scores + self.item_bias[items]
        return scores

    def _encode(self, interaction) -> torch.Tensor:
        return self.forward(interaction[self.ITEM_SEQ], interaction[self.ITEM_SEQ_LEN])

    # ------------------------------------------------------------------ RecBole contract
    def calculate_loss(self, interaction) -> torch.Tensor:
        """CE over all items, or BPR against the sampled negative. Returns a scalar."""
        seq_output = self._encode(interaction)
        pos_items = interaction[self.POS_ITEM_ID]
        if self.loss_type == "CE":
            return linear_softmax_ce(self.head(seq_output), pos_items, chunked=self.loss_impl == "chunked")
        neg_items = interaction[self.NEG_ITEM_ID]
        return bpr_loss(self.score_items(seq_output, pos_items), self.score_items(seq_output, neg_items))

    def predict(self, interaction) -> torch.Tensor:
        """Score of ``interaction[ITEM_ID]`` for each row. Shape: ``[B]``."""
        return self.score_items(self._encode(interaction), interaction[self.ITEM_ID])

    def full_sort_predict(self, interaction) -> torch.Tensor:
        """Scores of every item for each row. Shape: ``[B, n_items]``."""
        return self.score_all(self._encode(interaction))

    def full_sort_head(self, interaction) -> LinearHead:
        """:meth:`full_sort_predict`'s scores in parts, for evaluation in item chunks."""
        return self.head(self._encode(interaction))

    def predict_candidates(self, interaction, items: torch.Tensor) -> torch.Tensor:
        """Scores of ``items`` ``[B, C]`` for each row's sequence, encoding each sequence once."""
        return self.score_items(self._encode(interaction), items)
