"""Side-by-side runs and comparison tables (recbole_ext.compare), and the report from our own logs."""

from __future__ import annotations

import csv
import dataclasses
import glob
import json
import os

import numpy as np
import pytest
import torch
import yaml
from scipy.stats import ttest_rel

from recbole_ext import compare
from recbole_ext.cli import main as cli_main
from recbole_ext.compare import ResultsLayout, RunRecord, runner
from recbole_ext.results import logparse, render
from recbole_ext.results import table as results_table

from synthetic import fake_record


def cli_args(data_path: str, results_dir: str, models: str):
    return [
        f"--model={models}",
        "--dataset=ml-slice",
        f"--data_path={data_path}",
        f"--results-dir={results_dir}",
        "--epochs=1",
        "--train_batch_size=256",
        "--eval_batch_size=256",
        "--hidden_size=16",
        "--embedding_size=16",
        "--inner_size=32",
        "--MAX_ITEM_LIST_LENGTH=20",
        "--show_progress=False",
        "--state=INFO",
        "--no-save",
        "--no-plot",
        "--load_col={'inter': ['user_id', 'item_id', 'timestamp']}",
    ]


@pytest.fixture(scope="module")
def side_by_side(ml100k_slice, tmp_path_factory):
    """Run 0: NoSuchModel is unknown: refused before any model trains (exit 2).
    Run 1: GRU4Rec trains, SASRec runs out of memory (exit 1).
    Run 2, same results folder, GRU4Rec and SASRec: GRU4Rec is skipped, SASRec trains (exit 0)."""
    from recbole_ext.pipeline import Run

    qs = Run  # the pipeline's step the runner calls is the one to replace

    work = tmp_path_factory.mktemp("compare")
    res = str(work / "res")
    old_cwd, real = os.getcwd(), qs.train_and_test
    calls = []

    def oom_for_sasrec(run, *a, **k):
        calls.append(run.config["model"])
        if run.config["model"] == "SASRec":
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real(run, *a, **k)

    def counting(run, *a, **k):
        calls.append(run.config["model"])
        return real(run, *a, **k)

    os.chdir(work)
    try:
        qs.train_and_test = oom_for_sasrec
        rc0 = cli_main(cli_args(ml100k_slice, res, "GRU4Rec,SASRec,NoSuchModel"))
        calls0, left0 = list(calls), os.path.exists(res)
        rc1 = cli_main(cli_args(ml100k_slice, res, "GRU4Rec,SASRec"))
        runs1 = {os.path.basename(p): json.load(open(p)) for p in glob.glob(os.path.join(res, "runs", "*.json"))}
        md1 = open(os.path.join(res, "comparison.md")).read()
        calls1 = list(calls)
        calls.clear()
        qs.train_and_test = counting
        rc2 = cli_main(cli_args(ml100k_slice, res, "GRU4Rec,SASRec"))
        calls2 = list(calls)
    finally:
        qs.train_and_test = real
        os.chdir(old_cwd)
    return dict(
        res=res,
        rc0=rc0,
        calls0=calls0,
        left0=left0,
        rc1=rc1,
        rc2=rc2,
        runs1=runs1,
        md1=md1,
        calls1=calls1,
        calls2=calls2,
        work=str(work),
    )


def test_failed_models_are_rows_with_reason_and_exit_1(side_by_side):
    s = side_by_side
    assert s["rc0"] == 2 and s["calls0"] == [] and not s["left0"]  # an unknown name: nothing ran
    assert s["rc1"] == 1
    assert s["calls1"] == ["GRU4Rec", "SASRec"]
    assert s["runs1"]["GRU4Rec-seed2020.json"]["status"] == "ok"
    sas = s["runs1"]["SASRec-seed2020.json"]
    assert sas["status"] == "failed" and sas["reason"].startswith("OutOfMemoryError: CUDA out of memory")
    rows = {line.split("|")[1].strip(): line for line in s["md1"].splitlines() if line.startswith("| ")}
    assert "failed: OutOfMemoryError" in rows["SASRec"]
    assert rows["GRU4Rec"].rstrip().endswith("| ok |")


def test_comparison_keeps_its_files_inside_the_results_folder(side_by_side):
    s = side_by_side
    runs = os.listdir(os.path.join(s["res"], "log_tensorboard"))
    assert runs and all(r.startswith(("GRU4Rec-", "SASRec-")) for r in runs)
    assert not os.path.exists(os.path.join(s["work"], "log_tensorboard"))
    assert not os.path.exists(os.path.join(s["work"], "saved"))


