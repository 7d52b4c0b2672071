"""LinRec (SIGIR 2023): the attention against a naive reference, the model against the
reference code's forward written out, padding in both modes, linear memory in L, the YAML keys,
and a run by name."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from recbole_ext.config import Config
from recbole_ext.errors import ConfigError
from recbole_ext.model.linear_attention import LinRecAttention, l2_linear_attention

from conftest import (
    SEQ_DATA,
    LargestOutput,
    build,
    model_on_slice,
    padded_batch,
    scramble_after_last,
    slice_config_and_data,
)

SMALL = dict(hidden_size=16, n_heads=2, inner_size=24)


@pytest.fixture(scope="module")
def slice_data(ml100k_slice):
    return slice_config_and_data("LinRec", ml100k_slice)


def make_model(slice_data, name="LinRec", **keys):
    return model_on_slice(slice_data, name, **keys)


# ------------------------------------------------------------------ attention
def naive_attention(q, k, v, key_mask=None):
    """The paper's formula token by token: out_i = sum_j <q'_i, k'_j> v_j / sqrt(d_h), with
    q' and k' each a token's ELU output over its L2 norm; masked keys are skipped."""
    b, h, l, dh = q.shape
    out = torch.zeros_like(v)
    for bi in range(b):
        for hi in range(h):
            for i in range(l):
                qi = F.elu(q[bi, hi, i])
                qi = qi / math.sqrt(float((qi * qi).sum()))
                for j in range(l):
                    if key_mask is not None and not bool(key_mask[bi, j]):
                        continue
                    kj = F.elu(k[bi, hi, j])
                    kj = kj / math.sqrt(float((kj * kj).sum()))
                    out[bi, hi, i] += float((qi * kj).sum()) * v[bi, hi, j]
    return out / math.sqrt(dh)


def test_attention_equals_naive_formula():
    g = torch.Generator().manual_seed(1)
    q, k, v = (torch.randn(2, 3, 6, 4, generator=g, dtype=torch.float64) for _ in range(3))
    assert torch.allclose(l2_linear_attention(q, k, v), naive_attention(q, k, v))
    mask = torch.arange(6)[None, :] < torch.tensor([6, 2])[:, None]
    assert torch.allclose(l2_linear_attention(q, k, v, mask), naive_attention(q, k, v, mask))
    assert not torch.allclose(l2_linear_attention(q, k, v, mask), l2_linear_attention(q, k, v))


# ------------------------------------------------------------------ the whole model
def reference_attention(att: LinRecAttention, x, key_mask=None):
    """The reference's attention block (its layers.py ``MultiHeadAttention.forward``), in its
    layout: keys as ``[B, H, d_h, L]``, each column divided by its L2 norm."""
    b, l, d = x.shape
    h, dh = att.n_heads, d // att.n_heads
    q = att.query(x).view(b, l, h, dh).permute(0, 2, 1, 3)
    k = att.key(x).view(b, l, h, dh).permute(0, 2, 3, 1)
    v = att.value(x).view(b, l, h, dh).permute(0, 2, 1, 3)
    q, k = F.elu(q), F.elu(k)
    q = torch.einsum("bhld,bhl->bhld", q, 1 / torch.norm(q, dim=3, p=2))
    k = torch.einsum("bhdl,bhl->bhdl", k, 1 / torch.norm(k, dim=2, p=2))
    if key_mask is not None:  # our deviation; the reference has none
        k = k * key_mask[:, None, None, :].to(k.dtype)
    ctx = torch.matmul(q, torch.matmul(k, v)) / math.sqrt(dh)
    ctx = ctx.permute(0, 2, 1, 3).reshape(b, l, d)
    return att.LayerNorm(att.dense(ctx) + x)


def reference_forward(m, seq, lengths, key_mask=None):
    """RecBole SASRec's forward with the reference attention, op by op (eval mode)."""
    x = m.item_embedding(seq) + m.position_embedding(torch.arange(seq.shape[1]))[None]
    x = m.LayerNorm(x)
    for layer in m.layers:
        x = reference_attention(layer.attention, x, key_mask)
        ff = layer.feed_forward
        y = ff.dense_1(x)
        y = y * 0.5 * (1.0 + torch.erf(y / math.sqrt(2.0)))
        x = ff.LayerNorm(ff.dense_2(y) + x)
    return x[torch.arange(len(seq)), lengths - 1]


@pytest.mark.parametrize("mask_padding", [False, True])
def test_forward_equals_reference_formula(slice_data, mask_padding):
    model = make_model(slice_data, mask_padding=mask_padding, **SMALL).double().eval()
    seq, lengths = padded_batch(model.n_items, 8)
    mask = torch.arange(seq.shape[1])[None, :] < lengths[:, None] if mask_padding else None
    with torch.no_grad():
        out = model(seq, lengths)
        assert out.shape == (8, 16)
        assert torch.allclose(out, reference_forward(model, seq, lengths, mask), atol=1e-12)


