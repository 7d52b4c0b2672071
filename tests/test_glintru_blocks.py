"""GLINTRU's ``n_blocks`` (the paper's Table 7): one block is the model as it was (a checkpoint
written before the key existed loads strictly and gives the same outputs), ``k`` blocks equal
the composition of the block formula written out from the model's own submodules (float64),
and ``last_position_only`` prunes the last block only."""

from __future__ import annotations

import os

import pytest
import torch
import torch.nn.functional as F

from conftest import model_on_slice, slice_config_and_data

#: written by the GLINTRU of before ``n_blocks`` (hidden 8, 2 heads; parameters moved off their
#: initial values so that a swapped name changes the output): its state_dict, a batch, its output
OLD_CHECKPOINTS = os.path.join(os.path.dirname(__file__), "data", "glintru_one_block.pt")
NO_DROPOUT = dict(dropout_prob=0.0, hidden_dropout_prob=0.0, gate_dropout_prob=0.0)
NO_DROPOUT.update(mix_dropout_prob=0.0, mlp_dropout_prob=0.0)
SMALL = dict(hidden_size=16, n_heads=2, **NO_DROPOUT)


@pytest.fixture(scope="module")
def slice_data(ml100k_slice):
    return slice_config_and_data("GLINTRU", ml100k_slice)


def batch(n_items: int):
    g = torch.Generator().manual_seed(2)
    seq = torch.randint(1, n_items, (6, 10), generator=g)
    lengths = torch.tensor([1, 3, 5, 7, 9, 10])
    for i, n in enumerate(lengths.tolist()):
        seq[i, n:] = 0
    return seq, lengths


@pytest.mark.parametrize("case", [0, 1], ids=["defaults", "own-mlp-norm,causal"])
def test_a_checkpoint_from_before_n_blocks_loads_and_gives_its_outputs(slice_data, case):
    saved = torch.load(OLD_CHECKPOINTS, weights_only=True)[case]
    model = model_on_slice(slice_data, "GLINTRU", **saved["keys"]).eval()
    assert model.n_blocks == 1 and len(model.later_blocks) == 0
    model.load_state_dict(saved["state_dict"], strict=True)
    assert list(model.state_dict()) == list(saved["state_dict"])  # the same names, in the same order
    with torch.no_grad():
        out = model(saved["item_seq"], saved["item_seq_len"])
    assert torch.equal(out, saved["output"])


def test_later_blocks_repeat_the_first_blocks_names(slice_data):
    one = {n for n, _ in model_on_slice(slice_data, "GLINTRU", **SMALL).named_parameters()}
    three = {n for n, _ in model_on_slice(slice_data, "GLINTRU", n_blocks=3, **SMALL).named_parameters()}
    block = {n for n in one if not n.startswith("item_embedding.")}
    assert three == one | {f"later_blocks.{i}.{n}" for i in (0, 1) for n in block}


def gru_expert(expert, x):
    """conv(dense(x)) -> GRU -> projection * Linear(SiLU(Linear(h1))) -> conv, every position."""
    h1 = expert.conv_in(expert.dense_in(x))
    out, _ = torch.nn.GRU.forward(expert.gru, h1)
    first, second = expert.selective_gate[0], expert.selective_gate[2]
    return expert.conv_out(expert.projection(out) * second(F.silu(first(h1))))


def block(layers, x):
    """One block at every position: ``LN(mix(w0 * gru(x) + w1 * attn(x)) * GELU(gate(x))) + x)``,
    then ``LN(MLP(h) + h)`` (the MLP ``out(value(h) * GELU(gate(h)))``)."""
    w = F.softmax(layers.expert_logits, dim=0)
    mixed = w[0] * gru_expert(layers.gru_expert, x) + w[1] * layers.attention(x)
    h = layers.LayerNorm(layers.mix_dense(mixed * F.gelu(layers.data_gate(x))) + x)
    mlp = layers.mlp
    return layers.mlp_LayerNorm(mlp.dense_out(mlp.dense_value(h) * F.gelu(mlp.dense_gate(h))) + h)


@pytest.mark.parametrize("n_blocks", [1, 2, 3])
@pytest.mark.parametrize("last_only", [True, False])
def test_k_blocks_are_the_composed_block(slice_data, n_blocks, last_only):
    model = model_on_slice(slice_data, "GLINTRU", n_blocks=n_blocks, last_position_only=last_only, **SMALL)
    model = model.double().eval()
    seq, lengths = batch(model.n_items)
    with torch.no_grad():
        got = model(seq, lengths)
        x = model.item_embedding(seq)
        for layers in [model, *model.later_blocks]:
            x = block(layers, x)
        want = x[torch.arange(len(seq)), lengths - 1]
    assert len(model.later_blocks) == n_blocks - 1
    assert torch.allclose(got, want, atol=1e-12, rtol=0), (got - want).abs().max()


def test_only_the_last_block_runs_at_the_last_position_alone(slice_data):
    """Every block but the last feeds the next one every position; the last one's per-position
    part runs on ``[B, d]`` under ``last_position_only`` (and on ``[B, L, d]`` without it)."""
    seq, lengths = batch(model_on_slice(slice_data, "GLINTRU", **SMALL).n_items)
    for last_only in (True, False):
        model = model_on_slice(slice_data, "GLINTRU", n_blocks=3, last_position_only=last_only, **SMALL).eval()
        shapes = []
        for layers in [model, *model.later_blocks]:
            layers.mix_dense.register_forward_hook(lambda m, i, o, seen=shapes: seen.append(tuple(o.shape)))
        with torch.no_grad():
            model(seq, lengths)
        full, last = (6, 10, 16), ((6, 16) if last_only else (6, 10, 16))
        assert shapes == [full, full, last]
