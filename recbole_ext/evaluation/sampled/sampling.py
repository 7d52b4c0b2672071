"""RecBole's negative samplers with their per-sample Python loops replaced by array code.

:func:`vectorised_sampler` returns a copy of a RecBole sampler that draws the same random numbers
in the same order and makes the same choices, so the negatives are identical (tested against
RecBole's own sampler); only the Python loops are gone.
"""

from __future__ import annotations

import copy
from typing import Dict

import numpy as np
import torch
from recbole.sampler import RepeatableSampler, Sampler


class VectorisedSamplingMixin:
    """RecBole's negative sampling with its per-sample Python loops replaced by array code.

    Draws the same random numbers in the same order as RecBole's ``_pop_sampling`` (``randint``
    over the alias table's keys, then ``random``) and ``sample_by_key_ids`` (one draw for all
    values, then redraws of the rejected positions until none is a used id), and makes the same
    choices, so the negatives are identical; only the Python loops are gone.
    """

    _alias_arrays = None

    def _pop_sampling(self, sample_num):
        table = self._alias_arrays
        if table is None or table[0] is not self.prob:
            keys = list(self.prob.keys())
            table = (
                self.prob,
                np.array(keys, dtype=np.int64),
                np.array([self.prob[k] for k in keys], dtype=np.float64),
                np.array([self.alias[k] for k in keys], dtype=np.int64),
            )
            self._alias_arrays = table
        _, keys, prob, alias = table
        index = np.random.randint(0, len(keys), sample_num)
        threshold = np.random.random(sample_num)
        return np.where(prob[index] > threshold, keys[index], alias[index])

    def sample_by_user_ids(self, user_ids, item_ids, num):
        if isinstance(self, RepeatableSampler) and len(item_ids) == 1:
            # one row: its used ids (RecBole's RepeatableSampler: the row's own item only)
            used = getattr(self, "row_used", lambda user, item: [item])(user_ids[0], item_ids[0])
            return self._sample_avoiding(np.asarray(sorted(used), dtype=np.int64), num)
        return super().sample_by_user_ids(user_ids, item_ids, num)

    def sample_by_key_ids(self, key_ids, num):
        key_ids = np.asarray(key_ids)
        if len(key_ids) == 0 or not (key_ids == key_ids[0]).all():
            return super().sample_by_key_ids(key_ids, num)
        used = np.fromiter(self.used_ids[key_ids[0]], dtype=np.int64)
        return self._sample_avoiding(used, len(key_ids) * num)

    def _sample_avoiding(self, used: np.ndarray, total_num: int) -> torch.Tensor:
        """RecBole's single-key branch of ``sample_by_key_ids``: draw ``total_num`` ids, then
        redraw the positions holding a used id until none does."""
        value_ids = np.asarray(self.sampling(total_num), dtype=np.int64)
        check_list = np.flatnonzero(_is_used(value_ids, used))
        while len(check_list) > 0:
            value_ids[check_list] = value = self.sampling(len(check_list))
            check_list = check_list[_is_used(np.asarray(value), used)]
        return torch.from_numpy(value_ids)


def _is_used(values: np.ndarray, used: np.ndarray) -> np.ndarray:
    """``np.isin(values, used)``, by direct comparison when ``used`` is small."""
    if len(used) <= 8:
        return (values[:, None] == used[None, :]).any(axis=1)
    return np.isin(values, used)


class HistorySampler(RepeatableSampler):
    """RecBole's ``RepeatableSampler`` whose negatives also avoid every item of the row's user in
    the whole data set (``eval_neg_exclude: history``, a diagnostic of the protocol; RecBole's
    sequential evaluation avoids only the row's own item). ``user_items[u]`` is user ``u``'s set."""

    user_items: np.ndarray

    def row_used(self, user: int, item: int) -> set:
        """The ids a row of ``user`` with positive ``item`` never draws as a negative."""
        return self.user_items[user] | {item}

    def sample_by_user_ids(self, user_ids, item_ids, num):
        self.used_ids = np.array([self.row_used(u, i) for u, i in zip(user_ids, item_ids)], dtype=object)
        return self.sample_by_key_ids(np.arange(len(user_ids)), num)


def exclude_history(sampler, user_items: np.ndarray):
    """A copy of a sequential evaluation ``sampler`` (RecBole's ``RepeatableSampler``) that also
    avoids each user's items (``user_items``: :func:`user_item_sets` of the whole data set); any
    other sampler (RecBole's ``Sampler`` of general models already avoids the user's earlier
    items, or none) is returned as it is."""
    if type(sampler) is not RepeatableSampler:
        return sampler
    history = copy.copy(sampler)
    history.__class__ = HistorySampler
    history.user_items = user_items
    return history


def user_item_sets(dataset) -> np.ndarray:
    """``[user_num]`` object array: the set of every item id of each user in ``dataset`` (its
    rows' items and, in a sequential data set, their item lists)."""
    inter = dataset.inter_feat
    users = inter[dataset.uid_field].numpy().astype(np.int64)
    pairs = [(users, inter[dataset.iid_field].numpy().astype(np.int64))]
    list_field = dataset.iid_field + dataset.config["LIST_SUFFIX"]
    if list_field in inter.columns:
        seq = inter[list_field].numpy().astype(np.int64)
        mask = seq > 0
        pairs.append((np.broadcast_to(users[:, None], seq.shape)[mask], seq[mask]))
    u = np.concatenate([p[0] for p in pairs])
    i = np.concatenate([p[1] for p in pairs])
    keys = np.unique(u * dataset.item_num + i)
    sets = np.empty(dataset.user_num, dtype=object)
    for k in range(dataset.user_num):
        sets[k] = set()
    for user, item in zip((keys // dataset.item_num).tolist(), (keys % dataset.item_num).tolist()):
        sets[user].add(item)
    return sets


class VectorisedSampler(VectorisedSamplingMixin, Sampler):
    """RecBole's ``Sampler`` (general models' evaluation), vectorised."""


class VectorisedRepeatableSampler(VectorisedSamplingMixin, RepeatableSampler):
    """RecBole's ``RepeatableSampler`` (sequential models' evaluation), vectorised."""


class VectorisedHistorySampler(VectorisedSamplingMixin, HistorySampler):
    """:class:`HistorySampler`, vectorised where all rows share one key."""


#: RecBole's sampler class -> its vectorised twin
VECTORISED: Dict[type, type] = {
    Sampler: VectorisedSampler,
    RepeatableSampler: VectorisedRepeatableSampler,
    HistorySampler: VectorisedHistorySampler,
}


def vectorised_sampler(sampler):
    """A shallow copy of RecBole ``sampler`` whose sampling is vectorised (same draws, same
    negatives); the original is left as it is. A sampler of another class (a subclass of
    RecBole's, say) is returned as it is."""
    if isinstance(sampler, VectorisedSamplingMixin) or type(sampler) not in VECTORISED:
        return sampler
    fast = copy.copy(sampler)
    fast.__class__ = VECTORISED[type(sampler)]
    return fast
