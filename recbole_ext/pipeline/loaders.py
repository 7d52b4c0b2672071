"""The pipeline's data steps: the data set for a config and its loaders, with the classes the
registry (:mod:`recbole_ext.registry`) resolves. :class:`recbole_ext.pipeline.Run` calls them;
nothing else builds a data set or a loader from a config.

- :func:`create_dataset`: the data set (RecBole's, without its pickle cache).
- :func:`make_loaders`: train, valid and test loaders over an already split data set (RecBole's
  ``data_preparation`` logic), after :func:`check_split`.
"""

from __future__ import annotations

import dataclasses
import json
from logging import getLogger
from typing import Any, Dict, Optional, Tuple

import torch.distributed as dist
from recbole.data import utils as recbole_data_utils
from recbole.sampler import KGSampler
from recbole.utils import ModelType, set_color

from recbole_ext.data.temporal_split import LEAKAGE_LOG_PREFIX, split_leakage
from recbole_ext.distributed import as_one_process, rank
from recbole_ext.errors import DataFormatError
from recbole_ext.evaluation.sampled.sampling import exclude_history, user_item_sets
from recbole_ext.evaluation.sharding import shard_loader
from recbole_ext.registry import get_dataloader, get_dataset_class


@dataclasses.dataclass(frozen=True)
class Splits:
    """A built data set and its three parts (``dataset.build()``: train, valid, test), and the
    split's leakage figure (:func:`recbole_ext.data.temporal_split.leakage`; ``None`` without a
    time column)."""

    dataset: Any
    parts: Tuple[Any, Any, Any]
    leakage: Optional[Dict[str, object]] = None

    @classmethod
    def of(cls, dataset, parts) -> "Splits":
        """The split of ``dataset`` into ``parts``, with its leakage figure."""
        figure = split_leakage(parts, getattr(dataset, "time_field", None), getattr(dataset, "uid_field", None))
        return cls(dataset, tuple(parts), figure)

    def log_leakage(self) -> None:
        """One log line with the leakage figure, which ``recbole-ext report`` reads back."""
        if self.leakage is not None:
            getLogger().info(LEAKAGE_LOG_PREFIX + json.dumps(self.leakage))


@dataclasses.dataclass(frozen=True)
class Loaders:
    """The loaders of one model over a split."""

    train: Any
    valid: Any
    test: Any

    @property
    def train_set(self):
        """The training part's data set, which a model is built on (RecBole's convention)."""
        return self.train._dataset


def create_dataset(config):
    """Build the data set for ``config`` (RecBole's ``create_dataset`` without its pickle cache:
    a cached data set would skip our fixes and can run code when unpickled)."""
    dataset = get_dataset_class(config)(config)
    if config["save_dataset"]:
        dataset.save()
    return dataset


def make_loaders(config, dataset, built):
    """Train, valid and test loaders for ``config``'s model over an already split data set
    (``built``: the three parts of ``dataset.build()``; RecBole's ``data_preparation`` logic)."""
    check_split(config, dataset, built)
    train_dataset, valid_dataset, test_dataset = built
    train_sampler, valid_sampler, test_sampler = recbole_data_utils.create_samplers(config, dataset, list(built))
    if config["eval_neg_exclude"] == "history":
        items = user_item_sets(dataset)
        valid_sampler, test_sampler = (exclude_history(s, items) for s in (valid_sampler, test_sampler))
    if config["MODEL_TYPE"] != ModelType.KNOWLEDGE:
        train_class = get_dataloader(config, "train", train_dataset)
        train_data = train_class(config, train_dataset, train_sampler, shuffle=config["shuffle"])
    else:
        neg = config["train_neg_sample_args"]
        kg_sampler = KGSampler(dataset, neg["distribution"], neg["alpha"])
        train_data = get_dataloader(config, "train")(config, train_dataset, train_sampler, kg_sampler, shuffle=True)
    if config["single_spec"] is False and hasattr(train_data.sampler, "set_epoch"):
        train_data.sampler.seed = int(config["seed"])  # RecBole's DistributedSampler shuffles by seed 0
    valid_data = _eval_loader(config, "valid", valid_dataset, valid_sampler)
    test_data = _eval_loader(config, "test", test_dataset, test_sampler)
    _log_loaders(config)
    return train_data, valid_data, test_data


def _eval_loader(config, phase: str, dataset, sampler):
    """The evaluation loader of ``phase``; on a data-parallel rank, built as for one process and
    cut to this rank's contiguous share of the rows (RecBole's padding ``DistributedSampler``
    would evaluate some users twice): see :func:`recbole_ext.evaluation.sharding.shard_loader`."""
    loader_class = get_dataloader(config, phase)
    if config["single_spec"] is not False:
        return loader_class(config, dataset, sampler, shuffle=False)
    with as_one_process(config):
        loader = loader_class(config, dataset, sampler, shuffle=False)
    shard_loader(loader, rank(), dist.get_world_size())
    return loader


def check_split(config, dataset, built) -> None:
    """Stop with one line when the split leaves a part empty, or when an evaluation ranks fewer
    items per user than ``topk`` (all items in full ranking; ``N + 1`` candidates in ``uniN`` /
    ``popN``, drawn with replacement, so a small data set is no obstacle there).

    Raises:
        DataFormatError: naming the data set, its size and what it lacks.
    """
    if config["MODEL_TYPE"] == ModelType.KNOWLEDGE or not built:
        return
    name, split = config["dataset"], (config["eval_args"] or {}).get("split")
    size = f"{dataset.inter_num} interactions of {dataset.user_num - 1} users and {dataset.item_num - 1} items"
    for part, data in zip(("training", "validation", "test"), built):
        if data is None or len(data) == 0:
            raise DataFormatError(f"data set '{name}' ({size}): the split {split} leaves its {part} part empty")
    mode = (config["eval_args"] or {}).get("mode")
    mode = mode.get("test", "full") if isinstance(mode, dict) else mode
    topk = config["topk"] if isinstance(config["topk"], list) else [config["topk"] or 1]
    need = max(topk, default=1)
    sampled = isinstance(mode, str) and mode[:3] in ("uni", "pop") and mode[3:].isdigit()
    # full ranking ranks every item; a sampled mode its N candidates (drawn with replacement) + the target
    ranked = int(mode[3:]) + 1 if sampled else dataset.item_num - 1
    if ranked < need and mode != "labeled" and config["MODEL_TYPE"] != ModelType.CONTEXT:
        raise DataFormatError(
            f"data set '{name}' ({size}): evaluation mode {mode} ranks {ranked} items per user, fewer than "
            f"topk {topk}; use a smaller topk"
        )


def _log_loaders(config) -> None:
    """RecBole's two lines about the loaders' batch sizes, sampling and evaluation."""
    for phase, size_key, args_key in (
        ("Training", "train_batch_size", "train_neg_sample_args"),
        ("Evaluation", "eval_batch_size", "eval_args"),
    ):
        getLogger().info(
            set_color(f"[{phase}]: ", "pink")
            + set_color(size_key, "cyan")
            + " = "
            + set_color(f"[{config[size_key]}]", "yellow")
            + set_color(f" {args_key}", "cyan")
            + ": "
            + set_color(f"[{config[args_key]}]", "yellow")
        )
