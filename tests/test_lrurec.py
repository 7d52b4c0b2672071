"""LRURec (WSDM 2024): the parallel scan against a naive complex loop with the layer's own weights,
the ring initialisation, the model against the reference code's forward written out (left-padded,
masked, power-of-two), causality under right padding, the YAML keys, a run by name, and
``full_sort_predict`` against ``predict``."""

from __future__ import annotations

import math
import re

import pytest
import torch
import torch.nn.functional as F

from recbole_ext.config import Config
from recbole_ext.errors import ConfigError
from recbole_ext.model.lru_layers import LRULayer, lru_scan, ring_init_params_log

from conftest import (
    SEQ_DATA,
    assert_full_sort_equals_predict,
    build,
    model_on_slice,
    padded_batch,
    scramble_after_last,
    slice_config_and_data,
)

SMALL = dict(hidden_size=8, MAX_ITEM_LIST_LENGTH=12)


@pytest.fixture(scope="module")
def slice_data(ml100k_slice):
    return slice_config_and_data("LRURec", ml100k_slice)


def make_model(slice_data, **keys):
    return model_on_slice(slice_data, "LRURec", **dict(SMALL, **keys))


def perturbed(module, scale: float = 0.1):
    """``module`` in float64, eval mode, every weight moved off its initialisation."""
    module = module.double().eval()
    g = torch.Generator().manual_seed(3)
    for p in module.parameters():
        p.data.add_(scale * torch.randn(p.shape, generator=g, dtype=p.dtype))
    return module


def complex_weights(lru: LRULayer):
    """The layer's ``lambda [H], gamma [H], B [H, d], b [H], C [d, H], Re c [d]`` as complex numbers."""
    nu, theta, gamma = torch.exp(lru.params_log)
    w_in, b_in, w_out = lru.in_proj.weight, lru.in_proj.bias, lru.out_proj.weight
    B, b = torch.complex(w_in[0::2], w_in[1::2]), torch.complex(b_in[0::2], b_in[1::2])
    C = torch.complex(w_out[:, 0::2], -w_out[:, 1::2])
    return torch.exp(torch.complex(-nu, theta)), gamma, B, b, C, lru.out_proj.bias


