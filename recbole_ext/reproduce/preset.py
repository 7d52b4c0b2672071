"""A paper's experiments as data (``recbole_ext/properties/presets/<name>.yaml``): its models and
the proposed model's variants, their settings per data set, the evaluation protocol, and the
paper's tables per data set (any number, each with its own rows, columns and units) to print
beside ours. :func:`load_preset` reads and checks one; a mistake is one line."""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Dict, List, Optional, Tuple

import yaml

from recbole_ext._paths import PROPERTIES_DIR
from recbole_ext.errors import ConfigError, UserError

PRESET_DIR = os.path.join(PROPERTIES_DIR, "presets")


#: What a table's rows measure: accuracy (the paper's metrics), cost (time and memory), or the
#: data set itself (its counts).
TABLE_KINDS = ("accuracy", "cost", "dataset")


@dataclasses.dataclass(frozen=True)
class Variant:
    """One variant of the proposed model, run as ``Model@name`` with ``keys`` (read after the
    model's own keys; a data set's ``models.<Model>@<name>`` adds its own)."""

    name: str
    label: str
    keys: Dict[str, Any]


@dataclasses.dataclass(frozen=True)
class PaperTable:
    """One of the paper's tables on one data set: its rows and columns and its figures.

    Attributes:
        name: the table's key (``table2``).
        caption: the paper's caption.
        kind: one of :data:`TABLE_KINDS`.
        columns: the column keys (an accuracy table's metrics, a cost table's measures).
        units: each column's unit as the paper prints it (empty: none given).
        rows: ``{row: [value per column]}``; a row is a preset row (``Model`` or
            ``Model@variant``), or for a ``dataset`` table the data set; None: no figure.
        labels: the paper's name of a row where it is not the row's own label.
        significant: rows the paper marks significant.
        paper_rows: rows of the paper's own that are not runs (``Improv. (%)``).
    """

    name: str
    caption: str
    kind: str
    columns: Tuple[str, ...]
    units: Tuple[str, ...]
    rows: Dict[str, List[Optional[float]]]
    labels: Dict[str, str]
    significant: Tuple[str, ...]
    paper_rows: Dict[str, List[Optional[float]]]

    def value(self, row: str, column: str) -> Optional[float]:
        """The paper's figure at ``(row, column)``, None where it has none."""
        values = self.rows.get(row)
        return None if values is None else values[self.columns.index(column)]


@dataclasses.dataclass(frozen=True)
class DatasetPreset:
    """The settings of one data set and the paper's tables on it.

    Attributes:
        paper_name: the paper's name for the data set.
        settings: keys of every row on this data set.
        models: per-row keys (after ``settings``): ``Model`` and ``Model@variant``.
        without_item_file: per-model keys when the data set has no ``.item`` file.
        tables: the paper's tables on this data set, in the paper's order.
    """

    name: str
    paper_name: str
    settings: Dict[str, Any]
    models: Dict[str, Dict[str, Any]]
    without_item_file: Dict[str, Dict[str, Any]]
    tables: Dict[str, PaperTable]


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
    variants: Tuple[Variant, ...]
    datasets: Dict[str, DatasetPreset]
    notes: Tuple[str, ...]

    def dataset(self, name: str) -> DatasetPreset:
        if name not in self.datasets:
            raise UserError(f"preset {self.name} has no data set '{name}': choose from {', '.join(self.datasets)}")
        return self.datasets[name]

    def variant(self, entry: str) -> Optional[Variant]:
        """The variant an entry ``proposed@name`` runs, None for a model's own row."""
        return next((v for v in self.variants if entry == f"{self.proposed}@{v.name}"), None)

    def entries(self, dataset: Optional[str] = None) -> List[str]:
        """Every row to run: the models, then ``proposed@variant`` for each variant; on one data
        set, the variants its tables hold and those no table of any data set holds."""
        variants = [f"{self.proposed}@{v.name}" for v in self.variants]
        if dataset is not None:
            placed = {row for ds in self.datasets.values() for t in ds.tables.values() for row in t.rows}
            here = {row for t in self.dataset(dataset).tables.values() for row in t.rows}
            variants = [v for v in variants if v in here or v not in placed]
        return list(self.models) + variants

    def label(self, entry: str) -> str:
        """The row's name in the tables (a variant's label, else the entry)."""
        variant = self.variant(entry)
        return variant.label if variant else entry


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
    except KeyError as e:
        shipped = os.path.join(PRESET_DIR, f"{preset_names()[0]}.yaml")
        raise ConfigError(f"preset {path}: no key {e} where one belongs; compare its layout with {shipped}") from None
    except (TypeError, ValueError, AttributeError) as e:
        raise ConfigError(f"preset {path}: {type(e).__name__}: {e}") from None


