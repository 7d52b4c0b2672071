"""The shipped GLINT-RU preset against the paper: every setting of Table 5 and Appendix B in the
keys each row resolves to on each data set, and every figure of Tables 1-9 under the right data
set and row. Both read the paper's tables from ``tables.md`` (in ``$RECBOLE_EXT_PAPERS``, by
default ``$RECBOLE_EXT_TEST_DATA/../papers``), parsed here from its Markdown."""

from __future__ import annotations

import os
import re
from typing import Any, Dict, List, Optional, Tuple

import pytest
import recbole
import yaml

from recbole_ext._paths import PROPERTIES_DIR
from recbole_ext.reproduce.plan import resolve_rows
from recbole_ext.reproduce.preset import Preset, load_preset

_DATA = os.environ.get("RECBOLE_EXT_TEST_DATA")
PAPERS = os.environ.get("RECBOLE_EXT_PAPERS") or (os.path.join(_DATA, "..", "papers") if _DATA else "")
TABLES_MD = os.path.join(PAPERS, "glint-ru", "tables.md")
needs_paper = pytest.mark.skipif(not PAPERS or not os.path.isdir(PAPERS), reason="no papers folder")

DATASET = {
    "ML-1M": "ml-1m",
    "Beauty": "amazon-beauty",
    "Games": "amazon-video-games",
    "Video Games": "amazon-video-games",
}
MODEL = {"GLINT-RU": "GLINTRU"}
#: Table 5's columns as each model's keys (``GLINT-RU``'s layers are checked on their own)
DROPOUT = {
    "GRU4Rec": ["dropout_prob"],
    "BERT4Rec": ["hidden_dropout_prob", "attn_dropout_prob"],
    "SASRec": ["hidden_dropout_prob", "attn_dropout_prob"],
    "LightSANs": ["hidden_dropout_prob", "attn_dropout_prob"],
    "LinRec": ["hidden_dropout_prob"],
    "SMLP4Rec": ["hidden_dropout_prob"],
    "Mamba4Rec": ["dropout_prob"],
    "GLINTRU": ["dropout_prob", "hidden_dropout_prob"],
}
GLOBAL_KEYS = {"weight_decay", "MAX_ITEM_LIST_LENGTH", "train_batch_size", "eval_batch_size"}


def column_keys(model: str, column: str) -> List[str]:
    """The keys that carry a Table 5 column for ``model``."""
    return {
        "hidden size": ["embedding_size", "hidden_size"] if model == "GRU4Rec" else ["hidden_size"],
        "weight decay": ["weight_decay"],
        "dropout": DROPOUT[model],
        "layers": ["num_layers"] if model in ("GRU4Rec", "Mamba4Rec") else ["n_layers"],
        "heads": ["n_heads"],
        "max length": ["MAX_ITEM_LIST_LENGTH"],
        "kernel size": ["d_conv"] if model == "Mamba4Rec" else ["kernel_size"],
    }[column]


# ------------------------------------------------------------------ tables.md
def read_tables(path: str) -> Tuple[Dict[int, Tuple[List[str], List[List[str]]]], str]:
    """``({table number: (header, rows)}, the whole text)``: each Markdown table under its
    ``**Table N.`` caption; a blank first cell repeats the row above's."""
    text = open(path, encoding="utf-8").read()
    tables: Dict[int, Tuple[List[str], List[List[str]]]] = {}
    number = None
    for line in text.splitlines():
        caption = re.match(r"\*\*Table (\d+)\.", line)
        if caption:
            number = int(caption.group(1))
        elif line.startswith("|") and number is not None:
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if set("".join(cells)) <= set("-"):
                continue
            if number not in tables:
                tables[number] = (cells, [])
            else:
                rows = tables[number][1]
                if not cells[0] and rows:
                    cells[0] = rows[-1][0]
                rows.append(cells)
        elif not line.startswith("|") and number in tables:
            number = None
    return tables, text


def number(cell: str) -> Optional[float]:
    """A cell's figure (``6,041``, ``0.7379∗``, ``88ms``, ``8.1s/epoch``, ``7.72G``, ``95.53%``);
    None for ``-``."""
    if cell.strip() == "-":
        return None
    found = re.search(r"-?\d+(?:\.\d+)?", cell.replace(",", ""))
    assert found, cell
    return float(found.group())


@pytest.fixture(scope="module")
def paper():
    return read_tables(TABLES_MD)


@pytest.fixture(scope="module")
def preset() -> Preset:
    return load_preset("glint-ru")


