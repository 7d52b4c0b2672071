"""Mamba4Rec: sequential recommendation with selective state space models (a GLINT-RU baseline).

Paper: Chengkai Liu et al., "Mamba4Rec: Towards Efficient Sequential Recommendation with
Selective State Space Models", 2024 (arXiv 2403.03900).
Reference code: https://github.com/chengkai-liu/Mamba4Rec (``mamba4rec.py``, ``config.yaml``;
``TBI805/RecGRELA``'s ``model/Mamba4Rec.py`` is the same file), which uses ``mamba_ssm.Mamba``
(``mamba-ssm==1.1.4``, ``mamba_ssm/modules/mamba_simple.py``) for the mixer.

The item embeddings ``[B, L, d]`` go through dropout and a LayerNorm (no positional embedding),
then ``num_layers`` layers of: a Mamba mixer (``in_proj`` to ``x, z`` of width ``E = expand * d``;
causal depthwise convolution of width ``d_conv`` and SiLU on ``x``; ``x_proj`` to
``dt_rank + 2 * d_state`` giving ``dt, B, C``; ``delta = softplus(dt_proj(dt))``; the selective scan
with ``A = -exp(A_log)`` and skip ``D``; gate ``* SiLU(z)``; ``out_proj``), dropout, LayerNorm
(with the layer's input added only when ``num_layers > 1``, as the reference), and a GELU
feed-forward of width ``ffn_expand * d`` with dropout after both linears and a residual
LayerNorm. The state at the last real item is scored against the item table (the shared base
class does the scoring and the CE/BPR loss).

Deviations from the reference code (defaults reproduce the reference unless said otherwise):

- No ``mamba_ssm`` needed: the mixer is written here with ``mamba_ssm.Mamba``'s parameters and
  formula (its non-fused path; the fused ``mamba_inner_fn`` the reference trains with computes
  the same), and the selective scan comes from :mod:`recbole_ext.model.selective_scan`:
  ``scan_impl: auto`` takes ``mamba_ssm``'s CUDA kernel where it imports and the model is on
  CUDA, else a pure-PyTorch scan (``torch``; ``chunked`` is a chunked variant).
- ``mambapy`` (PyPI, pure-PyTorch Mamba, MIT, depends on torch only) was weighed and not used:
  its last release (1.2.0) is of July 2024, its Mamba block has its own layout and
  initialisation (so only its ``pscan`` would serve), and that Blelloch scan pads ``L`` to a
  power of two and materialises ``[B, L, E, N]`` tensors: about nine times the loop's time,
  forward + backward on a CPU at B 256, L 50, E 128, N 32 (:mod:`recbole_ext.model.selective_scan`).
- Initialisation is the reference's effective one: its ``_init_weights`` runs after
  ``mamba_ssm.Mamba`` built itself, so every Linear (``dt_proj`` included) gets N(0, 0.02)
  weights and zero biases, erasing Mamba's ``dt`` initialisation (``softplus(0)`` = 0.69 at
  start); the convolution keeps PyTorch's default, ``A_log = log(1..d_state)``, ``D = 1``, and
  N(0, 0.02) also fills the padding row of the item table. ``dt_init: mamba`` restores Mamba's
  own ``dt_proj`` initialisation (uniform weights of bound ``dt_rank ** -0.5``, bias the inverse
  softplus of a log-uniform ``dt`` in [0.001, 0.1], floored at 1e-4).
- Hard-coded values are keys: the feed-forward width ``4 d`` is ``ffn_expand``, the LayerNorm
  epsilon 1e-12 is ``layer_norm_eps``. ``dt_rank`` is Mamba's ``"auto"``, ``ceil(d / 16)``.
- All dropouts are :class:`~recbole_ext.model.layers.FastDropout` (the same distribution up to
  ``p`` rounded to a multiple of 1/65536, another random stream than ``nn.Dropout``).
- ``last_position_only: True`` (default; exact): the last layer's dropout, LayerNorms and
  feed-forward are per position, so they run at the last real item only; ``False`` computes
  every position, as the reference does.
- Padding: RecBole right-pads, and the mixer is causal (convolution padded on the left, scan
  forward in time), so the state at the last real item never sees the padding after it; no
  masking is needed (none in the reference either).
- Optional learned item bias (``item_bias``, off by default) comes from the shared base class.
"""

