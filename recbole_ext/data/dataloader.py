"""Sampled ranking evaluation without repeating rows.

RecBole's ``NegSampleEvalDataLoader`` (``uni100``, ``pop100``, ...) turns every evaluated row into
``1 + N`` rows, one per candidate, copying the row's whole item sequence each time, and the trainer
then calls ``predict`` on all of them. For sequential models that is the slowest path in RecBole:
the loader's copying alone costs several times a full-ranking pass.

:class:`CandidateEvalDataLoader` draws exactly the negatives RecBole's loader draws (same sampler,
same calls, same user order, so the same random numbers) but yields a :class:`CandidateBatch`: the
distinct rows once plus a ``[rows, 1 + N]`` matrix of candidate item ids. The trainer
(:meth:`recbole_ext.evaluation.sampled.SampledEvalMixin._neg_sample_batch_eval`) encodes each row
once and scores its candidates; for a model that cannot, :meth:`CandidateBatch.expand` rebuilds
RecBole's own batch layout.

A batch holds ``eval_batch_size`` users, as in full-ranking evaluation of sequential models
(RecBole's loader fits ``eval_batch_size`` *candidate rows*, i.e. about 20 users under pop100
with the default 2048), so the model encodes large batches.
"""

from __future__ import annotations

import copy
from typing import Callable, Dict, Optional, Tuple

import numpy as np
import torch
from recbole.data.dataloader import NegSampleEvalDataLoader
from recbole.data.interaction import Interaction, cat_interactions
from recbole.sampler import RepeatableSampler


class CandidateBatch:
    """One batch of sampled ranking evaluation, each row stored once.

    Attributes:
        interaction: the distinct evaluated rows (``R`` of them), joined with user/item features
            like RecBole's rows; the item field holds each row's positive item.
        candidates: ``[R, 1 + N]`` item ids per row; column 0 is the positive item, the rest are
            the sampled negatives in RecBole's order.
        positive_u: ``[R]`` index of each row's user within the batch (RecBole's ``positive_u``).
        positive_i: ``[R]`` positive item of each row (RecBole's ``positive_i``).
    """

    def __init__(
        self,
        interaction: Interaction,
        candidates: torch.Tensor,
        positive_u: torch.Tensor,
        positive_i: torch.Tensor,
        expander: Callable[["CandidateBatch", Optional[int]], tuple],
    ) -> None:
        self.interaction = interaction
        self.candidates = candidates
        self.positive_u = positive_u
        self.positive_i = positive_i
        self._expander = expander

    def __len__(self) -> int:
        return len(self.positive_u)

    def expand(self, n_users: Optional[int] = None) -> Tuple[Interaction, torch.Tensor, torch.Tensor, torch.Tensor]:
        """RecBole's batch for the same rows and candidates: ``(interaction, row_idx,
        positive_u, positive_i)`` with one row per (row, candidate), laid out as RecBole's
        ``NegSampleEvalDataLoader`` lays it out; only the first ``n_users`` users if given."""
        return self._expander(self, n_users)


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


#: ``transform`` settings under which a batch keeps one row per evaluated row.
ROW_PRESERVING_TRANSFORMS = (None, "mask_itemseq")

_FAST_SAMPLER_CLASSES: Dict[type, type] = {}


def vectorised_sampler(sampler):
    """A shallow copy of RecBole ``sampler`` whose popularity sampling is vectorised (same
    draws, same negatives); the original is left as it is."""
    cls = type(sampler)
    if issubclass(cls, VectorisedSamplingMixin):
        return sampler
    if cls not in _FAST_SAMPLER_CLASSES:
        _FAST_SAMPLER_CLASSES[cls] = type(cls.__name__, (VectorisedSamplingMixin, cls), {})
    fast = copy.copy(sampler)
    fast.__class__ = _FAST_SAMPLER_CLASSES[cls]
    return fast


