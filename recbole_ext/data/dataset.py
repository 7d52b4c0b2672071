"""Data-set classes: RecBole's, mended for pandas 3 and for running offline.

Every data set recbole_ext builds is RecBole's class for the model with
:class:`CompatDatasetMixin` in front (see :func:`recbole_ext.data.utils.create_dataset`), so a
fix written here reaches every model. What the mixin mends:

- ``_fill_nan``: RecBole fills missing values with ``feat[field].fillna(..., inplace=True)``.
  Under pandas 3 copy-on-write that fills a temporary copy and the frame keeps its NaN
  (missing tokens are never mapped to padding, float columns never get their mean). We assign
  the filled column back.
- ``_remap``: RecBole splits remapped token sequences with ``feat[field].agg(len)``, which
  pandas 3 answers with one number (the column length) instead of one length per row, so every
  data set with a ``token_seq`` field fails to build. We take per-row lengths explicitly.
- ``_download``: RecBole asks on stdin and downloads; offline that cannot work, so we raise
  :class:`~recbole_ext.errors.DatasetNotFoundError` with the paths that were searched.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from recbole.data.dataset import Dataset as RecBoleDataset
from recbole.data.dataset import SequentialDataset as RecBoleSequentialDataset
from recbole.utils import FeatureType, set_color

from recbole_ext.errors import DatasetNotFoundError


def row_lengths(column: pd.Series) -> np.ndarray:
    """Length of each row of a sequence column (what ``column.agg(len)`` gave before pandas 3)."""
    return np.fromiter((len(x) for x in column.values), dtype=np.int64, count=len(column))


class CompatDatasetMixin:
    """Fixes for RecBole 1.2.1's ``Dataset`` on pandas 3; put it first in the bases."""

    def _download(self):
        from recbole_ext.data.locate import candidate_dirs

        raise DatasetNotFoundError(
            f"data set '{self.dataset_name}' not found at {self.dataset_path} "
            f"(searched: {', '.join(candidate_dirs(self.dataset_name, None))}); "
            "this machine cannot download it, see datasets/README.md"
        )

    def _fill_nan(self):
        """Missing token -> 0 (``[PAD]``), missing float -> column mean, missing sequence -> empty."""
        self.logger.debug(set_color("Filling nan", "green"))
        for feat_name in self.feat_name_list:
            feat = getattr(self, feat_name)
            for field in feat:
                ftype = self.field2type[field]
                if ftype == FeatureType.TOKEN:
                    feat[field] = feat[field].fillna(value=0)
                elif ftype == FeatureType.FLOAT:
                    feat[field] = feat[field].fillna(value=feat[field].mean())
                else:
                    dtype = np.int64 if ftype == FeatureType.TOKEN_SEQ else np.float64
                    feat[field] = feat[field].apply(
                        lambda x: np.array([], dtype=dtype) if isinstance(x, float) else x
                    )

    def _remap(self, remap_list):
        """Remap tokens with :func:`pandas.factorize`, splitting sequences by per-row length."""
        if len(remap_list) == 0:
            return
        tokens, split_point = self._concat_remaped_tokens(remap_list)
        new_ids_list, mp = pd.factorize(tokens)
        new_ids_list = np.split(new_ids_list + 1, split_point)
        mp = np.array(["[PAD]"] + list(mp))
        token_id = {t: i for i, t in enumerate(mp)}

        for (feat, field, ftype), new_ids in zip(remap_list, new_ids_list):
            if field not in self.field2id_token:
                self.field2id_token[field] = mp
                self.field2token_id[field] = token_id
            if ftype == FeatureType.TOKEN:
                feat[field] = new_ids
            elif ftype == FeatureType.TOKEN_SEQ:
                split_point = np.cumsum(row_lengths(feat[field]))[:-1]
                feat[field] = np.split(new_ids, split_point)


class Dataset(CompatDatasetMixin, RecBoleDataset):
    """RecBole's ``Dataset`` with the pandas 3 / offline fixes."""


class SequentialDataset(CompatDatasetMixin, RecBoleSequentialDataset):
    """RecBole's ``SequentialDataset`` with the pandas 3 / offline fixes."""
