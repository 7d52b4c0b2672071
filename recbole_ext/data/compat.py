"""The fixes of RecBole 1.2.1's ``Dataset`` for pandas 3 and for running offline, as overrides.

Every data set recbole_ext builds is RecBole's class for the model with
:class:`CompatDatasetMixin` in front (see :func:`recbole_ext.registry.get_dataset_class`), so a
fix written here reaches every model. What the mixin mends:

- ``_fill_nan``: RecBole fills missing values with ``feat[field].fillna(..., inplace=True)``.
  Under pandas 3 copy-on-write that fills a temporary copy and the frame keeps its NaN
  (missing tokens are never mapped to padding, float columns never get their mean). We assign
  the filled column back.
- ``_remap``: RecBole splits remapped token sequences with ``feat[field].agg(len)``, which
  pandas 3 answers with one number (the column length) instead of one length per row, so every
  data set with a ``token_seq`` field fails to build. We take per-row lengths explicitly.
- ``_normalize`` and ``_discretization`` (:mod:`recbole_ext.data.numeric_features`),
  ``_reset_ent_remapID`` (knowledge graphs) and ``_benchmark_presets`` (sequential benchmark
  files) use the same ``agg(len)``; they split by per-row lengths too (:func:`row_lengths`,
  :func:`split_points`).
- ``_load_feat``: RecBole's ``fillna("", inplace=True)`` on sequence columns is a no-op under
  copy-on-write, so a blank ``token_seq``/``float_seq`` cell crashed loading; it is now an empty
  sequence. A malformed header or a non-numeric ``float`` value raises
  :class:`~recbole_ext.errors.DataFormatError` (file, line, column, problem) instead of a traceback.
- ``_download``: RecBole asks on stdin and downloads; offline that cannot work, so we raise
  :class:`~recbole_ext.errors.DatasetNotFoundError` with the paths that were searched.
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import torch
from recbole.utils import FeatureSource, FeatureType, set_color

from recbole_ext.data.atomic_files import (
    check_interaction_columns,
    concat_rows,
    parse_sequence_column,
    read_atomic_columns,
    read_header,
    row_lengths,
    split_points,
    writable_columns,
)
from recbole_ext.data.locate import candidate_dirs
from recbole_ext.data.numeric_features import NumericFeaturesMixin
from recbole_ext.data.temporal_split import GlobalTemporalSplitMixin
from recbole_ext.errors import DataFormatError, DatasetNotFoundError


class CompatDatasetMixin(GlobalTemporalSplitMixin, NumericFeaturesMixin):
    """Fixes for RecBole 1.2.1's ``Dataset`` on pandas 3; put it first in the bases (the global
    temporal split and the numeric features' fixes come with it:
    :class:`~recbole_ext.data.temporal_split.GlobalTemporalSplitMixin`,
    :class:`~recbole_ext.data.numeric_features.NumericFeaturesMixin`)."""

    def _download(self):
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
                        lambda x, dtype=dtype: np.array([], dtype=dtype) if isinstance(x, float) else x
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

    # ------------------------------------------------------------ loading atomic files
    def _load_feat(self, filepath, source):
        """Load one atomic file into a DataFrame (RecBole's ``_load_feat``, mended).

        Differences from RecBole 1.2.1:

        - a malformed header (a column without ``:type``, an unknown type) or a value that is not
          a number in a ``float``/``float_seq`` column raises
          :class:`~recbole_ext.errors.DataFormatError` naming the file, line, column and problem
          (RecBole crashes with a traceback);
        - a blank ``token_seq``/``float_seq`` cell becomes an empty sequence (RecBole's
          ``fillna(inplace=True)`` is a no-op under pandas 3 copy-on-write, and the NaN crashes
          the split).
        """
        self.logger.debug(set_color(f"Loading feature from [{filepath}] (source: [{source}]).", "green"))
        load_col, unload_col = self._get_load_and_unload_col(source)
        if load_col == set():
            return None

        field_separator = self.config["field_separator"]
        encoding = self.config["encoding"]
        chosen = []
        header = read_header(filepath, field_separator, encoding)
        if source == FeatureSource.INTERACTION:
            check_interaction_columns(
                filepath,
                {f: t for _, f, t in header},
                load_col,
                self.uid_field,
                self.iid_field,
                self.time_field if self._time_ordered else None,
            )
        for field_type, field, ftype in header:
            if load_col is not None and field not in load_col:
                continue
            if unload_col is not None and field in unload_col:
                continue
            if isinstance(source, FeatureSource) or source != "link":
                self.field2source[field] = source
                self.field2type[field] = ftype
                if not ftype.value.endswith("seq"):
                    self.field2seqlen[field] = 1
                if "float" in ftype.value:
                    self.field2bucketnum[field] = 2
            chosen.append((field_type, field, ftype))

        if len(chosen) == 0:
            self.logger.warning(f"No columns has been loaded from [{source}]")
            return None

        time_field = self.time_field if self._time_ordered else None
        df = read_atomic_columns(filepath, field_separator, encoding, header, chosen, time_field)
        self._parse_sequences(df, filepath, header, chosen)
        return df

    @property
    def _time_ordered(self) -> bool:
        """Whether the split orders interactions by time (``eval_args.order: TO``)."""
        return (self.config["eval_args"] or {}).get("order") == "TO"

    def _parse_sequences(self, df, filepath, header, chosen) -> None:
        """Sequences out of the text columns of one atomic file (numbers are parsed already)."""
        seq_separator = self.config["seq_separator"]
        positions = {entry: position for position, entry in enumerate(header, start=1)}
        for entry in chosen:
            _, field, ftype = entry
            if not ftype.value.endswith("seq"):
                continue
            where = (filepath, positions[entry], field)
            parse_sequence_column(df, field, ftype, seq_separator, where)
            max_seq_len = max(map(len, df[field].values)) if len(df) else 0
            if self.config["seq_len"] and field in self.config["seq_len"]:
                seq_len = self.config["seq_len"][field]
                df[field] = [seq[:seq_len] if len(seq) > seq_len else seq for seq in df[field].values]
                self.field2seqlen[field] = min(seq_len, max_seq_len)
            else:
                self.field2seqlen[field] = max_seq_len

    # ------------------------------------------------------------ sequence columns (pandas 3)
    def _benchmark_presets(self):
        """SequentialDataset with benchmark files: RecBole sets the item-list length column with
        ``agg(len)`` (one number under pandas 3); we set it from per-row lengths."""
        parent = getattr(super(), "_benchmark_presets", None)
        if parent is not None:
            parent()
        list_field = getattr(self, "item_id_list_field", None)
        if list_field is not None and list_field in self.inter_feat:
            self.inter_feat[self.item_list_length_field] = row_lengths(self.inter_feat[list_field])

    def _reset_ent_remapID(self, field, idmap, id2token, token2id):
        """Knowledge-graph data sets: re-map item/entity ids, splitting sequence fields by per-row
        length (RecBole's ``KnowledgeBasedDataset`` method, mended for pandas 3)."""
        self.field2id_token[field] = id2token
        self.field2token_id[field] = token2id
        for feat in self.field2feats(field):
            if self.field2type[field] == FeatureType.TOKEN:
                feat[field] = idmap[feat[field].values]
            else:
                new_idx = idmap[concat_rows(feat[field], dtype=np.int64)]
                feat[field] = np.split(new_idx, split_points(feat[field]))

    # ------------------------------------------------------------ pandas 4: no inplace=
    def _load_user_or_item_feat(self, token, dataset_path, source, field_name):
        """RecBole's method without ``drop_duplicates(inplace=True)`` (deprecated in pandas 3)."""
        feat_path = os.path.join(dataset_path, f"{token}.{source.value}")
        field = getattr(self, field_name, None)
        feat = self._load_feat(feat_path, source) if os.path.isfile(feat_path) else None
        if feat is not None and field is None:
            raise ValueError(f"{field_name} must be exist if {source.value}_feat exist.")
        if feat is not None and field not in feat:
            raise ValueError(f"{field_name} must be loaded if {source.value}_feat is loaded.")
        if feat is not None:
            feat = feat.drop_duplicates(subset=[field], keep="first")
        if field in self.field2source:
            self.field2source[field] = FeatureSource(source.value + "_id")
        return feat

    def _reset_index(self):
        """RecBole's method, the index replaced in place instead of ``reset_index(inplace=True)``."""
        for feat_name in self.feat_name_list:
            feat = getattr(self, feat_name)
            if feat.empty:
                raise ValueError("Some feat is empty, please check the filtering settings.")
            feat.index = pd.RangeIndex(len(feat))

    def _del_col(self, feat, field):
        """RecBole's method, the column deleted in place instead of ``drop(inplace=True)``."""
        if isinstance(feat, pd.DataFrame):
            del feat[field]
        else:  # an Interaction
            feat.drop(column=field)
        for mapping in (
            self.field2id_token,
            self.field2token_id,
            self.field2seqlen,
            self.field2source,
            self.field2type,
        ):
            mapping.pop(field, None)

    def _filter_inter_by_user_or_item(self):
        """RecBole's method, keeping rows by a mask instead of ``drop(inplace=True)``."""
        if self.config["filter_inter_by_user_or_item"] is not True:
            return
        keep = pd.Series(True, index=self.inter_feat.index)
        if self.user_feat is not None:
            keep &= self.inter_feat[self.uid_field].isin(self.user_feat[self.uid_field].values)
        if self.item_feat is not None:
            keep &= self.inter_feat[self.iid_field].isin(self.item_feat[self.iid_field].values)
        self.inter_feat = self.inter_feat[keep.values]

    def _filter_link(self):
        """``KnowledgeBasedDataset._filter_link`` (the item-entity links whose item or entity
        is unused go), keeping interaction rows by a mask instead of ``drop(inplace=True)``."""
        item_tokens, ent_tokens = self._get_rec_item_token(), self._get_entity_token()
        illegal = {
            (item, ent) for item, ent in self.item2entity.items() if item not in item_tokens or ent not in ent_tokens
        }
        for item, ent in illegal:
            self.item2entity.pop(item, None)
            self.entity2item.pop(ent, None)
        self.inter_feat = self.inter_feat[self.inter_feat[self.iid_field].isin(self.item2entity.keys()).values]

    def _dataframe_to_interaction(self, data):
        """RecBole's method on writable copies of the columns: pandas 3 hands out read-only
        arrays, and ``torch.LongTensor`` of a read-only array warns (and shares its memory)."""
        return super()._dataframe_to_interaction(writable_columns(data))

    def sort(self, by, ascending=True):
        """RecBole's ``Interaction.sort`` on ``inter_feat`` with ``torch.sort`` in place of
        ``np.argsort`` of a tensor (deprecated in numpy 2: torch's ``__array_wrap__``). Both are
        stable, so the order is the same; a descending key reverses the ascending order, as
        RecBole's does."""
        inter = self.inter_feat
        if isinstance(inter, pd.DataFrame):
            return super().sort(by, ascending)
        by = [by] if isinstance(by, str) else list(by)
        ascending = [ascending] * len(by) if isinstance(ascending, bool) else list(ascending)
        if len(ascending) == 1:
            ascending = ascending * len(by)
        for field, up in zip(by[::-1], ascending[::-1]):
            key = inter.interaction[field]
            key = key if key.dim() == 1 else key[..., 0]
            index = torch.sort(key, stable=True).indices
            inter._reindex(index if up else index.flip(0))

    def build(self):
        """RecBole's ``build`` (or the global temporal split), after checking that time order has a
        time column to sort by."""
        order = self.config["eval_args"]["order"]
        if order == "TO" and self.benchmark_filename_list is None and self.time_field not in self.field2type:
            raise DataFormatError(
                f"data set '{self.dataset_name}' is split in time order (eval_args.order: TO) but has no "
                f"'{self.time_field}' column loaded: add a '{self.time_field}:float' column to "
                f"{self.dataset_name}.inter (and to load_col), or set eval_args.order: RO"
            )
        return super().build()
