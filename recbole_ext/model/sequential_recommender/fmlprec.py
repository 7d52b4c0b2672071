"""FMLPRec: SASRec with the self-attention replaced by a learnable filter in the frequency domain.

Paper: Kun Zhou, Hui Yu, Wayne Xin Zhao, Ji-Rong Wen, "Filter-enhanced MLP is All You Need for
Sequential Recommendation", WWW 2022 (arXiv 2202.13556).
Reference code: https://github.com/Woeee/FMLP-Rec (``models.py``, ``modules.py``, ``main.py``,
``trainers.py``, ``datasets.py``).

Item embedding plus learned position embedding, LayerNorm, dropout, then ``n_layers`` blocks of:
a filter layer (FFT along the sequence ``X = rfft(x, norm="ortho")`` of ``[B, L, d]``, an
element-wise product with a learnable complex weight ``W`` of shape ``[L // 2 + 1, d]``, one per
(frequency, channel), back with ``irfft(X * W, n=L, norm="ortho")``, dropout, residual LayerNorm)
and a point-wise feed-forward (``dense_2(act(dense_1(x)))``, dropout, residual LayerNorm: the
reference's ``Intermediate``, also RecBole's ``FeedForward``). ``L`` is ``MAX_ITEM_LIST_LENGTH``:
the filter's size follows it, and every sequence is laid out at that length. The filter is a
circular convolution of each channel with a learned kernel of length ``L`` (``irfft(W, n=L)``).
The state at the last real item is scored against the item table; the shared base class does the
scoring and the CE (or BPR) loss.

Padding. The reference left-pads every sequence to ``L`` (``datasets.py``) and reads the output at
position ``L - 1``; RecBole right-pads. The FFT sees all ``L`` positions and the convolution is
circular, so padded positions (item 0's row, which is N(0, 0.02) and never trained, plus their
position embeddings) mix into the real ones in both layouts, but differently: left-padded, the last
real item always sits at position ``L - 1`` with the same position embedding and the padding lies
before the history; right-padded, the last item sits at ``n - 1`` and the padding after it wraps
round into it. The outputs differ materially, so ``padding_side`` chooses: ``left`` (default) moves
each right-padded RecBole sequence to the end of a length-``L`` row, which is the reference's input
exactly, and reads position ``L - 1``; ``right`` filters RecBole's layout as it is and reads
position ``n - 1``. Either way a sequence longer than ``L`` keeps its last ``L`` items.

Deviations from the reference code (defaults reproduce the reference unless said otherwise):

- Loss: the reference trains with binary cross-entropy on one sampled negative per sequence
  (``-log s(pos) - log(1 - s(neg))``, at the last position); here ``loss_type`` CE (default:
  softmax over all items) or BPR (one sampled negative, the closest to the reference) come from
  the shared base class. Evaluation is RecBole's (the reference ranks 99 sampled negatives, or
  all items with ``--full_sort``).
- Defaults are the reference's ``main.py``: ``hidden_size`` 64, ``n_layers`` 2 (its
  ``num_hidden_layers``), ``hidden_dropout_prob`` 0.5, ``hidden_act`` gelu,
  ``initializer_range`` 0.02; its Adam at lr 0.001, no weight decay, patience 10 are RecBole's
  ``learning_rate``, ``weight_decay`` and ``stopping_step`` defaults. Its ``max_seq_length`` 50 is
  RecBole's ``MAX_ITEM_LIST_LENGTH`` default, a data-set key not set here. Its batch size 256 and
  200 epochs are not set here (RecBole: ``train_batch_size`` 2048, ``epochs`` 300).
- Hard-coded values are keys: the feed-forward width ``4 * hidden_size`` is ``inner_size``
  (default 256 = 4 x 64: change it with ``hidden_size``), the LayerNorm epsilon 1e-12 is
  ``layer_norm_eps``. The filter weight's initialisation, N(0, 0.02) per real and imaginary part,
  stays fixed at 0.02 (not ``initializer_range``), as in the reference.
- ``padding_side`` (see above; default ``left`` = the reference).
- The reference's ``--no_filters`` (self-attention instead of the filter, i.e. SASRec) is not
  here: that is RecBole's ``SASRec``.
- Activations are PyTorch's fused functions: ``F.gelu`` is the reference's erf GELU, ``F.silu``
  its swish (same values to float rounding; the reference's and RecBole's GELU, written in
  Python, made the feed-forward 2x slower on CPU).
- Every dropout is :class:`~recbole_ext.model.layers.FastDropout` (the same distribution up to
  ``p`` rounded to a multiple of 1/65536, another random stream than ``nn.Dropout``).
- ``last_position_only: True`` (default; exact): in the last block, everything after the filter's
  inverse FFT is per position, so it runs at the scored position only; ``False`` computes every
  position, as the reference does.
- The filter runs in float32 when its input is float16 or bfloat16 (cuFFT's half precision needs
  power-of-two lengths).
- Optional learned item bias (``item_bias``, off by default) comes from the shared base class.
"""

