"""SMLP4Rec: an all-MLP sequential recommender mixing items, positions and item features.

Paper: Jingtong Gao, Xiangyu Zhao, Muyang Li, Minghao Zhao, Runze Wu, Ruocheng Guo, Yiding Liu,
Dawei Yin, "SMLP4Rec: An Efficient All-MLP Architecture for Sequential Recommendations", ACM
TOIS 42(3), 2024 (doi 10.1145/3637871); the extension of MLP4Rec (IJCAI 2022); a GLINT-RU baseline.
Reference code: https://github.com/Applied-Machine-Learning-Lab/SMLP4Rec (``smlprec.py``, class
``SMLPREC``, written for RecBole 1.0; no licence, so this is our own code after its facts).

Each position of the sequence holds the item's embedding and one embedding per selected item
field (RecBole's ``FeatureSeqEmbLayer`` arithmetic: :class:`~recbole_ext.model.smlp_layers.
ItemFeatureEmbedding`), stacked into ``x`` of shape ``[B, C, L, d]`` with ``C = 1 + F`` fields.
A block computes ``x' = LayerNorm_d(x)`` and returns ``M_f(x') + M_s(x') + M_h(x')``: three
bias-free MLPs (``Linear(n, 3n)``, GELU, dropout, ``Linear(3n, n)``, dropout) over the feature
axis ``C``, the sequence axis ``L`` and the hidden axis ``d``, run in parallel (MLP4Rec ran
its mixers in cascade). The reference applies one such block ``n_layers``
times, with the same weights each time, and has no residual connection. The item channel
(``C`` index 0) at the last real item, through a final LayerNorm, is the sequence's vector;
the shared base class scores it against the item table (the features are inputs only) with
the CE (or BPR) loss. There is no position embedding: the sequence mixer's weights are per
position, and RecBole left-aligns every sequence, so position 0 is the oldest item kept.

Item features (``selected_features``). A list of item fields, ``token``, ``token_seq`` or
(listed in ``numerical_features`` too) ``float`` / ``float_seq``; sequence fields are pooled by
``pooling_mode``. The default ``[class]`` is what RecBole's feature-aware sequential models
(FDSA, SASRecF, GRU4RecF) default to, and ml-100k's genres. It needs the data set's item
columns loaded, which recbole_ext's ``ml-100k.yaml`` does not do: with
``load_col: {inter: [user_id, item_id, rating, timestamp], item: [item_id, class]}`` the model
mixes the genres in. When the data set has no item features at all (no ``.item`` file, or
``load_col`` loads none), or ``selected_features: []``, the model runs on item ids only
(``C = 1``; a warning says so in the first case). A field the data set lacks while it has item
features is a ConfigError (a typo is not skipped). The GLINT-RU paper's Amazon runs of SMLP4Rec
(Beauty, Video Games) use the item fields ``categories`` (``token_seq``) and ``brand``
(``token``) from Amazon's product metadata: those sets need an ``.item`` file with them, both
named in ``load_col``'s ``item`` list, and ``selected_features: [categories, brand]``; with
only an ``.inter`` file they run on item ids only.

Padding. RecBole right-pads with item 0. The reference mixes all ``L`` positions, padded ones
included, with nothing masked: a padded position holds item 0's embedding (not zero: the
normal initialisation overwrites the row ``padding_idx`` zeroes, which then gets no gradient)
and the feature vectors of item 0's features (a token field's ``[PAD]`` token has a learned
vector; a sequence field of no entries pools to zero). So the state at the last real item
depends on what the padded positions hold: RecBole always pads with item 0 up to
``MAX_ITEM_LIST_LENGTH``, so that is a fixed function of the real items, but any other item
put after the last one changes the state. ``mask_padding: False``
(default) keeps this. ``mask_padding: True`` (our deviation) zeroes the padded positions of
the sequence mixer's input in every block, so nothing at a padded position reaches a real
one. The real items see one another in both directions either way (only the last is scored,
and the sequence never holds the target, so nothing leaks).

Defaults. The reference ships no config or run script. It reads the keys of RecBole's
``FDSA.yaml`` (it began as a copy of FDSA), so the defaults are FDSA.yaml's for the keys it
uses: ``hidden_size`` 64, ``n_layers`` 2, ``hidden_dropout_prob`` 0.5, ``layer_norm_eps``
1e-12, ``initializer_range`` 0.02, ``selected_features`` [class], ``pooling_mode`` mean,
``loss_type`` CE. The expansion factor 3 is hard-coded there.

Deviations from the reference code (defaults reproduce the reference unless said otherwise):

- ``L`` is ``MAX_ITEM_LIST_LENGTH`` (the reference hard-codes 50). A shorter input is
  right-padded with 0 to ``L`` (what RecBole's loaders hand over anyway), a longer one refused.
- No item features (see above) runs on ids only; the reference fails (it concatenates an
  undefined tensor). A float field must be in ``numerical_features`` (RecBole's layer would
  skip it and the reference's channel count would be wrong).
- Feature columns are buffers of the model, so they follow ``.to()``; RecBole's layer keeps
  them on ``config["device"]`` and holds the whole data set. The arithmetic is the same, but
  ``max`` pooling of an empty sequence field gives zero (RecBole: about -1e9 in every entry),
  and any number of ``float`` fields works (RecBole 1.2.1's layer handles only one).
- ``share_layers: True`` (default) is the reference's one block applied ``n_layers`` times;
  ``False`` gives each of the ``n_layers`` blocks its own weights.
- ``expansion_factor`` is a key (hard-coded 3). The blocks' LayerNorm keeps PyTorch's epsilon
  1e-5, as the reference; ``layer_norm_eps`` is the final LayerNorm's.
- ``mask_padding`` (see above; default ``False`` = the reference).
- ``last_position_only: True`` (default; exact): the last block is computed only where it is
  read, the item channel at the last real item (the sequence mixer's first layer still runs
  over the whole item channel); ``False`` computes every channel and position, as the reference.
- All dropouts are :class:`~recbole_ext.model.layers.FastDropout` (``nn.Dropout``'s
  distribution up to ``p`` rounded to a multiple of 1/65536, another random stream; on CPU the
  mixers' dropouts cost about as much as their matrix products).
- Keys the reference reads and never uses are not keys: ``n_heads``, ``hidden_act`` (the
  mixers' GELU is hard-coded), nor are its unused classes (``sMLPBlock``, ``TokenMixing``,
  ``PatchMerging``, ``FeedForward``).
- Scoring and losses come from the shared base class (the reference's own: dot product with the
  item table, CE or BPR); optional learned item bias (``item_bias``, off by default).
"""

