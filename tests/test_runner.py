"""RecBole's own models run through recbole_ext's runner (the acceptance of the foundation)."""

from __future__ import annotations

import pytest

from conftest import assert_ranking_metrics


@pytest.mark.parametrize("model", ["SASRec", "GRU4Rec", "BERT4Rec", "MultiVAE"])
def test_recbole_models_train_and_test(run_tiny, ml100k_slice, model):
    extra = {"n_layers": 1, "n_heads": 1, "inner_size": 32} if model in ("SASRec", "BERT4Rec") else {}
    result = run_tiny(model, "ml-slice", ml100k_slice, **extra)
    test = result["test_result"]
    assert set(test) >= {"recall@10", "mrr@10", "ndcg@10", "hit@10"}
    assert_ranking_metrics(test, one_target=model != "MultiVAE")  # MultiVAE: RecBole's 8:1:1 split
    assert result["best_valid_result"] is not None and result["n_params"] > 0
    assert result["timings"]["train_epoch_s"] and result["timings"]["eval_batch_ms"]


def test_logs_go_to_one_file_per_run(run_tiny, ml100k_slice):
    a = run_tiny("GRU4Rec", "ml-slice", ml100k_slice)
    b = run_tiny("Pop", "ml-slice", ml100k_slice, state="INFO")
    assert a["log_file"] != b["log_file"]
    with open(b["log_file"]) as f:
        text = f.read()
    assert "Pop" in text and "GRU4Rec(" not in text
