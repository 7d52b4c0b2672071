"""``recbole-ext reproduce``: the shipped preset, a preset of the test's own on ml-100k's slice
(two models, one ablation, two seeds: the tables, the paper's values beside ours, the t-test
over seeds, resuming), the mistakes that stop it before any run, and the whole GLINT-RU preset
on a slice of the paper's Beauty with a tiny budget."""

from __future__ import annotations

import csv
import itertools
import json
import os

import pytest
import yaml

from recbole_ext.cli import main as cli
from recbole_ext.command import ReproduceRequest
from recbole_ext.errors import ConfigError, UserError
from recbole_ext.registry import canonical_model_name
from recbole_ext.reproduce import run as reproduce
from recbole_ext.reproduce.preset import load_preset
from recbole_ext.reproduce.tables import t_test

SHARED = os.environ.get("RECBOLE_EXT_TEST_DATA")
TINY_KEYS = (
    "--hidden_size=8",
    "--n_heads=2",
    "--embedding_size=8",
    "--train_batch_size=64",
    "--eval_batch_size=64",
    "--MAX_ITEM_LIST_LENGTH=10",
    "--show_progress=False",
    "--state=WARNING",
)


def small_preset(tmp_path) -> str:
    """Two models and one ablation on ``ml-slice`` with paper figures for some cells."""
    preset = {
        "title": "Test paper",
        "proposed": "GLINTRU",
        "metrics": ["Recall@10", "NDCG@10"],
        "seeds": [1, 2],
        "protocol": {
            "eval_args": {"split": {"LS": "valid_and_test"}, "order": "TO", "group_by": "user", "mode": "pop100"},
            "metrics": ["Recall", "NDCG"],
            "topk": [10],
            "valid_metric": "NDCG@10",
            "train_neg_sample_args": None,
            "load_col": {"inter": ["user_id", "item_id", "timestamp"]},
        },
        "models": {"GLINTRU": {"kernel_size": 3}, "GRU4Rec": {"num_layers": 1}},
        "variants": {"light": {"label": "Light", "keys": {"gated_mlp": False}}},
        "datasets": {
            "ml-slice": {
                "settings": {"epochs": 1},
                "tables": {
                    "table2": {
                        "kind": "accuracy",
                        "columns": ["Recall@10", "NDCG@10"],
                        "rows": {"GLINTRU": [0.5, 0.25], "GRU4Rec": [None, None]},
                    },
                    "table3": {
                        "kind": "cost",
                        "columns": ["train_s_epoch", "infer_ms"],
                        "units": ["s per epoch", "ms"],
                        "rows": {"GRU4Rec": [3.0, None], "GLINTRU": [None, None]},
                    },
                    "table4": {
                        "kind": "accuracy",
                        "columns": ["Recall@10", "NDCG@10"],
                        "rows": {"GLINTRU@light": [0.4, 0.2]},
                    },
                },
            }
        },
        "notes": ["a note"],
    }
    path = tmp_path / "paper.yaml"
    path.write_text(yaml.safe_dump(preset))
    return str(path)


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


# ------------------------------------------------------------------ the shipped preset
def test_shipped_preset_rows_are_known_models():
    preset = load_preset("glint-ru")
    assert preset.proposed == "GLINTRU" and preset.metrics == ("Recall@10", "MRR@10", "NDCG@10")
    for model in preset.models:
        assert canonical_model_name(model) == model
    assert {"LinRec", "Mamba4Rec", "SMLP4Rec", "SASRec", "LightSANs"} <= set(preset.models)
    assert {v.name for v in preset.variants} >= {"no_gru", "light", "selective_elu", "blocks4", "gru_layers2"}
    beauty = preset.dataset("amazon-beauty")
    assert beauty.tables["table2"].rows["GLINTRU"] == [0.4472, 0.2498, 0.2964]
    assert list(beauty.tables) == ["table1", "table2", "table3", "table6", "table7", "table9"]
    assert "GLINTRU@blocks4" in preset.entries("amazon-beauty") and "GLINTRU@blocks4" not in preset.entries("ml-1m")
    assert preset.dataset("ml-1m").settings["MAX_ITEM_LIST_LENGTH"] == 200


