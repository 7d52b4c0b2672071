"""What a reproduction would run, before it runs: ``reproduce PAPER --dataset=NAME --plan``.

Every row's configuration is resolved as its run resolves it (:func:`resolve_plan`): the
preset's protocol and the data set's section (``preset/common.yaml``), the user's
``--config_files``, the model's own file and the variant's file (``preset/models/``), the user's
``--key=value`` options, the first seed. The data set is not read (nor fetched): only whether it
has an ``.item`` file is looked up on disk. :func:`write_plan` writes ``plan.json``
(``{row: {key: value}}``, every key of the row's final config) and returns a short summary.

A copy of a paper's data set under another name (``--dataset=ml-1m-item5
--paper-dataset=ml-1m``) runs at the named section (:func:`paper_section`); :func:`copy_sentence`
is the setting line's words for it.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any, Callable, Dict, List, Mapping, Optional

from recbole_ext import compare
from recbole_ext.command import ReproduceRequest
from recbole_ext.errors import UserError
from recbole_ext.fileio import atomic_write_text, folder_taken_back_on
from recbole_ext.reproduce.plan import prepare, select_entries
from recbole_ext.reproduce.preset import DatasetPreset, Preset, load_preset
from recbole_ext.trainer.checkpoint import to_plain

PLAN_FILE = "plan.json"
#: the keys the summary shows for each row (those the row has)
SUMMARY_KEYS = (
    "hidden_size",
    "n_layers",
    "num_layers",
    "n_blocks",
    "n_heads",
    "dropout_prob",
    "hidden_dropout_prob",
    "MAX_ITEM_LIST_LENGTH",
    "train_batch_size",
    "eval_batch_size",
    "epochs",
)


@dataclasses.dataclass(frozen=True)
class Plan:
    """Every row of a reproduction, resolved.

    Attributes:
        dataset: the data set the rows run on.
        section: the preset's data set whose settings apply (``--paper-dataset``, else ``dataset``).
        rows: ``{row: {key: value}}``, each row's final config as plain data.
        has_item_file: whether the data set has an ``.item`` file on disk (``None``: not on disk).
    """

    dataset: str
    section: str
    rows: Dict[str, Dict[str, Any]]
    has_item_file: Optional[bool]


def paper_section(preset: Preset, request: ReproduceRequest) -> DatasetPreset:
    """The preset's data set whose settings and figures apply to ``request`` (one line when the
    preset has no such data set)."""
    names = ", ".join(preset.datasets)
    if request.paper_dataset:
        if request.paper_dataset not in preset.datasets:
            raise UserError(
                f"--paper-dataset={request.paper_dataset} is not a data set of preset {preset.name}: {names}"
            )
        return preset.datasets[request.paper_dataset]
    if request.dataset not in preset.datasets:
        raise UserError(
            f"preset {preset.name} has no data set '{request.dataset}': choose from {names}, or run a copy "
            "under another name at one of them with --paper-dataset=NAME"
        )
    return preset.datasets[request.dataset]


def copy_sentence(
    dataset: str,
    section: str,
    counts: Optional[Mapping[str, int]] = None,
    paper_counts: Optional[Mapping[str, int]] = None,
) -> str:
    """The setting line's words for a run on a copy of the paper's data set ("" when there is
    nothing to say).

    Args:
        dataset: the data set the rows ran on.
        section: the preset's data set whose settings applied.
        counts, paper_counts: the copy's and the paper's counts, counted alike (``{"users": n,
            "items": n, "interactions": n}``); the keys both have are compared.

    Returns:
        e.g. ``"data set ml-1m-item5 run at the preset's ml-1m settings; it differs from the
        paper's ml-1m: 999,611 interactions (paper 1,000,209)"``.
    """
    parts = [f"data set {dataset} run at the preset's {section} settings"] if dataset != section else []
    differ = [
        f"{counts[k]:,} {k} (paper {paper_counts[k]:,})"
        for k in (paper_counts or {})
        if k in (counts or {}) and counts[k] != paper_counts[k]
    ]
    if differ:
        parts.append(f"it differs from the paper's {section}: " + ", ".join(differ))
    elif parts and not (counts and paper_counts):
        parts.append(f"a copy that may differ from the paper's {section}")
    return "; ".join(parts)


def resolve_plan(request: ReproduceRequest, preset: Preset, results_dir: str, entries: List[str]) -> Plan:
    """Write the preset's config files into ``results_dir`` and resolve every row's config as
    its run would, for the first seed (a mistake is a UserError).

    Args:
        request: the reproduction asked for.
        preset: its preset.
        results_dir: where the config files go (``preset/``).
        entries: the rows (:func:`recbole_ext.reproduce.plan.select_entries`).
    """
    section = paper_section(preset, request)
    prepared = prepare(request, preset, section, results_dir, entries, fetch=False)
    has_items = prepared.has_item_file
    comparison = prepared.comparison
    seed = (request.seeds or preset.seeds)[0]
    args = (*comparison.config_args, f"--seed={seed}")
    comparison = dataclasses.replace(comparison, seeds=None, config_args=args)
    runs = compare.resolve_runs(comparison, compare.ResultsLayout(results_dir).run_outputs())
    plain = {entry: to_plain(dict(run.config.final_config_dict)) for entry, run in runs.items()}
    return Plan(request.dataset, section.name, plain, has_items)


def write_plan(results_dir: str, plan: Plan) -> str:
    """``<results_dir>/plan.json`` (``{row: {key: value}}``); returns a short summary: one line
    per row with its main keys, and where the rest is."""
    path = os.path.join(results_dir, PLAN_FILE)
    atomic_write_text(path, json.dumps(plan.rows, indent=1, default=str))
    where = f" (at the preset's {plan.section} settings)" if plan.section != plan.dataset else ""
    lines = [f"[reproduce] plan: {len(plan.rows)} rows on {plan.dataset}{where}; nothing was run"]
    for row, keys in plan.rows.items():
        shown = ", ".join(f"{k}={keys[k]}" for k in SUMMARY_KEYS if keys.get(k) is not None)
        lines.append(f"  {row}: {shown}")
    if plan.has_item_file is None:
        lines.append(f"  {plan.dataset} is not on disk: the plan assumes no .item file (a run may fetch it)")
    elif not plan.has_item_file:
        lines.append("  no .item file: rows needing item features are planned on item ids only")
    lines.append(f"[reproduce] every resolved key of every row: {path}; the config files: {results_dir}/preset/")
    return "\n".join(lines)


def run_plan(request: ReproduceRequest, echo: Callable[[str], None] = print) -> int:
    """``reproduce ... --plan``: resolve and write the plan, print its summary, run nothing;
    a mistake is a UserError that leaves no folder it made."""
    preset = load_preset(request.paper)
    entries = select_entries(preset, request.models, dataset=paper_section(preset, request).name)
    results_dir = request.results_dir or compare.default_results_dir(preset.name, request.dataset)
    with folder_taken_back_on(UserError, results_dir):
        plan = resolve_plan(request, preset, results_dir, entries)
    echo(write_plan(results_dir, plan))
    return 0
