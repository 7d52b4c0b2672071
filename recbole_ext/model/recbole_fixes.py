"""Subclasses of RecBole models whose own methods break on today's stack.

:data:`FIXES` maps a RecBole model's name to the mixin that mends it;
:func:`recbole_ext.registry.get_model` composes the two (same name, so logs, YAML defaults and
trainer lookup are unchanged); every other class is returned as it is.

Mended so far:

- graph models that build their user-item adjacency with ``scipy.sparse.dok_matrix._update``,
  a private method scipy 1.17 removed (SpectralCF, GCMC, NGCF, LightGCN, NCL, KGIN, MCCLK).
  Their graph-building method is replaced by one built on :func:`bipartite_adjacency` and
  :func:`normalize_adjacency` (same matrix as RecBole's: 0/1 entries, duplicates collapsed, the
  same degree normalisation and epsilon), written once here.

Also composed here, though nothing is broken: the transformer models built on RecBole's
``MultiHeadAttention`` (:data:`recbole_ext.model.attention.ATTENTION_MODELS`) get
:class:`recbole_ext.model.attention.AttentionImplFix`, which applies the ``attention_impl`` key
(``manual``, RecBole's attention and the default, or ``sdpa``).
- GRU4Rec gets :class:`GRUImplFix`, which applies the ``gru_impl`` key (its GRU as a
  :class:`~recbole_ext.model.gru.FastGRU`: ``torch``, the default, or ``triton`` / ``auto``).
- the sequential models whose CE loss is ``forward(item_seq, item_seq_len) @ item_embedding^T``
  with nothing added (:data:`LINEAR_CE_MODELS`) get :class:`LinearCEFix`, and BERT4Rec
  :class:`BERT4RecCEFix`: the ``loss_impl`` key (``chunked``: CE without the logit matrix,
  :mod:`recbole_ext.model.linear_head`) and ``full_sort_head`` (their full-ranking scores in
  parts, for evaluation in item chunks). ``dense`` runs RecBole's own ``calculate_loss``.

A model may get several mixins (:data:`FIXES` maps a name to a tuple, first in front).
"""

from __future__ import annotations

from typing import Dict, Tuple

import numpy as np
import scipy.sparse as sp
import torch

from recbole_ext.model.attention import ATTENTION_MODELS, AttentionImplFix
from recbole_ext.model.gru import swap_gru
from recbole_ext.model.linear_head import LinearHead, linear_softmax_ce, loss_impl_of


# ----------------------------------------------------------------------------- graphs
def bipartite_adjacency(inter: sp.coo_matrix, n_users: int, n_nodes: int) -> sp.csr_matrix:
    """The symmetric 0/1 user-item graph ``[[0, R], [R^T, 0]]`` with ``n_nodes`` nodes.

    Args:
        inter: user x item (or user x entity) interactions; values are ignored, duplicates count once.
        n_users: number of user nodes (items start at ``n_users``).
        n_nodes: total number of nodes (``n_users + n_items`` or ``n_users + n_entities``).

    Returns:
        ``[n_nodes, n_nodes]`` CSR matrix of float64 ones (what RecBole built with
        ``dok_matrix._update``).
    """
    inter = sp.coo_matrix(inter)
    rows = np.concatenate([inter.row, inter.col + n_users]).astype(np.int64)
    cols = np.concatenate([inter.col + n_users, inter.row]).astype(np.int64)
    adj = sp.coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(n_nodes, n_nodes)).tocsr()
    adj.sum_duplicates()
    adj.data[:] = 1.0
    return adj


def normalize_adjacency(
    adj: sp.spmatrix, power: float, symmetric: bool, eps: float
) -> Tuple[sp.coo_matrix, np.ndarray]:
    """``D^p A D^p`` (``symmetric``) or ``D^p A`` with ``D = diag(degree + eps)``.

    A zero degree with ``eps == 0`` gives a zero row (RecBole's KGIN/MCCLK convention).

    Returns:
        ``(normalized matrix as COO, the diagonal d^p as float64)``.
    """
    degree = np.asarray((adj > 0).sum(axis=1)).ravel().astype(np.float64) + eps
    with np.errstate(divide="ignore"):
        d = np.power(degree, power)
    d[np.isinf(d)] = 0.0
    dm = sp.diags(d)
    out = dm @ adj @ dm if symmetric else dm @ adj
    return sp.coo_matrix(out), d


