"""GLINTRU (GLINT-RU, KDD 2025): size, shapes, attention against a naive reference, the causal
switch (its learning, serving and search-space clauses: tests/test_model_contract.py)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from recbole_ext.model.glintru_layers import TimeConv1d
from recbole_ext.model.linear_attention import EluNormLinearAttention, elu_norm_linear_attention

from conftest import model_on_slice, scramble_after_last, slice_config_and_data


@pytest.fixture(scope="module")
def slice_data(ml100k_slice):
    return slice_config_and_data("GLINTRU", ml100k_slice)


def make_model(slice_data, **keys):
    return model_on_slice(slice_data, "GLINTRU", **keys)


def random_batch(n_items: int, batch: int = 6, length: int = 12, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    seq = torch.randint(1, n_items, (batch, length), generator=g)
    lengths = torch.randint(1, length, (batch,), generator=g)
    lengths[0] = length
    for i, n in enumerate(lengths.tolist()):
        seq[i, n:] = 0
    return seq, lengths


# ------------------------------------------------------------------ size and shapes
def test_parameter_count_matches_reference(slice_data):
    model = make_model(slice_data, hidden_size=128, n_heads=8)
    n = sum(p.numel() for p in model.parameters()) - model.item_embedding.weight.numel()
    assert n == 395_586
    # a separate MLP LayerNorm adds 2d parameters
    model = make_model(slice_data, hidden_size=128, n_heads=8, share_layer_norm=False)
    assert sum(p.numel() for p in model.parameters()) - model.item_embedding.weight.numel() == 395_586 + 256


def test_shapes_and_loss(slice_data):
    model = make_model(slice_data, hidden_size=32, n_heads=4)
    seq, lengths = random_batch(model.n_items)
    out = model(seq, lengths)
    assert out.shape == (6, 32)
    assert model.score_all(out).shape == (6, model.n_items)
    assert torch.isfinite(out).all()
    for kernel in (2, 4, 5):
        m = make_model(slice_data, hidden_size=16, n_heads=2, kernel_size=kernel)
        assert m(seq, lengths).shape == (6, 16)


def test_initialisation(slice_data):
    model = make_model(slice_data)
    assert torch.equal(model.expert_logits.detach(), torch.tensor([0.5, 0.5]))
    assert all(float(m.bias.detach().abs().sum()) == 0 for m in model.modules() if isinstance(m, torch.nn.Linear))
    assert all("bias" not in name for name, _ in model.gru_expert.gru.named_parameters())
    assert model.mlp_LayerNorm is model.LayerNorm


# ------------------------------------------------------------------ attention
def naive_attention(q, k, v, key_mask=None):
    """Quadratic form of the same formula: ``(Q' K'^T) V / sqrt(d_h)``, token by token."""
    q = F.elu(q)
    k = F.elu(k)
    q = q / q.norm(dim=-1, keepdim=True)
    k = k / k.norm(dim=-1, keepdim=True)
    scores = q @ k.transpose(-2, -1)  # [B, H, L, L], no softmax
    if key_mask is not None:
        scores = scores * key_mask[:, None, None, :]
    return scores @ v / math.sqrt(q.shape[-1])


def test_linear_attention_equals_quadratic_reference():
    g = torch.Generator().manual_seed(1)
    q, k, v = (torch.randn(3, 4, 9, 8, generator=g, dtype=torch.float64) for _ in range(3))
    assert torch.allclose(elu_norm_linear_attention(q, k, v), naive_attention(q, k, v))
    mask = torch.arange(9)[None, :] < torch.tensor([9, 5, 1])[:, None]
    assert torch.allclose(elu_norm_linear_attention(q, k, v, mask), naive_attention(q, k, v, mask.double()))
    # the mask matters
    assert not torch.allclose(elu_norm_linear_attention(q, k, v, mask), elu_norm_linear_attention(q, k, v))


def test_attention_module_matches_reference_layout():
    torch.manual_seed(0)
    att = EluNormLinearAttention(16, 4, 0.0, 1e-12).double().eval()
    x = torch.randn(2, 7, 16, dtype=torch.float64)
    heads = lambda t: t.view(2, 7, 4, 4).permute(0, 2, 1, 3)  # noqa: E731
    ctx = naive_attention(heads(att.query(x)), heads(att.key(x)), heads(att.value(x)))
    expected = att.LayerNorm(att.dense(ctx.permute(0, 2, 1, 3).reshape(2, 7, 16)) + x)
    assert torch.allclose(att(x), expected)


def test_time_conv_matches_symmetric_and_causal_padding():
    torch.manual_seed(0)
    x = torch.randn(2, 6, 4)
    conv = TimeConv1d(4, 3, causal=False)
    ref = F.conv1d(x.transpose(1, 2), conv.conv.weight, conv.conv.bias, padding=1).transpose(1, 2)
    assert torch.allclose(conv(x), ref, atol=1e-6)
    causal = TimeConv1d(4, 3, causal=True)
    y = causal(x)
    x2 = x.clone()
    x2[:, 4:] = torch.randn(2, 2, 4)
    assert torch.allclose(causal(x2)[:, :4], y[:, :4], atol=1e-6)
    assert not torch.allclose(causal(x2)[:, 4:], y[:, 4:])


def reference_forward(m, seq, lengths):
    """The reference code's forward, written out with the model's weights (eval mode)."""
    x = m.item_embedding(seq)
    e = m.gru_expert
    h1 = F.conv1d(e.dense_in(x).transpose(1, 2), e.conv_in.conv.weight, e.conv_in.conv.bias, padding=1).transpose(1, 2)
    h2 = F.gelu(m.data_gate(x))
    g, _ = e.gru(h1)
    g = e.projection(g) * e.selective_gate(h1)
    g = F.conv1d(g.transpose(1, 2), e.conv_out.conv.weight, e.conv_out.conv.bias, padding=1).transpose(1, 2)
    a = m.attention
    heads = lambda t: t.view(*t.shape[:2], a.n_heads, a.head_size).permute(0, 2, 1, 3)  # noqa: E731
    ctx = naive_attention(heads(a.query(x)), heads(a.key(x)), heads(a.value(x)))
    att = a.LayerNorm(a.dense(ctx.permute(0, 2, 1, 3).reshape(x.shape)) + x)
    w = F.softmax(m.expert_logits, 0)
    h = m.LayerNorm(m.mix_dense((w[0] * g + w[1] * att) * h2) + x)
    y = m.mlp.dense_out(m.mlp.dense_value(h) * F.gelu(m.mlp.dense_gate(h)))
    y = m.LayerNorm(y + h)
    return y[torch.arange(len(seq)), lengths - 1]


def test_default_forward_equals_reference_formula(slice_data):
    model = make_model(slice_data, hidden_size=16, n_heads=2).double().eval()
    seq, lengths = random_batch(model.n_items)
    with torch.no_grad():
        assert torch.allclose(model(seq, lengths), reference_forward(model, seq, lengths))


# ------------------------------------------------------------------ causal switch


def test_causal_switch_does_not_leak(slice_data):
    seq, lengths = random_batch(200, batch=8, length=15)
    lengths[1] = 3
    changed = scramble_after_last(seq, lengths, 200)
    causal = make_model(slice_data, hidden_size=16, n_heads=2, causal=True).eval()
    with torch.no_grad():
        assert torch.allclose(causal(seq, lengths), causal(changed, lengths), atol=1e-6)
        # longer padding changes nothing either (batches are trimmed in causal mode)
        padded = torch.cat([seq, torch.zeros(8, 10, dtype=seq.dtype)], 1)
        assert torch.allclose(causal(seq, lengths), causal(padded, lengths), atol=1e-6)
        # but an earlier item does matter
        earlier = seq.clone()
        earlier[:, 0] = (earlier[:, 0] % 150) + 1
        assert not torch.allclose(causal(seq, lengths), causal(earlier, lengths))
    # the reference behaviour (default) does look past the last real item
    faithful = make_model(slice_data, hidden_size=16, n_heads=2).eval()
    with torch.no_grad():
        short = lengths < seq.shape[1]
        assert not torch.allclose(faithful(seq, lengths)[short], faithful(changed, lengths)[short])
