"""A paper's tables in one command: ``recbole-ext reproduce glint-ru --dataset=amazon-beauty
[--seeds=1,2,3] [--model=A,B] [--budget=BATCHES] [--jobs=N | --devices=0,1] [--results-dir=DIR]``.

The preset (:mod:`recbole_ext.reproduce.preset`, a YAML shipped under
``recbole_ext/properties/presets/``) holds the paper's models, the proposed model's variants as
its config keys, their settings per data set, the protocol and the paper's tables per data set.
The command writes the preset's keys as config files into the results folder and runs every row
as one comparison (:mod:`recbole_ext.compare`): one split and one set of sampled candidates per
seed for every row, each finished run stored, so the same command resumes, and
``--jobs``/``--devices`` run the grid in parallel. Then it writes each of the data set's tables
as ``<table>.md`` (accuracy: ours mean +- std beside the paper's value and the difference, and a
two-sided paired t-test of the proposed model against each row; cost: parameters, training
seconds per epoch, inference ms per evaluation batch, peak memory; the data set's counts),
``other.md`` for rows no table holds, all of them in ``reproduction.md``, and every cell in
``tables.csv``. ``--budget=B`` trains each run at most ``B`` batches an epoch (one epoch
unless ``--epochs`` is given): a CPU-sized run, marked as such in the tables.
"""

from __future__ import annotations

import os
import shutil
from typing import Callable, Dict, List, Tuple

from recbole_ext import compare
from recbole_ext.command import ReproduceRequest
from recbole_ext.compare import RunRecord
from recbole_ext.errors import UserError
from recbole_ext.fileio import atomic_write_text, missing_folders, remove_empty_folders
from recbole_ext.pipeline import Run
from recbole_ext.reproduce.plan import compare_request, select_entries, write_common, write_rows
from recbole_ext.reproduce.preset import PRESET_DIR, DatasetPreset, PaperTable, Preset, load_preset
from recbole_ext.reproduce.tables import (
    COST_COLUMNS,
    accuracy_markdown,
    accuracy_rows,
    cost_markdown,
    cost_rows,
    paper_markdown,
    to_csv,
)

__all__ = ["ReproduceRequest", "run"]


def run(request: ReproduceRequest, echo: Callable[[str], None] = print) -> int:
    """The ``reproduce`` command; returns 1 when a row failed, else 0. Every mistake (preset,
    data set, row, setting) is a UserError before any run starts, and leaves no folder behind."""
    preset = load_preset(request.paper)
    ds = preset.dataset(request.dataset)
    entries = select_entries(preset, request.models)
    results_dir = request.results_dir or compare.default_results_dir(preset.name, request.dataset)
    made = missing_folders(results_dir)  # the folder and those above it (results/) this run makes
    try:
        common = write_common(preset, ds, results_dir)
        has_items = _has_item_file(request, preset, common)
        rows = write_rows(preset, ds, results_dir, entries, has_items)
        comparison = compare_request(request, preset, results_dir, entries, common, rows)
        runs = compare.preflight(comparison)
    except UserError:
        if made:
            shutil.rmtree(results_dir, ignore_errors=True)
            remove_empty_folders(made)
        raise
    done = compare.run(comparison, echo, checked=runs)
    text = write_tables(preset, request, done.records, results_dir, entries, has_items)
    echo(text)
    return compare.finish("reproduce", results_dir, request.results_dir, done.ok, echo, "resume or extend this run")


def _has_item_file(request: ReproduceRequest, preset: Preset, common: str) -> bool:
    """Whether the data set (found or fetched as a run finds it) has an ``.item`` file."""
    run = Run.resolve(
        preset.proposed,
        request.dataset,
        [common, *request.config_files],
        None,
        list(request.config_args),
        lenient_keys=compare.lenient_keys(request),
    )
    return os.path.isfile(os.path.join(run.locate_data(), f"{request.dataset}.item"))


