"""Table 3 as the paper measured it (:mod:`recbole_ext.reproduce.cost`): an evaluation's time per
batch of RecBole's own loader and per 2048 users, derived from the same timed evaluation; CUDA's
reserved peak beside our allocated one (absent on the CPU); the row's means."""

from __future__ import annotations

import math

import pytest
import torch

from recbole_ext.compare import RunRecord
from recbole_ext.compare.memory import PeakMemory
from recbole_ext.reproduce.cost import COST_MEASURES, definitions_markdown, entry_costs

SEQ = {
    "load_col": {"inter": ["user_id", "item_id", "timestamp"]},
    "train_neg_sample_args": None,
    "hidden_size": 8,
    "embedding_size": 8,
    "MAX_ITEM_LIST_LENGTH": 10,
    "eval_batch_size": 256,
    "metrics": ["Recall", "NDCG"],
    "topk": [10],
    "valid_metric": "NDCG@10",
    "state": "WARNING",
    "show_progress": False,
}


def _evaluated(ml100k_slice, tmp_path, mode: str):
    """``(trainer, our test loader, RecBole's own loader over the same users)`` after one
    evaluation of an untrained GRU4Rec's test split under ``mode``."""
    from recbole_ext.pipeline import Run

    split = {"split": {"LS": "valid_and_test"}, "order": "TO", "group_by": "user", "mode": mode}
    keys = dict(SEQ, eval_args=split, data_path=ml100k_slice, checkpoint_dir=str(tmp_path / "saved"))
    run = Run.resolve("GRU4Rec", "ml-slice", config_dict=keys)
    loaders = run.build_loaders(run.prepare_data())
    trainer = run.build_trainer(run.build_model(loaders.train_set))
    trainer.evaluate(loaders.test, load_best_model=False)
    recbole = run.recbole_eval_loader(loaders.test) if mode != "full" else loaders.test
    return trainer, loaders.test, recbole


def test_sampled_evaluation_timed_three_ways(ml100k_slice, tmp_path):
    """Under pop100 our loader puts 256 users in a batch; RecBole's fits 256 candidate rows
    (2 users x 101). The evaluation's time is the same in all three figures."""
    trainer, ours, recbole = _evaluated(ml100k_slice, tmp_path, "pop100")
    users = len(recbole.uid_list)
    assert users == 60 and len(ours) == 1
    assert len(recbole) == math.ceil(users / (256 // 101)) == 30
    assert ours.recbole_batches == len(recbole)
    t = trainer.timings
    elapsed = t["eval_batch_ms"][-1] * len(ours)
    assert t["eval_recbole_batch_ms"][-1] == pytest.approx(elapsed / len(recbole))
    assert t["eval_ms_per_2048_users"][-1] == pytest.approx(elapsed / users * 2048)


def test_full_ranking_batches_are_recboles(ml100k_slice, tmp_path):
    trainer, ours, _ = _evaluated(ml100k_slice, tmp_path, "full")
    t = trainer.timings
    assert t["eval_recbole_batch_ms"] == t["eval_batch_ms"]
    assert t["eval_ms_per_2048_users"][-1] == pytest.approx(t["eval_batch_ms"][-1] * len(ours) / 60 * 2048)


def test_reserved_memory_is_absent_on_the_cpu():
    with PeakMemory("cpu") as meter:
        torch.ones(1000)
    assert meter.peak_reserved_gib is None and meter.peak_mb is not None


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_reserved_memory_on_cuda():
    """The allocator reserves at least what the tensors took, in whole blocks."""
    with PeakMemory("cuda") as meter:
        x = torch.ones(2**26, device="cuda")  # 256 MiB
        del x
    assert meter.peak_mb >= 256 and meter.peak_reserved_gib * 1024 >= meter.peak_mb


def test_entry_costs_are_means_of_the_records():
    runs = [
        RunRecord(
            "A",
            "d",
            1,
            train_epoch_s=[2.0, 4.0],
            train_batches=[[10, 10], [5, 10]],  # the second a budget epoch: 4 s for half of it
            eval_batch_ms=[10.0, 20.0],
            eval_recbole_batch_ms=[1.0, 2.0],
            eval_ms_per_2048_users=[100.0, None],
            peak_mem_mb=1024.0,
            peak_reserved_gib=None,
        ),
        RunRecord(
            "A",
            "d",
            2,
            train_epoch_s=[3.0],
            eval_batch_ms=[30.0],
            eval_recbole_batch_ms=[3.0],
            eval_ms_per_2048_users=[200.0],
            peak_mem_mb=3072.0,
            peak_reserved_gib=2.5,
        ),
        RunRecord("A", "d", 3, status="failed", train_epoch_s=[100.0], peak_mem_mb=1e9),
    ]
    costs = entry_costs(runs)
    assert costs == {
        "train_s_epoch": pytest.approx((2.0 + 8.0 + 3.0) / 3),
        "infer_ms_recbole_batch": pytest.approx(2.0),
        "infer_ms_2048_users": pytest.approx(150.0),
        "infer_ms_batch": pytest.approx(20.0),
        "mem_reserved_gib": pytest.approx(2.5),
        "mem_allocated_gib": pytest.approx(2.0),
    }
    assert set(costs) == set(COST_MEASURES)
    assert entry_costs([runs[2]]) == dict.fromkeys(COST_MEASURES)
    text = definitions_markdown()
    assert all(f"- {m.header}: " in text for m in COST_MEASURES.values())
