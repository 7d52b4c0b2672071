"""Sampled ranking evaluation without repeating rows.

RecBole's ``NegSampleEvalDataLoader`` (``uni100``, ``pop100``, ...) turns every evaluated row into
``1 + N`` rows, one per candidate, copying the row's whole item sequence each time, and the trainer
then calls ``predict`` on all of them. For sequential models that is the slowest path in RecBole:
the loader's copying alone costs several times a full-ranking pass.

:class:`CandidateEvalDataLoader` ranks the split's shared negatives
(:mod:`recbole_ext.evaluation.sampled.candidates`, ``eval_candidates: shared``) or, under ``per_epoch``, draws
exactly the negatives RecBole's loader draws (same sampler, same calls, same user order, so the
same random numbers); either way it yields a :class:`CandidateBatch`: the
distinct rows once plus a ``[rows, 1 + N]`` matrix of candidate item ids. The trainer
(:meth:`recbole_ext.evaluation.sampled.scoring.SampledEvalMixin._neg_sample_batch_eval`) encodes each row
once and scores its candidates; for a model that cannot, :meth:`CandidateBatch.expand` rebuilds
RecBole's own batch layout.

A batch holds ``eval_batch_size`` users, as in full-ranking evaluation of sequential models
(RecBole's loader fits ``eval_batch_size`` *candidate rows*, i.e. about 20 users under pop100
with the default 2048), so the model encodes large batches.
"""

from __future__ import annotations

from typing import Callable, Optional, Tuple

import numpy as np
import torch
from recbole.data.dataloader import NegSampleEvalDataLoader
from recbole.data.interaction import Interaction, cat_interactions

from recbole_ext.evaluation.sampled.candidates import SharedCandidatesMixin
from recbole_ext.evaluation.sampled.sampling import vectorised_sampler


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


#: ``transform`` settings under which a batch keeps one row per evaluated row.
ROW_PRESERVING_TRANSFORMS = (None, "mask_itemseq")


class CandidateEvalDataLoader(SharedCandidatesMixin, NegSampleEvalDataLoader):
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
        self.recbole_step = self.step  # users per batch of RecBole's own loader
        if self.compact:
            users = max(int(self.config["eval_batch_size"]), 1)
            self.step = users
            self.set_batch_size(users)

    @property
    def recbole_batches(self) -> int:
        """How many batches RecBole's own loader makes over the same users (each of
        ``eval_batch_size`` candidate rows at most: about 20 users under pop100 at 2048)."""
        return -(-self.sample_size // max(self.recbole_step, 1))

    def collate_fn(self, index):
        if not self.compact:
            return super().collate_fn(index)
        index = np.asarray(index, dtype=np.int64)
        iid_field = self._dataset.iid_field
        counts = self._row_count[index]
        starts = self._row_start[index]
        rows = np.concatenate([np.arange(s, s + c) for s, c in zip(starts, counts)])
        if self.config["transform"] is None:
            data = self._dataset[torch.from_numpy(rows)]
        else:
            # a transform draws from Python's `random`, the sampler from numpy's: calling it
            # user by user, as RecBole does, keeps both streams as RecBole's loader uses them.
            # Each user's rows are gathered (copies), not sliced: a view shares the whole split's
            # storage, and RecBole's mask_itemseq deep-copies its input (all of that storage)
            per_user = torch.from_numpy(rows).split(counts.tolist())
            data = cat_interactions([self.transform(self._dataset, self._dataset[i]) for i in per_user])
        if self.shares_candidates:
            negatives = self.shared_negatives()[rows]
        else:
            negatives = self._draw_per_user(data, counts)
        positives = data[iid_field]
        candidates = torch.cat([positives[:, None], torch.from_numpy(negatives)], dim=1)
        positive_u = torch.from_numpy(np.repeat(np.arange(len(index)), counts)).long()
        return CandidateBatch(self._dataset.join(data), candidates, positive_u, positives.clone(), self._expand)

    def _draw_per_user(self, data, counts) -> np.ndarray:
        """RecBole's draw (``eval_candidates: per_epoch``): ``[rows, N]`` negatives."""
        user_ids = data[self._dataset.uid_field].numpy()
        item_ids = data[self._dataset.iid_field].numpy()
        n_neg = self.neg_sample_num
        sampler = self._fast_sampler_for(self._sampler)
        negatives = np.empty((len(user_ids), n_neg), dtype=np.int64)
        offset = 0
        for count in counts:
            block = slice(offset, offset + count)
            # one call per user, as RecBole's loader makes, so the same numbers are drawn
            drawn = sampler.sample_by_user_ids(user_ids[block], item_ids[block], n_neg)
            negatives[block] = drawn.numpy().reshape(n_neg, count).T
            offset += count
        return negatives

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
