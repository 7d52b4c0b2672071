"""Data-set and data-loader resolvers: recbole_ext's classes first, RecBole's as fallback.

- :func:`create_dataset`: ``recbole_ext.data.dataset.<Model>Dataset`` if we define one, else the
  class RecBole would pick (``<Model>Dataset`` or the one for the model type), always with
  :class:`~recbole_ext.data.dataset.CompatDatasetMixin` in front.
- :func:`get_dataloader`: a model class of ours may name its training loader in
  ``train_dataloader`` (e.g. RecBole's ``UserDataLoader`` for models that batch users); other
  models get RecBole's choice. Sampled ranking evaluation of sequential models uses
  :class:`~recbole_ext.data.dataloader.CandidateEvalDataLoader` (each row once, not once per
  candidate).
- :func:`data_preparation`: RecBole's splitting, using the two resolvers above.
"""

from __future__ import annotations

import importlib
from logging import getLogger
from typing import Dict

from recbole.data import utils as recbole_data_utils
from recbole.data.dataloader import TrainDataLoader
from recbole.sampler import KGSampler
from recbole.utils import ModelType, set_color

from recbole_ext.data import dataset as own_datasets
from recbole_ext.data.dataset import CompatDatasetMixin
from recbole_ext.data.device_loader import DeviceTrainDataLoader, device_loader_applies
from recbole_ext.utils import get_model

_TYPE_TO_CLASS = {
    ModelType.GENERAL: "Dataset",
    ModelType.SEQUENTIAL: "SequentialDataset",
    ModelType.CONTEXT: "Dataset",
    ModelType.KNOWLEDGE: "KnowledgeBasedDataset",
    ModelType.TRADITIONAL: "Dataset",
    ModelType.DECISIONTREE: "Dataset",
}
_MIXED: Dict[type, type] = {}


def get_dataset_class(config) -> type:
    """The data-set class for ``config['model']`` (see the module docstring)."""
    name = config["model"] + "Dataset"
    own = getattr(own_datasets, name, None)
    if own is not None:
        return own
    recbole_module = importlib.import_module("recbole.data.dataset")
    base = getattr(recbole_module, name, None)
    if base is None:
        type_name = _TYPE_TO_CLASS[config["MODEL_TYPE"]]
        base = getattr(own_datasets, type_name, None) or getattr(recbole_module, type_name)
    if issubclass(base, CompatDatasetMixin):
        return base
    if base not in _MIXED:
        _MIXED[base] = type(base.__name__, (CompatDatasetMixin, base), {"__module__": own_datasets.__name__})
    return _MIXED[base]


def create_dataset(config):
    """Build the data set for ``config`` (RecBole's ``create_dataset`` without its pickle cache:
    a cached data set would skip our fixes and can run code when unpickled)."""
    dataset = get_dataset_class(config)(config)
    if config["save_dataset"]:
        dataset.save()
    return dataset


def get_dataloader(config, phase: str) -> type:
    """Data-loader class for a phase: the model's own ``train_dataloader`` first, else RecBole's
    (for sampled evaluation of sequential models, our candidate loader in place of RecBole's)."""
    if phase == "train":
        model_class = get_model(config["model"])
        own = getattr(model_class, "train_dataloader", None)
        if own is not None:
            return own
    chosen = recbole_data_utils.get_dataloader(config, phase)
    if phase != "train":
        from recbole_ext.data.dataloader import eval_loader_class

        return eval_loader_class(config, chosen) or chosen
    return chosen


def data_preparation(config, dataset):
    """Split ``dataset`` and build the train, valid and test loaders (RecBole's logic)."""
    built_datasets = dataset.build()
    train_dataset, valid_dataset, test_dataset = built_datasets
    train_sampler, valid_sampler, test_sampler = recbole_data_utils.create_samplers(
        config, dataset, built_datasets
    )
    if config["MODEL_TYPE"] != ModelType.KNOWLEDGE:
        train_class = get_dataloader(config, "train")
        if train_class is TrainDataLoader and device_loader_applies(config, train_dataset):
            train_class = DeviceTrainDataLoader
        train_data = train_class(config, train_dataset, train_sampler, shuffle=config["shuffle"])
    else:
        kg_sampler = KGSampler(
            dataset,
            config["train_neg_sample_args"]["distribution"],
            config["train_neg_sample_args"]["alpha"],
        )
        train_data = get_dataloader(config, "train")(
            config, train_dataset, train_sampler, kg_sampler, shuffle=True
        )
    valid_data = get_dataloader(config, "valid")(config, valid_dataset, valid_sampler, shuffle=False)
    test_data = get_dataloader(config, "test")(config, test_dataset, test_sampler, shuffle=False)

    logger = getLogger()
    logger.info(
        set_color("[Training]: ", "pink")
        + set_color("train_batch_size", "cyan") + " = "
        + set_color(f'[{config["train_batch_size"]}]', "yellow")
        + set_color(" train_neg_sample_args", "cyan") + ": "
        + set_color(f'[{config["train_neg_sample_args"]}]', "yellow")
    )
    logger.info(
        set_color("[Evaluation]: ", "pink")
        + set_color("eval_batch_size", "cyan") + " = "
        + set_color(f'[{config["eval_batch_size"]}]', "yellow")
        + set_color(" eval_args", "cyan") + ": "
        + set_color(f'[{config["eval_args"]}]', "yellow")
    )
    return train_data, valid_data, test_data