# ------------------------------------------------------------------ the scan
@pytest.mark.parametrize("length", [1, 2, 3, 5, 8, 13, 37])
def test_parallel_scan_equals_the_loop_with_the_layers_weights(length):
    torch.manual_seed(length)
    lru = perturbed(LRULayer(6, 10, 0.0, 0.8, 0.99, 1e-5))
    x = torch.randn(3, length, 6, dtype=torch.float64, requires_grad=True)
    lamb, gamma, B, b, C, c = complex_weights(lru)
    h, loop = torch.zeros(3, 10, dtype=torch.complex128), []
    for t in range(length):  # h_t = lambda h_{t-1} + gamma (B x_t + b), complex arithmetic
        h = lamb * h + gamma * (x[:, t].to(torch.complex128) @ B.T + b)
        loop.append(h)
    loop = torch.stack(loop, 1)
    got = lru.states(x)
    assert got.dtype == torch.complex128 and torch.allclose(got, loop, rtol=0, atol=1e-10)
    expected = lru.layer_norm((loop @ C.T).real + c + x)
    assert torch.allclose(lru(x), expected, rtol=0, atol=1e-10)
    last = torch.tensor([length - 1, 0, length // 2])
    assert torch.allclose(lru(x, last), expected[torch.arange(3), last], rtol=0, atol=1e-10)
    w = torch.randn(loop.shape, dtype=torch.complex128)
    for a, e in zip(
        torch.autograd.grad((got * w).real.sum(), [x, lru.params_log]),
        torch.autograd.grad((loop * w).real.sum(), [x, lru.params_log]),
    ):
        assert torch.allclose(a, e, rtol=0, atol=1e-10)


def test_scan_of_random_inputs_and_precision():
    g = torch.Generator().manual_seed(1)
    lamb = torch.polar(
        torch.rand(5, generator=g, dtype=torch.float64), 6 * torch.rand(5, generator=g, dtype=torch.float64)
    )
    u = torch.complex(*(torch.randn(2, 70, 5, generator=g, dtype=torch.float64) for _ in range(2)))
    h, loop = torch.zeros(2, 5, dtype=torch.complex128), []
    for t in range(70):
        h = lamb * h + u[:, t]
        loop.append(h)
    assert torch.allclose(lru_scan(lamb, u), torch.stack(loop, 1), rtol=0, atol=1e-10)
    for length in (1, 6, 7):  # the hand-written gradient, PyTorch's complex convention
        args = (lamb.clone().requires_grad_(), u[:, :length].clone().requires_grad_())
        assert torch.autograd.gradcheck(lru_scan, args)
    lru = LRULayer(4, 8, 0.0, 0.8, 0.99, 1e-5)  # half inputs: the scan runs in complex64
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert lru.states(torch.randn(2, 5, 4)).dtype == torch.complex64


def test_ring_initialisation():
    nu_log, theta_log, gamma_log = ring_init_params_log(4000, 0.8, 0.99, torch.Generator().manual_seed(0))
    modulus = torch.exp(-torch.exp(nu_log))
    assert float(modulus.min()) >= 0.8 - 1e-6 and float(modulus.max()) <= 0.99 + 1e-6
    # uniform by area: |lambda|^2 uniform on [0.64, 0.9801], mean 0.81
    assert abs(float((modulus**2).mean()) - (0.64 + 0.9801) / 2) < 0.01
    phase = torch.exp(theta_log)
    assert float(phase.min()) >= 0 and float(phase.max()) <= 2 * math.pi and abs(float(phase.mean()) - math.pi) < 0.1
    assert torch.allclose(torch.exp(gamma_log), torch.sqrt(1 - modulus**2), atol=1e-6)


# ------------------------------------------------------------------ the whole model
def left_padded(seq: torch.Tensor, lengths: torch.Tensor, max_len: int) -> torch.Tensor:
    """The reference's input (dataloader/sas.py): ``[0] * pad_len + seq``."""
    return torch.tensor([[0] * (max_len - n) + row[:n] for row, n in zip(seq.tolist(), lengths.tolist())])


def reference_lru_layer(lru: LRULayer, x: torch.Tensor, mask: torch.Tensor, imag_c: torch.Tensor) -> torch.Tensor:
    """The reference's ``LRULayer.forward`` with its ``lru_parallel``, on complex weights."""
    lamb, gamma, B, b, C, c = complex_weights(lru)
    h = (x.to(torch.complex128) @ B.T + b) * gamma
    lamb = lamb[None]
    batch, length, hidden = h.shape
    for i in range(1, int(math.ceil(math.log2(length))) + 1):
        l = 2**i  # noqa: E741  (the reference's name)
        h = h.reshape(batch * length // l, l, hidden)
        m = mask.reshape(batch * length // l, l)
        h1, h2 = h[:, : l // 2], h[:, l // 2 :]
        if i > 1:
            lamb = torch.cat((lamb, lamb * lamb[-1]), 0)
        h = torch.cat([h1, h2 + lamb * h1[:, -1:] * m[:, l // 2 - 1 : l // 2].unsqueeze(-1)], 1)
    h = h.reshape(batch, length, hidden)
    out = (h @ C.T + torch.complex(c, imag_c)).real
    return lru.layer_norm(out + x)


def reference_forward(m, tokens: torch.Tensor) -> torch.Tensor:
    """``LRU.forward`` (model/lru.py) in eval mode with the model's weights, on left-padded
    ``tokens`` ``[B, L]``: every position ``[B, L, d]``."""
    mask = tokens > 0
    x = m.layer_norm(m.item_embedding(tokens))
    length = x.shape[1]
    pad = 2 ** int(math.ceil(math.log2(length))) - length
    x, mask = F.pad(x, (0, 0, pad, 0)), F.pad(mask, (pad, 0))  # left padding to a power of two
    g = torch.Generator().manual_seed(7)
    for block in m.lru_blocks:
        imag_c = torch.randn(x.shape[-1], generator=g, dtype=x.dtype)  # Im c: never reaches the output
        x = reference_lru_layer(block.lru_layer, x, mask, imag_c)
        ff = block.feed_forward
        x = ff.LayerNorm(ff.w_2(F.gelu(ff.w_1(x))) + x)
    return x[:, -length:]


@pytest.mark.parametrize("n_layers", [1, 2])
@pytest.mark.parametrize("last_position_only", [True, False])
def test_forward_equals_reference_formula(slice_data, n_layers, last_position_only):
    model = perturbed(make_model(slice_data, n_layers=n_layers, last_position_only=last_position_only))
    seq, lengths = padded_batch(model.n_items, 11)
    with torch.no_grad():
        out = model(seq, lengths)
        assert out.shape == (11, 8)
        expected = reference_forward(model, left_padded(seq, lengths, 11))[:, -1]
        assert torch.allclose(out, expected, rtol=0, atol=1e-10)
        # padding is not the identity: RecBole's right-padded rows fed as they are differ
        right = reference_forward(model, seq)[:, -1]
        assert (right - out)[lengths < 11].abs().amax(-1).min() > 1e-3


def test_state_at_last_item_ignores_what_follows(slice_data):
    model = perturbed(make_model(slice_data, n_layers=2))
    seq, lengths = padded_batch(model.n_items, 11)
    with torch.no_grad():
        out = model(seq, lengths)
        assert torch.allclose(model(scramble_after_last(seq, lengths, model.n_items), lengths), out, rtol=0, atol=1e-12)
        wide = torch.cat([seq, torch.randint(1, model.n_items, (11, 9))], 1)
        assert torch.allclose(model(wide, lengths), out, rtol=0, atol=1e-12)
        earlier = seq.clone()  # an earlier item does matter
        earlier[:, 0] = earlier[:, 0] % (model.n_items - 1) + 1
        assert (model(earlier, lengths) - out).abs().amax(-1).min() > 1e-6


def test_initialisation_and_size(slice_data):
    model = make_model(slice_data)  # d 8, H 16, two blocks
    d, H, n = 8, 16, model.n_items
    lru = (d * 2 * H + 2 * H) + (2 * H * d + d) + 3 * H + 2 * d
    ffn = (d * 4 * d + 4 * d) + (4 * d * d + d) + 2 * d
    assert sum(p.numel() for p in model.parameters()) == n * d + n + 2 * d + 2 * (lru + ffn)
    for name, p in model.named_parameters():
        if "layer_norm" in name or "LayerNorm" in name or "params_log" in name:
            continue
        assert float(p.detach().abs().max()) <= 0.04 and float(p.detach().abs().min()) < 0.04, name
    assert float(model.item_embedding.weight[0].detach().abs().sum()) > 0  # row 0 drawn, as the reference
    assert float(model.item_bias.detach().abs().sum()) > 0
    assert torch.equal(model.layer_norm.weight.detach(), torch.ones(d))
    with pytest.raises(ConfigError, match="r_min=0.9 is larger than r_max=0.85"):
        make_model(slice_data, r_min=0.9, r_max=0.85)


@pytest.mark.parametrize("loss_type", ["CE", "BPR"])
def test_loss_through_the_pipeline(ml100k_slice, loss_type):
    neg = {"distribution": "uniform", "sample_num": 1} if loss_type == "BPR" else None
    keys = dict(SMALL, **SEQ_DATA, loss_type=loss_type, train_neg_sample_args=neg, state="WARNING")
    built = build("LRURec", "ml-slice", ml100k_slice, **keys)
    model = built.model.train()
    loss = model.calculate_loss(next(iter(built.train)))
    loss.backward()
    assert torch.isfinite(loss)
    assert all(p.grad is not None and bool(p.grad.abs().sum() > 0) for p in model.parameters())


@pytest.mark.parametrize("item_bias", [False, True])
def test_full_sort_predict_equals_predict_on_every_item(ml100k_slice, item_bias):
    built = build("LRURec", "ml-slice", ml100k_slice, item_bias=item_bias, state="WARNING", **SMALL, **SEQ_DATA)
    model = built.model.eval()
    assert_full_sort_equals_predict(model, next(iter(built.train)))


# ------------------------------------------------------------------ config and runs
def test_yaml_keys_parse_and_bad_values_are_refused(ml100k_slice):
    base = {"data_path": ml100k_slice}
    cfg = Config("LRURec", "ml-slice", config_dict=base)
    expected = {
        "hidden_size": 64,
        "n_layers": 2,
        "dropout_prob": 0.2,
        "lru_dropout_prob": 0.2,
        "state_expand": 2,
        "ffn_expand": 4,
        "r_min": 0.8,
        "r_max": 0.99,
        "layer_norm_eps": 1e-5,
        "initializer_range": 0.02,
        "last_position_only": True,
        "loss_type": "CE",
        "item_bias": True,
    }
    for key, value in expected.items():
        assert cfg[key] == value and type(cfg[key]) is type(value), key
    for key, value, allowed in [
        ("n_layers", 0, "int >= 1"),
        ("lru_dropout_prob", 1.0, "float >= 0, < 1"),
        ("r_max", 1.0, "float > 0, < 1"),
        ("r_min", -0.1, "float >= 0, < 1"),
        ("last_position_only", "yes", "bool"),
        ("loss_type", "BCE", "str: CE | BPR"),
    ]:
        with pytest.raises(ConfigError, match=re.escape(f"{key}={value!r}; allowed: {allowed}")):
            Config("LRURec", "ml-slice", config_dict=dict(base, **{key: value}))
