"""Layers of the feature-based (CTR-style) models: DLRM's dot interaction, its MLPs, and the
sequence tower that encodes a user's recent items into one more feature vector."""

from __future__ import annotations

from typing import List

import torch
from torch import nn


def dot_interaction(vectors: torch.Tensor, self_interaction: bool = False) -> torch.Tensor:
    """Pairwise dot products of the feature vectors of each row (DLRM's interaction).

    Args:
        vectors: the row's feature vectors, all of one size.
        self_interaction: also each vector with itself (the diagonal).

    Returns:
        The dot products ``<v_i, v_j>`` for ``i < j`` (``i <= j`` with ``self_interaction``), in
        row-major order of the upper triangle.

    Shape:
        - vectors: ``[B, m, d]``
        - output: ``[B, m (m - 1) / 2]`` (``[B, m (m + 1) / 2]`` with ``self_interaction``)
    """
    m = vectors.shape[1]
    gram = vectors @ vectors.transpose(1, 2)
    rows, cols = torch.triu_indices(m, m, offset=0 if self_interaction else 1, device=vectors.device)
    return gram[:, rows, cols]


def mlp(sizes: List[int], last_activation: bool) -> nn.Sequential:
    """``Linear -> ReLU`` between consecutive ``sizes``; the last ``ReLU`` only if
    ``last_activation`` (DLRM's bottom MLP has it, its top MLP ends in a logit)."""
    layers: List[nn.Module] = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(n_in, n_out))
        if last_activation or i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class SequenceTower(nn.Module):
    """A user's recent items encoded into one vector: a GRU's state at the last real item, or a
    transformer block (learned positions, padding masked) averaged over the real items. An empty
    history gives the zero vector.

    Shape:
        - items: ``[B, L]`` ids, oldest first, right-padded with 0; lengths: ``[B]``
        - output: ``[B, d]``
    """

    def __init__(self, kind: str, n_items: int, d: int, max_len: int, n_heads: int, dropout: float):
        super().__init__()
        self.kind = kind
        self.item_embedding = nn.Embedding(n_items, d, padding_idx=0)
        if kind == "gru":
            self.encoder: nn.Module = nn.GRU(d, d, batch_first=True)
        else:
            self.position = nn.Embedding(max_len, d)
            self.encoder = nn.TransformerEncoderLayer(
                d, n_heads, dim_feedforward=2 * d, dropout=dropout, batch_first=True, norm_first=True
            )
        nn.init.normal_(self.item_embedding.weight, std=0.01)

    def forward(self, items: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        real = torch.arange(items.shape[1], device=items.device)[None, :] < lengths[:, None]  # [B, L]
        x = self.item_embedding(items)
        if self.kind == "gru":
            out, _ = self.encoder(x)  # causal: the state at the last real item ignores the padding after it
            last = (lengths - 1).clamp(min=0)
            pooled = out[torch.arange(items.shape[0], device=items.device), last]
        else:
            x = x + self.position(torch.arange(items.shape[1], device=items.device))[None]
            mask = ~real
            mask[:, 0] = False  # an empty history attends to its first (padding) slot, then gives 0
            out = self.encoder(x, src_key_padding_mask=mask) * real[..., None]
            pooled = out.sum(1) / lengths.clamp(min=1)[:, None]
        return pooled * (lengths > 0)[:, None]
