"""Rebuild a model from a checkpoint: the run its saved config describes
(:meth:`recbole_ext.pipeline.Run.from_saved_config`), built on the run's own data-set class
restored from the checkpoint's schema (:mod:`recbole_ext.data.schema`: fields, token maps,
feature tables; no data files needed), or, when the checkpoint has no schema or the model asks
the data set for more than it holds, on the data set reloaded from the saved ``data_path``."""

from __future__ import annotations

from typing import Any, Dict, Optional, Tuple

import torch

from recbole_ext.data.schema import schema_from_token_maps
from recbole_ext.errors import UserError
from recbole_ext.pipeline import Run
from recbole_ext.trainer.checkpoint import Checkpoint, CheckpointError, load_checkpoint


class UnsupportedModelError(UserError, ValueError):
    """The model cannot score a free item history (e.g. it needs a known user id)."""


def checkpoint_schema(checkpoint: Checkpoint) -> Optional[Dict[str, Any]]:
    """The data set's schema a checkpoint holds (``recbole_ext/2``: built from its token maps),
    or ``None`` (a legacy RecBole checkpoint)."""
    info = checkpoint.dataset or {}
    if "field2type" in info:
        return info
    return schema_from_token_maps(info) if info.get("item_tokens") is not None else None


def restore_model(
    checkpoint: str, device: str = "cpu", trust_checkpoint: bool = False, reload_dataset: Optional[bool] = None
) -> Tuple[torch.nn.Module, dict, dict]:
    """The model of ``checkpoint`` with its best weights, in eval mode on ``device``.

    Args:
        checkpoint: path of a checkpoint (ours, or RecBole's with ``trust_checkpoint``).
        device: where the model goes.
        trust_checkpoint: allow unpickling a legacy RecBole checkpoint (can run code).
        reload_dataset: ``None`` (the checkpoint's schema first, the data set if the model needs
            it), ``True`` (always reload the data set) or ``False`` (never).

    Returns:
        ``(model, plain config, token info)``; the token info holds ``item_tokens``,
        ``user_tokens`` (or None) and ``built_on`` (``"checkpoint"`` or ``"data set"``).
    """
    ckpt = load_checkpoint(checkpoint, trust_checkpoint, map_location=device)
    run = Run.from_saved_config(ckpt.config, device)
    schema = checkpoint_schema(ckpt)
    built, built_on = None, "checkpoint"
    if reload_dataset is not True and schema is not None:
        built = _on_schema(run, schema, reload_dataset)
    if built is None:
        if reload_dataset is False:
            raise CheckpointError(f"{checkpoint} holds no data-set schema: the data set must be reloaded")
        built, built_on = _on_data_set(run, checkpoint, schema), "data set"
    model, dataset = built
    ckpt.load_weights(model)
    iid, uid = dataset.iid_field, dataset.uid_field
    info = {
        "item_tokens": [str(t) for t in dataset.field2id_token[iid]],
        "built_on": built_on,
        "user_tokens": [str(t) for t in dataset.field2id_token[uid]] if uid in dataset.field2id_token else None,
    }
    return model.to(device).eval(), ckpt.config, info


def _on_schema(run: Run, schema: Dict[str, Any], reload_dataset: Optional[bool]):
    """``(model, data set)`` on the restored data set, or ``None`` when the model needs more
    than the schema."""
    dataset = run.restore_dataset(schema)
    try:
        model = run.build_model(dataset)
    except (AttributeError, KeyError, ValueError, TypeError, IndexError) as e:
        if reload_dataset is False:
            raise UnsupportedModelError(
                f"{run.config['model']} needs the real data set to be rebuilt (reload_dataset=False): "
                f"{type(e).__name__}: {e}"
            ) from None
        return None
    return model, dataset


def differing_id_field(schema: Dict[str, Any], dataset, fields: Tuple[str, ...]) -> Optional[str]:
    """The first of ``fields`` (``"iid_field"``, ``"uid_field"``) whose ids (token maps) differ
    between a checkpoint's ``schema`` and ``dataset``, or ``None``; a field either side lacks
    is skipped."""
    for key in fields:
        field = schema.get(key)
        saved = schema["field2id_token"].get(field) if field else None
        if saved is not None and field in dataset.field2id_token:
            if [str(t) for t in saved] != [str(t) for t in dataset.field2id_token[field]]:
                return field
    return None


def _on_data_set(run: Run, checkpoint: str, schema: Optional[Dict[str, Any]]):
    """``(model, data set)`` on the data set reloaded from the saved ``data_path``, which must
    still hold the items the checkpoint was trained on."""
    dataset = run.load_dataset()
    if schema is not None and differing_id_field(schema, dataset, ("iid_field",)):
        raise CheckpointError(
            f"the data set at {run.config['data_path']} no longer matches {checkpoint} (item ids differ)"
        )
    return run.build_model(dataset), dataset
