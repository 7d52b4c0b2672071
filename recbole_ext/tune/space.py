"""Search spaces: YAML files of config keys and their ranges, turned into Optuna suggestions.

A space file maps config keys to one of::

    learning_rate: {loguniform: [1.0e-4, 1.0e-2]}   # float, sampled on a log scale
    dropout_prob:  {uniform: [0.1, 0.5]}             # float
    n_layers:      {int: [1, 3]}                     # integer, both ends included
    hidden_size:   {choice: [32, 64, 128]}           # one of the listed values

either at the top level (every model), or under ``all:`` (every model) and ``<Model>:`` (that
model; its keys win over ``all``). Without ``--space`` each model's packaged space
(``recbole_ext/properties/tune/<Model>.yaml``) is used.
"""

from __future__ import annotations

import os
from typing import Any, Dict, List, Optional, Tuple

import yaml

from recbole_ext._paths import PROPERTIES_DIR
from recbole_ext.errors import ConfigError, UserError
from recbole_ext.registry import canonical_model_name

TUNE_DIR = os.path.join(PROPERTIES_DIR, "tune")
KINDS = ("choice", "uniform", "loguniform", "int")

#: one key's range: (kind, values) with values the choices, or [low, high]
Range = Tuple[str, List[Any]]


def packaged_space_path(model: str) -> Optional[str]:
    path = os.path.join(TUNE_DIR, f"{model}.yaml")
    return path if os.path.isfile(path) else None


def load_space(path: Optional[str], model: str) -> Dict[str, Range]:
    """The space of ``model``: from ``path`` (see the module docstring), else its packaged one.

    Raises:
        ConfigError: one line, naming the file and the key, for a file that cannot be read or
            a range that is not one of :data:`KINDS` with valid bounds; or no space at all.
    """
    path = path or packaged_space_path(model)
    if path is None:
        raise ConfigError(
            f"no packaged search space for {model}: pass --space=FILE, a YAML file of keys and "
            "ranges such as 'learning_rate: {loguniform: [1.0e-4, 1.0e-2]}' (also uniform, int, choice)"
        )
    try:
        with open(path, "r", encoding="utf-8") as f:
            data = yaml.safe_load(f) or {}
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        raise ConfigError(f"cannot read search space {path}: {str(e).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"search space {path}: expected keys and ranges, got {type(data).__name__}")
    sections = {k: v for k, v in data.items() if k == "all" or (isinstance(v, dict) and not _is_range(v))}
    for name in sections:
        if name != "all" and not _is_model(name):
            raise ConfigError(
                f"search space {path}: '{name}' is neither a model name nor a range {{{' | '.join(KINDS)}: ...}}"
            )
    flat = {k: v for k, v in data.items() if k not in sections}
    merged = {**flat, **(sections.get("all") or {}), **(sections.get(model) or {})}
    if not merged:
        raise ConfigError(f"search space {path} has no keys for {model}")
    return {key: parse_range(path, key, spec) for key, spec in merged.items()}


def _is_model(name: str) -> bool:
    try:
        canonical_model_name(name)
    except UserError:
        return False
    return True


def _is_range(value: dict) -> bool:
    return len(value) == 1 and next(iter(value)) in KINDS


def parse_range(path: str, key: str, spec: Any) -> Range:
    """``{kind: values}`` checked: choices of plain scalars, or numeric ``[low, high]``."""
    where = f"search space {path}, key {key}"
    if not isinstance(spec, dict) or not _is_range(spec):
        raise ConfigError(f"{where}: expected one of {{{' | '.join(KINDS)}: ...}}, got {spec!r}")
    kind, values = next(iter(spec.items()))
    if not isinstance(values, list) or not values:
        raise ConfigError(f"{where}: {kind} takes a non-empty list, got {values!r}")
    if kind == "choice":
        if not all(v is None or isinstance(v, (bool, int, float, str)) for v in values):
            raise ConfigError(f"{where}: choices must be numbers, strings, booleans or null")
        return kind, list(values)
    numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
    if len(values) != 2 or not numeric or not values[0] < values[1]:
        raise ConfigError(f"{where}: {kind} takes [low, high] with low < high, got {values!r}")
    if kind == "int" and not all(isinstance(v, int) for v in values):
        raise ConfigError(f"{where}: int takes integer bounds, got {values!r}")
    if kind == "loguniform" and values[0] <= 0:
        raise ConfigError(f"{where}: loguniform needs low > 0, got {values!r}")
    return kind, list(values)


def extremes(space: Dict[str, Range]) -> List[Dict[str, Any]]:
    """Settings that between them hold every choice and both ends of every range (to check each
    value against the config's types before any trial runs)."""
    width = max(len(values) for _, values in space.values())
    return [{key: values[min(i, len(values) - 1)] for key, (_, values) in space.items()} for i in range(width)]


def suggest(trial, space: Dict[str, Range]) -> Dict[str, Any]:
    """One trial's settings, drawn through Optuna's ``trial.suggest_*``."""
    params = {}
    for key, (kind, values) in space.items():
        if kind == "choice":
            params[key] = trial.suggest_categorical(key, values)
        elif kind == "int":
            params[key] = trial.suggest_int(key, values[0], values[1])
        else:
            params[key] = trial.suggest_float(key, float(values[0]), float(values[1]), log=kind == "loguniform")
    return params
