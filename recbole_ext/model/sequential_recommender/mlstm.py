"""mLSTM: a multiplicative-LSTM next-item recommender.

Paper: B. Krause, L. Lu, I. Murray, S. Renals, "Multiplicative LSTM for sequence modelling",
ICLR workshop 2017 (arXiv:1609.07959). Recommender setting and reference code:
https://github.com/FlorianWilhelm/mlstm4reco (``src/mlstm4reco/layers.py``, ``representations.py``),
built on Spotlight's ``ImplicitSequenceModel``.

The cell (:class:`recbole_ext.model.mlstm.MultiplicativeLSTM`): ``m_t = (W_im x_t + b_im) *
(W_hm h_{t-1} + b_hm)``, then an LSTM cell whose recurrent input is ``m_t`` instead of
``h_{t-1}``. Everything around the cell is shared with the LSTM baseline
(:class:`~recbole_ext.model.sequential_recommender.lstm4rec.RecurrentSequenceRecommender`), so
``mLSTM`` and ``LSTM4Rec`` differ only in the cell.

Deviations from mlstm4reco (keys that restore its choice in brackets):

- It dots the cell state ``c_t`` with the next item's embedding; we use ``h_t`` by default
  (``output_state: c``).
- It learns one vector used as both ``h_0`` and ``c_0``; we start from zeros by default
  (``learn_initial_state: True``, one vector per layer).
- It runs the recurrence over left padding (so padding steps change the state before the first
  item); RecBole right-pads and we read the state at the last real item, so padding after it has
  no effect (each batch is also cut to its longest sequence).
- It trains with Spotlight's adaptive hinge loss on 5 uniformly sampled negatives at every step of
  the window; we use RecBole's ``loss_type`` (CE over all items by default, or BPR with one
  negative) on the next item of each prefix.
- It ties ``hidden_size`` to the embedding size; we allow them to differ (linear projection), and
  offer ``num_layers`` stacked layers and dropout (``dropout_prob``), which it does not have.
- It always learns an item bias; ours is ``item_bias: True`` (off by default). Embeddings start
  ``xavier_normal_`` instead of ``N(0, 1/d)``; cell weights uniform in ``±1/sqrt(H)`` as it does.
- Its ``LSTMCell`` has two gate biases (``b_ih + b_hh``), each uniform in ``±1/sqrt(H)``; we have
  one, uniform in ``±1/sqrt(H)``: the same function, a narrower spread at initialisation.
- Speed: it steps a Python loop over ``LSTMCell`` with the input projections inside the loop; we
  compute the input-side projections of all steps in one matmul and run only the recurrence
  step by step: forward in C++ (``impl="native"``, built on first use; what the layer's default
  ``"auto"`` picks on the CPU, falling back to TorchScript without a compiler), backward as a
  TorchScript loop with a hand-written BPTT (``impl="fused"``), so the weight gradients of all
  steps are single matmuls. See docs/mlstm.md for timings.
"""

from __future__ import annotations

from torch import nn

from recbole_ext.model.mlstm import MultiplicativeLSTM
from recbole_ext.model.sequential_recommender.lstm4rec import RecurrentSequenceRecommender


class mLSTM(RecurrentSequenceRecommender):
    """Multiplicative-LSTM next-item recommender; see the module docstring."""

    def __init__(self, config, dataset):
        super().__init__(config, dataset)

    def build_recurrent(self) -> nn.Module:
        return MultiplicativeLSTM(
            self.embedding_size,
            self.hidden_size,
            num_layers=self.num_layers,
            dropout=self.dropout_prob if self.num_layers > 1 else 0.0,
        )

    def run_recurrent(self, x, item_seq_len, state):
        h, c = self.recurrent(x, state)
        return self.gather_indexes(h if self.output_state == "h" else c, item_seq_len - 1)
