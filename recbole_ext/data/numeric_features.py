"""Normalisation and discretisation of numeric features (``normalize_field``,
``normalize_all``, ``discretization``, ``numerical_features``): RecBole 1.2.1's ``Dataset``
methods, mended for pandas 3.

RecBole splits ``float_seq`` columns with ``feat[field].agg(len)``, which pandas 3 answers with
one number (the column length) instead of one length per row; these methods split by per-row
lengths (:func:`~recbole_ext.data.atomic_files.split_points`) and otherwise keep RecBole's
logic. :class:`~recbole_ext.data.compat.CompatDatasetMixin` brings them to every data set.
"""

from __future__ import annotations

import numpy as np
from recbole.utils import FeatureType, set_color

from recbole_ext.data.atomic_files import concat_rows, split_points


class NumericFeaturesMixin:
    """RecBole's ``_normalize`` and ``_discretization`` for pandas 3 (see the module docstring)."""

    def _normalize(self):
        """Min-max normalise ``normalize_field`` / ``normalize_all`` fields (RecBole's logic),
        splitting ``float_seq`` columns by per-row length."""
        if self.config["normalize_field"] is not None and self.config["normalize_all"] is True:
            raise ValueError("Normalize_field and normalize_all can't be set at the same time.")
        if self.config["normalize_field"]:
            fields = self.config["normalize_field"]
            for field in fields:
                if field not in self.field2type:
                    raise ValueError(f"Field [{field}] does not exist.")
                if self.field2type[field] not in (FeatureType.FLOAT, FeatureType.FLOAT_SEQ):
                    self.logger.warning(f"{field} is not a FLOAT/FLOAT_SEQ feat, which will not be normalized.")
        elif self.config["normalize_all"]:
            fields = self.float_like_fields
        else:
            return
        self.logger.debug(set_color("Normalized fields", "blue") + f": {fields}")

        for field in fields:
            for feat in self.field2feats(field):
                ftype = self.field2type[field]
                if ftype == FeatureType.FLOAT:
                    feat[field] = self._min_max(feat[field].values, field)
                elif ftype == FeatureType.FLOAT_SEQ:
                    flat = concat_rows(feat[field])
                    feat[field] = np.split(self._min_max(flat, field), split_points(feat[field]))

    def _min_max(self, arr: np.ndarray, field: str):
        if len(arr) == 0:
            return arr
        mx, mn = np.max(arr), np.min(arr)
        if mx == mn:
            self.logger.warning(f"All the same value in [{field}].")
            return np.ones_like(arr, dtype=np.float64) if arr.ndim else 1.0
        return (arr - mn) / (mx - mn)

    def _discretization(self):
        """Bucket ``discretization`` fields and give every numerical feature its
        ``[value, 1]`` / ``[1, bucket]`` pair (RecBole's logic), splitting ``float_seq`` columns
        by per-row length."""
        dis_info = {}
        if self.config["discretization"]:
            dis_info = dict(self.config["discretization"])
            for field in list(dis_info):
                if field not in self.field2type:
                    raise ValueError(f"Field [{field}] does not exist.")
                if field not in self.config["numerical_features"]:
                    raise ValueError(f"Field [{field}] must be a numerical feature")
                if self.field2type[field] not in (FeatureType.FLOAT, FeatureType.FLOAT_SEQ):
                    self.logger.warning(f"{field} is not a FLOAT/FLOAT_SEQ feat, which will not be normalized.")
                    del dis_info[field]
            self.logger.debug(set_color("Normalized fields", "blue") + f": {dis_info.keys()}")

        for field in self.config["numerical_features"]:
            info = dis_info.get(field)
            for feat in self.field2feats(field):
                ftype = self.field2type[field]
                if info is not None:
                    method, bucket = info["method"], info.get("bucket")
                    if method == "ED" and bucket is None:
                        raise ValueError("The number of buckets must be set when apply equal discretization.")
                    if ftype == FeatureType.FLOAT:
                        res, self.field2bucketnum[field] = self._bucketize(feat[field].values, method, bucket, field)
                        feat[field] = np.stack([np.ones_like(res), res], axis=-1).tolist()
                    elif ftype == FeatureType.FLOAT_SEQ:
                        points = split_points(feat[field])
                        res, self.field2bucketnum[field] = self._bucketize(
                            concat_rows(feat[field]), method, bucket, field
                        )
                        ret = np.ones_like(res)
                        feat[field] = list(zip(np.split(ret, points), np.split(res, points)))
                else:
                    if ftype == FeatureType.FLOAT:
                        feat[field] = np.stack([feat[field], np.ones_like(feat[field])], axis=-1).tolist()
                    else:
                        points = split_points(feat[field])
                        ret = concat_rows(feat[field])
                        res = np.ones_like(ret)
                        feat[field] = list(zip(np.split(ret, points), np.split(res, points)))

    def _bucketize(self, arr: np.ndarray, method: str, bucket, field: str):
        if method == "ED":  # equal-distance buckets
            lower, upper = min(arr), max(arr) + 1e-9
            if upper != lower:
                arr = np.floor((arr - lower) * bucket / (upper - lower) + 1)
            else:
                self.logger.warning(f"All the same value in [{field}].")
                arr = np.ones_like(arr) * bucket
        elif method == "LD":  # logarithm buckets
            mask = arr > 2
            x = np.floor(np.log(arr * mask + 1e-9) ** 2 + 1)
            x = np.where(mask, x, arr)
            _, arr = np.unique(x, return_inverse=True)
        else:
            raise ValueError(f"Method [{method}] does not exist.")
        return arr, int(max(arr) + 1)
