"""DLRM: the deep learning recommendation model, with an optional sequence tower.

Paper: Maxim Naumov et al., "Deep Learning Recommendation Model for Personalization and
Recommendation Systems", arXiv:1906.00091, 2019.
Reference code: https://github.com/facebookresearch/dlrm (``dlrm_s_pytorch.py``: ``apply_mlp``,
``interact_features`` with ``arch_interaction_op='dot'``).

Model: every categorical feature (RecBole's ``token`` and ``token_seq`` fields of ``.inter``,
``.user`` and ``.item``, ids included) is embedded at one size ``d = embedding_size`` by RecBole's
context-aware embedding tables (a ``token_seq`` field is the mean of its tokens). The continuous
features (``float`` fields listed in ``numerical_features``) go through the bottom MLP to one
vector of size ``d``. The dot products of all pairs of these vectors, concatenated with the
bottom-MLP output, go through the top MLP to one logit; the loss is binary cross-entropy against
``LABEL_FIELD``, ``predict`` the sigmoid.

``sequence_tower: gru | transformer`` adds one more vector: the user's recent items before the
interaction (``DLRMDataset`` computes them), encoded by a GRU or a transformer block
(``SequenceTower``), the session-based variant of industrial DLRM-style models.

Deviations from the paper / reference code:

- ``self_interaction: True`` also keeps each vector's dot product with itself (the reference's
  ``arch_interaction_itself``); default False, as the reference.
- No continuous features (ml-100k has none among its loaded fields): no bottom MLP, and the top
  MLP sees the dot products alone. ``float_seq`` features, if listed in ``numerical_features``,
  are embedded by RecBole's table (value-weighted mean) as one more vector each.
- RecBole's embedding initialisation (``xavier_normal_`` for the tables, as its context models)
  instead of the reference's uniform ``(-1/sqrt(n), 1/sqrt(n))``; the MLPs use Xavier-uniform
  weights as the reference's normal of that scale.
"""

from __future__ import annotations

from typing import List, Optional

import torch
from recbole.model.abstract_recommender import ContextRecommender
from torch import nn
from torch.nn.init import xavier_normal_, xavier_uniform_

from recbole_ext.errors import ConfigError
from recbole_ext.model.feature_layers import SequenceTower, dot_interaction, mlp


class DLRM(ContextRecommender):
    """Embeddings + bottom MLP -> pairwise dot products -> top MLP -> click logit."""

    #: the shipped evaluation protocol DLRM is measured under (the sweep runs it on it)
    protocol = "protocol-ctr.yaml"

    def __init__(self, config, dataset):
        super().__init__(config, dataset)

        # load parameters info
        self.bottom_mlp_sizes: List[int] = list(config["bottom_mlp_sizes"])
        self.top_mlp_sizes: List[int] = list(config["top_mlp_sizes"])
        self.self_interaction: bool = bool(config["self_interaction"])
        self.sequence_tower: str = str(config["sequence_tower"] or "none").lower()
        self.n_heads: int = config["n_heads"]
        self.dropout_prob: float = config["dropout_prob"]
        self.max_seq_length: int = config["MAX_ITEM_LIST_LENGTH"]
        self.ITEM_SEQ = config["ITEM_ID_FIELD"] + config["LIST_SUFFIX"]
        self.ITEM_SEQ_LEN = config["ITEM_LIST_LENGTH_FIELD"]
        if self.sequence_tower not in ("none", "gru", "transformer"):
            raise ConfigError(f"sequence_tower must be none, gru or transformer, got {self.sequence_tower!r}")

        # define layers
        del self.first_order_linear  # RecBole's context base makes one for FM-style models; DLRM has no linear part
        d = self.embedding_size
        n_dense = len(self.float_field_names)
        self.bottom_mlp: Optional[nn.Sequential] = (
            mlp([n_dense, *self.bottom_mlp_sizes, d], last_activation=True) if n_dense else None
        )
        self.tower: Optional[SequenceTower] = None
        if self.sequence_tower != "none":
            self.tower = SequenceTower(
                self.sequence_tower, dataset.item_num, d, self.max_seq_length, self.n_heads, self.dropout_prob
            )
        m = self.n_vectors()
        n_pairs = m * (m + 1) // 2 if self.self_interaction else m * (m - 1) // 2
        top_in = n_pairs + (d if self.bottom_mlp is not None else 0)
        self.top_mlp = mlp([top_in, *self.top_mlp_sizes, 1], last_activation=False)
        self.dropout = nn.Dropout(self.dropout_prob)
        self.loss = nn.BCEWithLogitsLoss()

        # parameters initialization
        self.apply(self._init_weights)
        if self.tower is not None:
            nn.init.normal_(self.tower.item_embedding.weight, std=0.01)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Embedding):
            xavier_normal_(module.weight.data)
        elif isinstance(module, nn.Linear):
            xavier_uniform_(module.weight.data)
            nn.init.zeros_(module.bias.data)

    def n_vectors(self) -> int:
        """How many vectors interact: the categorical fields, the ``float_seq`` fields, the
        bottom-MLP output and the sequence tower's, as present."""
        return (
            len(self.token_field_names)
            + len(self.token_seq_field_names)
            + len(self.float_seq_field_names)
            + (self.bottom_mlp is not None)
            + (self.tower is not None)
        )

    def dense_values(self, interaction) -> torch.Tensor:
        """The continuous features' values (RecBole stores ``[value, bucket]`` pairs). Shape: ``[B, F]``."""
        columns = [interaction[f][..., 0].reshape(-1, 1) for f in self.float_field_names]
        return torch.cat(columns, dim=1).float()

    def forward(self, interaction) -> torch.Tensor:
        """Click logits. Shape: ``[B]``."""
        vectors, dense = [], None
        sparse, _ = self.embed_input_fields(interaction)  # [B, token + token_seq fields, d]
        if sparse is not None:
            vectors.append(sparse)
        if self.float_seq_field_names:
            vectors.append(self.embed_float_seq_fields([interaction[f] for f in self.float_seq_field_names]))
        if self.bottom_mlp is not None:
            dense = self.bottom_mlp(self.dense_values(interaction))  # [B, d]
            vectors.append(dense.unsqueeze(1))
        if self.tower is not None:
            history = self.tower(interaction[self.ITEM_SEQ], interaction[self.ITEM_SEQ_LEN])
            vectors.append(history.unsqueeze(1))
        stacked = self.dropout(torch.cat(vectors, dim=1))  # [B, m, d]
        pairs = dot_interaction(stacked, self.self_interaction)
        top_in = pairs if dense is None else torch.cat([dense, pairs], dim=1)
        return self.top_mlp(top_in).squeeze(-1)

    def calculate_loss(self, interaction) -> torch.Tensor:
        """Binary cross-entropy of the logits against ``LABEL_FIELD``. Returns a scalar."""
        return self.loss(self.forward(interaction), interaction[self.LABEL].float())

    def predict(self, interaction) -> torch.Tensor:
        """Click probability of each row. Shape: ``[B]``."""
        return torch.sigmoid(self.forward(interaction))
