"""A paper's tables in one command: ``recbole-ext reproduce glint-ru --dataset=amazon-beauty
[--paper-dataset=NAME] [--plan] [--seeds=1,2,3] [--model=A,B] [--budget=BATCHES]
[--jobs=N | --devices=0,1] [--results-dir=DIR]``.

The preset (:mod:`recbole_ext.reproduce.preset`, a YAML shipped under
``recbole_ext/properties/presets/``) holds the paper's models, the proposed model's variants as
its config keys, their settings per data set, the protocol and the paper's tables per data set.
The command runs the data set's section of the preset (``--paper-dataset``: a copy under another
name at a named section): it writes the preset's keys as config files into the results folder
and runs the section's rows as one comparison (:mod:`recbole_ext.compare`): one split and one
set of sampled candidates per seed for every row, each finished run stored, so the same command
resumes, and ``--jobs``/``--devices`` run the grid in parallel. Every run's best checkpoint is
then evaluated again under the other protocols (:mod:`recbole_ext.reproduce.protocols`: full
ranking and 100 uniform negatives, no retraining, stored and skipped on a rerun), and the tables
are written (:mod:`recbole_ext.reproduce.write`). ``--plan`` resolves every row and runs nothing
(:mod:`recbole_ext.reproduce.resolved`). ``--budget=B`` trains each run at most ``B`` batches an
epoch (one epoch unless ``--epochs`` is given): a CPU-sized run, marked as such in the tables.
"""

from __future__ import annotations

from typing import Callable

from recbole_ext import compare
from recbole_ext.command import ReproduceRequest
from recbole_ext.errors import UserError
from recbole_ext.fileio import folder_taken_back_on
from recbole_ext.reproduce.counts import counts_table, our_counts
from recbole_ext.reproduce.plan import prepare, select_entries
from recbole_ext.reproduce.preset import load_preset
from recbole_ext.reproduce.protocols import other_protocols, paper_protocol, reevaluate_records, with_own_results
from recbole_ext.reproduce.resolved import paper_section, run_plan
from recbole_ext.reproduce.write import write_tables

__all__ = ["ReproduceRequest", "run", "write_tables"]


def run(request: ReproduceRequest, echo: Callable[[str], None] = print) -> int:
    """The ``reproduce`` command; returns 1 when a row failed, else 0. Every mistake (preset,
    data set, row, setting) is a UserError before any run starts, and leaves no folder behind.
    With ``request.plan`` it resolves and writes the plan and runs nothing."""
    if request.plan:
        return run_plan(request, echo)
    preset = load_preset(request.paper)
    section = paper_section(preset, request)
    entries = select_entries(preset, request.models, dataset=section.name)
    results_dir = request.results_dir or compare.default_results_dir(preset.name, request.dataset)
    with folder_taken_back_on(UserError, results_dir):
        prepared = prepare(request, preset, section, results_dir, entries, fetch=True)
        comparison, folder, has_items = prepared.comparison, prepared.folder, bool(prepared.has_item_file)
        runs = compare.preflight(comparison, echo=echo)
    done = compare.run(comparison, echo, checked=runs)
    own = paper_protocol(preset.protocol)
    again = reevaluate_records(results_dir, done.records, other_protocols(own), echo=echo)
    counts = our_counts(folder, request.dataset) if counts_table(section) is not None else None
    results = with_own_results(again, done.records, own)
    text = write_tables(preset, request, done.records, results_dir, entries, has_items, results, counts)
    echo(text)
    return compare.finish("reproduce", results_dir, request.results_dir, done.ok, echo, "resume or extend this run")