def to_torch_sparse(mat: sp.spmatrix) -> torch.Tensor:
    """A scipy matrix as a float32 ``torch.sparse_coo_tensor``."""
    mat = sp.coo_matrix(mat)
    index = torch.from_numpy(np.vstack([mat.row, mat.col]).astype(np.int64))
    # scipy's COO matrix is a valid sparse tensor: skip torch's invariant checks (and its warning)
    return torch.sparse_coo_tensor(
        index, torch.from_numpy(mat.data.astype(np.float32)), mat.shape, check_invariants=False
    )


class SymNormAdjacencyFix:
    """``get_norm_adj_mat`` of LightGCN, NGCF, GCMC and NCL: ``D^-1/2 A D^-1/2`` (epsilon 1e-7)."""

    def get_norm_adj_mat(self) -> torch.Tensor:
        n = self.n_users + self.n_items
        adj = bipartite_adjacency(self.interaction_matrix, self.n_users, n)
        norm, d = normalize_adjacency(adj, -0.5, symmetric=True, eps=1e-7)
        if type(self).__name__ == "NCL":  # NCL keeps the diagonal for its prototype loss
            self.diag = torch.from_numpy(d).to(self.device)
        return to_torch_sparse(norm)


class LaplacianFix:
    """SpectralCF's ``get_laplacian_matrix``: ``I - D^-1 A`` (epsilon 1e-7)."""

    def get_laplacian_matrix(self) -> torch.Tensor:
        n = self.n_users + self.n_items
        adj = bipartite_adjacency(self.interaction_matrix, self.n_users, n)
        a_tilde, _ = normalize_adjacency(adj, -1.0, symmetric=False, eps=1e-7)
        return self.get_eye_mat(n) - to_torch_sparse(a_tilde)


class KGInterGraphFix:
    """``get_norm_inter_matrix`` of KGIN and MCCLK over users + entities ("bi" or "si")."""

    def get_norm_inter_matrix(self, mode: str = "bi"):
        n = self.n_users + self.n_entities
        adj = bipartite_adjacency(self.inter_matrix, self.n_users, n)
        if mode == "bi":
            graph, _ = normalize_adjacency(adj, -0.5, symmetric=True, eps=0.0)
        elif mode == "si":
            graph, _ = normalize_adjacency(adj, -1.0, symmetric=False, eps=0.0)
        else:
            raise NotImplementedError(f"Normalize mode [{mode}] has not been implemented.")
        inter = graph.tocsr()[: self.n_users, self.n_users :].tocoo()
        return to_torch_sparse(inter).to(self.device), to_torch_sparse(graph).to(self.device)


class FwFMFieldsFix:
    """FwFM counts float_seq fields in ``num_feature_field`` but leaves them out of its
    feature-to-field map (KeyError on any data set with a float_seq feature); add them."""

    def _get_feature2field(self):
        if len(self.feature_names) == 3:
            self.feature_names = tuple(self.feature_names) + (self.float_seq_field_names,)
        super()._get_feature2field()


class GRUImplFix:
    """RecBole's GRU4Rec with the ``gru_impl`` key: its ``nn.GRU`` becomes a
    :class:`~recbole_ext.model.gru.FastGRU` with the same parameters (``torch``, the default,
    runs ``nn.GRU.forward`` itself)."""

    def __init__(self, config, dataset) -> None:
        super().__init__(config, dataset)
        impl = config["gru_impl"] if "gru_impl" in config else None
        if impl not in (None, "torch"):
            swap_gru(self, impl)


#: RecBole's sequential models whose CE loss is ``forward(item_seq, item_seq_len)`` against
#: ``item_embedding.weight`` and nothing else (Caser, GCSAN and NextItNet add regularisers, CORE
#: normalises the table, FEARec and the contrastive models add losses: they keep RecBole's CE)
LINEAR_CE_MODELS = (
    "FDSA", "GRU4Rec", "GRU4RecF", "GRU4RecKG", "LightSANs", "NARM", "SASRec", "SASRecF", "SRGNN", "STAMP",
)  # fmt: skip


