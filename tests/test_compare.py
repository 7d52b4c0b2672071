"""Side-by-side runs, comparison tables, the log report and the plot (recbole_ext.compare/report/plot)."""

from __future__ import annotations

import csv
import glob
import json
import os

import numpy as np
import pytest
import torch
import yaml
from scipy.stats import ttest_rel

from recbole_ext import compare
from recbole_ext.compare import runner
from recbole_ext.results import logparse, plot, render, table as results_table
from recbole_ext.cli import main as cli_main

def cli_args(data_path: str, results_dir: str, models: str):
    return [
        f"--model={models}", "--dataset=ml-slice", f"--data_path={data_path}", f"--results-dir={results_dir}",
        "--epochs=1", "--train_batch_size=256", "--eval_batch_size=256", "--hidden_size=16",
        "--embedding_size=16", "--inner_size=32", "--MAX_ITEM_LIST_LENGTH=20", "--show_progress=False",
        "--state=INFO", "--no-save", "--no-plot",
        "--load_col={'inter': ['user_id', 'item_id', 'timestamp']}",
    ]


@pytest.fixture(scope="module")
def side_by_side(ml100k_slice, tmp_path_factory):
    """Run 1: GRU4Rec trains, SASRec runs out of memory, NoSuchModel is unknown (exit 1).
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
        rc1 = cli_main(cli_args(ml100k_slice, res, "GRU4Rec,SASRec,NoSuchModel"))
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
    return dict(res=res, rc1=rc1, rc2=rc2, runs1=runs1, md1=md1, calls1=calls1, calls2=calls2, work=str(work))


def test_failed_models_are_rows_with_reason_and_exit_1(side_by_side):
    s = side_by_side
    assert s["rc1"] == 1
    assert s["calls1"] == ["GRU4Rec", "SASRec"]  # NoSuchModel never reached training
    assert s["runs1"]["GRU4Rec-seed2020.json"]["status"] == "ok"
    sas = s["runs1"]["SASRec-seed2020.json"]
    assert sas["status"] == "failed" and sas["reason"].startswith("OutOfMemoryError: CUDA out of memory")
    rows = {line.split("|")[1].strip(): line for line in s["md1"].splitlines() if line.startswith("| ")}
    assert "failed: OutOfMemoryError" in rows["SASRec"]
    assert "failed: UnknownModelError: unknown model 'NoSuchModel'" in rows["NoSuchModel"]
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
    assert cols == ["Model", "Recall@10", "MRR@10", "NDCG@10", "Hit@10", "Precision@10", "Best valid MRR@10",
                    "Epochs", "Params", "Train s/epoch", "Infer ms/batch", "Peak mem MB", "Protocol", "Device",
                    "Status"]
    lines = md.splitlines()
    first = lines[lines.index(header):]
    first = first[:first.index("")] if "" in first else first  # the main table (p-values follow it)
    body = [line for line in first if line.startswith("| ") and not line.startswith("| Model")]
    assert [b.split("|")[1].strip() for b in body] == ["GRU4Rec", "SASRec"]
    for b in body:
        cells = [c.strip() for c in b.strip("|").split("|")]
        assert cells[7] == "1" and cells[12] == "full" and cells[13].startswith("cpu") and cells[14] == "ok"
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
    records = {r["model"]: r for r in logparse.records_from_logs([os.path.join(res, "log")])}
    assert set(records) == {"GRU4Rec", "SASRec"}
    for model, rec in records.items():
        stored = json.load(open(os.path.join(res, "runs", f"{model}-seed2020.json")))
        assert rec["status"] == "ok" and rec["seed"] == 2020 and rec["dataset"] == "ml-slice"
        assert rec["test_result"] == pytest.approx(stored["test_result"])
        for key in ("n_params", "epochs_run", "protocol", "eval_batch_ms", "train_epoch_s", "peak_mem_mb",
                    "best_valid_score", "valid_curve"):
            assert rec[key] == stored[key], key
    assert cli_main(["report", os.path.join(res, "log"), "--no-plot"]) == 0
    out = capsys.readouterr().out
    assert "| GRU4Rec |" in out and "| SASRec |" in out


PLAIN_LOG = """Sun 22 Nov 2026 10:00:00 INFO  ['run_recbole.py', '--model=SASRec', '--dataset=ml-100k']
Sun 22 Nov 2026 10:00:00 INFO  
General Hyper Parameters:
gpu_id = 0
use_gpu = True
seed = 2020
state = INFO
reproducibility = True
data_path = dataset/ml-100k
checkpoint_dir = saved

