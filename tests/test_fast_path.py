"""The trainer's fast path (``recbole_ext.trainer.fast_path``): losses summed on the device,
``precision`` and ``compile``.

- fp32 (the default) is RecBole's training loop bit for bit: same summed loss, same weights;
- no host read of a loss inside the epoch (the old loop called ``.item()`` on every loss);
- bf16 and compiled training run and learn the rule data (beat popularity by a wide margin);
- a wrong ``precision`` is one configuration error before anything is built.
"""

from __future__ import annotations

import pytest
import torch
from recbole.trainer import Trainer as RecBoleTrainer

from recbole_ext.config import Config
from recbole_ext.errors import ConfigError
from recbole_ext.registry import get_trainer
from recbole_ext.trainer.fast_path import LossTotal

from conftest import build as build_model

SMALL = {
    "state": "WARNING",
    "show_progress": False,
    "MAX_ITEM_LIST_LENGTH": 20,
    "hidden_size": 16,
    "n_heads": 2,
    "train_batch_size": 64,
    "load_col": {"inter": ["user_id", "item_id", "timestamp"]},
}
RULE = {
    "topk": [10],
    "metrics": ["Hit", "NDCG"],
    "valid_metric": "NDCG@10",
    "hidden_size": 32,
    "n_heads": 2,
    "learning_rate": 0.01,
    "epochs": 6,
    "stopping_step": 10,
    # 3,400 training rows in 17 batches of 200, and 200 users per evaluation batch: one batch
    # shape, so the compiled forward is compiled once for training and once for evaluation
    # (a last, smaller batch would compile a dynamic-shape graph besides)
    "train_batch_size": 200,
}


def one_epoch(trainer_class, data_root, model="GLINTRU", **keys):
    """Summed loss and final weights after one epoch of ``trainer_class`` from a fixed seed."""
    b = build_model(model, "ml-slice", data_root, **dict(SMALL, **keys))
    config, net, train_data = b.config, b.model, b.train
    trainer = trainer_class(config, net)
    total = trainer._train_epoch(train_data, 0)
    return total, {k: v.clone() for k, v in net.state_dict().items()}, len(train_data)


def test_fp32_epoch_is_recboles_bit_for_bit(ml100k_slice, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # RecBole's trainer opens a TensorBoard folder in the current one
    ours_total, ours_weights, _ = one_epoch(get_trainer("sequential", "GLINTRU"), ml100k_slice)
    theirs_total, theirs_weights, _ = one_epoch(RecBoleTrainer, ml100k_slice)
    assert isinstance(ours_total, float) and ours_total == theirs_total
    for name, value in theirs_weights.items():
        assert torch.equal(ours_weights[name], value), name


def test_no_host_read_of_a_loss_per_step(ml100k_slice, tmp_path, monkeypatch):
    """``.item()``/``bool()`` on a tensor of the autograd graph (a loss) would stop the device
    on every step; the epoch reads its total once, through ``LossTotal.value``."""
    monkeypatch.chdir(tmp_path)
    reads = []
    for name in ("item", "__bool__", "__float__"):
        original = getattr(torch.Tensor, name)

        def spy(self, *args, _original=original, _name=name):
            if self.requires_grad:
                reads.append(_name)
            return _original(self, *args)

        monkeypatch.setattr(torch.Tensor, name, spy)
    tolist = LossTotal.value
    values = []
    monkeypatch.setattr(LossTotal, "value", lambda self: values.append(1) or tolist(self))
    _, _, n_batches = one_epoch(get_trainer("sequential", "GLINTRU"), ml100k_slice)
    assert n_batches >= 3
    assert reads == []
    assert values == [1]


def test_loss_total_sums_parts_as_recbole_does():
    total = LossTotal()
    steps = [(torch.tensor(0.1), torch.tensor(0.7)), (torch.tensor(0.3), torch.tensor(1e-8))]
    for parts in steps:
        total.add(parts)
    expected = (0.0, 0.0)
    for parts in steps:  # RecBole: tuple(map(sum, zip(total, (p.item() for p in parts))))
        expected = tuple(map(sum, zip(expected, tuple(p.item() for p in parts))))
    assert total.value() == expected


@pytest.mark.slow
@pytest.mark.parametrize("keys", [{"precision": "bf16"}, {"compile": True}], ids=["bf16", "compiled"])
def test_bf16_and_compiled_training_learn_the_rule(rule_dataset, run_tiny, keys):
    pop = run_tiny("Pop", "rule-seq", rule_dataset, **dict(RULE, epochs=1))
    fast = run_tiny("GLINTRU", "rule-seq", rule_dataset, **RULE, **keys)
    pop_ndcg, fast_ndcg = pop["test_result"]["ndcg@10"], fast["test_result"]["ndcg@10"]
    assert fast_ndcg > pop_ndcg + 0.2, (fast_ndcg, pop_ndcg)


@pytest.mark.slow
def test_bf16_changes_the_arithmetic(ml100k_slice, tmp_path, monkeypatch):
    """bf16 really runs in bfloat16 (the weights after an epoch differ from fp32's)."""
    monkeypatch.chdir(tmp_path)
    trainer = get_trainer("sequential", "GLINTRU")
    fp32_total, fp32_weights, _ = one_epoch(trainer, ml100k_slice)
    bf16_total, bf16_weights, _ = one_epoch(trainer, ml100k_slice, precision="bf16")
    assert bf16_total != fp32_total
    assert abs(bf16_total - fp32_total) < 0.05 * abs(fp32_total)


def test_unknown_precision_is_a_config_error(ml100k_slice):
    with pytest.raises(ConfigError, match="precision must be one of fp32, tf32, bf16"):
        Config("GLINTRU", "ml-slice", config_dict=dict(SMALL, data_path=ml100k_slice, precision="fp16"))


@pytest.mark.parametrize("precision,tf32", [("fp32", False), ("bf16", False), ("tf32", True)])
def test_precision_sets_every_tf32_switch(ml100k_slice, tmp_path, monkeypatch, precision, tf32):
    """``fp32`` means TF32 off everywhere: also cuDNN's (convolutions and RNNs), which PyTorch
    leaves on by default; only ``tf32`` turns both on."""
    monkeypatch.chdir(tmp_path)
    switches = (torch.backends.cuda.matmul, torch.backends.cudnn)
    before = [s.allow_tf32 for s in switches]
    try:
        for s in switches:
            s.allow_tf32 = not tf32
        b = build_model("GLINTRU", "ml-slice", ml100k_slice, **dict(SMALL, precision=precision))
        get_trainer("sequential", "GLINTRU")(b.config, b.model)
        assert [s.allow_tf32 for s in switches] == [tf32, tf32]
    finally:
        for s, value in zip(switches, before):
            s.allow_tf32 = value
