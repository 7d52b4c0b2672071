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
            # RecBole's RepeatableSampler: the only used id is the row's own item
            return self._sample_avoiding(np.asarray(item_ids, dtype=np.int64), num)
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


class VectorisedSampler(VectorisedSamplingMixin, Sampler):
    """RecBole's ``Sampler`` (general models' evaluation), vectorised."""


class VectorisedRepeatableSampler(VectorisedSamplingMixin, RepeatableSampler):
    """RecBole's ``RepeatableSampler`` (sequential models' evaluation), vectorised."""


#: RecBole's sampler class -> its vectorised twin
VECTORISED: Dict[type, type] = {Sampler: VectorisedSampler, RepeatableSampler: VectorisedRepeatableSampler}


def vectorised_sampler(sampler):
    """A shallow copy of RecBole ``sampler`` whose sampling is vectorised (same draws, same
    negatives); the original is left as it is. A sampler of another class (a subclass of
    RecBole's, say) is returned as it is."""
    if isinstance(sampler, VectorisedSamplingMixin) or type(sampler) not in VECTORISED:
        return sampler
    fast = copy.copy(sampler)
    fast.__class__ = VECTORISED[type(sampler)]
    return fast
