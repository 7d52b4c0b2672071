"""A paper's tables from a reproduction's run records, each rendered from the preset's table
(its rows and columns): accuracy (our mean +- std over seeds beside the paper's value, the
difference, and a two-sided t-test of the proposed model against each row), cost (time and
memory beside the paper's) and the data set's figures (the paper's)."""

from __future__ import annotations

import csv
import io
import math
import statistics
from typing import Dict, List, Optional, Tuple

from recbole_ext.reproduce.cost import COST_MEASURES, entry_costs, paper_measure
from recbole_ext.reproduce.preset import PaperTable, Preset
from recbole_ext.results.record import RunRecord
from recbole_ext.results.stats import paired_t_pvalue

#: ``{protocol: {entry: {metric: mean test value}}}``: the same checkpoints under other protocols
ProtocolMeans = Dict[str, Dict[str, Dict[str, float]]]


def _fmt(x: Optional[float], digits: int = 4) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def _figure(x: Optional[float]) -> str:
    """A paper's figure as it prints it: counts with thousands separators, others as written."""
    if x is None:
        return "-"
    return f"{int(x):,}" if float(x).is_integer() else f"{x:g}"


def _stats(values: List[float]) -> Tuple[Optional[float], Optional[float]]:
    if not values:
        return None, None
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else None


def _ok(records: List[RunRecord]) -> List[RunRecord]:
    return sorted((r for r in records if r.ok), key=lambda r: r.seed or 0)


def metric_values(records: List[RunRecord], metric: str) -> Dict[int, float]:
    """``{seed: test value}`` of one row's finished runs (``metric`` as the paper writes it)."""
    key = metric.lower()
    return {r.seed: float(r.test_result[key]) for r in _ok(records) if key in r.test_result}


def t_test(proposed: List[RunRecord], other: List[RunRecord], metric: str) -> Tuple[Optional[float], str]:
    """Two-sided paired t-test of the proposed model against another row: over the seeds both
    ran (same split and candidates per seed) with two or more, else over the test users of the
    one seed (per-user values in evaluation order). Returns ``(p, "seeds" | "users" | "")``."""
    a, b = metric_values(proposed, metric), metric_values(other, metric)
    common = sorted(set(a) & set(b))
    if len(common) >= 2:
        x, y = [a[s] for s in common], [b[s] for s in common]
        how = "seeds"
    else:
        ua = next((r.per_user.get(metric.lower()) for r in _ok(proposed)), None)
        ub = next((r.per_user.get(metric.lower()) for r in _ok(other)), None)
        if not ua or not ub or len(ua) != len(ub) or len(common) != 1:
            return None, ""
        x, y, how = ua, ub, "users"
    return paired_t_pvalue(x, y), how


def _status(records: List[RunRecord]) -> str:
    bad = [r for r in records if not r.ok]
    return "" if not bad else f"failed: {bad[0].reason or ''}"


def row_label(preset: Preset, table: PaperTable, entry: str) -> str:
    """A row's name in a table: the paper's name there, else the preset's label."""
    return table.labels.get(entry, preset.label(entry))


def accuracy_rows(
    preset: Preset,
    by_entry: Dict[str, List[RunRecord]],
    entries: List[str],
    table: PaperTable,
    protocols: Optional[ProtocolMeans] = None,
) -> List[dict]:
    """One row per entry: per column (a metric) our mean, std, seeds, the paper's value and the
    difference, and the t-test against the proposed model; under ``protocols`` the row's mean
    test value under each other protocol (``{protocol: {metric: mean or None}}``)."""
    rows = []
    proposed = by_entry.get(preset.proposed, [])
    for entry in entries:
        recs = by_entry.get(entry, [])
        cells = {}
        for metric in table.columns:
            values = list(metric_values(recs, metric).values())
            mean, std = _stats(values)
            ref = table.value(entry, metric)
            p, how = (None, "") if entry == preset.proposed or not proposed else t_test(proposed, recs, metric)
            diff = None if mean is None or ref is None else mean - ref
            cells[metric] = dict(mean=mean, std=std, n=len(values), paper=ref, diff=diff, p=p, test=how)
        others = {
            name: {m: means.get(entry, {}).get(m.lower()) for m in table.columns}
            for name, means in (protocols or {}).items()
        }
        label = row_label(preset, table, entry)
        rows.append(dict(entry=entry, label=label, cells=cells, protocols=others, status=_status(recs)))
    return rows


