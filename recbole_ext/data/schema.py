"""A data set's schema, apart from its interactions: what a checkpoint keeps so that a model
can be rebuilt on its own data-set class without the data files.

A model's ``__init__`` reads the data set's fields, their types and sizes, the token maps, and
(for feature-aware models) the user and item feature tables; none of that needs the
interaction rows. :func:`dataset_schema` takes those as plain data (tensors, lists, strings: a
``weights_only`` checkpoint holds them); :func:`restore_dataset` puts them back into an instance
of the data-set class the run used, with an empty interaction table, so every method of
RecBole's ``Dataset`` answers from the restored state (``num``, ``fields``, ``token2id``,
``history_item_matrix`` with no history, ...).
"""

from __future__ import annotations

from logging import getLogger
from typing import Any, Dict, Optional

import numpy as np
import torch
from recbole.data.interaction import Interaction
from recbole.utils import FeatureSource, FeatureType

#: attributes of RecBole's ``Dataset`` (and ``SequentialDataset``) kept as they are
_PLAIN = (
    "uid_field",
    "iid_field",
    "label_field",
    "time_field",
    "field2seqlen",
    "field2bucketnum",
    "feat_name_list",
    "benchmark_filename_list",
    "max_item_list_len",
    "item_list_length_field",
)


def dataset_schema(dataset) -> Dict[str, Any]:
    """The schema of ``dataset`` as plain data (see the module docstring).

    Args:
        dataset: a built RecBole data set (any split of it: they share the schema).
    """
    schema: Dict[str, Any] = {k: _plain(getattr(dataset, k)) for k in _PLAIN if hasattr(dataset, k)}
    schema["field2type"] = {str(f): t.name for f, t in dataset.field2type.items()}
    schema["field2source"] = {str(f): getattr(s, "name", str(s)) for f, s in dataset.field2source.items()}
    schema["field2id_token"] = {str(f): [str(t) for t in toks] for f, toks in dataset.field2id_token.items()}
    schema["alias"] = {str(k): [str(f) for f in v] for k, v in getattr(dataset, "alias", {}).items()}
    schema["inter_fields"] = {f: _empty_like(v) for f, v in dataset.inter_feat.interaction.items()}
    for table in ("user_feat", "item_feat"):
        feat = getattr(dataset, table, None)
        schema[table] = None if feat is None else {f: v.detach().cpu() for f, v in feat.interaction.items()}
    return schema


def schema_from_token_maps(info: Dict[str, Any]) -> Dict[str, Any]:
    """A schema from a ``recbole_ext/2`` checkpoint's token maps (user and item fields only)."""
    fields = {info["iid_field"]: ("ITEM_ID", info["item_tokens"])}
    if info.get("uid_field") and info.get("user_tokens") is not None:
        fields[info["uid_field"]] = ("USER_ID", info["user_tokens"])
    return {
        "uid_field": info.get("uid_field"),
        "iid_field": info["iid_field"],
        "label_field": None,
        "time_field": None,
        "field2seqlen": {f: 1 for f in fields},
        "field2bucketnum": {},
        "feat_name_list": ["inter_feat"],
        "field2type": {f: "TOKEN" for f in fields},
        "field2source": {f: src for f, (src, _) in fields.items()},
        "field2id_token": {f: list(toks) for f, (_, toks) in fields.items()},
        "alias": {},
        "inter_fields": {f: torch.zeros(0, dtype=torch.long) for f in fields},
        "user_feat": None,
        "item_feat": None,
    }


def restore_dataset(dataset_class: type, config, schema: Dict[str, Any]):
    """An instance of ``dataset_class`` holding ``schema`` and no interactions; its config is
    ``config`` (the run's, rebuilt from the checkpoint)."""
    dataset = dataset_class.__new__(dataset_class)
    state = {k: schema[k] for k in _PLAIN if k in schema}
    state.update(
        config=config,
        dataset_name=config["dataset"],
        dataset_path=config["data_path"],
        logger=getLogger(),
        field2type={f: FeatureType[t] for f, t in schema["field2type"].items()},
        field2source={f: _source(s) for f, s in schema["field2source"].items()},
        field2id_token={f: np.array(toks) for f, toks in schema["field2id_token"].items()},
        alias={k: np.array(v) for k, v in schema.get("alias", {}).items()},
        inter_feat=Interaction(dict(schema["inter_fields"])),
        user_feat=_table(schema.get("user_feat")),
        item_feat=_table(schema.get("item_feat")),
        _preloaded_weight={},
        _rest_fields=np.array([], dtype=str),
    )
    state["field2token_id"] = {f: {t: i for i, t in enumerate(toks)} for f, toks in schema["field2id_token"].items()}
    dataset.__dict__.update(state)
    return dataset


def _source(name: str):
    """A field's source: RecBole's ``FeatureSource`` member, or the name (knowledge graphs'
    entity sources are plain strings)."""
    return FeatureSource[name] if name in FeatureSource.__members__ else name


def _table(columns: Optional[Dict[str, torch.Tensor]]) -> Optional[Interaction]:
    return None if columns is None else Interaction(dict(columns))


def _empty_like(column: torch.Tensor) -> torch.Tensor:
    """A column of no rows with ``column``'s type and row shape."""
    return torch.zeros((0, *column.shape[1:]), dtype=column.dtype)


def _plain(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
