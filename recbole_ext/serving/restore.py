"""Rebuild a model from a checkpoint alone: its saved config and token maps feed a light stand-in
for the data set (:class:`TokenMapDataset`) that answers what models read in ``__init__`` (field
names, ``num``, an empty history matrix). A model that asks the data set for more (item
features, say) is built on the real data set instead, reloaded from the saved config's
``data_path``."""

from __future__ import annotations

import os
from typing import Dict, Optional, Tuple

import numpy as np
import torch
from recbole.utils import EvaluatorType, InputType, ModelType

from recbole_ext.config import Config
from recbole_ext.data.utils import create_dataset
from recbole_ext.errors import UserError
from recbole_ext.registry import get_model
from recbole_ext.trainer.checkpoint import CheckpointError, load_checkpoint, restore_other_parameter


class UnsupportedModelError(UserError, ValueError):
    """The model cannot score a free item history (e.g. it needs a known user id)."""


_ENUM_KEYS = {"MODEL_TYPE": ModelType, "MODEL_INPUT_TYPE": InputType, "eval_type": EvaluatorType}


class PlainConfig(dict):
    """The checkpoint's plain config, read like RecBole's ``Config`` (missing keys are None)."""

    def __init__(self, plain: dict, device: str = "cpu"):
        super().__init__(plain)
        for key, enum_type in _ENUM_KEYS.items():
            if isinstance(self.get(key), str):
                self[key] = enum_type[self[key]]
        self["device"] = torch.device(device)
        self["use_gpu"] = torch.device(device).type == "cuda"
        self.final_config_dict = self

    def __getitem__(self, key):
        return self.get(key)


class StandInMissing(AttributeError):
    """The stand-in data set cannot answer this; the real data set is needed."""


class TokenMapDataset:
    """What models read from a data set in ``__init__``, rebuilt from a checkpoint's token maps.

    Answers ``uid_field``, ``iid_field``, ``num(field)``, ``user_num``, ``item_num``,
    ``field2id_token``, ``field2token_id`` and an all-padding ``history_item_matrix()``; any other
    attribute raises :class:`StandInMissing` so the caller can fall back to the real data set.
    """

    def __init__(self, info: dict):
        self.uid_field: Optional[str] = info.get("uid_field")
        self.iid_field: str = info["iid_field"]
        self.user_num: int = int(info.get("n_users") or 1)
        self.item_num: int = int(info["n_items"])
        self.field2id_token: Dict[str, np.ndarray] = {}
        if info.get("item_tokens") is not None:
            self.field2id_token[self.iid_field] = np.array(info["item_tokens"])
        if self.uid_field and info.get("user_tokens") is not None:
            self.field2id_token[self.uid_field] = np.array(info["user_tokens"])
        self.field2token_id = {f: {t: i for i, t in enumerate(toks)} for f, toks in self.field2id_token.items()}

    def num(self, field: str) -> int:
        if field == self.iid_field:
            return self.item_num
        if field == self.uid_field:
            return self.user_num
        raise StandInMissing(f"the stand-in data set knows no field {field!r}")

    def history_item_matrix(self, value_field=None, max_history_len=None):
        ids = torch.zeros(self.user_num, 1, dtype=torch.long)
        return ids, torch.zeros(self.user_num, 1), torch.zeros(self.user_num, dtype=torch.long)

    def __getattr__(self, name):
        raise StandInMissing(f"the stand-in data set has no attribute {name!r}")


def config_for_rebuild(plain: dict):
    """A real :class:`recbole_ext.config.Config` from a checkpoint's plain config (to reload
    the data set): the derived keys (enums, device) are left to the configurator."""
    skip = set(_ENUM_KEYS) | {
        "device", "config_files", "local_rank", "single_spec", "world_size",
        "valid_neg_sample_args", "test_neg_sample_args",
    }
    cfg = {k: v for k, v in plain.items() if k not in skip}
    neg = cfg.get("train_neg_sample_args")
    if isinstance(neg, dict) and neg.get("distribution") in (None, "none", "None"):
        cfg["train_neg_sample_args"] = None
    cfg["use_gpu"] = False
    if cfg.get("data_path"):  # the resolved path is the data set's own folder
        cfg["data_path"] = os.path.dirname(os.path.normpath(cfg["data_path"]))
    return Config(plain["model"], plain["dataset"], config_dict=cfg)


def restore_model(
    checkpoint: str, device: str = "cpu", trust_checkpoint: bool = False, reload_dataset: Optional[bool] = None
) -> Tuple[torch.nn.Module, dict, dict]:
    """The model of ``checkpoint`` with its weights, in eval mode on ``device``.

    Args:
        checkpoint: path of a checkpoint (ours, or RecBole's with ``trust_checkpoint``).
        device: where the model goes.
        trust_checkpoint: allow unpickling a legacy RecBole checkpoint (can run code).
        reload_dataset: ``None`` (stand-in first, real data set if the model needs it),
            ``True`` (always reload the data set) or ``False`` (never).

    Returns:
        ``(model, plain config, token info)``; the token info holds ``item_tokens``,
        ``user_tokens`` (or None) and ``built_on`` (``"stand-in"`` or ``"data set"``).
    """
    ckpt = load_checkpoint(checkpoint, trust_checkpoint, map_location=device)
    plain = ckpt["config"]
    info = dict(ckpt.get("dataset") or {})
    model = None
    if reload_dataset is not True and info.get("item_tokens") is not None:
        model = _on_stand_in(plain, info, device, reload_dataset)
        info["built_on"] = "stand-in"
    if model is None:
        if reload_dataset is False:
            raise CheckpointError(f"{checkpoint} holds no token maps: the data set must be reloaded")
        model, info = _on_data_set(checkpoint, plain, info, device)
    model.load_state_dict(ckpt["state_dict"])
    restore_other_parameter(model, ckpt.get("other_parameter"))
    return model.to(device).eval(), plain, info


def _on_stand_in(plain: dict, info: dict, device: str, reload_dataset: Optional[bool]):
    try:
        return get_model(plain["model"])(PlainConfig(plain, device), TokenMapDataset(info))
    except StandInMissing:
        if reload_dataset is False:
            raise UnsupportedModelError(
                f"{plain['model']} needs the real data set to be rebuilt (reload_dataset=False)"
            ) from None
    return None


def _on_data_set(checkpoint: str, plain: dict, info: dict, device: str):
    config = config_for_rebuild(plain)
    config["device"] = torch.device(device)
    dataset = create_dataset(config)
    saved_tokens = info.get("item_tokens")
    real_tokens = [str(t) for t in dataset.field2id_token[dataset.iid_field]]
    if saved_tokens is not None and list(saved_tokens) != real_tokens:
        raise CheckpointError(
            f"the data set at {config['data_path']} no longer matches {checkpoint} (item ids differ)"
        )
    users = [str(t) for t in dataset.field2id_token[dataset.uid_field]] if dataset.uid_field else None
    info = {"item_tokens": real_tokens, "user_tokens": users, "built_on": "data set"}
    return get_model(plain["model"])(config, dataset), info