def resolved(preset: Preset) -> Dict[str, Dict[str, Dict[str, Any]]]:
    """``{data set: {row: keys}}`` as a run on a copy with an ``.item`` file reads them."""
    return {
        name: resolve_rows(preset, ds, preset.entries(name), has_item_file=True) for name, ds in preset.datasets.items()
    }


# ------------------------------------------------------------------ Table 5 and Appendix B
def table5_mismatches(table5: Tuple[List[str], List[List[str]]], rows: Dict[str, Dict[str, Dict]]) -> List[str]:
    """Every Table 5 cell whose value a row's resolved keys do not hold."""
    header, body = table5
    wrong = []

    def check(dataset: str, row: str, key: str, want: Any) -> None:
        got = rows.get(dataset, {}).get(row, {}).get(key, "<unset>")
        if got != want:
            wrong.append(f"{dataset} {row} {key}: {got} (Table 5: {want})")

    for cells in body:
        model, dataset = MODEL.get(cells[0], cells[0]), DATASET[cells[1]]
        for column, cell in zip(header[2:], cells[2:]):
            if cell == "-":
                continue
            if column == "train&eval batch size":
                train, evaluate = (int(v) for v in cell.strip("[]").split(","))
                check(dataset, model, "train_batch_size", train)
                check(dataset, model, "eval_batch_size", evaluate)
            elif model == "GLINTRU" and column == "layers":
                # the reading: one block with a one-layer GRU; the other reading is a row of its own
                check(dataset, model, "n_blocks", 1)
                check(dataset, model, "num_layers", 1)
                check(dataset, "GLINTRU@gru_layers2", "num_layers", int(cell))
            else:
                for key in column_keys(model, column):
                    check(dataset, model, key, number(cell))
        if model == "GLINTRU":  # the other reading of "dropout": all five dropouts at the table's value
            for key in ("gate_dropout_prob", "mix_dropout_prob", "mlp_dropout_prob"):
                check(dataset, "GLINTRU@all_dropouts", key, number(cells[header.index("dropout")]))
    return wrong


def appendix_b_mismatches(text: str, rows: Dict[str, Dict[str, Dict]]) -> List[str]:
    """Appendix B's settings (LightSANs' interests, the two expansion factors, SMLP4Rec's
    features per data set) against every data set's resolved keys."""
    interests = int(re.search(r"LightSANs uses (\d+) interests", text).group(1))
    mamba = int(re.search(r"Mamba4Rec's expansion factor is (\d+)", text).group(1))
    smlp = int(re.search(r"SMLP4Rec's expansion factor is (\d+)", text).group(1))
    found = re.search(r"SMLP4Rec's features are \[(.*?)\] on ML-1M and \[(.*?)\] on Beauty and Games", text)
    features = [[f.strip().strip("'").replace(" ", "_") for f in group.split(",")] for group in found.groups()]
    want = {
        ("LightSANs", "k_interests"): interests,
        ("Mamba4Rec", "expand"): mamba,
        ("SMLP4Rec", "expansion_factor"): smlp,
    }
    wrong = []
    for dataset, by_row in rows.items():
        ml = dataset == "ml-1m"
        expected = dict(want)
        expected[("SMLP4Rec", "selected_features")] = features[0] if ml else features[1]
        for (model, key), value in expected.items():
            got = by_row[model].get(key, "<unset>")
            if (sorted(got) if key == "selected_features" and isinstance(got, list) else got) != (
                sorted(value) if key == "selected_features" else value
            ):
                wrong.append(f"{dataset} {model} {key}: {got} (Appendix B: {value})")
        loaded = by_row["SMLP4Rec"].get("load_col", {}).get("item", [])
        wrong += [
            f"{dataset} SMLP4Rec loads no column {f}"
            for f in expected[("SMLP4Rec", "selected_features")]
            if f not in loaded
        ]
    return wrong


@needs_paper
def test_table5_and_appendix_b_are_the_resolved_settings(paper, preset):
    tables, text = paper
    rows = resolved(preset)
    assert table5_mismatches(tables[5], rows) == []
    assert appendix_b_mismatches(text, rows) == []


@needs_paper
def test_every_key_the_settings_name_is_a_key_of_its_model(paper, preset):
    """A misspelt key would resolve but set nothing: each key Table 5 and Appendix B map to is one
    the model's own YAML defines."""
    header, body = paper[0][5]
    for cells in body:
        model = MODEL.get(cells[0], cells[0])
        ours = os.path.join(PROPERTIES_DIR, "model", f"{model}.yaml")
        theirs = os.path.join(os.path.dirname(recbole.__file__), "properties", "model", f"{model}.yaml")
        known = set(yaml.safe_load(open(ours if os.path.isfile(ours) else theirs)))
        for column, cell in zip(header[2:-1], cells[2:-1]):
            if cell != "-" and not (model == "GLINTRU" and column == "layers"):
                keys = set(column_keys(model, column)) - GLOBAL_KEYS
                assert keys <= known, (model, column, keys - known)
    assert {"k_interests"} <= set(yaml.safe_load(open(theirs.replace(model, "LightSANs"))))


