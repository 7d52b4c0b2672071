"""Resolvers: our classes first, RecBole's as the fallback (the RecBole-GNN pattern).

- :func:`get_model` finds ``recbole_ext.model.<type>_recommender.<lower>.<Name>`` first, then
  RecBole's model of that name. Names match case-insensitively and resolve to the canonical
  spelling; an unknown name raises :class:`~recbole_ext.errors.UnknownModelError` listing close
  matches and every known name.
- :func:`get_trainer` finds ``recbole_ext.trainer.<Name>Trainer`` first, then RecBole's trainer
  for the model, and in that case returns it mixed with our compatibility fixes
  (:class:`~recbole_ext.trainer.trainer.CompatTrainerMixin`).
"""

from __future__ import annotations

import difflib
import functools
import importlib
import importlib.util
import os
from typing import Dict, List

import recbole
from recbole.utils import ModelType

from recbole_ext.errors import UnknownModelError

MODEL_SUBMODULES = (
    "general_recommender",
    "context_aware_recommender",
    "sequential_recommender",
    "knowledge_aware_recommender",
    "exlib_recommender",
)

PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
OWN_MODEL_YAML_DIR = os.path.join(PACKAGE_DIR, "properties", "model")
RECBOLE_DIR = os.path.dirname(os.path.abspath(recbole.__file__))
RECBOLE_MODEL_YAML_DIR = os.path.join(RECBOLE_DIR, "properties", "model")


def _import_recbole_sequential_models() -> None:
    """Import RecBole's sequential models once, undoing a global side effect of that import.

    ``recbole/model/sequential_recommender/sine.py`` calls ``torch.autograd.set_detect_anomaly(True)``
    at import time, and the package imports it whenever any RecBole sequential model (or a name
    lookup through it) is imported. Anomaly mode makes every backward pass check for NaN and
    record stack traces: about 10x slower training for every model. The previous setting is
    restored right after the import.
    """
    import torch

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
    raise UnknownModelError(
        f"unknown model '{name}'.{hint} Known models: {', '.join(known)}"
    )


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


def _mend_recbole_model(model_class):
    """RecBole models whose methods break on today's stack resolve to our mended subclass."""
    from recbole_ext.model import recbole_fixes

    return recbole_fixes.mended(model_class)


_TRAINER_CACHE: Dict[type, type] = {}


def get_trainer(model_type: ModelType, model_name: str):
    """Return the trainer class for a model: ``recbole_ext.trainer.<Name>Trainer`` first, else
    RecBole's choice (``<Name>Trainer``, ``KGTrainer``, ``TraditionalTrainer`` or ``Trainer``)
    combined with :class:`CompatTrainerMixin`.
    """
    from recbole.utils import get_trainer as recbole_get_trainer

    from recbole_ext import trainer as own_trainers
    from recbole_ext.trainer.trainer import CompatTrainerMixin

    own = getattr(own_trainers, model_name + "Trainer", None)
    if own is not None:
        return own
    base = recbole_get_trainer(model_type, model_name)
    if issubclass(base, CompatTrainerMixin):
        return base
    if base not in _TRAINER_CACHE:
        from recbole.trainer import Trainer as RecBoleTrainer

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
