"""LRURec: sequential recommendation with linear recurrent units.

Paper: Zhenrui Yue, Yueqi Wang, Zhankui He, Huimin Zeng, Julian McAuley, Dong Wang, "Linear
Recurrent Units for Sequential Recommendation", WSDM 2024 (doi 10.1145/3616855.3635760).
Reference code: https://github.com/yueqirex/LRURec (``model/lru.py``, ``config.py``,
``trainer/lru.py``, ``trainer/base.py``, ``dataloader/sas.py``); a RecBole 1.2 port of the same
model is in https://github.com/TBI805/RecGRELA (``model/LRURec.py``, ``config/LRURec.yaml``).

The item embeddings ``[B, L, d]`` go through dropout and a LayerNorm (no positional embedding:
the recurrence orders the items), then ``n_layers`` blocks of: an LRU layer
(:class:`~recbole_ext.model.lru_layers.LRULayer`: ``h_t = lambda * h_{t-1} + gamma * (B x_t + b)``
over ``H = state_expand * d`` complex channels, eigenvalues initialised on the ring
``[r_min, r_max]``, ``gamma = sqrt(1 - |lambda|^2)`` at start and learned, evaluated by the
reference's log-depth recursive doubling; then ``Re(C h + c)``, dropout, residual LayerNorm) and a
position-wise GELU feed-forward of width ``ffn_expand * d`` (dropout after both linears, residual
LayerNorm). The state at the last real item is scored against the item table plus a learned
per-item bias; the shared base class does the scoring and the CE (or BPR) loss.

Direction. The reference runs one left-to-right scan per layer (nothing runs backward in time,
unlike the bidirectional BERT4Rec the code's argument names come from) and trains it
autoregressively, so the output at a position depends on that item and the ones before it only.
This port does the same.

Padding. The reference left-pads every sequence to ``max_len`` and then, in front, to a power of
two with zero vectors, and its scan multiplies every carry out of a padded position by 0: with the
padding a prefix, the recurrence starts from a zero state at the first real item. RecBole
right-pads. Here each batch is cut to its longest real sequence and scanned as it is (no power of
two: :func:`~recbole_ext.model.lru_layers.lru_scan` updates a shorter last block on its own).
Since the scan runs forward in time and everything else is per position, the state at the last
real item (position ``n - 1``) is built from positions ``0 .. n - 1``, all real, from a zero
state: exactly the reference's state at its last position, with no mask needed, whatever follows
(tests: the reference forward written out on left-padded rows, and items scrambled after the last
real one).

Deviations from the reference code (defaults reproduce the reference unless said otherwise):

- Training is RecBole's: one target per training sequence (RecBole makes every prefix of a user's
  history a sequence), ``loss_type`` CE over all items (the reference: CE at every position of
  each window of ``max_len``, the same (prefix, next item) pairs weighted per window) or BPR.
  The reference's sampled softmax for its XLong data set is not ported.
- Optimiser and schedule are the trainer's keys and are not set here: the reference uses AdamW at
  lr 0.001, weight decay 0.01 on all but biases and LayerNorms, gradient clipping at norm 5,
  batch size 128 (``learner: adamw``, ``weight_decay: 0.01`` come closest in RecBole, which decays
  every parameter). ``MAX_ITEM_LIST_LENGTH`` stays the data set's (the reference: 200 for ml-1m,
  50 for the others).
- Complex weights are kept as real parameters (see :mod:`recbole_ext.model.lru_layers`); the
  imaginary part of the output bias, which never reaches ``Re(C h + c)``, is dropped (``d``
  parameters per layer fewer, same outputs). The scan runs in place with a hand-written gradient
  and ``gamma`` scales ``B`` before the product (same values, 4x faster on CPU).
- Hard-coded values are keys: ``state_expand`` (``H = 2 d``), ``ffn_expand`` (4), ``r_min`` (0.8),
  ``r_max`` (0.99), ``layer_norm_eps`` (1e-5, PyTorch's default the reference uses),
  ``initializer_range`` (0.02).
- Initialisation is the reference's: every parameter except the LayerNorms and ``params_log``
  (item table with its row 0, both projections with their biases, the feed-forward, the item
  bias) is drawn from N(0, 0.02) truncated to +-2 standard deviations, by
  ``nn.init.trunc_normal_`` (the same inverse-CDF algorithm).
- The learned item bias is the base class's ``item_bias`` (default ``True``, as the reference).
- Every dropout is :class:`~recbole_ext.model.layers.FastDropout` (the same distribution up to
  ``p`` rounded to a multiple of 1/65536, another random stream than ``nn.Dropout``).
- ``last_position_only: True`` (default; exact): in the last block everything after the scan is
  per position, so it runs at the last real item only; ``False`` computes every position.
- Batches are cut to their longest real sequence (exact: see Padding).
"""

