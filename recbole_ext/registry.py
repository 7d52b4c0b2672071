"""The registry: resolves names to classes, ours first, RecBole's as the fallback (the
RecBole-GNN pattern), and is the only place where our mixins are composed with RecBole's classes.

- :func:`get_model` finds ``recbole_ext.model.<type>_recommender.<lower>.<Name>`` first, then
  RecBole's model of that name. Names match case-insensitively and resolve to the canonical
  spelling; an unknown name raises :class:`~recbole_ext.errors.UnknownModelError` listing close
  matches and every known name.
- :func:`get_trainer` finds ``recbole_ext.trainer.<Name>Trainer`` first, then RecBole's trainer
  for the model, and in that case returns it mixed with our compatibility fixes
  (:class:`~recbole_ext.trainer.trainer.CompatTrainerMixin`).
- :func:`get_dataset_class` finds ``recbole_ext.data.dataset.<Model>Dataset`` first, else the
  class RecBole would pick (``<Model>Dataset`` or the one for the model type), always with
  :class:`~recbole_ext.data.dataset.CompatDatasetMixin` in front.
- :func:`get_dataloader`: the one place a loader class is chosen. A model class of ours may name
  its training loader in ``train_dataloader`` (e.g. RecBole's ``UserDataLoader`` for models that
  batch users); other models get RecBole's choice, with training data on the device where the
  config asks for it. Sampled ranking evaluation uses the loaders of
  :mod:`recbole_ext.evaluation.sampled` (shared candidates; each row once, not once per
  candidate, for sequential models).
"""

from __future__ import annotations

import difflib
import functools
import importlib
import importlib.util
import os
from typing import Dict, List

import torch
from recbole.data import utils as recbole_data_utils
from recbole.data.dataloader import TrainDataLoader
from recbole.trainer import Trainer as RecBoleTrainer
from recbole.utils import ModelType
from recbole.utils import get_trainer as recbole_get_trainer

from recbole_ext import trainer as own_trainers
from recbole_ext._paths import OWN_MODEL_YAML_DIR, RECBOLE_MODEL_YAML_DIR
from recbole_ext.data import dataset as own_datasets
from recbole_ext.data.dataset import CompatDatasetMixin
from recbole_ext.errors import UnknownModelError
from recbole_ext.evaluation.sampled import loader_class as sampled_loader_class
from recbole_ext.model import recbole_fixes
from recbole_ext.trainer.device_loader import DeviceTrainDataLoader, device_loader_applies
from recbole_ext.trainer.trainer import CompatTrainerMixin

MODEL_SUBMODULES = (
    "general_recommender",
    "context_aware_recommender",
    "sequential_recommender",
    "knowledge_aware_recommender",
    "exlib_recommender",
)


def _import_recbole_sequential_models() -> None:
    """Import RecBole's sequential models once, undoing a global side effect of that import.

    ``recbole/model/sequential_recommender/sine.py`` calls ``torch.autograd.set_detect_anomaly(True)``
    at import time, and the package imports it whenever any RecBole sequential model (or a name
    lookup through it) is imported. Anomaly mode makes every backward pass check for NaN and
    record stack traces: about 10x slower training for every model. The previous setting is
    restored right after the import.
    """
    was_enabled = torch.is_anomaly_enabled()
    importlib.import_module("recbole.model.sequential_recommender")
    torch.autograd.set_detect_anomaly(was_enabled)


_import_recbole_sequential_models()


def _names_in(yaml_dir: str) -> List[str]:
    if not os.path.isdir(yaml_dir):
        return []
    return sorted(f[:-5] for f in os.listdir(yaml_dir) if f.endswith(".yaml"))


@functools.lru_cache(maxsize=None)
def own_model_names() -> List[str]:
    """Names of the models recbole_ext ships (one YAML of defaults per model)."""
    return _names_in(OWN_MODEL_YAML_DIR)


@functools.lru_cache(maxsize=None)
def recbole_model_names() -> List[str]:
    """Names of RecBole's models that are importable as modules."""
    names = []
    # RecBole models that ship without a YAML of defaults (RecBole's own resolver finds them)
    for name in sorted(set(_names_in(RECBOLE_MODEL_YAML_DIR)) | {"Random"}):
        if _find_module("recbole.model", name) is not None:
            names.append(name)
    return names


def all_model_names() -> List[str]:
    return sorted(set(own_model_names()) | set(recbole_model_names()), key=str.lower)


def _find_module(package: str, name: str):
    lower = name.lower()
    for sub in MODEL_SUBMODULES:
        path = f"{package}.{sub}.{lower}"
        try:
            if importlib.util.find_spec(path) is not None:
                return path
        except ModuleNotFoundError:
            continue
    return None