def write_tables(
    preset: Preset,
    request: ReproduceRequest,
    records: List[RunRecord],
    results_dir: str,
    entries: List[str],
    has_items: bool,
) -> str:
    """Every table of the data set's section of the preset, from the records (``<table>.md``
    each, ``other.md`` for rows no table holds, all in ``reproduction.md``, every cell in
    ``tables.csv``); returns ``reproduction.md``'s text."""
    ds = preset.dataset(request.dataset)
    by_entry: Dict[str, List[RunRecord]] = {}
    for rec in records:
        by_entry.setdefault(rec.model, []).append(rec)
    seeds = sorted({r.seed for r in records if r.seed is not None})
    setting = _setting_line(preset, request, seeds, has_items, records)
    parts: Dict[str, str] = {}
    cells: Dict[str, Tuple[str, List[dict]]] = {}
    for table in ds.tables.values():
        rows = [e for e in table.rows if e in entries]
        caption = f"{table.caption}: {request.dataset}"
        if table.kind == "dataset":
            parts[table.name] = paper_markdown(table, caption)
        elif rows:
            parts[table.name], cells[table.name] = _render(preset, table, by_entry, rows, caption)
    placed = {e for t in ds.tables.values() for e in t.rows}
    others = [e for e in entries if e not in placed]
    if others:
        table = PaperTable("other", "Rows outside the paper's tables", "accuracy", preset.metrics, (), {}, {}, (), {})
        parts["other"], cells["other"] = _render(preset, table, by_entry, others, f"{table.caption}: {request.dataset}")
    for name, body in parts.items():
        atomic_write_text(os.path.join(results_dir, f"{name}.md"), setting + "\n" + body + _footer(ds, name))
    atomic_write_text(os.path.join(results_dir, "tables.csv"), to_csv(cells))
    text = f"# {preset.title}: {request.dataset}\n\n{setting}\n" + "\n".join(
        body + _footer(ds, name) for name, body in parts.items()
    )
    text += "\n" + "".join(f"- {note}\n" for note in preset.notes)
    atomic_write_text(os.path.join(results_dir, "reproduction.md"), text)
    return text


def _render(
    preset: Preset, table: PaperTable, by_entry: Dict[str, List[RunRecord]], rows: List[str], caption: str
) -> Tuple[str, Tuple[str, List[dict]]]:
    """An accuracy or cost table's Markdown and its cells."""
    if table.kind == "cost":
        cost = cost_rows(preset, by_entry, rows, table)
        return cost_markdown(table, cost, caption), ("cost", cost)
    accuracy = accuracy_rows(preset, by_entry, rows, table)
    return accuracy_markdown(preset, table, accuracy, caption), ("accuracy", accuracy)


def _setting_line(
    preset: Preset, request: ReproduceRequest, seeds: List, has_items: bool, records: List[RunRecord]
) -> str:
    device = next((r.device for r in records if r.device), "")
    parts = [
        f"Preset `{preset.name}` ({'shipped' if preset.path.startswith(PRESET_DIR) else preset.path})",
        f"seeds {', '.join(map(str, seeds))}",
        f"protocol {next((r.protocol for r in records if r.protocol), '')}",
        f"device {device}",
    ]
    if request.budget is not None:
        parts.append(f"BUDGET RUN: at most {request.budget} training batches an epoch (not converged)")
    if request.config_args:
        parts.append("options " + " ".join(request.config_args))
    if not has_items:
        parts.append("no item file: rows needing item features run on item ids only")
    return "; ".join(parts) + ".\n"


def _footer(ds: DatasetPreset, name: str) -> str:
    kind = ds.tables[name].kind if name in ds.tables else "accuracy"
    if kind == "dataset":
        return "\nThe paper's figures.\n"
    if kind == "cost":
        return (
            "\n"
            + "; ".join(f"{head} ours: {meaning}" for head, meaning in COST_COLUMNS.values())
            + (" († a budget epoch scaled to a whole one); paper: its figures, in each header's units.\n")
        )
    return (
        "\nours: mean ± sample std over seeds; diff: ours − paper; ∗: significant in the paper; p: two-sided "
        "paired t-test of the proposed model against the row, over seeds (two or more), else over the test users "
        "of the one seed.\n"
    )
