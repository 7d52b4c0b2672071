"""A reproduction as a comparison: the preset's keys written as config files into the results
folder (so they are part of every run's fingerprint), and the
:class:`~recbole_ext.command.CompareRequest` that runs every row on one split per seed."""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Dict, List, Optional, Tuple

import yaml

from recbole_ext import compare
from recbole_ext.command import CompareRequest, ReproduceRequest, option_key
from recbole_ext.data.locate import locate_dataset
from recbole_ext.errors import DatasetNotFoundError, UserError
from recbole_ext.fileio import atomic_write_text
from recbole_ext.pipeline import Run
from recbole_ext.pipeline.resolve import model_of
from recbole_ext.reproduce.preset import DatasetPreset, Preset

PRESET_FOLDER = "preset"


def select_entries(preset: Preset, wanted: Tuple[str, ...], dataset: Optional[str] = None) -> List[str]:
    """The preset's rows (on ``dataset``: :meth:`Preset.entries`), or those of ``wanted`` (names
    or variant names, case-insensitive)."""
    entries = preset.entries(dataset)
    if not wanted:
        return entries
    by_lower = {e.lower(): e for e in preset.entries()}
    by_lower.update({v.name.lower(): f"{preset.proposed}@{v.name}" for v in preset.variants})
    unknown = [w for w in wanted if w.lower() not in by_lower]
    if unknown:
        raise UserError(f"--model {unknown[0]} is not a row of preset {preset.name}: choose from {', '.join(entries)}")
    return [by_lower[w.lower()] for w in wanted]


def budget_args(request: ReproduceRequest) -> List[str]:
    """``--budget=B``: at most ``B`` batches an epoch and, unless ``--epochs`` is given, one epoch."""
    if request.budget is None:
        return []
    args = [f"--train_batches_per_epoch={request.budget}"]
    if "epochs" not in map(option_key, request.config_args):
        args.append("--epochs=1")
    return args


def common_keys(preset: Preset, ds: DatasetPreset) -> Dict[str, Any]:
    """The keys of every row on ``ds``: the protocol, then the data set's settings."""
    return {**preset.protocol, **ds.settings}


def model_keys(preset: Preset, ds: DatasetPreset, model: str, has_item_file: bool) -> Dict[str, Any]:
    """A model's own keys on ``ds`` (its file, read after the common one)."""
    keys = {**preset.models.get(model, {}), **ds.models.get(model, {})}
    if not has_item_file:
        keys.update(ds.without_item_file.get(model, {}))
    return keys


def variant_keys(preset: Preset, ds: DatasetPreset, entry: str) -> Dict[str, Any]:
    """A variant row's keys on ``ds`` (its file, read after its model's): the variant's, then
    the data set's ``models.<entry>``; empty for a model's own row."""
    variant = preset.variant(entry)
    return {} if variant is None else {**variant.keys, **ds.models.get(entry, {})}


def resolve_rows(preset: Preset, ds: DatasetPreset, entries: List[str], has_item_file: bool) -> Dict[str, Dict]:
    """``{row: {key: value}}``: every key the preset gives each row, in the order a run reads
    its files (the common one, the model's own, the variant's; the user's files and options,
    and the models' YAML defaults, come on top of or under these)."""
    return {
        e: {
            **common_keys(preset, ds),
            **model_keys(preset, ds, model_of(e), has_item_file),
            **variant_keys(preset, ds, e),
        }
        for e in entries
    }


def _write_yaml(path: str, keys: Dict, comment: str) -> str:
    atomic_write_text(path, f"# {comment}\n" + yaml.safe_dump(keys, sort_keys=False, default_flow_style=None))
    return path


def write_common(preset: Preset, ds: DatasetPreset, results_dir: str) -> str:
    """``preset/common.yaml``: the protocol and the data set's keys, for every row."""
    return _write_yaml(
        os.path.join(results_dir, PRESET_FOLDER, "common.yaml"),
        common_keys(preset, ds),
        f"{preset.name}: every run on {ds.name}",
    )


def write_rows(preset: Preset, ds: DatasetPreset, results_dir: str, entries: List[str], has_item_file: bool) -> str:
    """``preset/models/<Model>.yaml`` (and ``<Model>@<variant>.yaml``): each row's own keys."""
    folder = os.path.join(results_dir, PRESET_FOLDER, "models")
    for model in dict.fromkeys(model_of(e) for e in entries):
        keys = model_keys(preset, ds, model, has_item_file)
        _write_yaml(os.path.join(folder, f"{model}.yaml"), keys, f"{preset.name}: {model} on {ds.name}")
    for entry in entries:
        variant = preset.variant(entry)
        if variant is not None:
            note = f"{preset.name}: {variant.label} (read after {preset.proposed}.yaml)"
            _write_yaml(os.path.join(folder, f"{entry}.yaml"), variant_keys(preset, ds, entry), note)
    return folder


def compare_request(
    request: ReproduceRequest, preset: Preset, results_dir: str, entries: List[str], common: str, rows: Optional[str]
) -> CompareRequest:
    """The comparison that runs the reproduction (``rows``: the per-row config folder)."""
    return CompareRequest(
        models=tuple(entries),
        dataset=request.dataset,
        config_files=(common, *request.config_files),
        config_args=tuple(request.config_args) + tuple(budget_args(request)),
        seeds=request.seeds or preset.seeds,
        results_dir=results_dir,
        force=request.force,
        plot=request.plot,
        jobs=request.jobs,
        devices=request.devices,
        model_configs=rows,
    )


@dataclasses.dataclass(frozen=True)
class Prepared:
    """A reproduction's config files, written, and the comparison that runs them.

    Attributes:
        comparison: the rows as one comparison (:func:`compare_request`).
        has_item_file: whether the data set has an ``.item`` file (``None``: not on disk, and
            not fetched).
        folder: the data set's folder (``None``: not on disk, and not fetched).
    """

    comparison: CompareRequest
    has_item_file: Optional[bool]
    folder: Optional[str]


def prepare(
    request: ReproduceRequest, preset: Preset, ds: DatasetPreset, results_dir: str, entries: List[str], fetch: bool
) -> Prepared:
    """Write ``preset/common.yaml``, find the data set (``fetch``: as a run finds it, fetching a
    registry data set; else only on disk), write each row's file for what the data set holds
    (SMLP4Rec's item features need an ``.item`` file), and build the comparison."""
    common = write_common(preset, ds, results_dir)
    probe = Run.resolve(
        preset.proposed,
        request.dataset,
        [common, *request.config_files],
        None,
        list(request.config_args),
        lenient_keys=compare.lenient_keys(request),
    )
    folder = probe.locate_data() if fetch else _on_disk(probe)
    has_items = None if folder is None else os.path.isfile(os.path.join(folder, f"{request.dataset}.item"))
    rows = write_rows(preset, ds, results_dir, entries, bool(has_items))
    return Prepared(compare_request(request, preset, results_dir, entries, common, rows), has_items, folder)


def _on_disk(run: Run) -> Optional[str]:
    """Where ``run``'s data set is on disk (``None``: nowhere; nothing is fetched)."""
    cfg = run.config
    try:
        return locate_dataset(cfg["dataset"], cfg.requested_data_path, only_data_path=cfg.data_path_given)
    except DatasetNotFoundError:
        return None