def test_rerun_skips_done_models_and_retries_failed(side_by_side):
    assert side_by_side["rc2"] == 0
    assert side_by_side["calls2"] == ["SASRec"]


def test_table_rows_columns_and_files(side_by_side):
    res = side_by_side["res"]
    for name in ("comparison.md", "comparison.csv", "comparison.tex", "configs/GRU4Rec.yaml", "configs/SASRec.yaml"):
        assert os.path.isfile(os.path.join(res, name)), name
    md = open(os.path.join(res, "comparison.md")).read()
    header = next(line for line in md.splitlines() if line.startswith("| Model"))
    cols = [c.strip() for c in header.strip("|").split("|")]
    assert cols == [
        "Model",
        "Recall@10",
        "MRR@10",
        "NDCG@10",
        "Hit@10",
        "Precision@10",
        "Best valid MRR@10",
        "Epochs",
        "Params",
        "Train s/epoch",
        "Infer ms/batch",
        "Peak mem MB",
        "Protocol",
        "Device",
        "Status",
    ]
    lines = md.splitlines()
    first = lines[lines.index(header) :]
    first = first[: first.index("")] if "" in first else first  # the main table (p-values follow it)
    body = [line for line in first if line.startswith("| ") and not line.startswith("| Model")]
    assert [b.split("|")[1].strip() for b in body] == ["GRU4Rec", "SASRec"]
    for b in body:
        cells = [c.strip() for c in b.strip("|").split("|")]
        assert cells[7] == "1" and cells[12].startswith("full; leave-one-out, leakage ")
        assert cells[13].startswith("cpu") and cells[14] == "ok"
        assert all(c.strip("*") for c in cells[1:12]), b  # every number present
    assert "**" in md  # the best value of each column is bold

    with open(os.path.join(res, "comparison.csv")) as f:
        rows = list(csv.DictReader(f))
    assert [r["model"] for r in rows] == ["GRU4Rec", "SASRec"]
    gru = json.load(open(os.path.join(res, "runs", "GRU4Rec-seed2020.json")))
    assert float(rows[0]["test:ndcg@10"]) == pytest.approx(gru["test_result"]["ndcg@10"])
    assert int(float(rows[0]["n_params"])) == gru["n_params"] > 0
    assert float(rows[0]["train_s_epoch"]) == pytest.approx(gru["train_epoch_s"][0])
    assert len(gru["eval_batch_ms"]) == 2  # one valid and one test evaluation
    assert gru["peak_mem_mb"] is not None and gru["peak_mem_mb"] >= 0 and gru["mem_method"]
    assert gru["valid_curve"] and gru["valid_curve"][0][0] == 0
    tex = open(os.path.join(res, "comparison.tex")).read()
    assert r"\textbf{" in tex and r"\begin{tabular}" in tex and "Recall@10" in tex

    cfg = yaml.safe_load(open(os.path.join(res, "configs", "SASRec.yaml")))
    assert cfg["model"] == "SASRec" and cfg["hidden_size"] == 16 and cfg["MAX_ITEM_LIST_LENGTH"] == 20


def test_each_model_logs_to_its_own_file_and_shares_the_split(side_by_side):
    res = side_by_side["res"]
    gru_logs = glob.glob(os.path.join(res, "log", "GRU4Rec", "*.log"))
    sas_logs = sorted(glob.glob(os.path.join(res, "log", "SASRec", "*.log")), key=os.path.getmtime)
    assert len(gru_logs) == 1 and len(sas_logs) == 2
    gru = open(gru_logs[0]).read()
    sas = open(sas_logs[-1]).read()
    assert "GRU4Rec(" in gru and "SASRec(" not in gru
    assert "SASRec(" in sas and "GRU4Rec(" not in sas
    assert "test result" in gru and "test result" in sas
    # in run 1 SASRec used the split built for GRU4Rec
    assert "shared with GRU4Rec" in open(sas_logs[0]).read()
    assert "compare failed: OutOfMemoryError" in open(sas_logs[0]).read()


