"""A paper's experiments as data (``recbole_ext/properties/presets/<name>.yaml``): its models and
ablations, their settings per data set, the evaluation protocol, and the paper's own figures to
print beside ours. :func:`load_preset` reads and checks one; a mistake is one line."""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Dict, List, Optional, Tuple

import yaml

from recbole_ext._paths import PROPERTIES_DIR
from recbole_ext.errors import ConfigError, UserError

PRESET_DIR = os.path.join(PROPERTIES_DIR, "presets")


@dataclasses.dataclass(frozen=True)
class Ablation:
    """One variant of the proposed model (a row of the ablation table), run as ``Model@name``."""

    name: str
    label: str
    keys: Dict[str, Any]


@dataclasses.dataclass(frozen=True)
class DatasetPreset:
    """The settings of one data set and the paper's figures on it.

    Attributes:
        settings: keys of every model on this data set.
        models: per-model keys (after ``settings``).
        without_item_file: per-model keys when the data set has no ``.item`` file.
        table2: ``{model: [value per metric]}`` (the paper's accuracy table).
        table3: ``{model: {"train_s_epoch" | "infer_ms" | "mem_mb": value}}``.
        table4: ``{ablation name: [value per metric]}``.
    """

    name: str
    settings: Dict[str, Any]
    models: Dict[str, Dict[str, Any]]
    without_item_file: Dict[str, Dict[str, Any]]
    table2: Dict[str, List[Optional[float]]]
    table3: Dict[str, Dict[str, float]]
    table4: Dict[str, List[Optional[float]]]


@dataclasses.dataclass(frozen=True)
class Preset:
    """A paper's experiments (see the module docstring)."""

    name: str
    path: str
    title: str
    code: str
    proposed: str
    metrics: Tuple[str, ...]
    seeds: Tuple[int, ...]
    protocol: Dict[str, Any]
    models: Dict[str, Dict[str, Any]]
    ablations: Tuple[Ablation, ...]
    datasets: Dict[str, DatasetPreset]
    notes: Tuple[str, ...]

    def dataset(self, name: str) -> DatasetPreset:
        if name not in self.datasets:
            raise UserError(f"preset {self.name} has no data set '{name}': choose from {', '.join(self.datasets)}")
        return self.datasets[name]

    def entries(self) -> List[str]:
        """Every row to run: the models, then ``proposed@ablation`` for each ablation."""
        return list(self.models) + [f"{self.proposed}@{a.name}" for a in self.ablations]

    def label(self, entry: str) -> str:
        """The row's name in the tables (an ablation's label, else the entry)."""
        for a in self.ablations:
            if entry == f"{self.proposed}@{a.name}":
                return a.label
        return entry


def preset_names() -> List[str]:
    return sorted(f[:-5] for f in os.listdir(PRESET_DIR) if f.endswith(".yaml")) if os.path.isdir(PRESET_DIR) else []


def load_preset(name_or_path: str) -> Preset:
    """The preset shipped under ``name`` (``glint-ru``) or the YAML file at a path."""
    path = name_or_path
    if not name_or_path.endswith((".yaml", ".yml")):
        path = os.path.join(PRESET_DIR, f"{name_or_path}.yaml")
    if not os.path.isfile(path):
        raise UserError(f"no preset '{name_or_path}': choose from {', '.join(preset_names())} or give a YAML file")
    try:
        with open(path, encoding="utf-8") as f:
            raw = yaml.safe_load(f) or {}
    except (OSError, yaml.YAMLError) as e:
        raise ConfigError(f"preset {path}: {str(e).splitlines()[0]}") from None
    try:
        return _parse(os.path.splitext(os.path.basename(path))[0], path, raw)
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise ConfigError(f"preset {path}: {type(e).__name__}: {e}") from None


def _mapping(value: Any, what: str) -> Dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise TypeError(f"{what} must be a mapping, got {type(value).__name__}")
    return dict(value)


def _parse(name: str, path: str, raw: Dict) -> Preset:
    metrics = tuple(raw["metrics"])
    models = {m: _mapping(k, f"models.{m}") for m, k in _mapping(raw["models"], "models").items()}
    ablations = tuple(
        Ablation(n, str(a.get("label", n)), _mapping(a.get("keys"), f"ablations.{n}.keys"))
        for n, a in _mapping(raw.get("ablations"), "ablations").items()
    )
    proposed = str(raw["proposed"])
    if proposed not in models:
        raise ValueError(f"proposed model {proposed} is not one of models")
    datasets = {
        d: _dataset(d, _mapping(v, f"datasets.{d}"), metrics) for d, v in _mapping(raw["datasets"], "datasets").items()
    }
    return Preset(
        name=name,
        path=path,
        title=str(raw.get("title", name)),
        code=str(raw.get("code", "")),
        proposed=proposed,
        metrics=metrics,
        seeds=tuple(int(s) for s in raw.get("seeds") or [2020]),
        protocol=_mapping(raw.get("protocol"), "protocol"),
        models=models,
        ablations=ablations,
        datasets=datasets,
        notes=tuple(str(n) for n in raw.get("notes") or ()),
    )


def _dataset(name: str, raw: Dict, metrics: Tuple[str, ...]) -> DatasetPreset:
    paper = _mapping(raw.get("paper"), f"datasets.{name}.paper")
    for table in ("table2", "table4"):
        for row, values in _mapping(paper.get(table), f"{name}.paper.{table}").items():
            if len(values) != len(metrics):
                raise ValueError(f"{name}.paper.{table}.{row} has {len(values)} values for {len(metrics)} metrics")
    return DatasetPreset(
        name=name,
        settings=_mapping(raw.get("settings"), f"datasets.{name}.settings"),
        models={m: _mapping(k, f"{name}.models.{m}") for m, k in _mapping(raw.get("models"), "models").items()},
        without_item_file={m: _mapping(k, m) for m, k in _mapping(raw.get("without_item_file"), "items").items()},
        table2={m: list(v) for m, v in _mapping(paper.get("table2"), "table2").items()},
        table3={m: _mapping(v, m) for m, v in _mapping(paper.get("table3"), "table3").items()},
        table4={m: list(v) for m, v in _mapping(paper.get("table4"), "table4").items()},
    )
