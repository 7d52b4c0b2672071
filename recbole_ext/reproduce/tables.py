"""A paper's tables from a reproduction's run records: accuracy (Table 2: our mean +- std over
seeds beside the paper's value, the difference, and a two-sided t-test of the proposed model
against each baseline), efficiency (Table 3) and the ablations (Table 4)."""

from __future__ import annotations

import csv
import io
import math
import statistics
from typing import Dict, List, Optional, Tuple

from recbole_ext.reproduce.preset import DatasetPreset, Preset
from recbole_ext.results.stats import paired_t_pvalue

#: Table 3's columns: (key in the paper's figures, header, how ours is measured)
COST_COLUMNS = (
    ("train_s_epoch", "Train s/epoch"),
    ("infer_ms", "Infer ms/batch"),
    ("mem_mb", "Peak mem MB"),
)


def _fmt(x: Optional[float], digits: int = 4) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def _stats(values: List[float]) -> Tuple[Optional[float], Optional[float]]:
    if not values:
        return None, None
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else None


def _ok(records: List[dict]) -> List[dict]:
    return sorted((r for r in records if r.get("status") == "ok"), key=lambda r: r.get("seed") or 0)


def metric_values(records: List[dict], metric: str) -> Dict[int, float]:
    """``{seed: test value}`` of one row's finished runs (``metric`` as the paper writes it)."""
    key = metric.lower()
    return {r["seed"]: float(r["test_result"][key]) for r in _ok(records) if key in (r.get("test_result") or {})}


def t_test(proposed: List[dict], other: List[dict], metric: str) -> Tuple[Optional[float], str]:
    """Two-sided paired t-test of the proposed model against another row: over the seeds both
    ran (same split and candidates per seed) with two or more, else over the test users of the
    one seed (per-user values in evaluation order). Returns ``(p, "seeds" | "users" | "")``."""
    a, b = metric_values(proposed, metric), metric_values(other, metric)
    common = sorted(set(a) & set(b))
    if len(common) >= 2:
        x, y = [a[s] for s in common], [b[s] for s in common]
        how = "seeds"
    else:
        ua = next((r.get("per_user", {}).get(metric.lower()) for r in _ok(proposed)), None)
        ub = next((r.get("per_user", {}).get(metric.lower()) for r in _ok(other)), None)
        if not ua or not ub or len(ua) != len(ub) or len(common) != 1:
            return None, ""
        x, y, how = ua, ub, "users"
    return paired_t_pvalue(x, y), how


def _status(records: List[dict]) -> str:
    bad = [r for r in records if r.get("status") != "ok"]
    return "" if not bad else f"failed: {bad[0].get('reason', '')}"


def accuracy_rows(
    preset: Preset, by_entry: Dict[str, List[dict]], entries: List[str], paper: Dict[str, List[Optional[float]]]
) -> List[dict]:
    """One row per entry: per metric our mean, std, seeds, the paper's value (``paper[entry]``)
    and the difference, and the t-test against the proposed model."""
    rows = []
    proposed = by_entry.get(preset.proposed, [])
    for entry in entries:
        recs = by_entry.get(entry, [])
        cells = {}
        for i, metric in enumerate(preset.metrics):
            values = list(metric_values(recs, metric).values())
            mean, std = _stats(values)
            ref = (paper.get(entry) or [None] * len(preset.metrics))[i]
            p, how = (None, "") if entry == preset.proposed or not proposed else t_test(proposed, recs, metric)
            diff = None if mean is None or ref is None else mean - ref
            cells[metric] = dict(mean=mean, std=std, n=len(values), paper=ref, diff=diff, p=p, test=how)
        rows.append(dict(entry=entry, label=preset.label(entry), cells=cells, status=_status(recs)))
    return rows


