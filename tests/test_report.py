"""Tables and plots from records, and the report from logs of plain RecBole runs
(recbole_ext.results, ``recbole-ext report``)."""

from __future__ import annotations

import os

import numpy as np
import pytest
from scipy.stats import ttest_rel

from recbole_ext.cli import main as cli_main
from recbole_ext.results import logparse, plot, render
from recbole_ext.results import table as results_table
from recbole_ext.results.stats import paired_t_pvalue

from synthetic import fake_record

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


def plain_log(
    folder,
    model,
    params,
    times,
    valids,
    test,
    mode="{'valid': 'full', 'test': 'full'}",
    numpy_repr=False,
    finished=True,
):
    epochs = "".join(EPOCH.format(s=10 + i, e=i, t=t, v=v, model=model) for i, (t, v) in enumerate(zip(times, valids)))
    wrap = (lambda x: f"np.float64({x})") if numpy_repr else (lambda x: repr(x))
    best = max(valids)
    best_s = (
        "OrderedDict(["
        + ", ".join(f"('{k}', {wrap(v)})" for k, v in [("recall@10", 0.05), ("mrr@10", round(best, 4))])
        + "])"
    )
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
    plain_log(
        logs,
        "GRU4Rec",
        120512,
        [2.0, 2.5],
        [0.0150, 0.0190],
        test_gru,
        numpy_repr=True,
        mode="{'valid': 'uni100', 'test': 'pop100'}",
    )
    plain_log(logs, "BERT4Rec", 99000, [9.0], [0.01], {}, finished=False)
    recs = {r.model: r for r in logparse.records_from_logs([logs])}
    sas, gru, bert = recs["SASRec"], recs["GRU4Rec"], recs["BERT4Rec"]
    assert sas.test_result == test_sas and gru.test_result == test_gru
    assert sas.dataset == "ml-100k" and sas.seed == 2020 and sas.device == "cuda"
    assert sas.n_params == 103232 and sas.epochs_run == 3
    assert sas.train_epoch_s == [4.5, 4.25, 4.0]
    assert sas.valid_curve == [[0, 0.0201], [1, 0.0243], [2, 0.0239]]
    assert sas.best_valid_score == pytest.approx(0.0243)
    assert sas.protocol == "full" and gru.protocol == "sampled pop100, per-epoch negatives"
    assert sas.eval_batch_ms == [] and sas.peak_mem_mb is None  # not in a plain log
    assert bert.status == "failed" and "unfinished" in bert.reason

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
    table = results_table.build_table([r for r in records if r.model != "A"])
    best = [r for r in table["rows"] if r["mark"].get("test:ndcg@10")]
    assert len(best) == 1 and best[0]["mark"]["test:ndcg@10"] == "best"
    other = next(r for r in table["rows"] if not r["mark"].get("test:ndcg@10"))
    assert other["p_values"]["test:ndcg@10"] > 0.05


def test_plot_draws_both_panels_from_the_records(tmp_path):
    import matplotlib.image

    records = [fake_record("A", 1, 0.3, 2.0), fake_record("A", 2, 0.1, 2.0), fake_record("B", 1, 0.2, 1.0)]
    path = str(tmp_path / "c.png")
    assert plot.plot_comparison(records, path, echo=lambda s: None) == path
    image = matplotlib.image.imread(path)
    assert image.shape[:2] == (462, 1210)  # 11 x 4.2 inches at 110 dpi
    assert image[..., :3].std() > 0.05  # something was drawn, not a blank canvas
    curve = dict(plot.curves(records))["A"]  # seeds averaged epoch by epoch
    runs = [dict(r.valid_curve) for r in records if r.model == "A"]
    assert curve == [(e, (runs[0][e] + runs[1][e]) / 2) for e in sorted(runs[0])]


def test_a_short_runs_curves_have_whole_epoch_ticks_and_the_legend_stays_off_the_bars(tmp_path):
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    recs = [fake_record("GLINTRU", 1, 0.3), fake_record("SASRec", 1, 0.25, 2.0)]
    for r in recs:
        r.valid_curve = [[0, 0.1]]
    fig, ax = plt.subplots()
    plot._curves_panel(ax, recs, ["GLINTRU", "SASRec"], "NDCG@10")
    assert list(ax.get_xticks()) == [0]
    plt.close(fig)
    assert plot.plot_comparison(recs, str(tmp_path / "p.png"))


def test_paired_t_pvalue_and_its_degenerate_cases():
    a, b = [0.30, 0.32, 0.31, 0.33], [0.20, 0.25, 0.21, 0.22]
    assert paired_t_pvalue(a, b) == pytest.approx(ttest_rel(a, b).pvalue)
    assert paired_t_pvalue(a, a) == 1.0
    # a constant non-zero difference (exact in binary): no spread, as significant as can be, both ways
    assert paired_t_pvalue([0.5, 0.75, 1.0], [0.25, 0.5, 0.75]) == 0.0
    assert paired_t_pvalue([0.25, 0.5, 0.75], [0.5, 0.75, 1.0]) == 0.0


def test_constant_lead_on_a_smaller_is_better_metric_is_significant():
    """The best row of a smaller-is-better metric (RMSE) leads every seed by the same amount:
    the lead is significant and the row starred."""
    records = []
    for model, values in (("A", [0.5, 0.75]), ("B", [0.75, 1.0])):
        for seed, v in zip((1, 2), values):
            rec = fake_record(model, seed, 0.1)
            rec.test_result, rec.valid_metric, rec.valid_metric_bigger, rec.best_valid_score = (
                {"rmse": v},
                "RMSE",
                False,
                v,
            )
            records.append(rec)
    rows = {r["model"]: r for r in results_table.build_table(records)["rows"]}
    assert rows["B"]["p_values"]["test:rmse"] == 0.0
    assert rows["A"]["mark"]["test:rmse"] == "best*"
