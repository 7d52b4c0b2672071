"""Render a comparison table (:mod:`recbole_ext.results.table`) as Markdown, CSV and LaTeX, and
write them (with the plot) into a results folder."""

from __future__ import annotations

import csv
import io
import os
from typing import Callable, List, Optional

from recbole_ext.fileio import atomic_write_text
from recbole_ext.results.plot import plot_comparison
from recbole_ext.results.record import RunRecord
from recbole_ext.results.table import Column, build_table

TABLE_NAME = "comparison"


def _fmt(x: Optional[float], digits: int) -> str:
    if x is None:
        return ""
    if digits == 0:
        return f"{int(round(x)):,}".replace(",", " ") if abs(x) >= 10000 else str(int(round(x)))
    return f"{x:.{digits}f}"


def _cell_text(cell: dict, col: Column, latex: bool = False) -> str:
    if cell["mean"] is None:
        return "–" if not latex else "--"
    text = _fmt(cell["mean"], col.digits)
    if cell["std"] is not None and col.key != "n_params":
        pm = r" $\pm$ " if latex else " ± "
        text += pm + _fmt(cell["std"], col.digits if col.digits else 1)
    return text


def _status_text(row: dict) -> str:
    return row["status"].replace("|", "/")


def to_markdown(table: dict) -> str:
    cols = table["columns"]
    header = ["Model"] + [c.header for c in cols] + ["Protocol", "Device", "Status"]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * len(cols) + ["---"] * 3) + "|"]
    for row in table["rows"]:
        cells = []
        for c in cols:
            text = _cell_text(row["cells"][c.key], c)
            mark = row["mark"].get(c.key)
            if mark:
                text = f"**{text}**" + ("\\*" if mark == "best*" else "")
            cells.append(text)
        lines.append(
            "| " + " | ".join([row["model"]] + cells + [row["protocol"], row["device"], _status_text(row)]) + " |"
        )
    return "\n".join(lines)


def significance_markdown(table: dict) -> str:
    """p-values of the paired t-tests (best model of each metric against each other model)."""
    cols = [c for c in table["columns"] if c.metric and any(c.key in r["p_values"] for r in table["rows"])]
    if not cols:
        return ""
    best = {
        c.key: next((r["model"] for r in table["rows"] if r["mark"].get(c.key, "").startswith("best")), "")
        for c in cols
    }
    lines = [
        "| Model | " + " | ".join(f"{c.header} (vs {best[c.key]})" for c in cols) + " |",
        "|---|" + "|".join("---:" for _ in cols) + "|",
    ]
    for row in table["rows"]:
        vals = []
        for c in cols:
            p = row["p_values"].get(c.key)
            vals.append("" if p is None else (f"{p:.3g}" + (" *" if p < 0.05 else "")))
        if any(vals):
            lines.append("| " + row["model"] + " | " + " | ".join(vals) + " |")
    return "\n".join(lines)


def to_csv(table: dict) -> str:
    buf = io.StringIO()
    w = csv.writer(buf)
    cols = table["columns"]
    head = ["model", "n_seeds", "status", "protocol", "device"]
    for c in cols:
        head += [c.key, f"{c.key}_std"] + ([f"{c.key}_p_vs_best", f"{c.key}_p_t_vs_best"] if c.metric else [])
    w.writerow(head)
    for row in table["rows"]:
        line = [row["model"], row["n_seeds"], row["status"], row["protocol"], row["device"]]
        for c in cols:
            cell = row["cells"][c.key]
            line += [
                "" if cell["mean"] is None else repr(float(cell["mean"])),
                "" if cell["std"] is None else repr(float(cell["std"])),
            ]
            if c.metric:  # the table's test, then (one seed) the paired t-test over users
                for p in (row["p_values"].get(c.key), row.get("p_values_t", {}).get(c.key)):
                    line.append("" if p is None else repr(p))
        w.writerow(line)
    return buf.getvalue()


_TEX = {
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "\\": r"\textbackslash{}",
}


def tex_escape(text: str) -> str:
    return "".join(_TEX.get(ch, ch) for ch in str(text))


