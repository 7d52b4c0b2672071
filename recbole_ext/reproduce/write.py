"""A finished reproduction's tables, from the run records: every table of the data set's section
of the preset (``<table>.md``; ``other.md`` for rows no table holds), the agreement of the models'
order across protocols (``agreement.md``), all of them in ``reproduction.md``, every cell in
``tables.csv``."""

from __future__ import annotations

import os
from typing import Any, Dict, List, Mapping, Optional, Tuple

from recbole_ext.command import ReproduceRequest
from recbole_ext.compare import RunRecord
from recbole_ext.fileio import atomic_write_text
from recbole_ext.reproduce.cost import definitions_markdown
from recbole_ext.reproduce.counts import file_counts, paper_file_counts
from recbole_ext.reproduce.preset import PRESET_DIR, DatasetPreset, PaperTable, Preset
from recbole_ext.reproduce.protocols import (
    ProtocolResults,
    agreement,
    agreement_markdown,
    paper_protocol,
    protocol_means,
)
from recbole_ext.reproduce.resolved import copy_sentence, paper_section
from recbole_ext.reproduce.tables import (
    ProtocolMeans,
    accuracy_markdown,
    accuracy_rows,
    cost_markdown,
    cost_rows,
    count_rows,
    paper_markdown,
    to_csv,
)

PROTOCOL_NAMES = {"full": "full ranking", "uni100": "100 uniform negatives", "pop100": "100 popularity negatives"}


def write_tables(
    preset: Preset,
    request: ReproduceRequest,
    records: List[RunRecord],
    results_dir: str,
    entries: List[str],
    has_items: bool,
    protocol_results: Optional[Mapping[Tuple[str, Any], ProtocolResults]] = None,
    counts: Optional[Dict[str, float]] = None,
) -> str:
    """Write every table (see the module docstring); returns ``reproduction.md``'s text.

    Args:
        preset, request: the reproduction.
        records: its run records.
        results_dir: where the tables go.
        entries: the rows that ran.
        has_items: whether the data set has an ``.item`` file.
        protocol_results: ``{(entry, seed): {protocol: {"test": {metric: value}}}}``, the runs'
            own protocol included (:func:`recbole_ext.reproduce.protocols.with_own_results`).
        counts: our data set's counts in Table 1's columns (:func:`recbole_ext.reproduce.counts.our_counts`).
    """
    section = paper_section(preset, request)
    by_entry: Dict[str, List[RunRecord]] = {}
    for rec in records:
        by_entry.setdefault(rec.model, []).append(rec)
    own = paper_protocol(preset.protocol)
    means = protocol_means(protocol_results or {})
    others: ProtocolMeans = {p: m for p, m in means.items() if p != own}
    seeds = sorted({r.seed for r in records if r.seed is not None})
    setting = _setting_line(preset, request, section, seeds, has_items, records, counts)
    parts: Dict[str, str] = {}
    cells: Dict[str, Tuple[str, List[dict]]] = {}
    for table in section.tables.values():
        rows = [e for e in table.rows if e in entries]
        caption = f"{table.caption}: {request.dataset}"
        if table.kind == "dataset":
            ours = count_rows(table, request.dataset, counts)
            parts[table.name], cells[table.name] = paper_markdown(table, caption, ours), ("dataset", ours)
        elif rows:
            parts[table.name], cells[table.name] = _render(preset, table, by_entry, rows, caption, others)
    placed = {e for t in section.tables.values() for e in t.rows}
    rest = [e for e in entries if e not in placed]
    if rest:
        table = PaperTable("other", "Rows outside the paper's tables", "accuracy", preset.metrics, (), {}, {}, (), {})
        caption = f"{table.caption}: {request.dataset}"
        parts["other"], cells["other"] = _render(preset, table, by_entry, rest, caption, others)
    footers = {name: _footer(section, name, others) for name in parts}
    models = [e for e in entries if e in preset.models]
    agreed = _agreement(means, models, preset.metrics, own)
    if agreed:
        parts["agreement"], footers["agreement"] = agreed, ""
    for name, body in parts.items():
        atomic_write_text(os.path.join(results_dir, f"{name}.md"), setting + "\n" + body + footers[name])
    atomic_write_text(os.path.join(results_dir, "tables.csv"), to_csv(cells))
    text = f"# {preset.title}: {request.dataset}\n\n{setting}\n"
    text += "\n".join(body + footers[name] for name, body in parts.items())
    text += "\n" + "".join(f"- {note}\n" for note in preset.notes)
    atomic_write_text(os.path.join(results_dir, "reproduction.md"), text)
    return text


