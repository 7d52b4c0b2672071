"""The comparison table: one row per model, one column per metric and cost, means and sample
standard deviations over seeds, the best value of each column marked, and a paired t-test
(:func:`scipy.stats.ttest_rel`) of each metric's best model against every other model."""

from __future__ import annotations

import math
from typing import Dict, List, Optional

from recbole.evaluator.register import smaller_metrics
from scipy.stats import wilcoxon

from recbole_ext.results.record import RunRecord
from recbole_ext.results.stats import paired_t_pvalue


class Column:
    def __init__(self, key: str, header: str, better: Optional[str], digits: int, metric: bool = False):
        self.key, self.header, self.better, self.digits, self.metric = key, header, better, digits, metric


def _mean(xs: List[float]) -> Optional[float]:
    xs = [x for x in xs if x is not None and not (isinstance(x, float) and math.isnan(x))]
    return sum(xs) / len(xs) if xs else None


def _std(xs: List[float]) -> Optional[float]:
    xs = [x for x in xs if x is not None and not (isinstance(x, float) and math.isnan(x))]
    if len(xs) < 2:
        return None
    m = sum(xs) / len(xs)
    return math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1))


#: a column's value read from a record: the test metric ``test:<metric>``, a mean, or a field
_MEANS = {"train_s_epoch": "train_epoch_s", "eval_ms_batch": "eval_batch_ms"}


def _value(rec: RunRecord, key: str):
    if key.startswith("test:"):
        return rec.test_result.get(key[5:])
    if key in _MEANS:
        return _mean(getattr(rec, _MEANS[key]))
    return getattr(rec, key)


def build_table(records: List[RunRecord]) -> dict:
    """Aggregate run records into rows (one per model, in first-seen order) and columns."""
    by_model: Dict[str, List[RunRecord]] = {}
    for rec in records:
        by_model.setdefault(rec.model, []).append(rec)
    ok = [r for r in records if r.ok]
    valid_metric = next((r.valid_metric for r in ok if r.valid_metric), "")
    columns = _columns(records, ok, valid_metric)
    rows = [_row(model, recs, columns) for model, recs in by_model.items()]
    _mark_best(rows, columns)
    significance = _significance(rows, columns)
    return {
        "columns": columns,
        "rows": rows,
        "valid_metric": valid_metric,
        "significance": significance,
        "mem_method": next((r.mem_method for r in ok if r.mem_method), ""),
    }


def _columns(records: List[RunRecord], ok: List[RunRecord], valid_metric: str) -> List[Column]:
    """The table's columns: every test metric the records hold, then the run's facts."""
    metric_names: List[str] = []
    for rec in records:
        for k in rec.test_result:
            if k not in metric_names:
                metric_names.append(k)
    bigger = next((r.valid_metric_bigger for r in ok if r.valid_metric_bigger is not None), True)
    columns = [
        Column(f"test:{m}", _metric_header(m), "min" if _smaller_is_better(m) else "max", 4, metric=True)
        for m in metric_names
    ]
    return columns + [
        Column("best_valid_score", f"Best valid {_metric_header(valid_metric)}".strip(), "max" if bigger else "min", 4),
        Column("epochs_run", "Epochs", None, 0),
        Column("n_params", "Params", "min", 0),
        Column("train_s_epoch", "Train s/epoch", "min", 2),
        Column("eval_ms_batch", "Infer ms/batch", "min", 1),
        Column("peak_mem_mb", "Peak mem MB", "min", 1),
    ]


def _row(model: str, recs: List[RunRecord], columns: List[Column]) -> dict:
    """One model's row: each column's mean, std and value per seed over its finished runs."""
    good = sorted([r for r in recs if r.ok], key=lambda r: (r.seed is None, r.seed))
    bad = [r for r in recs if not r.ok]
    cells = {}
    for col in columns:
        vals = [_value(r, col.key) for r in good]
        cells[col.key] = {
            "mean": _mean(vals),
            "std": _std(vals),
            "n": len([v for v in vals if v is not None]),
            "by_seed": {r.seed: _value(r, col.key) for r in good},
        }
    status = "ok"
    if bad:
        seeds = ", ".join(str(r.seed) for r in bad if r.seed is not None)
        status = "failed" + (f" (seed {seeds})" if seeds and good else "") + ": " + (bad[0].reason or "")
    first = (good or recs)[0]
    return {
        "model": model,
        "cells": cells,
        "protocol": first.protocol or "",
        "device": first.device or "",
        "status": status,
        "n_seeds": len(good),
        "seeds": [r.seed for r in good],
        "mark": {},
        "p_values": {},
        "per_user": first.per_user if len(good) == 1 else {},
    }