def test_backbone_is_sasrecs(slice_data):
    """The same parameters as RecBole's SASRec of that size, initialised the same way."""
    model = make_model(slice_data, **SMALL)
    sasrec = make_model(slice_data, name="SASRec", attn_dropout_prob=0.2, **SMALL)
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in sasrec.parameters())
    assert float(model.item_embedding.weight[0].detach().abs().sum()) > 0  # the padding row is not zero
    assert abs(float(model.position_embedding.weight.detach().std()) - 0.02) < 0.005
    assert all(float(m.bias.detach().abs().sum()) == 0 for m in model.modules() if isinstance(m, torch.nn.Linear))


def test_loss_through_the_pipeline(ml100k_slice):
    built = build("LinRec", "ml-slice", ml100k_slice, mask_padding=True, state="WARNING", **SMALL, **SEQ_DATA)
    batch = next(iter(built.train))
    loss = built.model.calculate_loss(batch)
    loss.backward()
    assert torch.isfinite(loss) and built.model.layers[0].attention.query.weight.grad.abs().sum() > 0


# ------------------------------------------------------------------ padding
def test_padding_in_both_modes(slice_data):
    seq, lengths = padded_batch(200, length=10)
    scrambled = scramble_after_last(seq, lengths, 200)
    longer = torch.cat([seq, torch.zeros(10, 6, dtype=seq.dtype)], 1)
    earlier = seq.clone()
    earlier[:, 0] = earlier[:, 0] % 150 + 1
    masked = make_model(slice_data, mask_padding=True, **SMALL).double().eval()
    faithful = make_model(slice_data, **SMALL).double().eval()
    short = lengths < seq.shape[1]
    with torch.no_grad():
        base = masked(seq, lengths)
        # mask_padding: nothing at a padded position, nor how many there are, reaches the state
        assert torch.allclose(masked(scrambled, lengths), base, atol=1e-12)
        assert torch.allclose(masked(longer, lengths), base, atol=1e-12)
        assert not torch.allclose(masked(earlier, lengths), base)
        # default (the reference): padded positions are keys, so both change the state
        base = faithful(seq, lengths)
        assert (faithful(scrambled, lengths) - base)[short].abs().amax(-1).min() > 1e-6
        assert (faithful(longer, lengths) - base).abs().amax(-1).min() > 1e-6
        assert torch.allclose(faithful(scrambled, lengths)[~short], base[~short], atol=1e-12)


# ------------------------------------------------------------------ linear in L
def test_no_length_squared_intermediate(slice_data):
    L = 1000
    model = make_model(slice_data, MAX_ITEM_LIST_LENGTH=L, inner_size=32, hidden_size=16, n_heads=2).eval()
    seq, lengths = torch.randint(1, model.n_items, (2, L)), torch.tensor([L, 300])
    q, k, v = (torch.randn(2, 2, L, 8) for _ in range(3))
    with torch.no_grad():
        with LargestOutput() as quadratic:
            torch.matmul(q, k.transpose(-2, -1)) @ v  # what softmax-style attention would build
        with LargestOutput() as attention:
            l2_linear_attention(q, k, v)
        with LargestOutput() as forward:
            model(seq, lengths)
    assert quadratic.largest >= L * L  # the check sees an [L, L] matrix when there is one
    assert attention.largest == 2 * 2 * L * 8
    assert forward.largest <= 2 * L * 32  # the feed-forward's inner layer


# ------------------------------------------------------------------ config and runs
def test_yaml_keys_parse_and_bad_values_are_refused(ml100k_slice):
    base = {"data_path": ml100k_slice}
    cfg = Config("LinRec", "ml-slice", config_dict=base)
    assert (cfg["hidden_size"], cfg["n_heads"], cfg["n_layers"], cfg["mask_padding"]) == (128, 8, 2, False)
    for key, value, allowed in [
        ("n_layers", 0, "int >= 1"),
        ("hidden_dropout_prob", 1.0, "float >= 0, < 1"),
        ("hidden_act", "elu", "str: gelu"),
        ("mask_padding", "yes", "bool"),
        ("initializer_range", 0.0, "float > 0"),
    ]:
        with pytest.raises(ConfigError, match=f"{key}={value!r}; allowed: {allowed}"):
            Config("LinRec", "ml-slice", config_dict=dict(base, **{key: value}))
    with pytest.raises(ConfigError, match="hidden_size=128 is not divisible by n_heads=3"):
        Config("LinRec", "ml-slice", config_dict=dict(base, n_heads=3))