from __future__ import annotations

from typing import List, Optional

import torch
import torch.nn.functional as F
from torch import nn

from recbole_ext.errors import ConfigError
from recbole_ext.model.abstract_recommender import SequenceEncoderRecommender
from recbole_ext.model.layers import gather_positions, normal_init_
from recbole_ext.model.smlp_layers import ItemFeatureEmbedding, SMLPBlock, usable_item_fields

#: the blocks' LayerNorm epsilon: PyTorch's default, which the reference's ``SMLP.norm2`` keeps
BLOCK_NORM_EPS = 1e-5


class SMLP4Rec(SequenceEncoderRecommender):
    """SMLP4Rec (see the module docstring). ``forward(item_seq, item_seq_len) -> [B, d]``."""

    @classmethod
    def check_config(cls, config) -> None:
        """The rules of this model's keys that need no data, run with the configuration's checks
        before any data is read: ``selected_features`` names no field twice, and only fields of
        ``load_col``'s item list when it has one (the rest is checked against the data set,
        :func:`recbole_ext.model.smlp_layers.usable_item_fields`)."""
        selected = list(config["selected_features"] or [])
        if len(set(selected)) != len(selected):
            raise ConfigError(f"invalid configuration: selected_features={selected} names a field twice")
        load_col = config["load_col"]
        listed = load_col.get("item") if isinstance(load_col, dict) else None
        missing = [f for f in selected if listed is not None and f not in listed]
        if missing:
            raise ConfigError(
                f"invalid configuration: selected_features names {missing[0]!r}, which is not a loaded item "
                f"feature; loaded item features: {list(listed)} (load_col's item list; add it there)"
            )

    def __init__(self, config, dataset):
        super().__init__(config, dataset)

        # load parameters info
        self.hidden_size: int = config["hidden_size"]
        self.n_layers: int = config["n_layers"]
        self.share_layers: bool = bool(config["share_layers"])
        self.expansion_factor: int = config["expansion_factor"]
        self.hidden_dropout_prob: float = config["hidden_dropout_prob"]
        self.layer_norm_eps: float = config["layer_norm_eps"]
        self.initializer_range: float = config["initializer_range"]
        self.selected_features: List[str] = list(config["selected_features"] or [])
        self.pooling_mode: str = config["pooling_mode"]
        self.mask_padding: bool = bool(config["mask_padding"])
        self.last_position_only: bool = bool(config["last_position_only"])
        self.check_config(config)
        #: the fields embedded (none when the data set has no item features)
        self.feature_fields: List[str] = usable_item_fields(dataset, self.selected_features)

        # define layers
        d = self.hidden_size
        self.item_embedding = nn.Embedding(self.n_items, d, padding_idx=0)
        self.feature_embedding: Optional[ItemFeatureEmbedding] = None
        if self.feature_fields:
            self.feature_embedding = ItemFeatureEmbedding(dataset, self.feature_fields, d, self.pooling_mode)
        n_features = 1 + len(self.feature_fields)
        block = (n_features, self.max_seq_length, d, self.expansion_factor, self.hidden_dropout_prob, BLOCK_NORM_EPS)
        self.blocks = nn.ModuleList(SMLPBlock(*block) for _ in range(1 if self.share_layers else self.n_layers))
        self.LayerNorm = nn.LayerNorm(d, eps=self.layer_norm_eps)

        # parameters initialization
        self.apply(self._init_weights)

    def _init_weights(self, module: nn.Module) -> None:
        """The reference's: ``N(0, initializer_range)`` for every Linear and Embedding weight
        (the padding row and the feature tables too), LayerNorm ones and zeros."""
        normal_init_(module, self.initializer_range)

    def embed(self, item_seq: torch.Tensor) -> torch.Tensor:
        """The blocks' input: item embedding, then one vector per feature field, per position.

        Shape:
            - item_seq: ``[B, L]``
            - output: ``[B, C, L, d]`` with ``C = 1 + len(feature_fields)``
        """
        x = self.item_embedding(item_seq).unsqueeze(1)
        if self.feature_embedding is None:
            return x
        return torch.cat([x, self.feature_embedding(item_seq).transpose(1, 2)], dim=1)

    def forward(self, item_seq: torch.Tensor, item_seq_len: torch.Tensor) -> torch.Tensor:
        """Encode each sequence into the item channel's state at its last real item.

        Args:
            item_seq: item ids, right-padded with 0, at most ``MAX_ITEM_LIST_LENGTH`` long
                (shorter ones are padded to it).
            item_seq_len: the number of real items of each row.

        Returns:
            The sequence vectors.

        Shape:
            - item_seq: ``[B, L']`` with ``L' <= L``
            - item_seq_len: ``[B]``
            - output: ``[B, d]``
        """
        length = item_seq.shape[1]
        if length > self.max_seq_length:
            raise ValueError(f"SMLP4Rec: sequences of {length} items; MAX_ITEM_LIST_LENGTH is {self.max_seq_length}")
        if length < self.max_seq_length:  # the sequence mixer's weights are per position: pad as RecBole does
            item_seq = F.pad(item_seq, (0, self.max_seq_length - length))
        mask: Optional[torch.Tensor] = None
        if self.mask_padding:
            positions = torch.arange(self.max_seq_length, device=item_seq.device)
            mask = positions[None, :] < item_seq_len[:, None]
        x, last = self.embed(item_seq), item_seq_len - 1
        for i in range(self.n_layers):
            block = self.blocks[0 if self.share_layers else i]
            if self.last_position_only and i == self.n_layers - 1:
                return self.LayerNorm(block.item_output_at(x, last, mask))
            x = block(x, mask)
        return self.LayerNorm(gather_positions(x[:, 0], last))
