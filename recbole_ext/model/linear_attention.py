"""LinRec's L2-normalised linear attention (Liu et al., SIGIR 2023) and the transformer layer that
uses it in place of softmax attention.

Per head, with ``Q, K, V`` of shape ``[L, d_h]``::

    Q' = ELU(Q) / ||ELU(Q)||_2        (each row, i.e. each token, over the d_h features)
    K' = ELU(K) / ||ELU(K)||_2        (each row of K; a column of the reference's K^T layout)
    out = Q' (K'^T V) / sqrt(d_h)

``K'^T V`` is ``[d_h, d_h]``, so time and memory are linear in ``L``; no ``[L, L]`` matrix is
formed, and there is no softmax, no row normalisation and no mask unless a key mask is given.
"""

from __future__ import annotations

from typing import Optional

import torch
from recbole.model.layers import FeedForward
from torch import nn

from recbole_ext.model.layers import EluNormLinearAttention, elu_norm_linear_attention

#: LinRec's attention is the function GLINT-RU's attention expert took from it: ELU, the per-token
#: L2 norm of Q and K, ``Q' (K'^T V) / sqrt(d_h)`` (one implementation for both models)
l2_linear_attention = elu_norm_linear_attention


class LinRecAttention(EluNormLinearAttention):
    """Multi-head L2-normalised linear self-attention with RecBole's output block: projection,
    dropout and a residual LayerNorm (the layout of RecBole's ``MultiHeadAttention``, whose
    ``query``/``key``/``value``/``dense``/``LayerNorm`` names it keeps): GLINT-RU's attention
    expert, which took it from LinRec, with PyTorch's dropout after the projection as the
    reference has it.

    Args:
        hidden_size: width ``d``; must be divisible by ``n_heads``.
        n_heads: number of heads ``H`` (``d_h = d / H``).
        hidden_dropout_prob: dropout after the output projection.
        layer_norm_eps: epsilon of the LayerNorm.

    Shape:
        - x: ``[B, L, d]``; key_mask: ``[B, L]`` (optional, ``True`` = real item)
        - output: ``[B, L, d]``
    """

    def __init__(self, hidden_size: int, n_heads: int, hidden_dropout_prob: float, layer_norm_eps: float) -> None:
        super().__init__(hidden_size, n_heads, hidden_dropout_prob, layer_norm_eps)
        self.out_dropout = nn.Dropout(hidden_dropout_prob)


class LinRecLayer(nn.Module):
    """One transformer block: :class:`LinRecAttention`, then RecBole's point-wise ``FeedForward``
    (``dense_1 -> act -> dense_2 -> dropout``, residual LayerNorm).

    Args:
        hidden_size: width ``d``.
        n_heads: attention heads.
        inner_size: width of the feed-forward layer.
        hidden_dropout_prob: dropout after the attention projection and after the feed-forward.
        hidden_act: feed-forward activation (``gelu``, ``relu``, ``swish``, ``tanh``, ``sigmoid``).
        layer_norm_eps: epsilon of both LayerNorms.
    """

    def __init__(
        self,
        hidden_size: int,
        n_heads: int,
        inner_size: int,
        hidden_dropout_prob: float,
        hidden_act: str,
        layer_norm_eps: float,
    ) -> None:
        super().__init__()
        self.attention = LinRecAttention(hidden_size, n_heads, hidden_dropout_prob, layer_norm_eps)
        self.feed_forward = FeedForward(hidden_size, inner_size, hidden_dropout_prob, hidden_act, layer_norm_eps)

    def forward(self, x: torch.Tensor, key_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Shape: ``x [B, L, d]``, ``key_mask [B, L]`` (optional) -> ``[B, L, d]``."""
        return self.feed_forward(self.attention(x, key_mask))