@needs_paper
def test_ml1m_features_are_columns_of_the_ml1m_item_files(preset):
    """SMLP4Rec's ML-1M features are columns that ``data fetch ml-1m`` writes, and of the shared
    copy's ``.item`` file where it is at hand."""
    from recbole_ext.data.readers import ITEM_HEADER

    features = preset.dataset("ml-1m").models["SMLP4Rec"]["selected_features"]
    assert set(features) <= {h.split(":")[0] for h in ITEM_HEADER}
    shared = os.path.join(_DATA or "", "ml-1m-item5", "ml-1m-item5.item")
    if os.path.isfile(shared):
        assert set(features) <= {h.split(":")[0] for h in open(shared).readline().rstrip("\n").split("\t")}


# ------------------------------------------------------------------ every figure of Tables 1-9
def figures_of_the_paper(tables) -> Dict[Tuple[str, str, str, str], Tuple[Optional[float], bool]]:
    """``{(data set, table, row, column): (figure, starred)}`` for every figure of Tables 1-4 and
    6-9 (Table 5 holds settings); a row is the paper's name for it."""
    out = {}

    def put(dataset, table, row, column, cell):
        out[(dataset, table, row, column)] = (number(cell), "∗" in cell)

    header, body = tables[1]
    for cells in body:
        for column, cell in zip(("users", "items", "interactions", "avg_length", "sparsity"), cells[1:]):
            put(DATASET[cells[0]], "table1", DATASET[cells[0]], column, cell)
    for cells in tables[2][1]:
        for i, cell in enumerate(cells[1:]):
            dataset = ("ml-1m", "amazon-beauty", "amazon-video-games")[i // 3]
            put(dataset, "table2", cells[0], ("Recall@10", "MRR@10", "NDCG@10")[i % 3], cell)
    for cells in tables[3][1]:
        for column, cell in zip(("infer_ms", "train_s_epoch", "mem_gb"), cells[2:]):
            put(DATASET[cells[0]], "table3", cells[1], column, cell)
    for n, dataset in ((4, "ml-1m"), (6, "amazon-beauty"), (8, "amazon-video-games"), (9, "amazon-beauty")):
        for cells in tables[n][1]:
            for column, cell in zip(("Recall@10", "MRR@10", "NDCG@10"), cells[1:]):
                put(dataset, f"table{n}", cells[0], column, cell)
    for cells in tables[7][1]:
        for column, cell in zip(("infer_ms", "train_s_epoch", "mem_gb"), cells[1:]):
            put("amazon-beauty", "table7", cells[0], column, cell)
    return out


def figures_of_the_preset(preset: Preset) -> Dict[Tuple[str, str, str, str], Tuple[Optional[float], bool]]:
    """The same keys from the preset: a row by its paper's name (Table 2's and 3's models by the
    paper's model names, Table 7's by the number of blocks its keys resolve to)."""
    paper_name = {v: k for k, v in MODEL.items()}
    out = {}
    for name, ds in preset.datasets.items():
        keys = resolve_rows(preset, ds, list(preset.entries(name)), True)
        for table in ds.tables.values():
            for entry, values in table.rows.items():
                if table.name in ("table2", "table3"):
                    row = paper_name.get(entry, entry)
                elif table.name == "table7":
                    row = str(keys[entry]["n_blocks"])
                elif table.name == "table1":
                    row = entry
                else:
                    row = table.labels.get(entry, preset.label(entry))
                for column, value in zip(table.columns, values):
                    out[(name, table.name, row, column)] = (value, entry in table.significant)
            for row, values in table.paper_rows.items():
                for column, value in zip(table.columns, values):
                    out[(name, table.name, row.replace(" (%)", ""), column)] = (value, False)
    return out


@needs_paper
def test_every_figure_of_tables_1_to_9_is_in_the_preset(paper, preset):
    want = figures_of_the_paper(paper[0])
    got = figures_of_the_preset(preset)
    assert (
        len([v for v, _ in want.values() if v is not None]) == 234
    )  # every figure of the nine tables but Table 5 (Improv. rows included)
    assert sorted(set(want) - set(got)) == [] and sorted(set(got) - set(want)) == []
    wrong = {k: (got[k], want[k]) for k in want if got[k] != want[k]}
    assert wrong == {}