def canonical_model_name(name: str) -> str:
    """The canonical spelling of a model name (case-insensitive), or raise UnknownModelError."""
    known = all_model_names()
    if name in known:
        return name
    by_lower: Dict[str, str] = {n.lower(): n for n in known}
    # our names win over RecBole's when they differ only in case
    by_lower.update({n.lower(): n for n in own_model_names()})
    if name.lower() in by_lower:
        return by_lower[name.lower()]
    close = difflib.get_close_matches(name.lower(), list(by_lower), n=5, cutoff=0.6)
    hint = f" Did you mean: {', '.join(by_lower[c] for c in close)}?" if close else ""
    raise UnknownModelError(f"unknown model '{name}'.{hint} 'recbole-ext models' lists all {len(known)}")


def get_model(model_name: str):
    """Return the model class for ``model_name``: ours first, then RecBole's.

    Raises:
        UnknownModelError: no model of that name exists in either package.
    """
    name = canonical_model_name(model_name)
    for package in ("recbole_ext.model", "recbole.model"):
        if package == "recbole_ext.model" and name not in own_model_names():
            continue
        module_path = _find_module(package, name)
        if module_path is None:
            continue
        module = importlib.import_module(module_path)
        if hasattr(module, name):
            return _mend_recbole_model(getattr(module, name)) if package == "recbole.model" else getattr(module, name)
    raise UnknownModelError(f"model '{name}' is listed but its module could not be found")


_MENDED: Dict[type, type] = {}


def _mend_recbole_model(model_class: type) -> type:
    """RecBole models whose methods break on today's stack, or that take one of our keys,
    resolve to our subclass (:data:`recbole_ext.model.recbole_fixes.FIXES` in front of
    RecBole's class, same name). The class is this module's attribute of that name (see
    :func:`__getattr__`), so pickle finds it (a pickled RecBole Config names its model class)."""
    fixes = recbole_fixes.FIXES.get(model_class.__name__)
    if fixes is None:
        return model_class
    if model_class not in _MENDED:
        _MENDED[model_class] = type(
            model_class.__name__,
            (*fixes, model_class),
            {"__module__": __name__, "__qualname__": model_class.__name__, "__doc__": model_class.__doc__},
        )
    return _MENDED[model_class]


def __getattr__(name: str) -> type:
    """``recbole_ext.registry.<Model>``: the composed class of a RecBole model of
    :data:`~recbole_ext.model.recbole_fixes.FIXES` (how pickle looks it up)."""
    if name in recbole_fixes.FIXES:
        return get_model(name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


_TRAINER_CACHE: Dict[type, type] = {}


def get_trainer(model_type: ModelType, model_name: str):
    """Return the trainer class for a model: ``recbole_ext.trainer.<Name>Trainer`` first, else
    RecBole's choice (``<Name>Trainer``, ``KGTrainer``, ``TraditionalTrainer`` or ``Trainer``)
    combined with :class:`CompatTrainerMixin`.
    """
    own = getattr(own_trainers, model_name + "Trainer", None)
    if own is not None:
        return own
    base = recbole_get_trainer(model_type, model_name)
    if issubclass(base, CompatTrainerMixin):
        return base
    if base not in _TRAINER_CACHE:
        if base is not RecBoleTrainer and issubclass(base, RecBoleTrainer):
            # a specialised RecBole trainer (KGTrainer, KGATTrainer, MKRTrainer, RecVAETrainer,
            # NCLTrainer...) keeps its own _train_epoch/fit, and their super() calls reach our
            # mixin: MRO base -> CompatTrainerMixin -> RecBole's Trainer
            compat = type("Trainer", (CompatTrainerMixin, RecBoleTrainer), {"__module__": __name__})
            bases = (base, compat)
        else:
            bases = (CompatTrainerMixin, base)
        _TRAINER_CACHE[base] = type(base.__name__, bases, {"__module__": __name__})
    return _TRAINER_CACHE[base]


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


def get_dataloader(config, phase: str, dataset=None) -> type:
    """The data-loader class of ``phase`` (``train``, ``valid`` or ``test``) for ``config``'s model.

    Training: the model's own ``train_dataloader`` first, else RecBole's choice; RecBole's
    ``TrainDataLoader`` becomes :class:`~recbole_ext.trainer.device_loader.DeviceTrainDataLoader`
    when the config asks for device-resident training data and ``dataset`` (the training part)
    allows it. Evaluation: RecBole's choice, or for sampled evaluation of sequential models our
    candidate loader (:mod:`recbole_ext.evaluation.sampled`).

    Args:
        config: the run's configuration.
        phase: ``train``, ``valid`` or ``test``.
        dataset: the training part (``train`` only: whether its batches can live on the device).

    Returns:
        type: the loader class, called as RecBole's are.
    """
    if phase == "train":
        own = getattr(config.model_class, "train_dataloader", None)
        if own is not None:
            return own
    chosen = recbole_data_utils.get_dataloader(config, phase)
    if phase != "train":
        return sampled_loader_class(config, chosen) or chosen
    if chosen is TrainDataLoader and dataset is not None and device_loader_applies(config, dataset):
        return DeviceTrainDataLoader
    return chosen
