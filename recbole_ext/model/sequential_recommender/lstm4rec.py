"""LSTM4Rec: an LSTM next-item recommender, the baseline of the mLSTM experiment.

Reference: the ``lstm`` representation of Spotlight's ``ImplicitSequenceModel``
(https://github.com/maciejkula/spotlight, ``spotlight/sequence/representations.py``), as used for
the LSTM arm of https://github.com/FlorianWilhelm/mlstm4reco (blog post "Multiplicative LSTM for
sequence-based recommendations", 2018).

:class:`RecurrentSequenceRecommender` holds everything that LSTM4Rec and
:class:`~recbole_ext.model.sequential_recommender.mlstm.mLSTM` share (item embedding, dropout,
optional learned initial state, projection to the embedding size, picking the state at the last
real item); a subclass only builds its recurrent layer and says how to run it. Scoring, item bias
and losses are :class:`~recbole_ext.model.abstract_recommender.SequenceEncoderRecommender`'s.

Deviations from the reference:

- RecBole's pipeline: each training example is a prefix of a user's history (right padded) and
  the model predicts its next item from the state at the last real item; Spotlight trains on every
  step of left-padded windows at once.
- Loss: RecBole's ``loss_type`` (CE over all items by default, or BPR with one sampled negative)
  instead of Spotlight's adaptive hinge loss on 5 uniform negatives.
- Output state: ``output_state: h`` (default, as Spotlight's LSTM) or ``c`` (the cell state, which
  mlstm4reco's mLSTM dots with the next item). ``c`` at the last real item comes from a packed
  sequence (``pack_padded_sequence``).
- Initial state: zeros by default (as Spotlight's LSTM, which instead runs over left padding);
  ``learn_initial_state: True`` learns one vector per layer used as both ``h_0`` and ``c_0``.
- ``hidden_size`` may differ from ``embedding_size``: a linear projection then maps the state to
  the embedding size; Spotlight ties them.
- Dropout on the item embeddings (``dropout_prob``, also between stacked layers), and
  ``num_layers`` layers; the reference has one layer and no dropout.
- Item bias only with ``item_bias: True`` (Spotlight always learns one). Embeddings start
  ``xavier_normal_`` (RecBole's recurrent models) instead of Spotlight's ``N(0, 1/d)``.
- Each batch is cut to its longest real sequence before the recurrence (the states used do not
  change; both models get the same saving).
- Under bfloat16 autocast on a CPU without bfloat16 instructions (no AVX-512 BF16 or AMX), the
  LSTM itself runs in float32: oneDNN has no bfloat16 LSTM there and fails to create one.
"""

from __future__ import annotations

import contextlib
from typing import Optional, Tuple

import torch
from torch import nn
from torch.nn.init import xavier_normal_

from recbole_ext.errors import ConfigError
from recbole_ext.model.abstract_recommender import SequenceEncoderRecommender