from __future__ import annotations

import torch
from torch import nn

from recbole_ext.errors import ConfigError
from recbole_ext.model.abstract_recommender import SequenceEncoderRecommender
from recbole_ext.model.layers import FastDropout, FeedForward, gather_positions
from recbole_ext.model.mamba_layers import MambaLayer, MambaMixer
from recbole_ext.model.selective_scan import resolve_scan_impl

DT_INITS = ("reference", "mamba")


class Mamba4Rec(SequenceEncoderRecommender):
    """Mamba4Rec (see the module docstring). ``forward(item_seq, item_seq_len) -> [B, d]``."""

    @classmethod
    def check_config(cls, config) -> None:
        """The rules of this model's keys, run with the configuration's checks before any data
        is read (and again when the model is built): a known ``dt_init``, and a ``scan_impl``
        that is known and can run here (``mamba_ssm`` needs its package)."""
        if config["dt_init"] not in DT_INITS:
            raise ConfigError(f"dt_init={config['dt_init']!r}; allowed: {' | '.join(DT_INITS)}")
        resolve_scan_impl(config["scan_impl"], torch.device("cpu"))  # unknown or unusable: ConfigError

    def __init__(self, config, dataset):
        super().__init__(config, dataset)

        # load parameters info
        self.hidden_size: int = config["hidden_size"]
        self.num_layers: int = config["num_layers"]
        self.dropout_prob: float = config["dropout_prob"]
        self.d_state: int = config["d_state"]
        self.d_conv: int = config["d_conv"]
        self.expand: int = config["expand"]
        self.ffn_expand: int = config["ffn_expand"]
        self.layer_norm_eps: float = config["layer_norm_eps"]
        self.dt_init: str = config["dt_init"]
        self.last_position_only: bool = bool(config["last_position_only"])
        self.scan_impl: str = config["scan_impl"]
        self.check_config(config)

        # define layers
        d, eps = self.hidden_size, self.layer_norm_eps
        self.item_embedding = nn.Embedding(self.n_items, d, padding_idx=0)
        self.LayerNorm = nn.LayerNorm(d, eps=eps)
        self.dropout = FastDropout(self.dropout_prob)
        self.mamba_layers = nn.ModuleList(
            MambaLayer(
                MambaMixer(d, self.d_state, self.d_conv, self.expand, self.scan_impl),
                FeedForward(d, self.ffn_expand * d, self.dropout_prob, eps),
                self.dropout_prob,
                eps,
                residual=self.num_layers > 1,  # the reference: no residual around a single layer
            )
            for _ in range(self.num_layers)
        )

        # parameters initialization
        self.apply(self._init_weights)
        if self.dt_init == "mamba":
            for layer in self.mamba_layers:
                layer.mamba.mamba_dt_init()

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        """The reference's: N(0, 0.02) Linear and Embedding weights, zero Linear biases, unit LayerNorms."""
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
        elif isinstance(module, nn.LayerNorm):
            nn.init.zeros_(module.bias)
            nn.init.ones_(module.weight)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def forward(self, item_seq: torch.Tensor, item_seq_len: torch.Tensor) -> torch.Tensor:
        """Encode each sequence into the state at its last real item.

        Shape:
            - item_seq: ``[B, L]`` (right-padded with 0)
            - item_seq_len: ``[B]``
            - output: ``[B, d]``
        """
        h = self.LayerNorm(self.dropout(self.item_embedding(item_seq)))
        last = item_seq_len - 1
        for i, layer in enumerate(self.mamba_layers):
            at_last = self.last_position_only and i == self.num_layers - 1
            h = layer(h, last if at_last else None)
        return h if self.last_position_only else gather_positions(h, last)
