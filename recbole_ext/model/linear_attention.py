"""LinRec's L2-normalised linear attention (Liu et al., SIGIR 2023): the function, GLINT-RU's
attention expert built on it, and LinRec's transformer layer that uses it in place of softmax
attention.

Per head, with ``Q, K, V`` of shape ``[L, d_h]``::

    Q' = ELU(Q) / ||ELU(Q)||_2        (each row, i.e. each token, over the d_h features)
    K' = ELU(K) / ||ELU(K)||_2        (each row of K; a column of the reference's K^T layout)
    out = Q' (K'^T V) / sqrt(d_h)

``K'^T V`` is ``[d_h, d_h]``, so time and memory are linear in ``L``; no ``[L, L]`` matrix is
formed, and there is no softmax, no row normalisation and no mask unless a key mask is given.
"""

from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn.functional as F
from recbole.model.layers import FeedForward
from torch import nn

from recbole_ext.model.layers import FastDropout, gather_positions


def elu_norm_linear_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    key_mask: Optional[torch.Tensor] = None,
    eps: float = 1e-12,
) -> torch.Tensor:
    """GLINT-RU's ELU-normalised linear attention ``Q' (K'^T V) / sqrt(d_h)``, linear in ``L``
    (LinRec's attention, which GLINT-RU adopts: also :data:`l2_linear_attention`).

    ``Q' = ELU(Q) / ||ELU(Q)||_2`` and ``K' = ELU(K) / ||ELU(K)||_2``, each token normalised over
    the head dimension; no softmax. ``key_mask`` (``True`` = real token) removes padded keys from
    ``K'^T V``.

    Args:
        q, k, v: per-head queries, keys and values.
        key_mask: optional boolean mask of the keys to keep.
        eps: floor of the norms (the reference divides by the bare norm).

    Returns:
        The context per head.

    Shape:
        - q, k, v: ``[B, H, L, d_h]``
        - key_mask: ``[B, L]``
        - output: ``[B, H, L, d_h]``
    """
    q = F.elu(q)
    k = F.elu(k)
    q = q / q.norm(p=2, dim=-1, keepdim=True).clamp_min(eps)
    k = k / k.norm(p=2, dim=-1, keepdim=True).clamp_min(eps)
    if key_mask is not None:
        k = k * key_mask[:, None, :, None].to(k.dtype)
    kv = torch.matmul(k.transpose(-2, -1), v)  # [B, H, d_h, d_h]
    return torch.matmul(q, kv) / math.sqrt(q.shape[-1])


class EluNormLinearAttention(nn.Module):
    """Multi-head ELU-normalised linear attention with output projection, dropout and a residual
    LayerNorm (GLINT-RU's attention expert).

    Args:
        hidden_size: model width ``d``.
        n_heads: number of heads ``H`` (``d`` must be divisible by ``H``).
        hidden_dropout_prob: dropout on the projected output.
        layer_norm_eps: epsilon of the LayerNorm.
    """

    def __init__(self, hidden_size: int, n_heads: int, hidden_dropout_prob: float, layer_norm_eps: float) -> None:
        super().__init__()
        if hidden_size % n_heads != 0:
            raise ValueError(f"hidden_size ({hidden_size}) is not a multiple of n_heads ({n_heads})")
        self.n_heads = n_heads
        self.head_size = hidden_size // n_heads
        self.query = nn.Linear(hidden_size, hidden_size)
        self.key = nn.Linear(hidden_size, hidden_size)
        self.value = nn.Linear(hidden_size, hidden_size)
        self.dense = nn.Linear(hidden_size, hidden_size)
        self.out_dropout = FastDropout(hidden_dropout_prob)
        self.LayerNorm = nn.LayerNorm(hidden_size, eps=layer_norm_eps)

    def split_heads(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, L, d] -> [B, H, L, d_h]``."""
        b, l, _ = x.shape
        return x.view(b, l, self.n_heads, self.head_size).transpose(1, 2)

    def forward(
        self, x: torch.Tensor, key_mask: Optional[torch.Tensor] = None, positions: Optional[torch.Tensor] = None
    ) -> torch.Tensor:
        """The attention expert at every position, or only at ``positions`` (one per row: the
        keys and values still come from every position; queries, projection and LayerNorm are
        per position, so the result equals the full output gathered there).

        Shape:
            - x: ``[B, L, d]``; key_mask: ``[B, L]`` (optional); positions: ``[B]`` (optional)
            - output: ``[B, L, d]``, or ``[B, d]`` with ``positions``
        """
        queries = x if positions is None else gather_positions(x, positions)[:, None]
        b, l, d = queries.shape
        q, k, v = self.split_heads(self.query(queries)), self.split_heads(self.key(x)), self.split_heads(self.value(x))
        ctx = elu_norm_linear_attention(q, k, v, key_mask)
        ctx = ctx.transpose(1, 2).reshape(b, l, d)
        out = self.LayerNorm(self.out_dropout(self.dense(ctx)) + queries)
        return out if positions is None else out[:, 0]


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
