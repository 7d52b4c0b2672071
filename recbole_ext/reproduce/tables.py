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

from recbole_ext.reproduce.preset import PaperTable, Preset
from recbole_ext.results.record import RunRecord
from recbole_ext.results.stats import paired_t_pvalue

#: A cost table's columns: key -> (header, our measure's unit and definition)
COST_COLUMNS = {
    "infer_ms": ("Infer ms/batch", "ms per evaluation batch of eval_batch_size users, mean over every batch"),
    "train_s_epoch": ("Train s/epoch", "s per whole training epoch, mean over epochs and seeds"),
    "mem_gb": ("Peak mem GB", "GB (GiB): peak GPU tensors, or the CPU process's RSS growth"),
}


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
    preset: Preset, by_entry: Dict[str, List[RunRecord]], entries: List[str], table: PaperTable
) -> List[dict]:
    """One row per entry: per column (a metric) our mean, std, seeds, the paper's value and the
    difference, and the t-test against the proposed model."""
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
        rows.append(dict(entry=entry, label=row_label(preset, table, entry), cells=cells, status=_status(recs)))
    return rows


def _cost_measures(ok: List[RunRecord]) -> Tuple[Dict[str, List[float]], bool]:
    ours: Dict[str, List[float]] = {"train_s_epoch": [], "infer_ms": [], "mem_gb": []}
    partial = False
    for r in ok:
        for secs, (done, total) in zip(r.train_epoch_s, r.train_batches):
            ours["train_s_epoch"].append(secs * total / max(done, 1))  # a budget epoch, scaled to a whole one
            partial |= done < total
        if not r.train_batches:
            ours["train_s_epoch"].extend(r.train_epoch_s)
        ours["infer_ms"].extend(r.eval_batch_ms)
        if r.peak_mem_mb is not None:
            ours["mem_gb"].append(r.peak_mem_mb / 1024)
    return ours, partial


def cost_rows(
    preset: Preset, by_entry: Dict[str, List[RunRecord]], entries: List[str], table: PaperTable
) -> List[dict]:
    """Parameters and each of the table's cost columns (:data:`COST_COLUMNS`), the mean over
    seeds, beside the paper's figures."""
    rows = []
    for entry in entries:
        ok = _ok(by_entry.get(entry, []))
        ours, partial = _cost_measures(ok)
        cells = {k: dict(mean=_stats(ours.get(k, []))[0], paper=table.value(entry, k)) for k in table.columns}
        rows.append(
            dict(
                entry=entry,
                label=row_label(preset, table, entry),
                params=ok[0].n_params if ok else None,
                cells=cells,
                partial=partial,
                device=(ok[0].device or "") if ok else "",
                status=_status(by_entry.get(entry, [])),
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
        lines.append("| " + " | ".join(cells) + " |")
    for label, values in table.paper_rows.items():  # the paper's own rows that are not runs (Improv.)
        cells = [f"{label} (paper)"] + [x for v in values for x in ("-", _figure(v), "-")] + ["-"] * len(values)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def cost_markdown(table: PaperTable, rows: List[dict], caption: str) -> str:
    header = ["Model", "Params"]
    for i, key in enumerate(table.columns):
        name, unit = COST_COLUMNS[key][0] if key in COST_COLUMNS else key, _unit(table, i)
        header += [f"{name} ours", f"paper ({unit})" if unit else "paper"]
    lines = [f"**{caption}**", "", "| " + " | ".join(header + ["Device"]) + " |", "|" + "---|" * (len(header) + 1)]
    for row in rows:
        cells = [row["label"] + (f" ({row['status']})" if row["status"] else ""), str(row["params"] or "-")]
        for key in table.columns:
            c = row["cells"][key]
            mark = "†" if key == "train_s_epoch" and row["partial"] else ""
            cells += [_fmt(c["mean"], 2 if key == "mem_gb" else 1) + mark, _figure(c["paper"])]
        lines.append("| " + " | ".join(cells + [row["device"] or "-"]) + " |")
    for label, values in table.paper_rows.items():
        cells = [f"{label} (paper)", "-"] + [x for v in values for x in ("-", _figure(v))]
        lines.append("| " + " | ".join(cells + ["-"]) + " |")
    return "\n".join(lines) + "\n"


def paper_markdown(table: PaperTable, caption: str) -> str:
    """A table of the paper's figures only (a ``dataset`` table: the data set's counts)."""
    header = ["Row"] + [_header(table, i, c) for i, c in enumerate(table.columns)]
    lines = [f"**{caption}**", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row, values in {**table.rows, **table.paper_rows}.items():
        lines.append("| " + " | ".join([f"{row} (paper)"] + [_figure(v) for v in values]) + " |")
    return "\n".join(lines) + "\n"


def to_csv(tables: Dict[str, Tuple[str, List[dict]]]) -> str:
    """Every cell in long form: table, row, column, ours (mean), std, seeds, paper, diff, p, test
    (``tables``: ``{name: (kind, rows)}``)."""
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(["table", "row", "column", "ours", "std", "seeds", "paper", "diff", "p", "test"])
    for name, (kind, rows) in tables.items():
        for row in rows:
            if kind == "cost":
                w.writerow([name, row["label"], "params", row["params"], "", "", "", "", "", ""])
                for key, c in row["cells"].items():
                    diff = None if c["mean"] is None or c["paper"] is None else c["mean"] - c["paper"]
                    w.writerow([name, row["label"], key, c["mean"], "", "", c["paper"], diff, "", ""])
            else:
                for m, c in row["cells"].items():
                    values = [c[k] for k in ("mean", "std", "n", "paper", "diff", "p", "test")]
                    w.writerow([name, row["label"], m, *values])
    return out.getvalue()
