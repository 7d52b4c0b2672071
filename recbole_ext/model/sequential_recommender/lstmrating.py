"""LSTMRating: an LSTM over a user's chronological items that predicts the rating of each item
from the items before it and the item itself, trained with mean squared error.

Paper: the recurrent rating model of the classic PyTorch rating tutorial (item embeddings ->
LSTM -> Linear, one rating per step); the LSTM is Hochreiter & Schmidhuber, "Long Short-Term
Memory", Neural Computation 9(8), 1997.
Reference code: none.

Model: the history ``i_1 .. i_n`` (RecBole's ``item_id_list``, oldest first) and the item to rate
``i_{n+1}`` are embedded and run through the LSTM; the output at the step of ``i_{n+1}`` goes
through ``Linear(hidden_size, 1)`` and is added to the mean training rating. Each step's output
is the rating of that step's item given the items before it (:meth:`LSTMRating.step_ratings`).

Deviations from the tutorial:

- RecBole's sequential pipeline: every interaction of the training split after a user's first is
  one example (its prefix as history), so the loss on the last step covers every step of every
  user's sequence once; the tutorial scores all steps of one sequence in one pass.
- The output is added to the mean training rating, and predictions are clipped to the training
  ratings' range (``RatingMixin``).
- The history holds the most recent ``MAX_ITEM_LIST_LENGTH`` items.
"""

from __future__ import annotations

from typing import List

import torch
from recbole.model.abstract_recommender import SequentialRecommender
from recbole.utils import InputType
from torch import nn

from recbole_ext.model.rating import RatingMixin


class LSTMRating(RatingMixin, SequentialRecommender):
    """Item embeddings -> LSTM -> ``Linear`` per step, plus the mean rating."""

    input_type = InputType.POINTWISE
    protocol = "protocol-rating-time.yaml"  # sequential data must be in time order

    def __init__(self, config, dataset):
        super().__init__(config, dataset)

        # load parameters info
        self.embedding_size: int = config["embedding_size"]
        self.hidden_size: int = config["hidden_size"]
        self.num_layers: int = config["num_layers"]
        self.dropout_prob: float = config["dropout_prob"]
        self._init_rating(config, dataset)

        # define layers
        self.item_embedding = nn.Embedding(self.n_items, self.embedding_size, padding_idx=0)
        self.emb_dropout = nn.Dropout(self.dropout_prob)
        self.lstm = nn.LSTM(
            self.embedding_size,
            self.hidden_size,
            self.num_layers,
            batch_first=True,
            dropout=self.dropout_prob if self.num_layers > 1 else 0.0,
        )
        self.out = nn.Linear(self.hidden_size, 1)

        # parameters initialization
        nn.init.normal_(self.item_embedding.weight, std=0.01)
        nn.init.xavier_uniform_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def step_ratings(self, items: torch.Tensor) -> torch.Tensor:
        """The rating of each step's item given the items before it.

        Shape:
            - items: ``[B, T]`` ids, oldest first (0 is padding, after the real items)
            - output: ``[B, T]`` (padding steps hold values of no meaning)
        """
        output, _ = self.lstm(self.emb_dropout(self.item_embedding(items)))
        return self.rating_mean + self.out(output).squeeze(-1)

    def forward(self, item_seq: torch.Tensor, item_seq_len: torch.Tensor, item: torch.Tensor) -> torch.Tensor:
        """Rating of ``item`` after each history.

        Shape:
            - item_seq: ``[B, L]`` right-padded history; item_seq_len: ``[B]``; item: ``[B]``
            - output: ``[B]``
        """
        batch = torch.arange(item_seq.shape[0], device=item_seq.device)
        items = torch.cat([item_seq, torch.zeros_like(item_seq[:, :1])], dim=1)
        items[batch, item_seq_len] = item  # the item to rate right after the last real one
        return self.step_ratings(items)[batch, item_seq_len]

    def predict_rating(self, interaction) -> torch.Tensor:
        return self.forward(interaction[self.ITEM_SEQ], interaction[self.ITEM_SEQ_LEN], interaction[self.ITEM_ID])

    def batch_parameters(self, interaction) -> List[torch.Tensor]:
        return [self.item_embedding(interaction[self.ITEM_ID])]

    def full_sort_predict(self, interaction) -> torch.Tensor:
        """Predicted rating of every item after each history, clipped. Shape: ``[B, n_items]``."""
        item_seq, lengths = interaction[self.ITEM_SEQ], interaction[self.ITEM_SEQ_LEN]
        n, b = self.n_items, item_seq.shape[0]
        items = torch.arange(n, device=item_seq.device).repeat(b)
        scores = self.forward(item_seq.repeat_interleave(n, 0), lengths.repeat_interleave(n), items)
        return scores.view(b, n).clamp(*self.rating_range)
