"""Layers of SMLP4Rec (:mod:`recbole_ext.model.sequential_recommender.smlp4rec`).

- :func:`usable_item_fields` checks ``selected_features`` against the data set.
- :class:`ItemFeatureEmbedding` embeds those item fields at every position of an item sequence
  with the arithmetic of RecBole's ``FeatureSeqEmbLayer`` (the reference's feature layer), but
  keeps the feature columns as buffers, so they follow the model across ``.to()``.
- :class:`MixerMLP` and :class:`SMLPBlock` are the reference's ``SMLP`` block: three MLPs over
  the feature, sequence and hidden axes of a ``[B, C, L, d]`` tensor, run side by side.
"""

from __future__ import annotations

from logging import getLogger
from typing import Dict, List, Optional, Sequence

import torch
import torch.nn.functional as F
from recbole.utils import FeatureSource, FeatureType
from torch import nn

from recbole_ext.errors import ConfigError
from recbole_ext.model.layers import FastDropout

#: the order in which kinds of fields are stacked (RecBole's: token, token_seq, then float, float_seq)
FIELD_KINDS = ("token", "token_seq", "float", "float_seq")
POOLING_MODES = ("mean", "sum", "max")
_KIND_OF_TYPE = {
    FeatureType.TOKEN: "token",
    FeatureType.TOKEN_SEQ: "token_seq",
    FeatureType.FLOAT: "float",
    FeatureType.FLOAT_SEQ: "float_seq",
}


def usable_item_fields(dataset, selected: Sequence[str]) -> List[str]:
    """The fields of ``selected`` to embed: all of them, or none when the data set has no item
    features at all (no ``.item`` file, or ``load_col`` loads none; a warning says so).

    Raises:
        ConfigError: a field is not an item feature of the data set, or is a float field left
            out of ``numerical_features`` (RecBole's feature layer would skip it silently).
    """
    selected = list(selected)
    if not selected:
        return []
    if getattr(dataset, "item_feat", None) is None:
        getLogger().warning(
            f"SMLP4Rec: selected_features {selected} not used: the data set has no item features "
            "(no .item file, or load_col loads none); running on item ids only"
        )
        return []
    loaded = [f for f, s in dataset.field2source.items() if s == FeatureSource.ITEM]
    numerical = set(dataset.config["numerical_features"] or [])
    for field in selected:
        if field not in loaded:
            raise ConfigError(
                f"invalid configuration: selected_features names {field!r}, which is not a loaded item "
                f"feature; loaded item features: {loaded} (add it to load_col's item list)"
            )
        kind = _KIND_OF_TYPE.get(dataset.field2type[field])
        if kind in ("float", "float_seq") and field not in numerical:
            raise ConfigError(
                f"invalid configuration: selected_features names the float field {field!r}; "
                "list it in numerical_features too"
            )
    return selected


def _pool(emb: torch.Tensor, mask: torch.Tensor, mode: str) -> torch.Tensor:
    """Pool ``emb`` ``[..., S, d]`` over its valid (``mask`` ``[..., S]``) entries -> ``[..., d]``.

    ``mean`` and ``sum`` are RecBole's (``mean`` divides by the count plus 1e-8 in float32, so
    an empty sequence gives zero). ``max`` of an empty sequence is zero here (RecBole: about -1e9)."""
    m = mask.unsqueeze(-1).to(emb.dtype)
    if mode == "max":
        pooled = (emb - (1 - m) * 1e9).amax(-2)
        return pooled * mask.any(-1, keepdim=True).to(emb.dtype)
    summed = (emb * m).sum(-2)
    if mode == "sum":
        return summed
    return summed / (mask.sum(-1, keepdim=True).float() + 1e-8)


