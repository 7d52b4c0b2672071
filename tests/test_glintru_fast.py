"""GLINTRU's fast path (``last_position_only``, the default): the per-position blocks run only at
the last real item, the one scored. Against the full computation (``False``, the reference's):
equal outputs, losses and gradients with dropout off, the same output statistics with dropout
on; and its compiled forward is not split by dropout."""

from __future__ import annotations

import pytest
import torch
from test_glintru import make_model, random_batch, slice_data  # noqa: F401 (the fixture)

from recbole_ext.model.layers import FastDropout
from recbole_ext.trainer.fast_path import compile_forward


def _both(model, seq, lengths):
    model.last_position_only = True
    fast = model(seq, lengths)
    model.last_position_only = False
    full = model(seq, lengths)
    model.last_position_only = True
    return fast, full


@pytest.mark.parametrize("kernel_size,causal", [(3, False), (3, True), (4, False), (1, False), (5, True)])
def test_the_fast_path_equals_every_position_computed(slice_data, kernel_size, causal):  # noqa: F811
    model = make_model(slice_data, hidden_size=16, n_heads=2, kernel_size=kernel_size, causal=causal)
    assert model.last_position_only  # the default
    seq, lengths = random_batch(model.n_items, batch=7, length=12)
    lengths[1], lengths[2] = 1, 2  # the window at the first step, and inside the sequence
    seq[1, 1:], seq[2, 2:] = 0, 0
    with torch.no_grad():
        fast, full = _both(model.double().eval(), seq, lengths)
        assert torch.allclose(fast, full, rtol=0, atol=1e-12)
        fast, full = _both(model.float(), seq, lengths)
        assert torch.allclose(fast, full, rtol=0, atol=1e-6)
        batch = {model.ITEM_SEQ: seq, model.ITEM_SEQ_LEN: lengths}
        model.last_position_only = False
        scores = model.full_sort_predict(batch)
        model.last_position_only = True
        assert torch.allclose(model.full_sort_predict(batch), scores, atol=1e-5)


def _no_dropout(model):
    for m in model.modules():
        if isinstance(m, FastDropout):
            m.p = 0.0
    return model


def test_the_fast_path_has_the_loss_and_gradients_of_the_full_one(slice_data):  # noqa: F811
    model = _no_dropout(make_model(slice_data, hidden_size=16, n_heads=2)).double().train()
    seq, lengths = random_batch(model.n_items, batch=7, length=12)
    batch = {model.ITEM_SEQ: seq, model.ITEM_SEQ_LEN: lengths, model.POS_ITEM_ID: torch.arange(1, 8)}
    grads = []
    for fast in (True, False):
        model.last_position_only = fast
        model.zero_grad()
        loss = model.calculate_loss(batch)
        loss.backward()
        grads.append((loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}))
    (loss_fast, g_fast), (loss_full, g_full) = grads
    assert torch.allclose(loss_fast, loss_full, rtol=0, atol=1e-12)
    assert g_fast.keys() == g_full.keys() and len(g_fast) > 20
    for name in g_fast:
        assert torch.allclose(g_fast[name], g_full[name], rtol=0, atol=1e-12), name


def _dropouts(model):
    return [name for name, m in model.named_modules() if isinstance(m, FastDropout)]


@pytest.mark.parametrize("which", range(5))
def test_with_dropout_the_fast_path_has_the_same_output_statistics(slice_data, which):  # noqa: F811
    """Other dropout draws, the same distribution: with one dropout at a time on (p = 0.5, the
    others off), over 200 training-mode passes each, the per-element means agree within their
    standard errors and the spreads match."""
    model = make_model(slice_data, hidden_size=16, n_heads=2).train()
    names = _dropouts(model)
    assert len(names) == 5
    for name, m in model.named_modules():
        if isinstance(m, FastDropout):
            m.p = 0.5 if name == names[which] else 0.0
    seq, lengths = random_batch(model.n_items, batch=6, length=10)
    torch.manual_seed(0)
    draws = {}
    with torch.no_grad():
        for fast in (True, False):
            model.last_position_only = fast
            draws[fast] = torch.stack([model(seq, lengths) for _ in range(200)]).double()
    mean_fast, mean_full = draws[True].mean(0), draws[False].mean(0)
    var_fast, var_full = draws[True].var(0), draws[False].var(0)
    z2 = ((mean_fast - mean_full) ** 2 / ((var_fast + var_full) / 200)).mean()
    assert 0.5 < z2 < 2.0, (names[which], float(z2))  # chi-square per degree of freedom
    spread = (var_fast.sqrt().mean() / var_full.sqrt().mean()).item()
    assert 0.9 < spread < 1.1, (names[which], spread)


GRAPHS = []


@torch._dynamo.register_backend
def count_graphs(gm, example_inputs):
    GRAPHS.append(gm)
    return gm.forward


@pytest.mark.slow
def test_the_compiled_training_forward_is_one_graph_with_its_gru(slice_data):  # noqa: F811
    """``compile: True`` in training mode: no dropout splits the graph; with the RNN in the graph
    (as on CUDA) the forward is one graph, else the GRU is the only cause of breaks (Dynamo's
    explain); the compiled forward computes what the eager one does."""
    model = make_model(slice_data, hidden_size=16, n_heads=2).train()
    seq, lengths = random_batch(model.n_items, batch=6, length=10)
    with torch._dynamo.config.patch(allow_rnn=True):
        explained = torch._dynamo.explain(model.forward)(seq, lengths)
    assert (explained.graph_count, explained.graph_break_count) == (1, 0), explained.break_reasons
    with torch._dynamo.config.patch(allow_rnn=False):
        explained = torch._dynamo.explain(model.forward)(seq, lengths)
    reasons = [str(r.reason) for r in explained.break_reasons]
    assert reasons and all("RNN" in r or r == "step_unsupported" for r in reasons), reasons
    torch._dynamo.reset()
    GRAPHS.clear()
    compile_forward(model, "count_graphs", rnn=True)
    model(seq, lengths)
    assert len(GRAPHS) == 1
    model.eval()
    with torch.no_grad():
        assert torch.allclose(model(seq, lengths), type(model).forward(model, seq, lengths), atol=1e-6)
