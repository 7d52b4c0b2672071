"""MF: biased matrix factorisation for explicit ratings, trained with mean squared error.

Paper: Yehuda Koren, Robert Bell, Chris Volinsky, "Matrix Factorization Techniques for
Recommender Systems", IEEE Computer 42(8), 2009 (the biased model, eq. 3-5).
Reference code: none by the authors; the set-up of the classic PyTorch rating tutorial (user and
item embeddings, prediction = their dot product, no biases) is ``use_bias: False``.

Model: ``r_ui = mu + b_u + b_i + p_u . q_i``, with ``mu`` the mean training rating (a fixed
buffer), ``b_u``, ``b_i`` learned biases, ``p_u``, ``q_i`` in ``R^embedding_size``. Loss: MSE plus
``reg_weight * (|p_u|^2 + |q_i|^2 + b_u^2 + b_i^2)`` averaged over the batch (the paper's
regularised squared error).

Deviations from the paper:

- Mini-batch Adam (RecBole's trainer) instead of per-example SGD; the penalty is per example, as
  in the paper's SGD updates, so ``reg_weight`` plays the paper's lambda.
- Predictions are clipped to the training ratings' range at evaluation (``RatingMixin``).
- ``use_bias: False`` drops ``mu``, ``b_u`` and ``b_i`` (the tutorial's model).
"""

from __future__ import annotations

from typing import List

import torch
from recbole.model.abstract_recommender import GeneralRecommender
from recbole.utils import InputType
from torch import nn

from recbole_ext.model.rating import RatingMixin


class MF(RatingMixin, GeneralRecommender):
    """Biased matrix factorisation: ``mu + b_u + b_i + p_u . q_i``."""

    input_type = InputType.POINTWISE

    def __init__(self, config, dataset):
        super().__init__(config, dataset)

        # load parameters info
        self.embedding_size: int = config["embedding_size"]
        self.use_bias: bool = bool(config["use_bias"])
        self.init_std: float = config["init_std"]
        self._init_rating(config, dataset)

        # define layers
        self.user_embedding = nn.Embedding(self.n_users, self.embedding_size)
        self.item_embedding = nn.Embedding(self.n_items, self.embedding_size)
        self.user_bias = nn.Embedding(self.n_users, 1)
        self.item_bias = nn.Embedding(self.n_items, 1)

        # parameters initialization
        for table in (self.user_embedding, self.item_embedding):
            nn.init.normal_(table.weight, std=self.init_std)
        for table in (self.user_bias, self.item_bias):
            nn.init.zeros_(table.weight)
        if not self.use_bias:
            self.user_bias.weight.requires_grad_(False)
            self.item_bias.weight.requires_grad_(False)

    def forward(self, user: torch.Tensor, item: torch.Tensor) -> torch.Tensor:
        """Predicted ratings.

        Shape:
            - user, item: ``[B]`` ids
            - output: ``[B]``
        """
        dot = (self.user_embedding(user) * self.item_embedding(item)).sum(-1)
        if not self.use_bias:
            return dot
        return self.rating_mean + self.user_bias(user).squeeze(-1) + self.item_bias(item).squeeze(-1) + dot

    def predict_rating(self, interaction) -> torch.Tensor:
        return self.forward(interaction[self.USER_ID], interaction[self.ITEM_ID])

    def batch_parameters(self, interaction) -> List[torch.Tensor]:
        user, item = interaction[self.USER_ID], interaction[self.ITEM_ID]
        params = [self.user_embedding(user), self.item_embedding(item)]
        if self.use_bias:
            params += [self.user_bias(user), self.item_bias(item)]
        return params

    def full_sort_predict(self, interaction) -> torch.Tensor:
        """Predicted rating of every item for each user, clipped. Shape: ``[B, n_items]``."""
        user = interaction[self.USER_ID]
        scores = self.user_embedding(user) @ self.item_embedding.weight.t()
        if self.use_bias:
            scores = scores + self.rating_mean + self.user_bias(user) + self.item_bias.weight.t()
        return scores.clamp(*self.rating_range)