def _smaller_is_better(name: str) -> bool:
    """RecBole's own list of metrics where smaller is better (RMSE, MAE, LogLoss, ...)."""
    return name.partition("@")[0].lower() in smaller_metrics


def _metric_header(name: str) -> str:
    if not name:
        return ""
    base, _, k = name.partition("@")
    pretty = {
        "recall": "Recall",
        "mrr": "MRR",
        "ndcg": "NDCG",
        "hit": "Hit",
        "precision": "Precision",
        "map": "MAP",
        "auc": "AUC",
        "gauc": "GAUC",
        "logloss": "LogLoss",
        "rmse": "RMSE",
        "mae": "MAE",
        "itemcoverage": "ItemCoverage",
        "averagepopularity": "AveragePopularity",
    }.get(base.lower(), base)
    return f"{pretty}@{k}" if k else pretty


def _mark_best(rows: List[dict], columns: List[Column]) -> None:
    for col in columns:
        if col.better is None:
            continue
        vals = [(r["cells"][col.key]["mean"], r) for r in rows if r["cells"][col.key]["mean"] is not None]
        if len(vals) < 2:
            continue
        best = max(v for v, _ in vals) if col.better == "max" else min(v for v, _ in vals)
        for v, r in vals:
            if v == best:
                r["mark"][col.key] = "best"


def _significance(rows: List[dict], columns: List[Column]) -> str:
    """The best model of each metric column against each other model: a paired t-test over seeds
    with several seeds; with one seed, a Wilcoxon signed-rank test over the test users' per-user
    values (:func:`_per_user_tests`). Returns which test ran: ``seeds``, ``users`` or ``""``."""
    if max((r["n_seeds"] for r in rows), default=0) < 2:
        return "users" if _per_user_tests(rows, columns) else ""
    for col in columns:
        if not col.metric:
            continue
        best_rows = [r for r in rows if r["mark"].get(col.key) == "best"]
        if len(best_rows) != 1:
            continue
        best = best_rows[0]
        b = best["cells"][col.key]["by_seed"]
        all_sig, tested = True, 0
        for r in rows:
            if r is best or r["cells"][col.key]["mean"] is None:
                continue
            o = r["cells"][col.key]["by_seed"]
            common = [s for s in b if s is not None and s in o and b[s] is not None and o[s] is not None]
            if len(common) < 2:
                all_sig = False
                continue
            p = paired_t_pvalue([b[s] for s in common], [o[s] for s in common])
            r["p_values"][col.key] = p
            tested += 1
            all_sig &= p < 0.05
        if tested and all_sig:
            best["mark"][col.key] = "best*"
    return "seeds"


def _per_user_tests(rows: List[dict], columns: List[Column]) -> bool:
    """Wilcoxon signed-rank (``p_values``) and paired t (``p_values_t``) tests over the users of
    the best model's per-user values against each other model's (same users, same order); the
    best is starred when every Wilcoxon p < 0.05. Returns whether any pair was tested."""
    tested_any = False
    for col in (c for c in columns if c.metric):
        name = col.key.split(":", 1)[1]
        best = [r for r in rows if r["mark"].get(col.key) == "best" and name in r["per_user"]]
        if len(best) != 1:
            continue
        x = best[0]["per_user"][name]
        others = [r for r in rows if r is not best[0] and len(r["per_user"].get(name, [])) == len(x)]
        for r in others:
            y = r["per_user"][name]
            same = all(a == b for a, b in zip(x, y))
            r["p_values"][col.key] = 1.0 if same else float(wilcoxon(x, y).pvalue)
            r.setdefault("p_values_t", {})[col.key] = paired_t_pvalue(x, y)
        if others and all(r["p_values"][col.key] < 0.05 for r in others):
            best[0]["mark"][col.key] = "best*"
        tested_any |= bool(others)
    return tested_any