def test_report_rebuilds_the_table_from_our_logs(side_by_side, capsys):
    res = side_by_side["res"]
    records = {r.model: r for r in logparse.records_from_logs([os.path.join(res, "log")])}
    assert set(records) == {"GRU4Rec", "SASRec"}
    for model, rec in records.items():
        stored = json.load(open(os.path.join(res, "runs", f"{model}-seed2020.json")))
        assert rec.status == "ok" and rec.seed == 2020 and rec.dataset == "ml-slice"
        assert rec.test_result == pytest.approx(stored["test_result"])
        for key in (
            "n_params",
            "epochs_run",
            "protocol",
            "eval_batch_ms",
            "eval_recbole_batch_ms",
            "eval_ms_per_2048_users",
            "train_epoch_s",
            "peak_mem_mb",
            "peak_reserved_gib",
            "best_valid_score",
            "valid_curve",
        ):
            assert getattr(rec, key) == stored[key], key
    assert cli_main(["report", os.path.join(res, "log"), "--no-plot"]) == 0
    out = capsys.readouterr().out
    assert "| GRU4Rec |" in out and "| SASRec |" in out


def test_models_share_the_split_only_with_the_same_data_settings(ml100k_slice):
    from recbole_ext.pipeline import Run

    base = {"data_path": ml100k_slice, "load_col": {"inter": ["user_id", "item_id", "timestamp"]}}

    def key(model, **kw):
        return Run.resolve(model, "ml-slice", config_dict={**base, **kw}).split_key()

    assert key("GRU4Rec") == key("SASRec")
    assert key("GRU4Rec") != key("BPR")  # general data set, built differently
    assert key("GRU4Rec") != key("GRU4Rec", MAX_ITEM_LIST_LENGTH=10)
    assert key("GRU4Rec") != key("GRU4Rec", seed=7)


def test_force_and_changed_options_rerun_stored_models(tmp_path, monkeypatch):
    res = str(tmp_path / "res")
    ran = []

    def fake_run(spec, model, seed, fp, shared):
        ran.append(model)
        rec = fake_record(model, seed, 0.1)
        rec.fingerprint = fp
        ResultsLayout(res).store(rec)
        return rec

    monkeypatch.setattr(runner, "_run_model", fake_run)

    def request(options, force=False):
        return compare.CompareRequest(
            ("GRU4Rec",), "ml-slice", config_args=tuple(options), seeds=(1,), results_dir=res, plot=False, force=force
        )

    quiet = lambda s: None  # noqa: E731
    runner.run_comparison(request(["--epochs=1"]), quiet, checked=True)
    runner.run_comparison(request(["--epochs=1"]), quiet, checked=True)
    assert ran == ["GRU4Rec"]
    runner.run_comparison(request(["--epochs=1"], force=True), quiet, checked=True)
    runner.run_comparison(request(["--epochs=2"]), quiet, checked=True)
    assert ran == ["GRU4Rec"] * 3
    assert not glob.glob(os.path.join(res, "runs", ".tmp-*"))  # atomic writes leave no temporaries


def test_stored_records_of_other_versions_load_or_run_again(tmp_path, monkeypatch):
    """A stored record with keys a record lacks, or without some of its keys, loads (the missing
    take their defaults); a file that holds no record is no record, and its run runs again."""
    layout = ResultsLayout(str(tmp_path / "res"))
    os.makedirs(layout.runs_dir)
    path = layout.run_path("GRU4Rec", 1)
    stored = fake_record("GRU4Rec", 1, 0.1)
    stored.fingerprint = "f"
    data = stored.to_dict()
    data.update(written_by="another version", valid_curve=None)
    del data["per_user"], data["finished_at"]
    open(path, "w").write(json.dumps(data))
    loaded = layout.load("GRU4Rec", 1)
    assert loaded == dataclasses.replace(stored, valid_curve=[])  # a null list is its default
    assert layout.load("SASRec", 1) is None
    ran = []
    monkeypatch.setattr(runner, "_run_model", lambda spec, model, seed, fp, shared: ran.append(model) or stored)
    request = compare.CompareRequest(("GRU4Rec",), "ml-slice", seeds=(1,), results_dir=layout.root, plot=False)
    for text in ("not json", "[1, 2]", json.dumps({"model": "GRU4Rec", "status": "ok"}), "", "\udcff"):
        open(path, "w", errors="surrogateescape").write(text)
        assert layout.load("GRU4Rec", 1) is None, text
        runner.run_comparison(request, lambda s: None, checked=True)
    assert ran == ["GRU4Rec"] * 5