class ItemFeatureEmbedding(nn.Module):
    """Embeddings of the item fields ``fields`` of each item of a sequence, one vector per field.

    Token fields share one table with an offset per field (RecBole's ``FMEmbedding``); a float
    field (a ``numerical_features`` pair ``[value, bucket]``) scales its bucket's vector by the
    value (``FLEmbedding``); a ``token_seq`` / ``float_seq`` field has a table of its own and
    pools its entries (``pooling_mode``). Fields are stacked kind by kind in
    :data:`FIELD_KINDS` order (as RecBole's layer and so the reference stack them), each kind in
    the order of ``fields``: see :attr:`fields`.

    Args:
        dataset: a built RecBole data set (its item features are read once).
        fields: item fields, checked by :func:`usable_item_fields`.
        embedding_size: width ``d`` of every vector.
        pooling_mode: ``mean | sum | max``.

    Shape:
        - item_seq: ``[B, L]`` item ids
        - output: ``[B, L, F, d]`` with ``F = len(fields)``
    """

    def __init__(self, dataset, fields: Sequence[str], embedding_size: int, pooling_mode: str):
        super().__init__()
        if pooling_mode not in POOLING_MODES:
            raise ConfigError(f"invalid configuration: pooling_mode={pooling_mode!r}; allowed: mean | sum | max")
        self.pooling_mode = pooling_mode
        groups: Dict[str, List[str]] = {kind: [] for kind in FIELD_KINDS}
        for field in fields:
            groups[_KIND_OF_TYPE[dataset.field2type[field]]].append(field)
        self.groups = groups
        #: the fields in the order of the output's feature axis
        self.fields: List[str] = [f for kind in FIELD_KINDS for f in groups[kind]]
        item_feat = dataset.get_item_feature()
        for field in self.fields:  # not saved: rebuilt from the data set (a checkpoint keeps its schema)
            self.register_buffer(self._buffer(field), item_feat[field].clone(), persistent=False)
        self.token_table = self._shared_table(dataset, groups["token"], embedding_size, "token_offsets")
        self.float_table = self._shared_table(dataset, groups["float"], embedding_size, "float_offsets")
        self.token_seq_tables = nn.ModuleList(nn.Embedding(dataset.num(f), embedding_size) for f in groups["token_seq"])
        self.float_seq_tables = nn.ModuleList(nn.Embedding(dataset.num(f), embedding_size) for f in groups["float_seq"])

    @staticmethod
    def _buffer(field: str) -> str:
        return "feat_" + field

    def _shared_table(self, dataset, fields: List[str], d: int, offsets_name: str) -> Optional[nn.Embedding]:
        sizes = [int(dataset.num(f)) for f in fields]
        offsets = torch.tensor([0] + sizes[:-1], dtype=torch.long).cumsum(0) if sizes else torch.zeros(0)
        self.register_buffer(offsets_name, offsets.long(), persistent=False)
        return nn.Embedding(sum(sizes), d) if sizes else None

    def column(self, field: str, item_seq: torch.Tensor) -> torch.Tensor:
        """Field ``field`` of the items ``item_seq``: ``[B, L]`` -> ``[B, L, ...]``."""
        return getattr(self, self._buffer(field))[item_seq]

    def forward(self, item_seq: torch.Tensor) -> torch.Tensor:
        """Shape: ``[B, L]`` -> ``[B, L, F, d]`` (see the class docstring)."""
        out: List[torch.Tensor] = []
        if self.token_table is not None:
            ids = torch.stack([self.column(f, item_seq) for f in self.groups["token"]], -1)  # [B, L, Ft]
            out.append(self.token_table(ids + self.token_offsets))
        for field, table in zip(self.groups["token_seq"], self.token_seq_tables):
            tokens = self.column(field, item_seq)  # [B, L, S]
            out.append(_pool(table(tokens), tokens != 0, self.pooling_mode).unsqueeze(2))
        if self.float_table is not None:
            pairs = torch.stack([self.column(f, item_seq) for f in self.groups["float"]], -2)  # [B, L, Ff, 2]
            value, bucket = pairs[..., 0:1], pairs[..., 1].long()
            out.append(value * self.float_table(bucket + self.float_offsets))
        for field, table in zip(self.groups["float_seq"], self.float_seq_tables):
            pairs = self.column(field, item_seq)  # [B, L, S, 2]
            value, bucket = pairs[..., 0:1], pairs[..., 1].long()
            out.append(_pool(value * table(bucket), bucket != 0, self.pooling_mode).unsqueeze(2))
        return torch.cat(out, dim=2)