from __future__ import annotations

import torch
from torch import nn

from recbole_ext.errors import ConfigError
from recbole_ext.model.abstract_recommender import SequenceEncoderRecommender
from recbole_ext.model.layers import FastDropout, FeedForward, gather_positions
from recbole_ext.model.lru_layers import LRUBlock, LRULayer

#: parameters (by name) the truncated normal initialisation leaves alone, as the reference does
KEEP_INIT = ("layer_norm", "LayerNorm", "params_log")


class LRURec(SequenceEncoderRecommender):
    """LRURec (see the module docstring). ``forward(item_seq, item_seq_len) -> [B, d]``."""

    @classmethod
    def check_config(cls, config) -> None:
        """The rules between this model's keys, run with the configuration's checks before any
        data is read (and again when the model is built): ``r_min <= r_max``."""
        if not config["r_min"] <= config["r_max"]:
            raise ConfigError(f"r_min={config['r_min']} is larger than r_max={config['r_max']}")

    def __init__(self, config, dataset):
        super().__init__(config, dataset)

        # load parameters info
        self.hidden_size: int = config["hidden_size"]
        self.n_layers: int = config["n_layers"]
        self.dropout_prob: float = config["dropout_prob"]
        self.lru_dropout_prob: float = config["lru_dropout_prob"]
        self.state_expand: int = config["state_expand"]
        self.ffn_expand: int = config["ffn_expand"]
        self.r_min: float = config["r_min"]
        self.r_max: float = config["r_max"]
        self.layer_norm_eps: float = config["layer_norm_eps"]
        self.initializer_range: float = config["initializer_range"]
        self.last_position_only: bool = bool(config["last_position_only"])
        self.check_config(config)

        # define layers
        d, eps = self.hidden_size, self.layer_norm_eps
        self.item_embedding = nn.Embedding(self.n_items, d, padding_idx=0)
        self.dropout = FastDropout(self.dropout_prob)
        self.layer_norm = nn.LayerNorm(d, eps=eps)
        self.lru_blocks = nn.ModuleList(
            LRUBlock(
                LRULayer(d, self.state_expand * d, self.lru_dropout_prob, self.r_min, self.r_max, eps),
                FeedForward(d, self.ffn_expand * d, self.dropout_prob, eps),
            )
            for _ in range(self.n_layers)
        )

        # parameters initialization
        self._init_weights()

    def _init_weights(self) -> None:
        """The reference's ``truncated_normal_init``: N(0, std) truncated to ``[-2 std, 2 std]``
        for every parameter but the LayerNorms and ``params_log`` (ring-initialised)."""
        std = self.initializer_range
        with torch.no_grad():
            for name, p in self.named_parameters():
                if not any(k in name for k in KEEP_INIT):
                    nn.init.trunc_normal_(p, mean=0.0, std=std, a=-2 * std, b=2 * std)

    def forward(self, item_seq: torch.Tensor, item_seq_len: torch.Tensor) -> torch.Tensor:
        """Encode each sequence into the state at its last real item.

        Args:
            item_seq: item ids, right-padded with 0 (RecBole's layout).
            item_seq_len: number of real items per row (at least 1).

        Returns:
            the last block's output at each row's last real item.

        Shape:
            - item_seq: ``[B, L]``
            - item_seq_len: ``[B]``
            - output: ``[B, d]``
        """
        item_seq = item_seq[:, : max(int(item_seq_len.max()), 1)]  # exact: the scan is causal
        x = self.layer_norm(self.dropout(self.item_embedding(item_seq)))
        last = (item_seq_len - 1).clamp(min=0)
        for i, block in enumerate(self.lru_blocks):
            at_last = self.last_position_only and i == self.n_layers - 1
            x = block(x, last if at_last else None)
        return x if self.last_position_only else gather_positions(x, last)
