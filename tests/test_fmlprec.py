"""FMLPRec (WWW 2022): the filter against an explicit DFT and a circular convolution, the model
against the reference code's forward written out, both padding layouts, the YAML keys, a run by
name, and ``full_sort_predict`` against ``predict``."""

from __future__ import annotations

import math

import pytest
import torch

from recbole_ext.config import Config
from recbole_ext.errors import ConfigError
from recbole_ext.model.fmlp_layers import FilterLayer, learnable_filter

from conftest import (
    SEQ_DATA,
    assert_full_sort_equals_predict,
    build,
    model_on_slice,
    padded_batch,
    scramble_after_last,
    slice_config_and_data,
)

SMALL = dict(hidden_size=16, inner_size=24, MAX_ITEM_LIST_LENGTH=10)


@pytest.fixture(scope="module")
def slice_data(ml100k_slice):
    return slice_config_and_data("FMLPRec", ml100k_slice)


def make_model(slice_data, **keys):
    return model_on_slice(slice_data, "FMLPRec", **dict(SMALL, **keys))


# ------------------------------------------------------------------ the filter
def dft_matrix(length: int) -> torch.Tensor:
    """``F[k, t] = exp(-2 pi i k t / L) / sqrt(L)``, the orthonormal DFT, ``[L, L]`` complex128."""
    k = torch.arange(length, dtype=torch.float64)
    angle = -2 * math.pi * torch.outer(k, k) / length
    return torch.complex(torch.cos(angle), torch.sin(angle)) / math.sqrt(length)