def test_one_seed_compares_models_over_users(side_by_side):
    """Each run's record holds its test metrics per user (their mean is the reported metric), and
    with one seed the table tests the best model against the other over users (Wilcoxon signed
    rank, and a paired t-test in the CSV), computed here again with scipy."""
    from scipy.stats import wilcoxon

    runs = [json.load(open(p)) for p in sorted(glob.glob(os.path.join(side_by_side["res"], "runs", "*.json")))]
    ok = {r["model"]: r for r in runs if r["status"] == "ok"}
    assert set(ok) == {"GRU4Rec", "SASRec"}
    for rec in ok.values():
        assert set(rec["per_user"]) == set(rec["test_result"])
        for metric, values in rec["per_user"].items():
            assert abs(np.mean(values) - rec["test_result"][metric]) < 1e-4, metric
    n = {len(v) for rec in ok.values() for v in rec["per_user"].values()}
    assert len(n) == 1 and n.pop() == 60  # every user of ml-slice, in one order
    table = results_table.build_table([RunRecord.from_dict(r) for r in ok.values()])
    assert table["significance"] == "users"
    col = next(c for c in table["columns"] if c.key == "test:ndcg@10")
    best = next(r for r in table["rows"] if r["mark"].get(col.key, "").startswith("best"))
    other = next(r for r in table["rows"] if r is not best)
    x, y = ok[best["model"]]["per_user"]["ndcg@10"], ok[other["model"]]["per_user"]["ndcg@10"]
    assert other["p_values"][col.key] == pytest.approx(wilcoxon(x, y).pvalue)
    assert other["p_values_t"][col.key] == pytest.approx(ttest_rel(x, y).pvalue)
    assert "Wilcoxon signed-rank" in render.notes(table, [RunRecord.from_dict(r) for r in ok.values()])
    rows = list(csv.DictReader(render.to_csv(table).splitlines()))
    assert rows[[r["model"] for r in rows].index(other["model"])]["test:ndcg@10_p_t_vs_best"]


@pytest.mark.slow
def test_parallel_grid_gives_the_serial_table_and_resumes(ml100k_slice, tmp_path, monkeypatch, capsys):
    """``--jobs=2`` runs each (model, seed) as its own process; the records and the table equal
    those of ``--jobs=1`` (the serial runner) for the same seeds, and a rerun skips them all."""
    monkeypatch.chdir(tmp_path)

    def args(res, *extra):
        return cli_args(ml100k_slice, str(tmp_path / res), "GRU4Rec,SASRec") + ["--seeds=1"] + list(extra)

    assert cli_main(args("serial")) == 0
    assert cli_main(args("parallel", "--jobs=2")) == 0
    out = capsys.readouterr().out
    assert "GRU4Rec seed 1: started (1 threads)" in out and "SASRec seed 1: ok after" in out
    for model in ("GRU4Rec", "SASRec"):
        serial = json.load(open(tmp_path / "serial" / "runs" / f"{model}-seed1.json"))
        parallel = json.load(open(tmp_path / "parallel" / "runs" / f"{model}-seed1.json"))
        assert parallel["test_result"] == serial["test_result"] and parallel["per_user"] == serial["per_user"]
        assert os.path.isfile(tmp_path / "parallel" / "jobs" / f"{model}-seed1.txt")

    def table(res):
        return [l.split("|")[1:7] for l in open(tmp_path / res / "comparison.md") if l.startswith("| ")]

    assert table("parallel") == table("serial")
    assert cli_main(args("parallel", "--jobs=2")) == 0
    assert capsys.readouterr().out.count("already in") == 2  # resumed: nothing ran again
    assert cli_main(args("parallel", "--jobs=0")) == 2
    assert "--jobs must be at least 1" in capsys.readouterr().err


@pytest.mark.slow
def test_parallel_grid_without_seeds_gives_the_serial_records_and_table(ml100k_slice, tmp_path, monkeypatch, capsys):
    """Without ``--seeds`` each run uses its configured seed: the parent finds the records the
    jobs write, and only the parent writes the table."""
    monkeypatch.chdir(tmp_path)

    def args(res, *extra):
        return cli_args(ml100k_slice, str(tmp_path / res), "GRU4Rec,SASRec") + list(extra)

    assert cli_main(args("serial")) == 0
    assert cli_main(args("parallel", "--jobs=2")) == 0
    assert "failed" not in capsys.readouterr().out
    for model in ("GRU4Rec", "SASRec"):
        serial = json.load(open(tmp_path / "serial" / "runs" / f"{model}-seed2020.json"))
        parallel = json.load(open(tmp_path / "parallel" / "runs" / f"{model}-seed2020.json"))
        assert parallel["status"] == "ok" and parallel["test_result"] == serial["test_result"]
        job_output = open(tmp_path / "parallel" / "jobs" / f"{model}-seed2020.txt").read()
        assert "comparison.md" not in job_output  # the table is the parent's

    def table(res):
        return [row.split("|")[1:7] for row in open(tmp_path / res / "comparison.md") if row.startswith("| ")]

    assert table("parallel") == table("serial")
