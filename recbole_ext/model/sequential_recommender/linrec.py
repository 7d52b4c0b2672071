"""LinRec: SASRec with L2-normalised linear attention.

Paper: Langming Liu et al., "LinRec: Linear Attention Mechanism for Long-term Sequential
Recommender Systems", SIGIR 2023 (doi 10.1145/3539618.3591717); a baseline of GLINT-RU.
Reference code: https://github.com/Applied-Machine-Learning-Lab/LinRec (``layers.py``,
``run.py``, ``ml-1m.yaml``); a RecBole 1.2 port of the same attention is in
https://github.com/TBI805/RecGRELA (``model/LinRec.py``, ``model/layers/layers_LinRec.py``).

The model is RecBole's SASRec with one change, the attention. Item embedding plus learned
position embedding, LayerNorm, dropout, then ``n_layers`` blocks of multi-head attention
(projection, dropout, residual LayerNorm) and RecBole's point-wise feed-forward (residual
LayerNorm). The attention is :func:`~recbole_ext.model.linear_attention.l2_linear_attention`:
per head ``Q' (K'^T V) / sqrt(d_h)`` with ``Q' = ELU(Q) / ||ELU(Q)||_2`` and
``K' = ELU(K) / ||ELU(K)||_2``, both normalised per token over the ``d_h`` features (the
reference keeps keys as ``[d_h, L]`` and normalises each column, which is each key's
vector), with no softmax. The state at the last real item is scored against the item
embedding table; the shared base class does the scoring and the CE (or BPR) loss.

Padding. The reference replaces RecBole's ``layers.py``: SASRec still builds its causal
padding mask and hands it to every layer, but the linear attention never reads it. So every
position attends to every position, later ones included (no causal mask), and the right
padding enters ``K'^T V``: a padded position holds item 0's embedding (not zero: SASRec's
normal initialisation overwrites the zero row ``padding_idx`` makes, and ``padding_idx`` only
stops its gradient) plus its position embedding, so the state at the last real item depends
on how many padded positions follow and on what they hold. The sum over keys is not divided
by their number, so that dependence does not fade with length. ``mask_padding: False``
(default) keeps this. ``mask_padding: True`` (our deviation) zeroes the normalised keys of
padded positions in every layer before ``K'^T V``, so nothing at a padded position reaches
any real one, and cuts each batch to its longest real sequence (exact in that mode). The
real items still see one another in both directions; only the last one is scored.

Deviations from the reference code (defaults reproduce the reference unless said otherwise):

- A model of its own, run by name ``LinRec``; the reference swaps RecBole's ``layers.py`` for
  every model that uses ``MultiHeadAttention`` (SASRec, BERT4Rec, ...) and runs ``SASRec``.
- ``mask_padding`` (see above; default ``False`` = the reference).
- Defaults are the reference run script's (``run.py``): ``hidden_size`` 128, ``n_heads`` 8,
  ``n_layers`` 2, ``inner_size`` 256, ``hidden_dropout_prob`` 0.2, ``hidden_act`` gelu,
  ``layer_norm_eps`` 1e-12, ``initializer_range`` 0.02; ``loss_type`` CE is RecBole's SASRec
  default (the script turns negative sampling off). ``MAX_ITEM_LIST_LENGTH`` is a data-set key
  and stays the data set's (the reference: 200 for ml-1m, 100 for gowalla).
- ``attn_dropout_prob`` is not a key: the reference builds that dropout (and sets it to 0.2)
  but the linear attention never applies it.
- The L2 norms are floored at 1e-12 (the reference divides by the bare norm, infinite for a
  head whose ELU output is all zero).
- Optional learned item bias (``item_bias``, off by default) comes from the shared base class.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from recbole_ext.model.abstract_recommender import SequenceEncoderRecommender
from recbole_ext.model.layers import normal_init_
from recbole_ext.model.linear_attention import LinRecLayer


class LinRec(SequenceEncoderRecommender):
    """LinRec (see the module docstring). ``forward(item_seq, item_seq_len) -> [B, d]``."""

    def __init__(self, config, dataset):
        super().__init__(config, dataset)

        # load parameters info
        self.n_layers: int = config["n_layers"]
        self.n_heads: int = config["n_heads"]
        self.hidden_size: int = config["hidden_size"]
        self.inner_size: int = config["inner_size"]
        self.hidden_dropout_prob: float = config["hidden_dropout_prob"]
        self.hidden_act: str = config["hidden_act"]
        self.layer_norm_eps: float = config["layer_norm_eps"]
        self.initializer_range: float = config["initializer_range"]
        self.mask_padding: bool = bool(config["mask_padding"])

        # define layers
        d = self.hidden_size
        self.item_embedding = nn.Embedding(self.n_items, d, padding_idx=0)
        self.position_embedding = nn.Embedding(self.max_seq_length, d)
        self.LayerNorm = nn.LayerNorm(d, eps=self.layer_norm_eps)
        self.dropout = nn.Dropout(self.hidden_dropout_prob)
        block = (d, self.n_heads, self.inner_size, self.hidden_dropout_prob, self.hidden_act, self.layer_norm_eps)
        self.layers = nn.ModuleList(LinRecLayer(*block) for _ in range(self.n_layers))

        # parameters initialization
        self.apply(self._init_weights)

    def _init_weights(self, module: nn.Module) -> None:
        """RecBole SASRec's initialisation: ``N(0, initializer_range)`` for every Linear and
        Embedding weight (the padding row too), zero biases, LayerNorm ones and zeros."""
        normal_init_(module, self.initializer_range)

    def forward(self, item_seq: torch.Tensor, item_seq_len: torch.Tensor) -> torch.Tensor:
        """Encode each sequence into the state at its last real item.

        Shape:
            - item_seq: ``[B, L]`` (right-padded with 0)
            - item_seq_len: ``[B]``
            - output: ``[B, d]``
        """
        key_mask: Optional[torch.Tensor] = None
        if self.mask_padding:  # exact in this mode: padded positions reach nothing
            item_seq = item_seq[:, : max(int(item_seq_len.max()), 1)]
        positions = torch.arange(item_seq.shape[1], device=item_seq.device)
        if self.mask_padding:
            key_mask = positions[None, :] < item_seq_len[:, None]
        x = self.item_embedding(item_seq) + self.position_embedding(positions)[None]
        x = self.dropout(self.LayerNorm(x))
        for layer in self.layers:
            x = layer(x, key_mask)
        return self.gather_indexes(x, item_seq_len - 1)