from __future__ import annotations

from typing import Tuple

import torch
from torch import nn

from recbole_ext.errors import ConfigError
from recbole_ext.model.abstract_recommender import SequenceEncoderRecommender
from recbole_ext.model.activations import activation
from recbole_ext.model.fmlp_layers import FilterBlock
from recbole_ext.model.layers import FastDropout, gather_positions, normal_init_

PADDING_SIDES = ("left", "right")


def layout_sequences(
    item_seq: torch.Tensor, item_seq_len: torch.Tensor, length: int, side: str
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Each row's last ``k = min(n, length)`` items in a row of ``length``: at its end (``left``
    padding, the reference's layout) or at its start (``right``, RecBole's), zeros elsewhere.

    Args:
        item_seq: right-padded item ids.
        item_seq_len: real lengths ``n``.
        length: the row length ``L``.
        side: ``left`` or ``right`` (where the padding goes).

    Returns:
        ``(rows, last)``: the laid-out ids and each row's position of its last real item.

    Shape:
        - item_seq: ``[B, L']`` (any ``L'``)
        - item_seq_len: ``[B]``
        - rows: ``[B, L]``; last: ``[B]``
    """
    kept = item_seq_len.clamp(min=1, max=length)[:, None]
    first = item_seq_len[:, None].clamp(min=1) - kept  # index of the first kept item
    pos = torch.arange(length, device=item_seq.device)[None, :]
    offset = pos - (length - kept) if side == "left" else pos
    real = (offset >= 0) & (offset < kept)
    src = (first + offset).clamp(min=0, max=item_seq.shape[1] - 1)
    rows = torch.where(real, item_seq.gather(1, src), torch.zeros_like(src))
    last = torch.full_like(item_seq_len, length - 1) if side == "left" else kept[:, 0] - 1
    return rows, last


class FMLPRec(SequenceEncoderRecommender):
    """FMLPRec (see the module docstring). ``forward(item_seq, item_seq_len) -> [B, d]``."""

    def __init__(self, config, dataset):
        super().__init__(config, dataset)

        # load parameters info
        self.n_layers: int = config["n_layers"]
        self.hidden_size: int = config["hidden_size"]
        self.inner_size: int = config["inner_size"]
        self.hidden_dropout_prob: float = config["hidden_dropout_prob"]
        self.hidden_act: str = config["hidden_act"]
        self.layer_norm_eps: float = config["layer_norm_eps"]
        self.initializer_range: float = config["initializer_range"]
        self.padding_side: str = config["padding_side"]
        self.last_position_only: bool = bool(config["last_position_only"])
        if self.padding_side not in PADDING_SIDES:
            raise ConfigError(f"padding_side={self.padding_side!r}; allowed: {' | '.join(PADDING_SIDES)}")

        # define layers
        d, eps, p = self.hidden_size, self.layer_norm_eps, self.hidden_dropout_prob
        self.item_embedding = nn.Embedding(self.n_items, d, padding_idx=0)
        self.position_embedding = nn.Embedding(self.max_seq_length, d)
        self.LayerNorm = nn.LayerNorm(d, eps=eps)
        self.dropout = FastDropout(p)
        self.layers = nn.ModuleList(
            FilterBlock(self.max_seq_length, d, self.inner_size, p, activation(self.hidden_act), eps)
            for _ in range(self.n_layers)
        )

        # parameters initialization
        self.apply(self._init_weights)

    def _init_weights(self, module: nn.Module) -> None:
        """The reference's: N(0, initializer_range) Linear and Embedding weights (the padding row
        too), zero Linear biases, unit LayerNorms; the filter weights keep their N(0, 0.02)."""
        normal_init_(module, self.initializer_range)

    def forward(self, item_seq: torch.Tensor, item_seq_len: torch.Tensor) -> torch.Tensor:
        """Encode each sequence into the state at its last real item.

        Args:
            item_seq: item ids, right-padded with 0 (RecBole's layout).
            item_seq_len: real lengths.

        Returns:
            The state at each sequence's last real item (position ``L - 1`` of the left-padded
            row under ``padding_side: left``, ``n - 1`` under ``right``).

        Shape:
            - item_seq: ``[B, L]`` (``L = MAX_ITEM_LIST_LENGTH``; other widths are laid out to it)
            - item_seq_len: ``[B]``
            - output: ``[B, d]``
        """
        rows, last = layout_sequences(item_seq, item_seq_len, self.max_seq_length, self.padding_side)
        positions = torch.arange(self.max_seq_length, device=rows.device)
        x = self.item_embedding(rows) + self.position_embedding(positions)[None]
        x = self.dropout(self.LayerNorm(x))
        for i, layer in enumerate(self.layers):
            at_last = self.last_position_only and i == self.n_layers - 1
            x = layer(x, last if at_last else None)
        return x if self.last_position_only else gather_positions(x, last)