class CandidateEvalDataLoader(NegSampleEvalDataLoader):
    """RecBole's sampled-evaluation loader yielding :class:`CandidateBatch` (see module doc).

    Falls back to RecBole's batches when sampling is off or a data transform that may change
    the number of rows is configured.
    """

    def __init__(self, config, dataset, sampler, shuffle: bool = False) -> None:
        super().__init__(config, dataset, sampler, shuffle=shuffle)
        if self.compact:
            counts = self.uid2items_num[self.uid_list]
            starts = np.array([self.uid2index[uid].start for uid in self.uid_list], dtype=np.int64)
            self._row_start = starts
            self._row_count = counts.astype(np.int64)

    @property
    def compact(self) -> bool:
        """True when batches are :class:`CandidateBatch`: sampling on, and no data transform or
        one that keeps rows one for one (BERT4Rec's ``mask_itemseq``)."""
        return (
            self.neg_sample_args["distribution"] != "none"
            and self.neg_sample_args["sample_num"] != "none"
            and self.config["transform"] in ROW_PRESERVING_TRANSFORMS
        )

    def _init_batch_size_and_step(self) -> None:
        super()._init_batch_size_and_step()
        if self.compact:
            users = max(int(self.config["eval_batch_size"]), 1)
            self.step = users
            self.set_batch_size(users)

    def collate_fn(self, index):
        if not self.compact:
            return super().collate_fn(index)
        index = np.asarray(index, dtype=np.int64)
        uid_field, iid_field = self._dataset.uid_field, self._dataset.iid_field
        counts = self._row_count[index]
        starts = self._row_start[index]
        rows = np.concatenate([np.arange(s, s + c) for s, c in zip(starts, counts)])
        if self.config["transform"] is None:
            data = self._dataset[torch.from_numpy(rows)]
        else:
            # a transform draws from Python's `random`, the sampler from numpy's: calling it
            # user by user, as RecBole does, keeps both streams as RecBole's loader uses them
            data = cat_interactions(
                [self.transform(self._dataset, self._dataset[slice(s, s + c)]) for s, c in zip(starts, counts)]
            )
        user_ids = data[uid_field].numpy()
        item_ids = data[iid_field].numpy()
        n_neg = self.neg_sample_num
        sampler = self._fast_sampler_for(self._sampler)
        negatives = np.empty((len(rows), n_neg), dtype=np.int64)
        offset = 0
        for count in counts:
            block = slice(offset, offset + count)
            # one call per user, as RecBole's loader makes, so the same numbers are drawn
            drawn = sampler.sample_by_user_ids(user_ids[block], item_ids[block], n_neg)
            negatives[block] = drawn.numpy().reshape(n_neg, count).T
            offset += count
        positives = data[iid_field]
        candidates = torch.cat([positives[:, None], torch.from_numpy(negatives)], dim=1)
        positive_u = torch.from_numpy(np.repeat(np.arange(len(index)), counts)).long()
        return CandidateBatch(self._dataset.join(data), candidates, positive_u, positives.clone(), self._expand)

    _fast_sampler = None

    def __getstate__(self):
        # the vectorised sampler copy is a cache of a dynamically made class: rebuilt on use
        state = self.__dict__.copy()
        state.pop("_fast_sampler", None)
        return state

    def _fast_sampler_for(self, sampler):
        """Our vectorised copy of ``sampler``, rebuilt when the loader's sampler changes."""
        if self._fast_sampler is None or self._fast_sampler[0] is not sampler:
            self._fast_sampler = (sampler, vectorised_sampler(sampler))
        fast = self._fast_sampler[1]
        fast.__dict__.update(sampler.__dict__)  # pick up any change (phase, distribution, table)
        return fast

    def _expand(self, batch: CandidateBatch, n_users: Optional[int] = None):
        """RecBole's layout: per user, ``1 + N`` copies of its rows (positives first)."""
        iid_field = self._dataset.iid_field
        parts, row_idx = [], []
        users = batch.positive_u
        total = int(users[-1]) + 1 if len(users) else 0
        n_users = total if n_users is None else min(n_users, total)
        for user in range(n_users):
            rows = (users == user).nonzero(as_tuple=True)[0]
            block = batch.interaction[rows].repeat(self.times)
            block[iid_field] = batch.candidates[rows].t().reshape(-1).clone()
            block = self._dataset.join(block)
            labels = torch.zeros(len(rows) * self.times)
            labels[: len(rows)] = 1.0
            block.update(Interaction({self.label_field: labels}))
            parts.append(block)
            row_idx.append(torch.full((len(rows) * self.times,), user, dtype=torch.long))
        keep = batch.positive_u < n_users
        return cat_interactions(parts), torch.cat(row_idx), batch.positive_u[keep], batch.positive_i[keep]


def eval_loader_class(config, recbole_class: type) -> Optional[type]:
    """Our loader in place of RecBole's sampled-evaluation loader for sequential ranking
    evaluation (the only case where each row can be encoded once), else ``None``."""
    from recbole.utils import EvaluatorType, ModelType

    if (
        recbole_class is NegSampleEvalDataLoader
        and config["MODEL_TYPE"] == ModelType.SEQUENTIAL
        and config["eval_type"] == EvaluatorType.RANKING
        and config["fast_sampled_eval"] is not False
    ):
        return CandidateEvalDataLoader
    return None