def _mapping(value: Any, what: str) -> Dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise TypeError(f"{what} must be a mapping, got {type(value).__name__}")
    return dict(value)


def _parse(name: str, path: str, raw: Dict) -> Preset:
    models = {m: _mapping(k, f"models.{m}") for m, k in _mapping(raw["models"], "models").items()}
    variants = tuple(
        Variant(n, str(a.get("label", n)), _mapping(a.get("keys"), f"variants.{n}.keys"))
        for n, a in _mapping(raw.get("variants"), "variants").items()
    )
    proposed = str(raw["proposed"])
    if proposed not in models:
        raise ValueError(f"proposed model {proposed} is not one of models")
    rows = set(models) | {f"{proposed}@{v.name}" for v in variants}
    datasets = {
        d: _dataset(d, _mapping(v, f"datasets.{d}"), rows) for d, v in _mapping(raw["datasets"], "datasets").items()
    }
    return Preset(
        name=name,
        path=path,
        title=str(raw.get("title", name)),
        code=str(raw.get("code", "")),
        proposed=proposed,
        metrics=tuple(raw["metrics"]),
        seeds=tuple(int(s) for s in raw.get("seeds") or [2020]),
        protocol=_mapping(raw.get("protocol"), "protocol"),
        models=models,
        variants=variants,
        datasets=datasets,
        notes=tuple(str(n) for n in raw.get("notes") or ()),
    )


def _values(values: Any, n: int, what: str) -> List[Optional[float]]:
    if not isinstance(values, list) or len(values) != n:
        raise ValueError(
            f"{what} has {len(values) if isinstance(values, list) else 'no list of'} values for {n} columns"
        )
    return [None if v is None else float(v) for v in values]


def _table(name: str, raw: Dict, rows: set, dataset: str) -> PaperTable:
    where = f"datasets.{dataset}.tables.{name}"
    kind = str(raw.get("kind", "accuracy"))
    if kind not in TABLE_KINDS:
        raise ValueError(f"{where}.kind is {kind!r}: one of {', '.join(TABLE_KINDS)}")
    columns = tuple(str(c) for c in raw["columns"])
    units = tuple(str(u) for u in raw.get("units") or ())
    if units and len(units) != len(columns):
        raise ValueError(f"{where} has {len(units)} units for {len(columns)} columns")
    figures = {
        str(r): _values(v, len(columns), f"{where}.rows.{r}") for r, v in _mapping(raw.get("rows"), where).items()
    }
    known = rows | {dataset}
    unknown = [r for r in figures if r not in known]
    if unknown:
        raise ValueError(f"{where}.rows.{unknown[0]} is not a model or variant of the preset")
    return PaperTable(
        name=name,
        caption=str(raw.get("caption", name)),
        kind=kind,
        columns=columns,
        units=units,
        rows=figures,
        labels={str(k): str(v) for k, v in _mapping(raw.get("labels"), f"{where}.labels").items()},
        significant=tuple(str(r) for r in raw.get("significant") or ()),
        paper_rows={
            str(r): _values(v, len(columns), f"{where}.paper_rows.{r}")
            for r, v in _mapping(raw.get("paper_rows"), where).items()
        },
    )


def _dataset(name: str, raw: Dict, rows: set) -> DatasetPreset:
    tables = _mapping(raw.get("tables"), f"datasets.{name}.tables")
    return DatasetPreset(
        name=name,
        paper_name=str(raw.get("paper_name", name)),
        settings=_mapping(raw.get("settings"), f"datasets.{name}.settings"),
        models={m: _mapping(k, f"{name}.models.{m}") for m, k in _mapping(raw.get("models"), "models").items()},
        without_item_file={m: _mapping(k, m) for m, k in _mapping(raw.get("without_item_file"), "items").items()},
        tables={t: _table(t, _mapping(v, f"{name}.tables.{t}"), rows, name) for t, v in tables.items()},
    )