def _render(
    preset: Preset,
    table: PaperTable,
    by_entry: Dict[str, List[RunRecord]],
    rows: List[str],
    caption: str,
    others: ProtocolMeans,
) -> Tuple[str, Tuple[str, List[dict]]]:
    """An accuracy or cost table's Markdown and its cells."""
    if table.kind == "cost":
        cost = cost_rows(preset, by_entry, rows, table)
        return cost_markdown(table, cost, caption), ("cost", cost)
    accuracy = accuracy_rows(preset, by_entry, rows, table, others)
    return accuracy_markdown(preset, table, accuracy, caption), ("accuracy", accuracy)


def _agreement(means: ProtocolMeans, models: List[str], metrics: Tuple[str, ...], own: str) -> str:
    """The agreement table over the models (not the variants), "" with fewer than two or no
    other protocol."""
    kept = {p: {e: v for e, v in by_entry.items() if e in models} for p, by_entry in means.items()}
    if own not in kept or len(kept) < 2:
        return ""
    taus = agreement(kept, metrics, reference=own)
    return agreement_markdown(taus, len(kept[own]), own)


def _setting_line(
    preset: Preset,
    request: ReproduceRequest,
    section: DatasetPreset,
    seeds: List,
    has_items: bool,
    records: List[RunRecord],
    counts: Optional[Dict[str, float]],
) -> str:
    device = next((r.device for r in records if r.device), "")
    parts = [
        f"Preset `{preset.name}` ({'shipped' if preset.path.startswith(PRESET_DIR) else preset.path})",
        f"seeds {', '.join(map(str, seeds))}",
        f"protocol {next((r.protocol for r in records if r.protocol), '')}",
        f"device {device}",
    ]
    copy = copy_sentence(
        request.dataset, section.name, file_counts(counts) if counts else None, paper_file_counts(section) or None
    )
    if copy:
        parts.append(copy)
    if request.budget is not None:
        parts.append(f"BUDGET RUN: at most {request.budget} training batches an epoch (not converged)")
    if request.config_args:
        parts.append("options " + " ".join(request.config_args))
    if not has_items:
        parts.append("no item file: rows needing item features run on item ids only")
    return "; ".join(parts) + ".\n"


def _footer(section: DatasetPreset, name: str, others: ProtocolMeans) -> str:
    kind = section.tables[name].kind if name in section.tables else "accuracy"
    if kind == "dataset":
        return (
            "\nUsers and items counted with the padding id, as the paper counts them (the file's count + 1); "
            "interactions per user and sparsity (%) without it; diff: ours − paper.\n"
        )
    if kind == "cost":
        return (
            "\nours: mean over seeds; paper: its figure, in the header's unit; diff: ours − paper († a budget "
            "epoch's time scaled to the whole epoch). The columns:\n\n" + definitions_markdown()
        )
    text = (
        "\nours: mean ± sample std over seeds; diff: ours − paper; ∗: significant in the paper; p: two-sided "
        "paired t-test of the proposed model against the row, over seeds (two or more), else over the test users "
        "of the one seed."
    )
    for protocol in others:
        text += (
            f" <metric> {protocol}: ours only (the paper has none), each run's best checkpoint evaluated again "
            f"under {PROTOCOL_NAMES.get(protocol, protocol)}, no retraining, mean over seeds."
        )
    return text + "\n"