class LossImplFix:
    """Reads ``loss_impl`` (``chunked`` or ``dense``) for a mixin that serves both paths."""

    def __init__(self, config, dataset) -> None:
        super().__init__(config, dataset)
        self.loss_impl = loss_impl_of(config)


class LinearCEFix(LossImplFix):
    """``loss_impl`` and ``full_sort_head`` for the models of :data:`LINEAR_CE_MODELS`."""

    def full_sort_head(self, interaction) -> LinearHead:
        """``full_sort_predict``'s scores in parts. Shape: query ``[B, d]``, table ``[n_items, d]``."""
        query = self.forward(interaction[self.ITEM_SEQ], interaction[self.ITEM_SEQ_LEN])
        return LinearHead(query, self.item_embedding.weight, None)

    def calculate_loss(self, interaction) -> torch.Tensor:
        """RecBole's loss; under ``loss_impl: chunked`` its CE without the logit matrix."""
        if self.loss_type != "CE" or self.loss_impl == "dense":
            return super().calculate_loss(interaction)
        return linear_softmax_ce(self.full_sort_head(interaction), interaction[self.POS_ITEM_ID], chunked=True)


class BERT4RecCEFix(LossImplFix):
    """BERT4Rec's ``loss_impl`` and ``full_sort_head``. Its CE is over the
    masked positions: the query of each (row, position) of ``MASK_INDEX`` that is above 0
    (RecBole's rule: index 0 is its padding), the table without the mask token, its output bias."""

    def _table(self) -> Tuple[torch.Tensor, torch.Tensor]:
        return self.item_embedding.weight[: self.n_items], self.output_bias

    def full_sort_head(self, interaction) -> LinearHead:
        """``full_sort_predict``'s scores in parts: the last real position of each sequence."""
        item_seq_len = interaction[self.ITEM_SEQ_LEN]
        item_seq = self.reconstruct_test_data(interaction[self.ITEM_SEQ], item_seq_len)
        query = self.gather_indexes(self.forward(item_seq), item_seq_len - 1)
        return LinearHead(query, *self._table())

    def calculate_loss(self, interaction) -> torch.Tensor:
        """RecBole's loss; under ``loss_impl: chunked`` its CE without the logit matrix.

        Shape: ``MASK_ITEM_SEQ`` ``[B, L]``; ``MASK_INDEX`` and ``POS_ITEMS`` ``[B, M]``.
        """
        if self.loss_type != "CE" or self.loss_impl == "dense":
            return super().calculate_loss(interaction)
        masked_index = interaction[self.MASK_INDEX]
        seq_output = self.forward(interaction[self.MASK_ITEM_SEQ])  # [B, L, H]
        keep = masked_index > 0
        rows = torch.arange(masked_index.shape[0], device=masked_index.device).unsqueeze(1).expand_as(masked_index)
        query = seq_output[rows[keep], masked_index[keep]]  # [masked positions, H]
        target = interaction[self.POS_ITEMS][keep]
        return linear_softmax_ce(LinearHead(query, *self._table()), target, chunked=True)


def _mixins(*groups: Tuple[Tuple[str, ...], type]) -> Dict[str, Tuple[type, ...]]:
    """Model name -> its mixins, in the order of ``groups`` (the first in front)."""
    out: Dict[str, Tuple[type, ...]] = {}
    for names, mixin in groups:
        for name in names:
            out[name] = out.get(name, ()) + (mixin,)
    return out


#: RecBole model name -> the mixins put in front of it, the first outermost
FIXES: Dict[str, Tuple[type, ...]] = _mixins(
    (("LightGCN", "NGCF", "GCMC", "NCL"), SymNormAdjacencyFix),
    (("SpectralCF",), LaplacianFix),
    (("KGIN", "MCCLK"), KGInterGraphFix),
    (("FwFM",), FwFMFieldsFix),
    (ATTENTION_MODELS, AttentionImplFix),
    (("GRU4Rec",), GRUImplFix),
    (LINEAR_CE_MODELS, LinearCEFix),
    (("BERT4Rec",), BERT4RecCEFix),
)