def cost_rows(
    preset: Preset, by_entry: Dict[str, List[RunRecord]], entries: List[str], table: PaperTable
) -> List[dict]:
    """Parameters, and each of the table's columns (the paper's) beside the measure of
    :data:`~recbole_ext.reproduce.cost.COST_MEASURES` it is compared with (mean over seeds) and
    the difference; ``extra``: our other measures."""
    rows = []
    for entry in entries:
        records = by_entry.get(entry, [])
        ok = _ok(records)
        ours = entry_costs(records)
        cells = {}
        for column in table.columns:
            key, ref = paper_measure(column), table.value(entry, column)
            mean = ours.get(key)
            cells[column] = dict(measure=key, mean=mean, paper=ref, diff=None if None in (mean, ref) else mean - ref)
        compared = {c["measure"] for c in cells.values()}
        rows.append(
            dict(
                entry=entry,
                label=row_label(preset, table, entry),
                params=ok[0].n_params if ok else None,
                cells=cells,
                extra={k: ours.get(k) for k in COST_MEASURES if k not in compared},
                partial=any(done < total for r in ok for done, total in r.train_batches),
                device=(ok[0].device or "") if ok else "",
                status=_status(records),
            )
        )
    return rows


def _unit(table: PaperTable, i: int) -> str:
    """Column ``i``'s unit as the paper prints it, empty when the table gives none."""
    return table.units[i] if table.units else ""


def _header(table: PaperTable, i: int, column: str) -> str:
    return f"{column} ({_unit(table, i)})" if _unit(table, i) else column


