"""DenseRating: a feed-forward network over concatenated user and item embeddings, predicting
explicit ratings with mean squared error.

Paper: the MLP tower of Xiangnan He et al., "Neural Collaborative Filtering", WWW 2017, used as
a rating regressor (the dense network of the classic PyTorch rating tutorial: user and item
embeddings concatenated, then Linear-ReLU-Linear to one output).
Reference code: none; the tutorial's network is ``mlp_hidden_size: [H]`` with no dropout.

Model: ``r_ui = mu + MLP([p_u ; q_i])``, the MLP being ``Linear -> ReLU -> Dropout`` for each
width of ``mlp_hidden_size``, then ``Linear(., 1)``; ``mu`` is the mean training rating (a fixed
buffer), so the network learns the deviation from it.

Deviations from the tutorial:

- The output is added to the mean training rating; the tutorial's network outputs the rating
  (scaled to [0, 1]) directly. Predictions are clipped to the training ratings' range at
  evaluation (``RatingMixin``).
- Dropout after each hidden layer (``dropout_prob``) and an optional L2 penalty on the batch's
  embeddings (``reg_weight``).
"""

from __future__ import annotations

from typing import List

import torch
from recbole.model.abstract_recommender import GeneralRecommender
from recbole.utils import InputType
from torch import nn

from recbole_ext.model.rating import RatingMixin


class DenseRating(RatingMixin, GeneralRecommender):
    """``mu + MLP([p_u ; q_i])``."""

    input_type = InputType.POINTWISE

    def __init__(self, config, dataset):
        super().__init__(config, dataset)

        # load parameters info
        self.embedding_size: int = config["embedding_size"]
        self.mlp_hidden_size: List[int] = list(config["mlp_hidden_size"])
        self.dropout_prob: float = config["dropout_prob"]
        self._init_rating(config, dataset)

        # define layers
        self.user_embedding = nn.Embedding(self.n_users, self.embedding_size)
        self.item_embedding = nn.Embedding(self.n_items, self.embedding_size)
        layers: List[nn.Module] = []
        width = 2 * self.embedding_size
        for hidden in self.mlp_hidden_size:
            layers += [nn.Linear(width, hidden), nn.ReLU(), nn.Dropout(self.dropout_prob)]
            width = hidden
        layers.append(nn.Linear(width, 1))
        self.mlp = nn.Sequential(*layers)

        # parameters initialization
        for table in (self.user_embedding, self.item_embedding):
            nn.init.normal_(table.weight, std=0.01)
        for layer in self.mlp:
            if isinstance(layer, nn.Linear):
                nn.init.xavier_uniform_(layer.weight)
                nn.init.zeros_(layer.bias)

    def forward(self, user: torch.Tensor, item: torch.Tensor) -> torch.Tensor:
        """Predicted ratings.

        Shape:
            - user, item: ``[B]`` ids
            - output: ``[B]``
        """
        pair = torch.cat([self.user_embedding(user), self.item_embedding(item)], dim=-1)
        return self.rating_mean + self.mlp(pair).squeeze(-1)

    def predict_rating(self, interaction) -> torch.Tensor:
        return self.forward(interaction[self.USER_ID], interaction[self.ITEM_ID])

    def batch_parameters(self, interaction) -> List[torch.Tensor]:
        return [self.user_embedding(interaction[self.USER_ID]), self.item_embedding(interaction[self.ITEM_ID])]

    def full_sort_predict(self, interaction) -> torch.Tensor:
        """Predicted rating of every item for each user, clipped. Shape: ``[B, n_items]``."""
        user = interaction[self.USER_ID]
        n = self.n_items
        users = user.repeat_interleave(n)
        items = torch.arange(n, device=user.device).repeat(user.shape[0])
        return self.forward(users, items).view(-1, n).clamp(*self.rating_range)