def test_bad_preset_is_one_line(tmp_path):
    path = tmp_path / "bad.yaml"
    raw = yaml.safe_load(open(small_preset(tmp_path)))
    raw["datasets"]["ml-slice"]["tables"]["table2"]["rows"]["GLINTRU"] = [0.5]
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match="has 1 values for 2 columns"):
        load_preset(str(path))
    raw["datasets"]["ml-slice"]["tables"]["table2"]["rows"] = {"GLINTRU@nope": [0.5, 0.2]}
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match="not a model or variant"):
        load_preset(str(path))
    with pytest.raises(UserError, match="no preset 'nope'"):
        load_preset("nope")


@pytest.mark.parametrize(
    "args, message",
    [
        (["nope", "--dataset=ml-1m"], "no preset 'nope'"),
        (["glint-ru", "--dataset=ml-100k"], "has no data set 'ml-100k'"),
        (["glint-ru", "--dataset=ml-1m", "--model=Nope"], "is not a row of preset"),
        (["glint-ru", "--dataset=ml-1m", "--seed=3"], "takes --seeds"),
        (["glint-ru", "--dataset=ml-1m", "--budget=0"], "at least 1 batch"),
        (["glint-ru", "--dataset=ml-1m", "--trials=3"], "it is an option of tune"),
    ],
)
def test_mistakes_are_one_line_before_any_run(tmp_path, capsys, args, message):
    out = tmp_path / "out"
    assert cli(["reproduce", *args, f"--results-dir={out}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("recbole_ext: error:") and message in err[0]
    assert not out.exists()


def test_bad_setting_leaves_no_folder(tmp_path, ml100k_slice, capsys):
    out = tmp_path / "out"
    code = cli(
        ["reproduce", small_preset(tmp_path), "--dataset=ml-slice", f"--data_path={ml100k_slice}"]
        + ["--kernel_size=0", f"--results-dir={out}"]
    )
    assert code == 2 and "kernel_size" in capsys.readouterr().err
    assert not out.exists()


# ------------------------------------------------------------------ the t-test
def test_t_test_over_seeds_then_over_users():
    from recbole_ext.compare import RunRecord

    def rec(seed, value, per_user=None):
        return RunRecord("GLINTRU", "d", seed, test_result={"ndcg@10": value}, per_user=per_user or {})

    proposed = [rec(1, 0.30), rec(2, 0.32), rec(3, 0.31)]
    other = [rec(1, 0.20), rec(2, 0.23), rec(3, 0.21)]
    p, how = t_test(proposed, other, "NDCG@10")
    from scipy.stats import ttest_rel

    assert how == "seeds" and p == pytest.approx(ttest_rel([0.30, 0.32, 0.31], [0.20, 0.23, 0.21]).pvalue)
    a, b = [1.0, 0.0, 0.5, 1.0], [0.0, 0.0, 0.5, 0.5]
    p, how = t_test([rec(1, 0.6, {"ndcg@10": a})], [rec(1, 0.25, {"ndcg@10": b})], "NDCG@10")
    assert how == "users" and p == pytest.approx(ttest_rel(a, b).pvalue)
    assert t_test([rec(1, 0.6)], [rec(2, 0.25)], "NDCG@10") == (None, "")


# ------------------------------------------------------------------ a whole small reproduction
def test_small_preset_tables_and_resume(tmp_path, ml100k_slice):
    out = str(tmp_path / "out")
    request = ReproduceRequest(
        paper=small_preset(tmp_path),
        dataset="ml-slice",
        budget=2,
        config_args=(f"--data_path={ml100k_slice}", *TINY_KEYS),
        results_dir=out,
    )
    lines = []
    assert reproduce(request, echo=lines.append) == 0
    runs = sorted(os.listdir(os.path.join(out, "runs")))
    assert runs == [f"{m}-seed{s}.json" for m in ("GLINTRU", "GLINTRU@light", "GRU4Rec") for s in (1, 2)]
    light = json.load(open(os.path.join(out, "runs", "GLINTRU@light-seed1.json")))
    assert light["train_batches"][0][0] == 2 and light["train_batches"][0][1] > 2  # the budget held
    assert "gated_mlp: false" in open(os.path.join(out, "configs", "GLINTRU@light.yaml")).read()

    cells = {(r["table"], r["row"], r["column"]): r for r in read_csv(os.path.join(out, "tables.csv"))}
    mine = cells[("table2", "GLINTRU", "Recall@10")]
    assert mine["paper"] == "0.5" and float(mine["diff"]) == pytest.approx(float(mine["ours"]) - 0.5)
    assert mine["seeds"] == "2" and mine["std"] != ""
    gru = cells[("table2", "GRU4Rec", "NDCG@10")]
    assert gru["paper"] == "" and gru["test"] == "seeds" and 0 <= float(gru["p"]) <= 1
    assert cells[("table4", "Light", "Recall@10")]["paper"] == "0.4"
    assert cells[("table3", "GRU4Rec", "train_s_epoch")]["paper"] == "3.0"
    assert cells[("table3", "GLINTRU", "infer_ms")]["ours"] != "" and ("table3", "GLINTRU", "mem_gb") not in cells
    assert cells[("table3", "GLINTRU", "infer_ms_2048_users")]["ours"] != ""  # our measures beside the paper's
    for row in ("GLINTRU", "GRU4Rec", "Light"):  # the same checkpoints under full ranking and uni100
        table = "table4" if row == "Light" else "table2"
        for protocol in ("full", "uni100"):
            assert 0 <= float(cells[(table, row, f"NDCG@10 {protocol}")]["ours"]) <= 1
    assert len(os.listdir(os.path.join(out, "protocols"))) == 6
    agreement = open(os.path.join(out, "agreement.md")).read()
    assert "Kendall's tau-b over 2 models" in agreement and "| full |" in agreement and "| uni100 |" in agreement
    table2 = open(os.path.join(out, "table2.md")).read()
    assert "Recall@10 full" in table2 and "Recall@10 uni100" in table2 and "full ranking" in table2
    assert "BUDGET RUN" in table2 and "| GLINTRU |" in table2 and "| GRU4Rec |" in table2
    assert "| Light |" in open(os.path.join(out, "table4.md")).read()
    assert "- a note" in open(os.path.join(out, "reproduction.md")).read()
    assert "Training epochs were cut to 2 batches" in open(os.path.join(out, "comparison.md")).read()

    again = []
    assert reproduce(request, echo=again.append) == 0
    assert sum("skipped" in line and "[protocols]" not in line for line in again) == 6
    assert sum("[protocols]" in line and "skipped" in line for line in again) == 6  # nothing evaluated again
    assert read_csv(os.path.join(out, "tables.csv")) == list(cells.values())


@pytest.mark.slow
@pytest.mark.skipif(not SHARED, reason="$RECBOLE_EXT_TEST_DATA names no data folder")
def test_glint_ru_preset_on_a_beauty_slice(tmp_path):
    """Every row of the shipped preset on Beauty, one batch each, on the first 120 users of the
    paper's Beauty: each of Beauty's tables holds every row, with the paper's value beside ours,
    the accuracy tables the same checkpoints under full ranking and uni100, Table 1 our counts,
    and every setting line says the slice differs from the paper's Beauty."""
    src = os.path.join(SHARED, "amazon-beauty", "amazon-beauty.inter")
    folder = tmp_path / "data" / "beauty-slice"
    folder.mkdir(parents=True)
    users, kept = set(), []
    with open(src) as f:
        kept.append(f.readline())
        for line in f:
            user = line.split("\t", 1)[0]
            if user in users or len(users) < 120:
                users.add(user)
                kept.append(line)
    (folder / "beauty-slice.inter").write_text("".join(kept))
    out = str(tmp_path / "out")
    args = [f"--data_path={tmp_path / 'data'}", *TINY_KEYS, "--d_state=4"]
    code = cli(
        ["reproduce", "glint-ru", "--dataset=beauty-slice", "--paper-dataset=amazon-beauty", "--budget=1", "--seeds=1"]
        + [f"--results-dir={out}", *args]
    )
    assert code == 0
    preset = load_preset("glint-ru")
    cells = {(r["table"], r["row"], r["column"]): r for r in read_csv(os.path.join(out, "tables.csv"))}
    beauty = preset.dataset("amazon-beauty")
    for name, table in beauty.tables.items():
        for entry in table.rows if table.kind != "dataset" else ():
            label = table.labels.get(entry, preset.label(entry))
            for column in table.columns:
                cell = cells[(name, label, column)]
                assert float(cell["paper"]) == table.value(entry, column)
                if column == "mem_gb" and cell["ours"] == "":  # CUDA's reserved GiB; on the CPU our peak only
                    assert cells[(name, label, "mem_allocated_gib")]["ours"] != ""
                    continue
                assert cell["ours"] != "" and float(cell["diff"]) == pytest.approx(
                    float(cell["ours"]) - float(cell["paper"])
                )
    for variant in ("gru_layers2", "all_dropouts"):  # the readings' rows, held by no table of the paper
        assert cells[("other", preset.label(f"GLINTRU@{variant}"), "NDCG@10")]["ours"] != ""
    assert cells[("table2", "SASRec", "Recall@10")]["paper"] == "0.4332"
    assert cells[("table2", "SASRec", "Recall@10")]["test"] == "users"
    for name, table in beauty.tables.items():  # the same checkpoints under full ranking and uni100
        for entry in table.rows if table.kind == "accuracy" else ():
            for column, protocol in itertools.product(table.columns, ("full", "uni100")):
                value = cells[(name, table.labels.get(entry, preset.label(entry)), f"{column} {protocol}")]["ours"]
                assert 0 <= float(value) <= 1, (name, entry, column, protocol)
    for name, table in beauty.tables.items():
        text = open(os.path.join(out, f"{name}.md")).read()
        setting = text.splitlines()[0]
        assert "data set beauty-slice run at the preset's amazon-beauty settings" in setting
        assert "it differs from the paper's amazon-beauty: 120 users (paper 22,363)" in setting
        diff = "| diff (ours − paper) |" if table.kind == "dataset" else "| paper"
        assert diff in (text if table.kind == "dataset" else text.splitlines()[4])  # paper, ours, difference
    assert cells[("table1", "beauty-slice (ours)", "users")]["ours"] == "121"  # with the padding id
    assert cells[("table1", "beauty-slice (ours)", "users")]["paper"] == "22364.0"
    table3 = open(os.path.join(out, "table3.md")).read()
    assert "Infer ms/RecBole batch ours | paper (ms per batch of 2048 of what is not said) | diff" in table3
    assert "Infer ms/2048 users ours" in table3 and "- Reserved GiB: CUDA only" in table3
    agreement = open(os.path.join(out, "agreement.md")).read()
    assert f"Kendall's tau-b over {len(preset.models)} models" in agreement and "| uni100 |" in agreement
    assert "no item file" in open(os.path.join(out, "reproduction.md")).read()


def test_compare_variant_needs_its_file(tmp_path, ml100k_slice):
    """``Model@name`` in a comparison reads ``<model-configs>/Model@name.yaml``; without one it is
    a one-line mistake before any run."""
    from recbole_ext.command import CompareRequest
    from recbole_ext.compare import preflight
    from recbole_ext.pipeline import canonical_entry, split_entry

    assert split_entry("GLINTRU@no_gru") == ("GLINTRU", "no_gru") and canonical_entry("glintru@x") == "GLINTRU@x"
    with pytest.raises(UserError, match="a variant is written"):
        split_entry("GLINTRU@")
    args = (f"--data_path={ml100k_slice}",)
    with pytest.raises(UserError, match=r"variant GLINTRU@x needs its settings in --model-configs"):
        preflight(CompareRequest(models=("GLINTRU@x",), dataset="ml-slice", config_args=args))
    (tmp_path / "GLINTRU@x.yaml").write_text("gated_mlp: False\n")
    runs = preflight(
        CompareRequest(
            models=("GLINTRU", "glintru@x"), dataset="ml-slice", config_args=args, model_configs=str(tmp_path)
        )
    )
    assert list(runs) == ["GLINTRU", "GLINTRU@x"]
    assert runs["GLINTRU"].config["gated_mlp"] is True and runs["GLINTRU@x"].config["gated_mlp"] is False


@pytest.mark.slow
def test_small_preset_as_a_parallel_grid(tmp_path, ml100k_slice):
    """``--jobs``: the rows run as processes of the comparison grid (checked once, before any
    starts) and give the tables the serial run gives: every row, the paper's value beside ours."""
    out = str(tmp_path / "out")
    request = ReproduceRequest(
        paper=small_preset(tmp_path),
        dataset="ml-slice",
        seeds=(1,),
        budget=1,
        jobs=2,
        config_args=(f"--data_path={ml100k_slice}", *TINY_KEYS),
        results_dir=out,
    )
    assert reproduce(request, echo=lambda line: None) == 0
    assert sorted(os.listdir(os.path.join(out, "jobs"))) == [
        f"{m}-seed1.txt" for m in ("GLINTRU", "GLINTRU@light", "GRU4Rec")
    ]
    cells = {(r["table"], r["row"], r["column"]): r for r in read_csv(os.path.join(out, "tables.csv"))}
    assert cells[("table2", "GLINTRU", "Recall@10")]["paper"] == "0.5"
    assert cells[("table2", "GRU4Rec", "NDCG@10")]["ours"] != "" and cells[("table4", "Light", "NDCG@10")]["ours"] != ""