def accuracy_markdown(preset: Preset, table: PaperTable, rows: List[dict], caption: str) -> str:
    header = ["Model"]
    for m in table.columns:
        header += [f"{m} ours", "paper", "diff"]
    header += [f"p {m}" for m in table.columns]
    protocols = list(rows[0]["protocols"]) if rows else []
    header += [f"{m} {name}" for name in protocols for m in table.columns]
    lines = [f"**{caption}**", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        cells = [row["label"] + (f" ({row['status']})" if row["status"] else "")]
        star = "∗" if row["entry"] in table.significant else ""
        for m in table.columns:
            c = row["cells"][m]
            ours = _fmt(c["mean"]) + (f" ± {_fmt(c['std'])}" if c["std"] is not None else "")
            paper = _fmt(c["paper"]) + (star if c["paper"] is not None else "")
            cells += [ours, paper, "-" if c["diff"] is None else f"{c['diff']:+.4f}"]
        cells += ["-" if row["cells"][m]["p"] is None else f"{row['cells'][m]['p']:.3g}" for m in table.columns]
        cells += [_fmt(row["protocols"][name][m]) for name in protocols for m in table.columns]
        lines.append("| " + " | ".join(cells) + " |")
    for label, values in table.paper_rows.items():  # the paper's own rows that are not runs (Improv.)
        cells = [f"{label} (paper)"] + [x for v in values for x in ("-", _figure(v), "-")] + ["-"] * len(values)
        cells += ["-"] * (len(protocols) * len(values))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _cost_fmt(key: str, x: Optional[float], signed: bool = False) -> str:
    if x is None:
        return "-"
    return f"{x:{'+' if signed else ''}.{2 if key.endswith('gib') else 1}f}"


def cost_markdown(table: PaperTable, rows: List[dict], caption: str) -> str:
    """Each of the paper's columns as ours (the measure's header), the paper's figure (its
    unit) and the difference; then our other measures."""
    header = ["Model", "Params"]
    for i, column in enumerate(table.columns):
        measure = COST_MEASURES.get(paper_measure(column))
        unit = _unit(table, i)
        header += [f"{measure.header if measure else column} ours", f"paper ({unit})" if unit else "paper", "diff"]
    extra = list(rows[0]["extra"]) if rows else []
    header += [f"{COST_MEASURES[k].header} ours" for k in extra]
    lines = [f"**{caption}**", "", "| " + " | ".join(header + ["Device"]) + " |", "|" + "---|" * (len(header) + 1)]
    for row in rows:
        cells = [row["label"] + (f" ({row['status']})" if row["status"] else ""), str(row["params"] or "-")]
        for column in table.columns:
            c = row["cells"][column]
            mark = "†" if c["measure"] == "train_s_epoch" and row["partial"] and c["mean"] is not None else ""
            cells += [_cost_fmt(c["measure"], c["mean"]) + mark, _figure(c["paper"])]
            cells.append(_cost_fmt(c["measure"], c["diff"], signed=True))
        cells += [_cost_fmt(k, row["extra"][k]) for k in extra]
        lines.append("| " + " | ".join(cells + [row["device"] or "-"]) + " |")
    for label, values in table.paper_rows.items():
        cells = [f"{label} (paper)", "-"] + [x for v in values for x in ("-", _figure(v), "-")] + ["-"] * len(extra)
        lines.append("| " + " | ".join(cells + ["-"]) + " |")
    return "\n".join(lines) + "\n"


def count_rows(table: PaperTable, dataset: str, ours: Optional[Dict[str, float]]) -> List[dict]:
    """A ``dataset`` table's row of ours (the data set ``dataset``'s counts, in the table's
    columns) beside the paper's figures of its one row; empty without our counts."""
    if ours is None:
        return []
    paper = next(iter(table.rows.values()), None)
    cells = {}
    for i, column in enumerate(table.columns):
        mine, ref = ours.get(column), None if paper is None else paper[i]
        cells[column] = dict(mean=mine, paper=ref, diff=None if None in (mine, ref) else mine - ref)
    return [dict(entry=dataset, label=f"{dataset} (ours)", cells=cells)]


def paper_markdown(table: PaperTable, caption: str, ours: Optional[List[dict]] = None) -> str:
    """A ``dataset`` table: the paper's figures, then our data set's (:func:`count_rows`) and
    the difference."""
    header = ["Row"] + [_header(table, i, c) for i, c in enumerate(table.columns)]
    lines = [f"**{caption}**", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row, values in {**table.rows, **table.paper_rows}.items():
        lines.append("| " + " | ".join([f"{row} (paper)"] + [_figure(v) for v in values]) + " |")
    for row in ours or ():
        cells = [row["cells"][c] for c in table.columns]
        lines.append("| " + " | ".join([row["label"]] + [_figure(_round(c["mean"])) for c in cells]) + " |")
        diffs = ["-" if c["diff"] is None else f"{_round(c['diff']):+,g}" for c in cells]
        lines.append("| " + " | ".join(["diff (ours − paper)"] + diffs) + " |")
    return "\n".join(lines) + "\n"


def _round(x: Optional[float]) -> Optional[float]:
    """A count as an integer, any other figure to 2 places, as the paper prints them."""
    return None if x is None else (float(round(x)) if float(x).is_integer() else round(x, 2))


def to_csv(tables: Dict[str, Tuple[str, List[dict]]]) -> str:
    """Every cell in long form: table, row, column, ours (mean), std, seeds, paper, diff, p, test
    (``tables``: ``{name: (kind, rows)}``)."""
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(["table", "row", "column", "ours", "std", "seeds", "paper", "diff", "p", "test"])
    for name, (kind, rows) in tables.items():
        for row in rows:
            if kind == "dataset":
                for key, c in row["cells"].items():
                    w.writerow([name, row["label"], key, c["mean"], "", "", c["paper"], c["diff"], "", ""])
            elif kind == "cost":
                w.writerow([name, row["label"], "params", row["params"], "", "", "", "", "", ""])
                for key, c in row["cells"].items():
                    w.writerow([name, row["label"], key, c["mean"], "", "", c["paper"], c["diff"], "", ""])
                for key, value in row["extra"].items():
                    w.writerow([name, row["label"], key, value, "", "", "", "", "", ""])
            else:
                for m, c in row["cells"].items():
                    values = [c[k] for k in ("mean", "std", "n", "paper", "diff", "p", "test")]
                    w.writerow([name, row["label"], m, *values])
                for protocol, by_metric in row.get("protocols", {}).items():
                    for m, value in by_metric.items():
                        w.writerow([name, row["label"], f"{m} {protocol}", value, "", "", "", "", "", ""])
    return out.getvalue()
