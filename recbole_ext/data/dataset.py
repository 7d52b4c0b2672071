"""Data-set classes: RecBole's with :class:`~recbole_ext.data.compat.CompatDatasetMixin` in
front, and the data sets of our models that need their own (:class:`SVAEDataset`)."""

from __future__ import annotations

import numpy as np
import torch
from recbole.data.dataset import Dataset as RecBoleDataset
from recbole.data.dataset import SequentialDataset as RecBoleSequentialDataset
from recbole.data.interaction import Interaction

from recbole_ext.data.compat import CompatDatasetMixin
from recbole_ext.data.history import recent_items
from recbole_ext.errors import ConfigError

__all__ = ["CompatDatasetMixin", "Dataset", "DLRMDataset", "SequentialDataset", "SVAEDataset"]


class Dataset(CompatDatasetMixin, RecBoleDataset):
    """RecBole's ``Dataset`` with the pandas 3 / offline fixes."""


class SequentialDataset(CompatDatasetMixin, RecBoleSequentialDataset):
    """RecBole's ``SequentialDataset`` with the pandas 3 / offline fixes."""


class SVAEDataset(SequentialDataset):
    """Sequential data set for SVAE: one training sample per user, holding the whole sequence.

    RecBole's sequential data set turns a user's ``n`` training items into ``n - 1`` samples (one
    per prefix), so a model that predicts at every step of its input would see each step up to
    ``L`` times an epoch. Here the validation and test splits are RecBole's (leave-one-out rows:
    input sequence and the next item), and the training split becomes one row per user:

    - ``ITEM_SEQ`` (``item_id_list``): the user's training items except the last, at most
      ``train_max_len - 1`` of them (the most recent), right-padded with 0;
    - ``ITEM_SEQ_LEN`` (``item_length``): how many;
    - ``ITEM_ID``: the last training item, i.e. the target after the last input step.

    The target at input step ``t`` is the item at ``t + 1`` of ``ITEM_SEQ + [ITEM_ID]``. Users with
    fewer than two training items give no training row. Config: ``train_max_len`` (``~``:
    ``MAX_ITEM_LIST_LENGTH + 1``, so training inputs are as long as evaluation inputs).
    """

    def build(self):
        datasets = super().build()
        datasets[0] = self._one_row_per_user(datasets[0])
        return datasets

    def _one_row_per_user(self, train):
        """Collapse the prefix rows of the training split into one full sequence per user."""
        max_len = self.config["train_max_len"] if "train_max_len" in self.config else None
        max_len = int(max_len) if max_len is not None else self.max_item_list_len + 1
        if max_len < 2:
            raise ConfigError(f"train_max_len must be at least 2, got {max_len}")
        inter = train.inter_feat
        uid = inter[self.uid_field].numpy()
        seqs = inter[self.item_id_list_field].numpy()
        lens = inter[self.item_list_length_field].numpy()
        targets = inter[self.iid_field].numpy()
        # rows of one user are contiguous and in time order (stable sorts since augmentation)
        starts = np.flatnonzero(np.r_[True, uid[1:] != uid[:-1]])
        ends = np.r_[starts[1:], len(uid)]
        users, full_seqs = [], []
        for s, e in zip(starts, ends):
            full = np.concatenate([seqs[s, : lens[s]], targets[s:e]])[-max_len:]
            if len(full) >= 2:
                users.append(uid[s])
                full_seqs.append(full)
        n = len(full_seqs)
        width = max((len(f) - 1 for f in full_seqs), default=1)
        item_seq = np.zeros((n, width), dtype=np.int64)
        for i, f in enumerate(full_seqs):
            item_seq[i, : len(f) - 1] = f[:-1]
        new_inter = Interaction(
            {
                self.uid_field: torch.as_tensor(np.asarray(users, dtype=np.int64)),
                self.item_id_list_field: torch.from_numpy(item_seq),
                self.item_list_length_field: torch.as_tensor(
                    np.asarray([len(f) - 1 for f in full_seqs], dtype=np.int64)
                ),
                self.iid_field: torch.as_tensor(np.asarray([f[-1] for f in full_seqs], dtype=np.int64)),
            }
        )
        self.logger.debug(f"SVAEDataset: {len(inter)} prefix rows -> {n} user sequences")
        return train.copy(new_inter)


class DLRMDataset(Dataset):
    """Context-aware data set for DLRM: RecBole's, plus, when ``sequence_tower`` is not ``none``,
    each interaction's recent-item history.

    For every interaction row: ``item_id_list`` (``[L]``, ``L = MAX_ITEM_LIST_LENGTH``) holds the
    ids of the same user's ``L`` most recent items before it (by ``TIME_FIELD``, ties by file
    order), oldest first and right-padded with 0, and ``item_length`` how many. They are computed
    over all of the user's interactions before the split, as a live system knows what was seen
    before the moment it predicts, and carried through the split and the loaders; they are not
    feature fields (the context embeddings do not see them).
    """

    def _change_feat_format(self):
        super()._change_feat_format()
        if str(self.config["sequence_tower"] or "none").lower() == "none":
            return

        length = self.config["MAX_ITEM_LIST_LENGTH"]
        users = self.inter_feat[self.uid_field].numpy()
        items = self.inter_feat[self.iid_field].numpy()
        times = self.inter_feat[self.time_field].numpy() if self.time_field in self.inter_feat else None
        history, lengths = recent_items(users, items, times, length)
        self.inter_feat.update(
            Interaction(
                {
                    self.config["ITEM_ID_FIELD"] + self.config["LIST_SUFFIX"]: history,
                    self.config["ITEM_LIST_LENGTH_FIELD"]: lengths,
                }
            )
        )