def cost_rows(preset: Preset, by_entry: Dict[str, List[dict]], entries: List[str], ds: DatasetPreset) -> List[dict]:
    """Table 3: parameters, training seconds per (whole) epoch, inference ms per evaluation batch
    and peak memory, each the mean over seeds, beside the paper's figures."""
    rows = []
    for entry in entries:
        ok = _ok(by_entry.get(entry, []))
        ours = {"train_s_epoch": [], "infer_ms": [], "mem_mb": []}
        partial = False
        for r in ok:
            for secs, (done, total) in zip(r.get("train_epoch_s") or [], r.get("train_batches") or []):
                ours["train_s_epoch"].append(secs * total / max(done, 1))  # a budget epoch, scaled to a whole one
                partial |= done < total
            if not r.get("train_batches"):
                ours["train_s_epoch"].extend(r.get("train_epoch_s") or [])
            ours["infer_ms"].extend(r.get("eval_batch_ms") or [])
            if r.get("peak_mem_mb") is not None:
                ours["mem_mb"].append(r["peak_mem_mb"])
        cells = {k: dict(mean=_stats(v)[0], paper=ds.table3.get(entry, {}).get(k)) for k, v in ours.items()}
        rows.append(
            dict(
                entry=entry,
                label=preset.label(entry),
                params=ok[0].get("n_params") if ok else None,
                cells=cells,
                partial=partial,
                device=ok[0].get("device", "") if ok else "",
                status=_status(by_entry.get(entry, [])),
            )
        )
    return rows


def accuracy_markdown(preset: Preset, rows: List[dict], caption: str) -> str:
    header = ["Model"]
    for m in preset.metrics:
        header += [f"{m} ours", "paper", "diff"]
    header += [f"p {m}" for m in preset.metrics]
    lines = [f"**{caption}**", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        cells = [row["label"] + (f" ({row['status']})" if row["status"] else "")]
        for m in preset.metrics:
            c = row["cells"][m]
            ours = _fmt(c["mean"]) + (f" ± {_fmt(c['std'])}" if c["std"] is not None else "")
            cells += [ours, _fmt(c["paper"]), "-" if c["diff"] is None else f"{c['diff']:+.4f}"]
        cells += ["-" if row["cells"][m]["p"] is None else f"{row['cells'][m]['p']:.3g}" for m in preset.metrics]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def cost_markdown(rows: List[dict], caption: str) -> str:
    header = ["Model", "Params"] + [h for _, h in COST_COLUMNS for h in (f"{h} ours", "paper")] + ["Device"]
    lines = [f"**{caption}**", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        cells = [row["label"] + (f" ({row['status']})" if row["status"] else ""), str(row["params"] or "-")]
        for key, _ in COST_COLUMNS:
            c = row["cells"][key]
            mark = "†" if key == "train_s_epoch" and row["partial"] else ""
            cells += [_fmt(c["mean"], 1) + mark, _fmt(c["paper"], 1)]
        lines.append("| " + " | ".join(cells + [row["device"] or "-"]) + " |")
    return "\n".join(lines) + "\n"


def to_csv(table2: List[dict], table3: List[dict], table4: List[dict]) -> str:
    """Every cell in long form: table, row, column, ours (mean), std, seeds, paper, diff, p, test."""
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(["table", "row", "column", "ours", "std", "seeds", "paper", "diff", "p", "test"])
    for name, rows in (("table2", table2), ("table4", table4)):
        for row in rows:
            for m, c in row["cells"].items():
                values = [c[k] for k in ("mean", "std", "n", "paper", "diff", "p", "test")]
                w.writerow([name, row["label"], m, *values])
    for row in table3:
        w.writerow(["table3", row["label"], "params", row["params"], "", "", "", "", "", ""])
        for key, c in row["cells"].items():
            diff = None if c["mean"] is None or c["paper"] is None else c["mean"] - c["paper"]
            w.writerow(["table3", row["label"], key, c["mean"], "", "", c["paper"], diff, "", ""])
    return out.getvalue()
