"""Fast sampled evaluation (``CompatTrainerMixin._neg_sample_batch_eval``) against RecBole's path.

RecBole's sampled ranking evaluation (``uni100``, ``pop100``) calls ``predict`` once per
(row, candidate). Ours encodes each distinct row once; metrics and scores must be the same.
"""

from __future__ import annotations

import pytest
import torch
from recbole.utils import init_seed

from recbole_ext.config import Config
from recbole_ext.data.utils import create_dataset, data_preparation
from recbole_ext.utils import get_model, get_trainer

SMALL = {
    "state": "WARNING",
    "show_progress": False,
    "MAX_ITEM_LIST_LENGTH": 20,
    "hidden_size": 16,
    "eval_batch_size": 1010,
    "train_batch_size": 256,
    "metrics": ["Recall", "MRR", "NDCG", "Hit"],
    "topk": [1, 5, 10],
    "valid_metric": "NDCG@10",
    "load_col": {"inter": ["user_id", "item_id", "timestamp"]},
}


MODEL_KEYS = {
    "SASRec": {"n_layers": 1, "n_heads": 2, "inner_size": 32},
    "GLINTRU": {"n_heads": 2},
    "GRU4Rec": {"embedding_size": 16},
}


def build(model: str, data_root: str, mode: str, **extra):
    """Config, trainer (untrained model: xavier-initialised scores are spread out), valid and
    test loaders for ``model`` on the ml-100k slice with evaluation ``mode``."""
    eval_args = {"split": {"LS": "valid_and_test"}, "order": "TO", "mode": mode, "group_by": "user"}
    cfg = dict(SMALL, **MODEL_KEYS.get(model, {}), data_path=data_root, eval_args=eval_args)
    cfg.update(extra)
    config = Config(model, "ml-slice", config_dict=cfg)
    init_seed(config["seed"], True)
    dataset = create_dataset(config)
    train_data, valid_data, test_data = data_preparation(config, dataset)
    init_seed(config["seed"], True)
    net = get_model(config["model"])(config, train_data._dataset).to(config["device"])
    trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, net)
    return config, trainer, valid_data, test_data


def evaluate(trainer, data, fast: bool, seed: int = 7):
    trainer.fast_sampled_eval = fast
    init_seed(seed, True)  # same sampled negatives on both paths
    return trainer.evaluate(data, load_best_model=False)


@pytest.mark.parametrize(
    "model,mode",
    [("SASRec", "pop100"), ("GLINTRU", "pop100"), ("GLINTRU", "uni100"), ("GRU4Rec", "uni100")],
)
def test_fast_sampled_metrics_equal_recbole(ml100k_slice, model, mode):
    _, trainer, valid_data, test_data = build(model, ml100k_slice, mode)
    for data in (valid_data, test_data):
        slow = evaluate(trainer, data, fast=False)
        fast = evaluate(trainer, data, fast=True)
        assert getattr(trainer, "_fast_eval_ok", True), "fast path fell back to RecBole's"
        assert dict(fast) == dict(slow)


@pytest.mark.parametrize("model", ["SASRec", "GLINTRU"])
def test_fast_sampled_scores_and_encodes_once(ml100k_slice, model):
    _, trainer, valid_data, _ = build(model, ml100k_slice, "pop100")
    trainer.model.eval()
    trainer.tot_item_num = valid_data._dataset.item_num
    init_seed(3, True)
    batches = list(valid_data)
    assert len(batches) >= 2

    rows_encoded = []
    original_forward = trainer.model.forward

    def counting_forward(item_seq, *args, **kwargs):
        rows_encoded.append(item_seq.shape[0])
        return original_forward(item_seq, *args, **kwargs)

    trainer.model.forward = counting_forward
    with torch.no_grad():
        for batch in batches:
            trainer.fast_sampled_eval = False
            rows_encoded.clear()
            _, slow, _, _ = trainer._neg_sample_batch_eval(batch)
            slow_rows = sum(rows_encoded)
            trainer.fast_sampled_eval = True
            trainer._fast_eval_checked = True  # count only the batch's own encoding
            rows_encoded.clear()
            _, fast, _, _ = trainer._neg_sample_batch_eval(batch)
            n_users = len(batch[2])
            assert slow_rows == len(batch[1]) == 101 * n_users
            assert sum(rows_encoded) == n_users
            finite = torch.isfinite(slow)
            assert torch.equal(finite, torch.isfinite(fast))
            assert torch.allclose(fast[finite], slow[finite], rtol=1e-5, atol=1e-5)


def test_layout_rejects_unequal_candidate_counts():
    from recbole_ext.trainer.trainer import CompatTrainerMixin

    # two users, one row each, 3 candidates each: accepted
    row_idx = torch.tensor([0, 0, 0, 1, 1, 1])
    layout = CompatTrainerMixin._sampled_eval_layout(row_idx, torch.tensor([0, 1]))
    assert layout is not None
    unique_rows, cand_rows = layout
    assert unique_rows.tolist() == [0, 3] and cand_rows.tolist() == [[0, 1, 2], [3, 4, 5]]
    # a user with two rows: copies interleave (p1, p2, n1, n2, ...)
    layout = CompatTrainerMixin._sampled_eval_layout(torch.tensor([0, 0, 0, 0]), torch.tensor([0, 0]))
    assert layout[1].tolist() == [[0, 2], [1, 3]]
    # unequal candidate counts: RecBole's path
    assert CompatTrainerMixin._sampled_eval_layout(torch.tensor([0, 0, 1, 1, 1]), torch.tensor([0, 1])) is None


def test_full_sort_mode_unaffected(ml100k_slice):
    _, trainer, valid_data, _ = build("GLINTRU", ml100k_slice, "full")
    a = evaluate(trainer, valid_data, fast=True)
    b = evaluate(trainer, valid_data, fast=False)
    assert dict(a) == dict(b)