Training Hyper Parameters:
epochs = 3
train_batch_size = 2048
train_neg_sample_args = {{'distribution': 'none', 'sample_num': 'none', 'alpha': 'none', 'dynamic': False, 'candidate_num': 0}}

Evaluation Hyper Parameters:
eval_args = {{'split': {{'LS': 'valid_and_test'}}, 'order': 'TO', 'group_by': 'user', 'mode': {mode}}}
repeatable = True
metrics = ['Recall', 'MRR', 'NDCG', 'Hit', 'Precision']
topk = [10]
valid_metric = MRR@10
valid_metric_bigger = True
eval_batch_size = 4096

Other Hyper Parameters: 
MODEL_TYPE = ModelType.SEQUENTIAL
device = cuda


Sun 22 Nov 2026 10:00:01 INFO  ml-100k
The number of users: 944
Average actions of users: 106.04453870625663
The number of items: 1683
Remain Fields: ['user_id', 'item_id', 'rating', 'timestamp']
Sun 22 Nov 2026 10:00:02 INFO  {model}(
  (item_embedding): Embedding(1683, 64, padding_idx=0)
  (loss_fct): CrossEntropyLoss()
)
Trainable parameters: {params}
{epochs}{tail}"""

EPOCH = """Sun 22 Nov 2026 10:00:{s:02d} INFO  epoch {e} training [time: {t:.2f}s, train loss: 1234.5678]
Sun 22 Nov 2026 10:00:{s:02d} INFO  epoch {e} evaluating [time: 0.31s, valid_score: {v:.6f}]
Sun 22 Nov 2026 10:00:{s:02d} INFO  valid result: 
recall@10 : 0.05    mrr@10 : {v:.4f}    ndcg@10 : 0.03    hit@10 : 0.05    precision@10 : 0.005
Sun 22 Nov 2026 10:00:{s:02d} INFO  Saving current: saved/{model}-Nov-22-2026_10-00-00.pth
"""

TAIL = """Sun 22 Nov 2026 10:00:30 INFO  Loading model structure and parameters from saved/{model}.pth
Sun 22 Nov 2026 10:00:31 INFO  best valid : {best}
Sun 22 Nov 2026 10:00:31 INFO  test result: {test}
"""


def plain_log(folder, model, params, times, valids, test, mode="{'valid': 'full', 'test': 'full'}", numpy_repr=False,
              finished=True):
    epochs = "".join(EPOCH.format(s=10 + i, e=i, t=t, v=v, model=model) for i, (t, v) in enumerate(zip(times, valids)))
    wrap = (lambda x: f"np.float64({x})") if numpy_repr else (lambda x: repr(x))
    best = max(valids)
    best_s = "OrderedDict([" + ", ".join(f"('{k}', {wrap(v)})" for k, v in
                                         [("recall@10", 0.05), ("mrr@10", round(best, 4))]) + "])"
    test_s = "OrderedDict([" + ", ".join(f"('{k}', {wrap(v)})" for k, v in test.items()) + "])"
    tail = TAIL.format(model=model, best=best_s, test=test_s) if finished else ""
    text = PLAIN_LOG.format(mode=mode, model=model, params=params, epochs=epochs, tail=tail)
    d = os.path.join(folder, model)
    os.makedirs(d, exist_ok=True)
    path = os.path.join(d, f"{model}-ml-100k-Nov-22-2026_10-00-00-3f2a1b.log")
    with open(path, "w") as f:
        f.write(text)
    return path


def test_report_reads_plain_recbole_logs(tmp_path, capsys):
    logs = str(tmp_path / "log")
    test_sas = {"recall@10": 0.0721, "mrr@10": 0.0254, "ndcg@10": 0.0362, "hit@10": 0.0721, "precision@10": 0.0072}
    test_gru = {"recall@10": 0.0604, "mrr@10": 0.0213, "ndcg@10": 0.0303, "hit@10": 0.0604, "precision@10": 0.006}
    plain_log(logs, "SASRec", 103232, [4.5, 4.25, 4.0], [0.0201, 0.0243, 0.0239], test_sas)
    plain_log(logs, "GRU4Rec", 120512, [2.0, 2.5], [0.0150, 0.0190], test_gru, numpy_repr=True,
              mode="{'valid': 'uni100', 'test': 'pop100'}")
    plain_log(logs, "BERT4Rec", 99000, [9.0], [0.01], {}, finished=False)
    recs = {r["model"]: r for r in logparse.records_from_logs([logs])}
    sas, gru, bert = recs["SASRec"], recs["GRU4Rec"], recs["BERT4Rec"]
    assert sas["test_result"] == test_sas and gru["test_result"] == test_gru
    assert sas["dataset"] == "ml-100k" and sas["seed"] == 2020 and sas["device"] == "cuda"
    assert sas["n_params"] == 103232 and sas["epochs_run"] == 3
    assert sas["train_epoch_s"] == [4.5, 4.25, 4.0]
    assert sas["valid_curve"] == [[0, 0.0201], [1, 0.0243], [2, 0.0239]]
    assert sas["best_valid_score"] == pytest.approx(0.0243)
    assert sas["protocol"] == "full" and gru["protocol"] == "sampled pop100, per-epoch negatives"
    assert sas["eval_batch_ms"] == [] and sas["peak_mem_mb"] is None  # not in a plain log
    assert bert["status"] == "failed" and "unfinished" in bert["reason"]

    table = results_table.build_table(list(recs.values()))
    md = render.to_markdown(table)
    row = {line.split("|")[1].strip(): [c.strip() for c in line.strip("|").split("|")] for line in md.splitlines()[2:]}
    assert row["SASRec"][1] == "**0.0721**" and row["GRU4Rec"][1] == "0.0604"
    assert row["SASRec"][9] == "4.25" and row["GRU4Rec"][9] == "**2.25**"  # s/epoch, lower is better
    assert row["BERT4Rec"][-1].startswith("failed")

    out = tmp_path / "out"
    assert cli_main(["report", logs, "--out", str(out), "--no-plot"]) == 1  # BERT4Rec did not finish
    assert (out / "comparison.md").is_file() and (out / "comparison.csv").is_file()
    assert "| SASRec |" in capsys.readouterr().out


def fake_record(model, seed, ndcg, secs=1.0):
    return {"model": model, "dataset": "d", "seed": seed, "status": "ok", "reason": None,
            "test_result": {"recall@10": ndcg * 2, "ndcg@10": ndcg}, "best_valid_score": ndcg,
            "valid_metric": "NDCG@10", "valid_metric_bigger": True, "epochs_run": 3, "protocol": "full",
            "n_params": 1000, "train_epoch_s": [secs, secs], "eval_batch_ms": [5.0], "peak_mem_mb": 10.0,
            "device": "cpu", "valid_curve": [[0, ndcg / 2], [1, ndcg]]}


def test_seeds_give_mean_std_and_paired_ttest():
    a = [0.30, 0.32, 0.31, 0.33]
    b = [0.20, 0.25, 0.21, 0.22]
    c = [0.21, 0.22, 0.26, 0.20]
    records = [fake_record(m, s, v) for m, vals in (("A", a), ("B", b), ("C", c)) for s, v in zip([1, 2, 3, 4], vals)]
    table = results_table.build_table(records)
    rows = {r["model"]: r for r in table["rows"]}
    cell = rows["B"]["cells"]["test:ndcg@10"]
    assert cell["mean"] == pytest.approx(np.mean(b)) and cell["std"] == pytest.approx(np.std(b, ddof=1))
    assert rows["B"]["p_values"]["test:ndcg@10"] == pytest.approx(ttest_rel(a, b).pvalue)
    assert rows["C"]["p_values"]["test:ndcg@10"] == pytest.approx(ttest_rel(a, c).pvalue)
    assert rows["A"]["mark"]["test:ndcg@10"] == "best*"  # A beats B and C with p < 0.05
    md = render.to_markdown(table)
    assert f"**{np.mean(a):.4f} ± {np.std(a, ddof=1):.4f}**\\*" in md
    assert "Paired t-test" in render.write_outputs(records, "d", None, echo=lambda s: None)["markdown"]

    # B against C only: no significant winner, so no asterisk
    table = results_table.build_table([r for r in records if r["model"] != "A"])
    best = [r for r in table["rows"] if r["mark"].get("test:ndcg@10")]
    assert len(best) == 1 and best[0]["mark"]["test:ndcg@10"] == "best"
    other = next(r for r in table["rows"] if not r["mark"].get("test:ndcg@10"))
    assert other["p_values"]["test:ndcg@10"] > 0.05


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
        rec["fingerprint"] = fp
        runner._store(res, rec, seed)
        return rec

    monkeypatch.setattr(runner, "_run_model", fake_run)
    def request(options, force=False):
        return compare.CompareRequest(("GRU4Rec",), "ml-slice", config_args=tuple(options), seeds=(1,),
                                      results_dir=res, plot=False, force=force)

    quiet = lambda s: None  # noqa: E731
    compare.run_comparison(request(["--epochs=1"]), quiet)
    compare.run_comparison(request(["--epochs=1"]), quiet)
    assert ran == ["GRU4Rec"]
    compare.run_comparison(request(["--epochs=1"], force=True), quiet)
    compare.run_comparison(request(["--epochs=2"]), quiet)
    assert ran == ["GRU4Rec"] * 3
    assert not glob.glob(os.path.join(res, "runs", ".tmp-*"))  # atomic writes leave no temporaries


def test_plot_draws_both_panels_from_the_records(tmp_path):
    import matplotlib.image

    records = [fake_record("A", 1, 0.3, 2.0), fake_record("A", 2, 0.1, 2.0), fake_record("B", 1, 0.2, 1.0)]
    path = str(tmp_path / "c.png")
    assert plot.plot_comparison(records, path, echo=lambda s: None) == path
    image = matplotlib.image.imread(path)
    assert image.shape[:2] == (462, 1210)  # 11 x 4.2 inches at 110 dpi
    assert image[..., :3].std() > 0.05  # something was drawn, not a blank canvas
    curve = dict(plot.curves(records))["A"]  # seeds averaged epoch by epoch
    runs = [dict(r["valid_curve"]) for r in records if r["model"] == "A"]
    assert curve == [(e, (runs[0][e] + runs[1][e]) / 2) for e in sorted(runs[0])]


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
    table = results_table.build_table(list(ok.values()))
    assert table["significance"] == "users"
    col = next(c for c in table["columns"] if c.key == "test:ndcg@10")
    best = next(r for r in table["rows"] if r["mark"].get(col.key, "").startswith("best"))
    other = next(r for r in table["rows"] if r is not best)
    x, y = ok[best["model"]]["per_user"]["ndcg@10"], ok[other["model"]]["per_user"]["ndcg@10"]
    assert other["p_values"][col.key] == pytest.approx(wilcoxon(x, y).pvalue)
    assert other["p_values_t"][col.key] == pytest.approx(ttest_rel(x, y).pvalue)
    assert "Wilcoxon signed-rank" in render.notes(table, list(ok.values()))
    rows = list(csv.DictReader(render.to_csv(table).splitlines()))
    assert rows[[r["model"] for r in rows].index(other["model"])]["test:ndcg@10_p_t_vs_best"]


def test_parallel_grid_gives_the_serial_table_and_resumes(ml100k_slice, tmp_path, monkeypatch, capsys):
    """``--jobs=2`` runs each (model, seed) as its own process; the records and the table equal
    those of ``--jobs=1`` (the serial runner) for the same seeds, and a rerun skips them all."""
    monkeypatch.chdir(tmp_path)
    args = lambda res, *extra: cli_args(ml100k_slice, str(tmp_path / res), "GRU4Rec,SASRec") + ["--seeds=1"] + list(extra)
    assert cli_main(args("serial")) == 0
    assert cli_main(args("parallel", "--jobs=2")) == 0
    out = capsys.readouterr().out
    assert "GRU4Rec seed 1: started (1 threads)" in out and "SASRec seed 1: ok after" in out
    for model in ("GRU4Rec", "SASRec"):
        serial = json.load(open(tmp_path / "serial" / "runs" / f"{model}-seed1.json"))
        parallel = json.load(open(tmp_path / "parallel" / "runs" / f"{model}-seed1.json"))
        assert parallel["test_result"] == serial["test_result"] and parallel["per_user"] == serial["per_user"]
        assert os.path.isfile(tmp_path / "parallel" / "jobs" / f"{model}-seed1.txt")
    table = lambda res: [l.split("|")[1:7] for l in open(tmp_path / res / "comparison.md") if l.startswith("| ")]
    assert table("parallel") == table("serial")
    assert cli_main(args("parallel", "--jobs=2")) == 0
    assert capsys.readouterr().out.count("already in") == 2  # resumed: nothing ran again
    assert cli_main(args("parallel", "--jobs=0")) == 2
    assert "--jobs must be at least 1" in capsys.readouterr().err