def full_weight(complex_weight: torch.Tensor, length: int) -> torch.Tensor:
    """The half spectrum ``W[0..L//2]`` extended to ``[L, d]`` by ``W[L - k] = conj(W[k])``."""
    half = torch.view_as_complex(complex_weight[0].contiguous())
    rest = [half[length - k].conj() for k in range(length // 2 + 1, length)]
    return torch.cat([half, torch.stack(rest)]) if rest else half


def naive_filter_dft(x: torch.Tensor, complex_weight: torch.Tensor) -> torch.Tensor:
    """``Re(F^H (W * (F x)))`` channel by channel with the explicit DFT matrix."""
    length = x.shape[1]
    f, w = dft_matrix(length), full_weight(complex_weight, length)
    spectrum = torch.einsum("kt,btd->bkd", f, x.to(torch.complex128))
    return torch.einsum("kt,bkd->btd", f.conj(), spectrum * w).real


def naive_filter_convolution(x: torch.Tensor, complex_weight: torch.Tensor) -> torch.Tensor:
    """The same filter as a circular convolution: ``y[t] = sum_s h[(t - s) mod L] x[s]`` per
    channel, with the kernel ``h[t] = (1 / L) sum_k Re(W[k] exp(2 pi i k t / L))``."""
    b, length, d = x.shape
    w = full_weight(complex_weight, length)
    kernel = (dft_matrix(length).conj() @ w).real / math.sqrt(length)  # [L, d]
    y = torch.zeros_like(x)
    for t in range(length):
        for s in range(length):
            y[:, t] += kernel[(t - s) % length] * x[:, s]
    return y


@pytest.mark.parametrize("length", [1, 2, 7, 10])
def test_filter_equals_explicit_dft_and_circular_convolution(length):
    g = torch.Generator().manual_seed(length)
    x = torch.randn(3, length, 5, generator=g, dtype=torch.float64)
    weight = torch.randn(1, length // 2 + 1, 5, 2, generator=g, dtype=torch.float64)
    got = learnable_filter(x, weight)
    assert got.shape == x.shape and got.dtype == torch.float64
    assert torch.allclose(got, naive_filter_dft(x, weight), rtol=0, atol=1e-12)
    assert torch.allclose(got, naive_filter_convolution(x, weight), rtol=0, atol=1e-12)
    layer = FilterLayer(length, 5, 0.5, 1e-12).double().eval()
    expected = layer.LayerNorm(x + naive_filter_dft(x, layer.complex_weight))
    assert torch.allclose(layer(x), expected, rtol=0, atol=1e-10)


def test_filter_runs_half_inputs_in_float32():
    x = torch.randn(2, 6, 4)
    weight = torch.randn(1, 4, 4, 2)
    got = learnable_filter(x.to(torch.bfloat16), weight)
    assert got.dtype == torch.bfloat16
    assert torch.allclose(got.float(), learnable_filter(x.to(torch.bfloat16).float(), weight), atol=1e-2)


# ------------------------------------------------------------------ the whole model
def tf_layer_norm(ln: torch.nn.LayerNorm, x: torch.Tensor) -> torch.Tensor:
    """The reference's ``LayerNorm`` (modules.py): epsilon inside the square root."""
    u = x.mean(-1, keepdim=True)
    s = (x - u).pow(2).mean(-1, keepdim=True)
    return ln.weight * ((x - u) / torch.sqrt(s + ln.eps)) + ln.bias


def reference_forward(m, input_ids: torch.Tensor) -> torch.Tensor:
    """``FMLPRecModel.forward`` (models.py, modules.py) in eval mode with the model's weights:
    all positions ``[B, L, d]`` of the padded ``input_ids`` ``[B, L]``."""
    length = input_ids.shape[1]
    x = m.item_embedding(input_ids) + m.position_embedding(torch.arange(length))[None]
    x = tf_layer_norm(m.LayerNorm, x)
    for layer in m.layers:
        f = layer.filterlayer
        spectrum = torch.fft.rfft(x, dim=1, norm="ortho") * torch.view_as_complex(f.complex_weight)
        x = tf_layer_norm(f.LayerNorm, torch.fft.irfft(spectrum, n=length, dim=1, norm="ortho") + x)
        ff = layer.intermediate
        h = ff.dense_1(x)
        h = h * 0.5 * (1.0 + torch.erf(h / math.sqrt(2.0)))
        x = tf_layer_norm(ff.LayerNorm, ff.dense_2(h) + x)
    return x


def left_padded(seq: torch.Tensor, lengths: torch.Tensor, max_len: int) -> torch.Tensor:
    """The reference's input (datasets.py): ``[0] * pad_len + input_ids``, last ``max_len`` kept."""
    rows = []
    for row, n in zip(seq.tolist(), lengths.tolist()):
        ids = row[:n]
        rows.append(([0] * (max_len - len(ids)) + ids)[-max_len:])
    return torch.tensor(rows)


def perturbed(model):
    """``model`` in float64, eval mode, every weight moved off its initialisation."""
    model = model.double().eval()
    g = torch.Generator().manual_seed(3)
    for p in model.parameters():
        p.data.add_(0.1 * torch.randn(p.shape, generator=g, dtype=p.dtype))
    return model


@pytest.mark.parametrize("n_layers", [1, 2])
@pytest.mark.parametrize("last_position_only", [True, False])
def test_forward_equals_reference_formula(slice_data, n_layers, last_position_only):
    model = perturbed(make_model(slice_data, n_layers=n_layers, last_position_only=last_position_only))
    seq, lengths = padded_batch(model.n_items, 10)
    with torch.no_grad():
        out = model(seq, lengths)
        assert out.shape == (10, 16)
        expected = reference_forward(model, left_padded(seq, lengths, 10))[:, -1]
        assert torch.allclose(out, expected, rtol=0, atol=1e-10)
        # padding_side: right filters RecBole's layout as it is and reads position n - 1
        model.padding_side = "right"
        right = reference_forward(model, seq)[torch.arange(10), lengths - 1]
        assert torch.allclose(model(seq, lengths), right, rtol=0, atol=1e-10)
        short = lengths < 10  # the two layouts differ materially wherever there is padding
        assert (model(seq, lengths) - out)[short].abs().amax(-1).min() > 1e-3
        assert torch.allclose(model(seq, lengths)[~short], out[~short], rtol=0, atol=1e-10)


@pytest.mark.parametrize("side", ["left", "right"])
def test_layout_is_rebuilt_from_the_real_items(slice_data, side):
    """What follows the last real item, or how wide the row is, changes nothing; a sequence longer
    than MAX_ITEM_LIST_LENGTH keeps its last L items, as the reference truncates."""
    model = perturbed(make_model(slice_data, padding_side=side))
    seq, lengths = padded_batch(model.n_items, 10)
    wide = torch.cat([seq, torch.zeros(10, 5, dtype=seq.dtype)], 1)
    with torch.no_grad():
        base = model(seq, lengths)
        assert torch.allclose(model(scramble_after_last(seq, lengths, model.n_items), lengths), base, atol=1e-12)
        assert torch.allclose(model(wide, lengths), base, atol=1e-12)
        older = torch.randint(1, model.n_items, (1, 4))
        long = torch.cat([older, seq[-1:]], 1)  # the full row of 10 items after 4 older ones
        assert torch.allclose(model(long, torch.tensor([14])), base[-1:], atol=1e-12)


def test_filter_size_follows_max_item_list_length(slice_data):
    for length in (7, 10, 20):
        model = make_model(slice_data, MAX_ITEM_LIST_LENGTH=length, n_layers=2)
        assert [tuple(b.filterlayer.complex_weight.shape) for b in model.layers] == [(1, length // 2 + 1, 16, 2)] * 2
        assert model.position_embedding.weight.shape == (length, 16)
    assert abs(float(model.layers[0].filterlayer.complex_weight.detach().std()) - 0.02) < 0.005


@pytest.mark.parametrize("loss_type", ["CE", "BPR"])
def test_loss_through_the_pipeline(ml100k_slice, loss_type):
    neg = {"distribution": "uniform", "sample_num": 1} if loss_type == "BPR" else None
    keys = dict(SMALL, **SEQ_DATA, loss_type=loss_type, train_neg_sample_args=neg, state="WARNING")
    built = build("FMLPRec", "ml-slice", ml100k_slice, **keys)
    loss = built.model.calculate_loss(next(iter(built.train)))
    loss.backward()
    assert torch.isfinite(loss) and built.model.layers[0].filterlayer.complex_weight.grad.abs().sum() > 0


@pytest.mark.parametrize("item_bias", [False, True])
def test_full_sort_predict_equals_predict_on_every_item(ml100k_slice, item_bias):
    built = build("FMLPRec", "ml-slice", ml100k_slice, item_bias=item_bias, state="WARNING", **SMALL, **SEQ_DATA)
    model = built.model.eval()
    if item_bias:
        model.item_bias.data.normal_()
    assert_full_sort_equals_predict(model, next(iter(built.train)))


# ------------------------------------------------------------------ config and runs
def test_yaml_keys_parse_and_bad_values_are_refused(ml100k_slice):
    base = {"data_path": ml100k_slice}
    cfg = Config("FMLPRec", "ml-slice", config_dict=base)
    expected = {
        "n_layers": 2,
        "hidden_size": 64,
        "inner_size": 256,
        "hidden_dropout_prob": 0.5,
        "hidden_act": "gelu",
        "layer_norm_eps": 1e-12,
        "initializer_range": 0.02,
        "padding_side": "left",
        "last_position_only": True,
        "loss_type": "CE",
        "item_bias": False,
    }
    for key, value in expected.items():
        assert cfg[key] == value and type(cfg[key]) is type(value), key
    for key, value, allowed in [
        ("n_layers", 0, "int >= 1"),
        ("hidden_dropout_prob", 1.0, "float >= 0, < 1"),
        ("hidden_act", "elu", "str: gelu"),
        ("padding_side", "middle", "str: left | right"),
        ("last_position_only", "yes", "bool"),
        ("initializer_range", 0.0, "float > 0"),
    ]:
        with pytest.raises(ConfigError, match=f"{key}={value!r}; allowed: {allowed}"):
            Config("FMLPRec", "ml-slice", config_dict=dict(base, **{key: value}))
