"""Shared evaluation candidates: one draw of sampled negatives per split and seed.

RecBole's sampled evaluation (``uni100``, ``pop100``, ...) draws each row's negatives anew every
time a loader is iterated, from the process's global numpy stream (RecBole issue #2077): two
models in one comparison, or two epochs of one model, are ranked against different candidates,
and the draw depends on how much randomness training consumed before it.

With ``eval_candidates: shared`` (the default) the negatives of a split are drawn once, for all
of its rows at the first evaluation, from a numpy stream seeded by ``(seed, phase)`` alone, and
reused for every later evaluation: every model evaluated on the same split with the same seed
(whatever its type, as long as the rows are the same) ranks the same candidates, and a
data-parallel run (each rank its own share of the rows) ranks exactly the candidates a single
process does. The global numpy stream is left as it was. ``eval_candidates: per_epoch`` keeps
RecBole's behaviour.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import torch
from recbole.data.dataloader import NegSampleEvalDataLoader

from recbole_ext.evaluation.sampled.sampling import vectorised_sampler

_PHASE_CODE = {"train": 0, "valid": 1, "test": 2}


def candidate_seed(seed: int, phase: str) -> int:
    """The seed of a split's shared draw: a function of the run's ``seed`` and the phase only."""
    entropy = [int(seed) & 0xFFFFFFFF, _PHASE_CODE.get(str(phase), 3)]
    return int(np.random.SeedSequence(entropy).generate_state(1)[0])


def draw_negatives(sampler, user_ids: np.ndarray, item_ids: np.ndarray, n_neg: int, seed: int) -> np.ndarray:
    """``n_neg`` negatives for each row, drawn by ``sampler`` (RecBole's, vectorised) from a numpy
    stream seeded with ``seed``; numpy's global stream is restored afterwards.

    Args:
        sampler: the split's RecBole sampler (its phase decides which items count as used).
        user_ids: ``[R]`` user id of each row.
        item_ids: ``[R]`` positive item of each row.
        n_neg: negatives per row.
        seed: see :func:`candidate_seed`.

    Returns:
        ``[R, n_neg]`` int64 item ids.
    """
    state = np.random.get_state()
    try:
        np.random.seed(seed)
        drawn = vectorised_sampler(sampler).sample_by_user_ids(user_ids, item_ids, n_neg)
    finally:
        np.random.set_state(state)
    return drawn.numpy().reshape(n_neg, len(user_ids)).T.copy()


class SharedCandidatesMixin:
    """For RecBole ``NegSampleEvalDataLoader`` subclasses: the split's negatives, drawn once."""

    _shared_table: Optional[np.ndarray] = None

    @property
    def shares_candidates(self) -> bool:
        """True when this loader ranks the split's shared negatives (see the module docstring)."""
        args = self.neg_sample_args
        return (
            self.config["eval_candidates"] != "per_epoch"
            and args["distribution"] != "none"
            and args["sample_num"] != "none"
            and not args.get("dynamic", False)
        )

    def shared_negatives(self) -> np.ndarray:
        """``[rows of the split, N]`` negatives of every row of the split's data set, drawn at the
        first call (see :func:`draw_negatives`); row ``r`` belongs to ``self._dataset`` row ``r``."""
        if self._shared_table is None:
            inter = self._dataset.inter_feat
            user_ids = inter[self._dataset.uid_field].numpy()
            item_ids = inter[self._dataset.iid_field].numpy()
            seed = candidate_seed(self.config["seed"], getattr(self._sampler, "phase", "test"))
            self._shared_table = draw_negatives(self._sampler, user_ids, item_ids, self.neg_sample_num, seed)
        return self._shared_table


class SharedNegSampleEvalDataLoader(SharedCandidatesMixin, NegSampleEvalDataLoader):
    """RecBole's sampled-evaluation loader (models that are not sequential, or value metrics)
    ranking the split's shared negatives."""

    def _neg_sampling(self, inter_feat):
        if not self.shares_candidates:
            return super()._neg_sampling(inter_feat)
        uid = int(inter_feat[self.uid_field][0])
        rows = self.uid2index[uid]
        table = self.shared_negatives()[rows]
        if len(table) != len(inter_feat):  # a transform changed the rows: RecBole's own draw
            return super()._neg_sampling(inter_feat)
        # RecBole's layout: negative k of row j at position k * rows + j
        neg_item_ids = torch.from_numpy(np.ascontiguousarray(table.T).reshape(-1))
        return self.sampling_func(inter_feat, neg_item_ids)
