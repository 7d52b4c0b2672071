"""The same trained models under other protocols (:mod:`recbole_ext.reproduce.protocols`):
Kendall's tau against hand-counted pairs, and a trained comparison run's checkpoint evaluated
again under pop100 (its own test result), full ranking (what ``evaluate`` gives) and uni100,
stored once and skipped while the checkpoint is unchanged."""

from __future__ import annotations

import ast
import dataclasses
import json
import math
import os

import pytest

from recbole_ext.reproduce.protocols import (
    PROTOCOLS,
    agreement,
    agreement_markdown,
    kendall_tau,
    protocol_args,
    protocol_means,
    protocol_path,
    reevaluate_records,
)

SPLIT = {"split": {"LS": "valid_and_test"}, "order": "TO", "group_by": "user"}


# ------------------------------------------------------------------ Kendall's tau
def test_kendall_tau_against_counted_pairs():
    # one swapped pair of 6: (C - D) / pairs = (5 - 1) / 6
    assert kendall_tau([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(4 / 6)
    assert kendall_tau([0.1, 0.2, 0.3], [0.9, 0.5, 0.2]) == pytest.approx(-1.0)
    # a tie in the first scoring: C = 5, D = 0, one pair tied in a only: tau-b = 5 / sqrt((6 - 1) * 6)
    assert kendall_tau([1, 2, 2, 3], [1, 2, 3, 4]) == pytest.approx(5 / math.sqrt(30))
    # ties on both sides, in the same pair: C = 5, D = 0: 5 / sqrt(5 * 5) = 1
    assert kendall_tau([1, 2, 2, 3], [4, 5, 5, 9]) == pytest.approx(1.0)
    assert kendall_tau([0.3, 0.3, 0.3], [1, 2, 3]) is None  # a constant scoring orders nothing
    assert kendall_tau([1.0], [2.0]) is None
    with pytest.raises(ValueError, match="different lengths"):
        kendall_tau([1, 2], [1, 2, 3])


def test_agreement_per_protocol_and_metric():
    means = {
        "pop100": {"A": {"recall@10": 0.3, "ndcg@10": 0.2}, "B": {"recall@10": 0.2, "ndcg@10": 0.1}, "C": {}},
        "full": {"A": {"recall@10": 0.05, "ndcg@10": 0.01}, "B": {"recall@10": 0.07, "ndcg@10": 0.02}},
        "uni100": {"A": {"recall@10": 0.5, "ndcg@10": 0.4}, "B": {"recall@10": 0.4, "ndcg@10": 0.4}},
    }
    taus = agreement(means, ["Recall@10", "NDCG@10"])
    assert taus == {"full": {"Recall@10": -1.0, "NDCG@10": -1.0}, "uni100": {"Recall@10": 1.0, "NDCG@10": None}}
    text = agreement_markdown(taus, 2, "pop100")
    assert "| full | -1.00 | -1.00 |" in text and "| uni100 | 1.00 | - |" in text


def test_protocol_args_keep_the_split():
    (arg,) = protocol_args(dict(SPLIT, mode="pop100"), "full")
    assert arg.startswith("--eval_args=") and ast.literal_eval(arg.split("=", 1)[1]) == dict(SPLIT, mode="full")
    with pytest.raises(ValueError, match="unknown protocol"):
        protocol_args(SPLIT, "pop50")


def test_protocol_means_average_seeds():
    results = {
        ("A", 1): {"full": {"test": {"recall@10": 0.2}}},
        ("A", 2): {"full": {"test": {"recall@10": 0.4}}},
    }
    assert protocol_means(results)["full"]["A"]["recall@10"] == pytest.approx(0.3)


# ------------------------------------------------------------------ a trained run, evaluated again
@pytest.fixture(scope="module")
def compared(ml100k_slice, tmp_path_factory):
    """``(results_dir, record)`` of one GRU4Rec epoch on ml-slice under pop100 (shared candidates),
    trained through the comparison runner."""
    from recbole_ext import compare
    from recbole_ext.command import CompareRequest

    out = str(tmp_path_factory.mktemp("protocols") / "out")
    args = (
        f"--data_path={ml100k_slice}",
        f"--eval_args={dict(SPLIT, mode='pop100')!r}",
        "--eval_candidates=shared",
        "--load_col={'inter': ['user_id', 'item_id', 'timestamp']}",
        "--epochs=1",
        "--train_neg_sample_args=None",
        "--hidden_size=8",
        "--embedding_size=8",
        "--MAX_ITEM_LIST_LENGTH=10",
        "--metrics=['Recall','MRR','NDCG']",
        "--topk=[10]",
        "--valid_metric=NDCG@10",
        "--show_progress=False",
        "--state=WARNING",
    )
    request = CompareRequest(models=("GRU4Rec",), dataset="ml-slice", config_args=args, seeds=(3,), results_dir=out)
    records = compare.run(request, echo=lambda line: None).records
    assert records[0].ok, records[0].reason
    return out, records[0]


@pytest.mark.slow
def test_protocols_of_a_trained_run(compared, tmp_path, monkeypatch):
    """pop100 gives back the run's own test result (the candidates are shared); the full column
    is what ``evaluate --eval_args`` with mode full gives on the same checkpoint; the figures are
    stored, and skipped while the checkpoint is unchanged."""
    from recbole_ext.serving.evaluate import evaluate_checkpoint

    out, rec = compared
    monkeypatch.chdir(tmp_path)
    lines = []
    results = reevaluate_records(out, [rec], device="cpu", echo=lines.append)
    got = results[("GRU4Rec", 3)]
    assert set(got) == set(PROTOCOLS) and lines == []
    assert got["pop100"]["test"] == pytest.approx(rec.test_result, abs=1e-12)
    assert got["pop100"]["valid"] == pytest.approx(rec.best_valid_result, abs=1e-12)
    full = evaluate_checkpoint(rec.checkpoint, [f"--eval_args={dict(SPLIT, mode='full')!r}"], device="cpu")
    assert got["full"] == full
    assert got["full"]["test"]["recall@10"] <= got["pop100"]["test"]["recall@10"]
    assert set(got["uni100"]["test"]) == set(rec.test_result)

    path = protocol_path(out, "GRU4Rec", 3)
    assert json.load(open(path))["results"] == got
    again = reevaluate_records(out, [rec], device="cpu", echo=lines.append)
    assert again[("GRU4Rec", 3)] == got and lines == [
        "[protocols] GRU4Rec seed 3: already evaluated under pop100, full, uni100, skipped"
    ]


@pytest.mark.slow
def test_a_changed_checkpoint_is_evaluated_again(compared, tmp_path):
    """The stored figures belong to the checkpoint's bytes: another checkpoint under the same
    name is evaluated anew; a run without a checkpoint is one line and left out."""
    out, rec = compared
    path = protocol_path(out, "GRU4Rec", 3)
    reevaluate_records(out, [rec], protocols=("pop100",), device="cpu", echo=lambda line: None)
    stored = json.load(open(path))
    stored["checkpoint_sha256"] = "0" * 64  # as if the checkpoint had been retrained since
    stored["results"]["pop100"]["test"]["recall@10"] = -1.0
    open(path, "w").write(json.dumps(stored))
    lines = []
    results = reevaluate_records(out, [rec], protocols=("pop100",), device="cpu", echo=lines.append)
    assert results[("GRU4Rec", 3)]["pop100"]["test"] == pytest.approx(rec.test_result, abs=1e-12)
    assert lines == []
    missing = dataclasses.replace(rec, checkpoint=str(tmp_path / "gone.pth"), model="SASRec")
    assert reevaluate_records(out, [missing], device="cpu", echo=lines.append) == {}
    assert len(lines) == 1 and "SASRec seed 3: no checkpoint" in lines[0]
    assert not os.path.exists(protocol_path(out, "SASRec", 3))
