"""Shared blocks of ``recbole_ext.model.layers``: :class:`FastDropout`."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from recbole_ext.model.layers import DROPOUT_LEVELS, FastDropout, dropout_keep_mask


@pytest.mark.parametrize("p", [0.1, 0.3, 0.5, 0.9])
def test_keep_rate_and_expectation(p):
    torch.manual_seed(0)
    x = torch.ones(400, 500)
    y = FastDropout(p).train()(x)
    kept = y != 0
    # 200,000 draws: the keep rate is within 5 standard deviations of 1 - p
    sd = (p * (1 - p) / x.numel()) ** 0.5
    assert abs(float(kept.float().mean()) - (1 - p)) < 5 * sd
    q = (DROPOUT_LEVELS - round(p * DROPOUT_LEVELS)) / DROPOUT_LEVELS
    assert torch.allclose(y[kept], torch.full_like(y[kept], 1 / q))
    assert abs(float(y.mean()) - 1.0) < 5 * sd / (1 - p)


def test_bits_are_uniform_in_every_lane():
    """Each of the four 16-bit lanes of a 64-bit draw is used; none is biased (e.g. a sign bit
    that is always 0 would keep every fourth element)."""
    torch.manual_seed(1)
    keep, q = dropout_keep_mask(torch.Size([4 * 50_000]), 0.5, torch.device("cpu"))
    lanes = keep.view(-1, 4).float().mean(0)
    assert q == 0.5
    assert torch.all((lanes - 0.5).abs() < 0.01), lanes


def test_gradient_is_the_mask_and_eval_is_identity():
    torch.manual_seed(2)
    layer = FastDropout(0.3)
    x = torch.randn(64, 33, requires_grad=True)  # element count not a multiple of 4
    y = layer(x)
    y.sum().backward()
    scale = torch.where(y != 0, y / x, torch.zeros_like(y))
    assert torch.allclose(x.grad, scale.detach(), atol=1e-6)
    layer.eval()
    assert layer(x) is x


def test_seeded_and_edge_probabilities():
    x = torch.randn(10, 7)
    torch.manual_seed(3)
    a = FastDropout(0.4)(x)
    torch.manual_seed(3)
    b = FastDropout(0.4)(x)
    assert torch.equal(a, b)
    assert FastDropout(0.0)(x) is x
    assert torch.equal(FastDropout(1.0)(x), torch.zeros_like(x))


def test_is_a_dropout_module():
    """``FastDropout`` is an ``nn.Dropout``: code that finds or configures dropouts by type
    (e.g. ``model.apply`` changing ``p``) still sees it."""
    layer = FastDropout(0.2)
    assert isinstance(layer, nn.Dropout) and layer.p == 0.2


@pytest.mark.parametrize("inner_dropout", [True, False])
def test_feed_forward_is_its_formula_in_both_forms(inner_dropout):
    """The one FeedForward: ``LayerNorm(x + W2 act(W1 x))`` in evaluation mode, the linear maps
    under the names asked for (Mamba4Rec's and LRURec's ``w_1``/``w_2``, FMLPRec's
    ``dense_1``/``dense_2``), and in training mode one dropout more when ``inner_dropout``."""
    from recbole_ext.model.layers import FeedForward

    names = ("w_1", "w_2") if inner_dropout else ("dense_1", "dense_2")
    torch.manual_seed(0)
    block = FeedForward(6, 10, 0.5, 1e-12, activation=torch.tanh, inner_dropout=inner_dropout, names=names)
    assert sorted(block.state_dict()) == sorted(
        [f"{n}.{p}" for n in names for p in ("weight", "bias")] + ["LayerNorm.weight", "LayerNorm.bias"]
    )
    first, second = (getattr(block, n) for n in names)
    x = torch.randn(3, 4, 6)
    expected = nn.functional.layer_norm(
        x + second(torch.tanh(first(x))), (6,), block.LayerNorm.weight, block.LayerNorm.bias, 1e-12
    )
    assert torch.allclose(block.eval()(x), expected, atol=1e-6)
    block.train()
    big = torch.ones(1, 4000, 6)
    hidden = torch.tanh(first(big))
    # what reaches the second map: with an inner dropout about half of its inputs are zero
    seen = []
    handle = second.register_forward_hook(lambda m, inp, out: seen.append(inp[0]))
    block(big)
    handle.remove()
    zeros = float((seen[0] == 0).float().mean())
    assert (0.4 < zeros < 0.6) if inner_dropout else torch.equal(seen[0], hidden)