class RecurrentSequenceRecommender(SequenceEncoderRecommender):
    """Item embedding -> recurrent layers -> state at the last real item (-> projection).

    Subclasses implement :meth:`build_recurrent` and :meth:`run_recurrent`.

    Config keys: ``embedding_size``, ``hidden_size``, ``num_layers``, ``dropout_prob``,
    ``output_state`` (``h`` or ``c``), ``learn_initial_state`` (bool), plus the base class's
    ``loss_type`` and ``item_bias``.
    """

    def __init__(self, config, dataset):
        super().__init__(config, dataset)

        # load parameters info
        self.embedding_size: int = int(config["embedding_size"])
        self.hidden_size: int = int(config["hidden_size"])
        self.num_layers: int = int(config["num_layers"])
        self.dropout_prob: float = float(config["dropout_prob"])
        self.output_state: str = str(config["output_state"])
        self.learn_initial_state: bool = bool(config["learn_initial_state"])
        if self.output_state not in ("h", "c"):
            raise ConfigError(f"output_state must be 'h' or 'c', got {self.output_state!r}")
        if self.num_layers < 1:
            raise ConfigError(f"num_layers must be >= 1, got {self.num_layers}")

        # define layers
        self.item_embedding = nn.Embedding(self.n_items, self.embedding_size, padding_idx=0)
        self.emb_dropout = nn.Dropout(self.dropout_prob)
        self.recurrent = self.build_recurrent()
        self.initial_state: Optional[nn.Parameter] = (
            nn.Parameter(torch.empty(self.num_layers, self.hidden_size)) if self.learn_initial_state else None
        )
        self.projection = (
            nn.Linear(self.hidden_size, self.embedding_size)
            if self.hidden_size != self.embedding_size
            else nn.Identity()
        )

        # parameters initialization (recurrent layers keep their own uniform(±1/sqrt(H)) init)
        xavier_normal_(self.item_embedding.weight)
        if self.initial_state is not None:
            nn.init.normal_(self.initial_state, 0.0, 1.0 / self.hidden_size)

    def build_recurrent(self) -> nn.Module:
        """The recurrent layers, ``[B, L, embedding_size]`` in, width ``hidden_size``."""
        raise NotImplementedError

    def run_recurrent(
        self, x: torch.Tensor, item_seq_len: torch.Tensor, state: Optional[Tuple[torch.Tensor, torch.Tensor]]
    ) -> torch.Tensor:
        """The ``output_state`` at the last real item.

        Shape: x ``[B, L, E]``, item_seq_len ``[B]``, state ``([n_layers, B, H], [n_layers, B, H])``
        or ``None`` -> ``[B, H]``.
        """
        raise NotImplementedError

    def forward(self, item_seq: torch.Tensor, item_seq_len: torch.Tensor) -> torch.Tensor:
        """Shape: item_seq ``[B, L]`` (right padded), item_seq_len ``[B]`` -> ``[B, embedding_size]``."""
        longest = int(item_seq_len.max())
        item_seq = item_seq[:, : max(longest, 1)]
        x = self.emb_dropout(self.item_embedding(item_seq))
        state = None
        if self.initial_state is not None:
            s = self.initial_state.unsqueeze(1).expand(-1, item_seq.size(0), -1).contiguous()
            state = (s, s)
        return self.projection(self.run_recurrent(x, item_seq_len, state))


class LSTM4Rec(RecurrentSequenceRecommender):
    """LSTM next-item recommender (``torch.nn.LSTM``); see the module docstring."""

    def __init__(self, config, dataset):
        super().__init__(config, dataset)

    def build_recurrent(self) -> nn.Module:
        return nn.LSTM(
            self.embedding_size,
            self.hidden_size,
            num_layers=self.num_layers,
            dropout=self.dropout_prob if self.num_layers > 1 else 0.0,
            batch_first=True,
        )

    def run_recurrent(self, x, item_seq_len, state):
        with _lstm_precision(x) as cast:
            x = cast(x)
            state = None if state is None else tuple(cast(s) for s in state)
            if self.output_state == "h":
                out, _ = self.recurrent(x, state)
                return self.gather_indexes(out, item_seq_len - 1)
            packed = nn.utils.rnn.pack_padded_sequence(
                x, item_seq_len.clamp_min(1).cpu(), batch_first=True, enforce_sorted=False
            )
            _, (_, c_n) = self.recurrent(packed, state)
            return c_n[-1]


@contextlib.contextmanager
def _lstm_precision(x: torch.Tensor):
    """Autocast off (and the inputs in float32) for an LSTM on a CPU where oneDNN has no
    bfloat16 LSTM; elsewhere nothing changes. Yields the cast to apply to the inputs."""
    lower = (
        x.device.type == "cpu"
        and torch.is_autocast_enabled("cpu")
        and torch.get_autocast_dtype("cpu") in (torch.bfloat16, torch.float16)
    )
    if not lower or torch.ops.mkldnn._is_mkldnn_bf16_supported():
        yield lambda t: t
        return
    with torch.autocast("cpu", enabled=False):
        yield lambda t: t.float()