class MixerMLP(nn.Module):
    """``Dropout(W2 Dropout(GELU(W1 x)))`` over the last axis, no biases (the reference's mixers).

    The dropouts are :class:`~recbole_ext.model.layers.FastDropout` (``nn.Dropout``'s
    distribution, up to ``p`` rounded to a multiple of 1/65536, from another random stream).

    Args:
        size: the axis' length ``n``.  expansion: hidden width ``expansion * n``.  dropout: both dropouts.
    """

    def __init__(self, size: int, expansion: int, dropout: float):
        super().__init__()
        self.fc1 = nn.Linear(size, expansion * size, bias=False)
        self.fc2 = nn.Linear(expansion * size, size, bias=False)
        self.dropout = FastDropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Shape: ``[..., n] -> [..., n]``."""
        return self.dropout(self.fc2(self.dropout(F.gelu(self.fc1(x)))))

    def output_at(self, x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        """Output entry ``index[b]`` of row ``b`` only (the same as ``forward(x)[b, ..., index[b]]``).

        Shape: x ``[B, ..., n]``, index ``[B]`` -> ``[B, ...]``."""
        hidden = self.dropout(F.gelu(self.fc1(x)))  # [B, ..., e n]
        rows = self.fc2.weight[index].view(x.shape[0], *([1] * (x.dim() - 2)), -1)  # [B, 1.., e n]
        return self.dropout((hidden * rows).sum(-1))


class SMLPBlock(nn.Module):
    """One SMLP block: ``y = M_f(x') + M_s(x') + M_h(x')`` with ``x' = LayerNorm(x)`` over the
    hidden axis and ``M_f``, ``M_s``, ``M_h`` :class:`MixerMLP` s over the feature, sequence
    and hidden axes (the reference's ``c``, ``h`` and ``w``). No residual, as the reference.

    With ``mask`` (``[B, L]``, 1 at real items) the sequence mixer reads ``x' * mask``, so no
    padded position reaches any other; the other two mixers are per position.

    Args:
        n_features: ``C`` (the item id plus its feature fields).  seq_len: ``L``.  hidden: ``d``.
        expansion: the mixers' expansion factor.  dropout: their dropout.  eps: the LayerNorm's.

    Shape:
        - x: ``[B, C, L, d]``;  mask: ``[B, L]`` or None
        - output: ``[B, C, L, d]``
    """

    def __init__(self, n_features: int, seq_len: int, hidden: int, expansion: int, dropout: float, eps: float):
        super().__init__()
        self.norm = nn.LayerNorm(hidden, eps=eps)
        self.feature_mixer = MixerMLP(n_features, expansion, dropout)
        self.sequence_mixer = MixerMLP(seq_len, expansion, dropout)
        self.hidden_mixer = MixerMLP(hidden, expansion, dropout)

    def forward(self, x: torch.Tensor, mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        xn = self.norm(x)
        across_features = self.feature_mixer(xn.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        seq_in = xn if mask is None else xn * mask[:, None, :, None].to(xn.dtype)
        across_positions = self.sequence_mixer(seq_in.transpose(2, 3)).transpose(2, 3)
        return across_features + across_positions + self.hidden_mixer(xn)

    def item_output_at(
        self, x: torch.Tensor, positions: torch.Tensor, mask: Optional[torch.Tensor] = None
    ) -> torch.Tensor:
        """The output's item channel (``C`` index 0) at ``positions[b]`` only, what the model
        scores: ``forward(x, mask)[b, 0, positions[b]]`` at a fraction of the cost.

        Shape: x ``[B, C, L, d]``, positions ``[B]`` -> ``[B, d]``."""
        xn = self.norm(x)
        at = xn[torch.arange(x.shape[0], device=x.device), :, positions]  # [B, C, d]
        across_features = self.feature_mixer.output_at(at.transpose(1, 2), torch.zeros_like(positions))
        seq_in = xn[:, 0] if mask is None else xn[:, 0] * mask[..., None].to(xn.dtype)  # [B, L, d]
        across_positions = self.sequence_mixer.output_at(seq_in.transpose(1, 2), positions)
        return across_features + across_positions + self.hidden_mixer(at[:, 0])