def to_latex(table: dict, caption: str = "") -> str:
    cols = table["columns"]
    spec = "l" + "r" * len(cols) + "lll"
    lines = [r"\begin{table}[t]", r"\centering", r"\small"]
    if caption:
        lines.append(r"\caption{" + tex_escape(caption) + "}")
    lines += [r"\begin{tabular}{" + spec + "}", r"\toprule"]
    lines.append(
        " & ".join(["Model"] + [tex_escape(c.header) for c in cols] + ["Protocol", "Device", "Status"]) + r" \\"
    )
    lines.append(r"\midrule")
    for row in table["rows"]:
        cells = []
        for c in cols:
            text = _cell_text(row["cells"][c.key], c, latex=True)
            text = text if "$" in text else tex_escape(text)
            mark = row["mark"].get(c.key)
            if mark:
                text = r"\textbf{" + text + "}" + ("$^{*}$" if mark == "best*" else "")
            cells.append(text)
        lines.append(
            " & ".join(
                [tex_escape(row["model"])]
                + cells
                + [tex_escape(row["protocol"]), tex_escape(row["device"]), tex_escape(row["status"])]
            )
            + r" \\"
        )
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    return "\n".join(lines) + "\n"


def notes(table: dict, records: List[RunRecord]) -> str:
    seeds = sorted({r.seed for r in records if r.seed is not None})
    out = []
    if len(seeds) > 1:
        out.append(
            f"Mean ± sample std over seeds {', '.join(map(str, seeds))}; * after a bold value: paired "
            "t-test (scipy.stats.ttest_rel over seeds) of the best model against every other, p < 0.05."
        )
    elif table.get("significance") == "users":
        out.append(
            "One seed; * after a bold value: Wilcoxon signed-rank test (scipy.stats.wilcoxon) over the "
            "test users' per-user values of the best model against every other, p < 0.05 (a paired "
            "t-test over users is in comparison.csv)."
        )
    out.append(
        "Bold: best in the column (higher metrics, lower errors and cost). Train s/epoch: mean wall time of a "
        "training epoch. Infer ms/batch: mean wall time per evaluation batch over all valid and test "
        "evaluations. Peak mem: " + (table.get("mem_method") or "not measured (log without it)") + "."
    )
    cut = sorted({done for r in records for done, total in r.train_batches if done < total})
    if cut:
        out.append(
            f"Training epochs were cut to {', '.join(map(str, cut))} batches (train_batches_per_epoch): "
            "Train s/epoch is the time of the cut epoch, and the models are not trained to convergence."
        )
    return "\n".join(out)


def write_outputs(
    records: List[RunRecord],
    dataset: str,
    out_dir: Optional[str],
    plot: bool = True,
    echo: Callable[[str], None] = print,
    title: str = "",
) -> dict:
    """Print the Markdown table; with ``out_dir``, write ``comparison.md/.csv/.tex`` (and ``.png``)."""
    table = build_table(records)
    md = to_markdown(table)
    sig = significance_markdown(table)
    doc = [f"## Comparison on {dataset}", ""]
    if title:
        doc += [title, ""]
    doc += [md, "", notes(table, records)]
    if sig:
        test = (
            "Wilcoxon signed-rank p-values over users"
            if table.get("significance") == "users"
            else "Paired t-test p-values over seeds"
        )
        doc += ["", f"{test} (best model of each metric against each other model):", "", sig]
    text = "\n".join(doc) + "\n"
    echo(text)
    if out_dir:
        os.makedirs(out_dir, exist_ok=True)
        base = os.path.join(out_dir, TABLE_NAME)
        atomic_write_text(base + ".md", text)
        atomic_write_text(base + ".csv", to_csv(table))
        atomic_write_text(base + ".tex", to_latex(table, caption=f"Comparison on {dataset}"))
        written = [base + ".md", base + ".csv", base + ".tex"]
        if plot:
            png = plot_comparison(records, base + ".png", echo=echo)
            if png:
                written.append(png)
        echo("[compare] wrote " + ", ".join(written))
    table["markdown"] = text
    return table
