"""Mamba4Rec (arXiv 2403.03900): the pure-PyTorch selective scans against a naive loop, the model
against the reference forward written out op by op, causality under right padding, the
reference's initialisation and size, invalid keys, a run by name, and (CUDA + mamba_ssm only)
the mamba_ssm kernel against the loop."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from recbole_ext.config import Config
from recbole_ext.errors import ConfigError
from recbole_ext.model.selective_scan import (
    mamba_ssm_available,
    resolve_scan_impl,
    selective_scan,
    selective_scan_reference,
    selective_scan_torch,
)

from conftest import model_on_slice, scramble_after_last, slice_config_and_data


@pytest.fixture(scope="module")
def slice_data(ml100k_slice):
    return slice_config_and_data("Mamba4Rec", ml100k_slice)


def make_model(slice_data, **keys):
    return model_on_slice(slice_data, "Mamba4Rec", **keys)


def random_batch(n_items: int, batch: int = 6, length: int = 12, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    seq = torch.randint(1, n_items, (batch, length), generator=g)
    lengths = torch.randint(1, length, (batch,), generator=g)
    lengths[0], lengths[1] = length, 1
    for i, n in enumerate(lengths.tolist()):
        seq[i, n:] = 0
    return seq, lengths


def scan_inputs(batch: int, length: int, d: int, n: int, dtype=torch.float64, device="cpu", seed: int = 0):
    """u, delta, A, B, C, D, z, delta_bias (with gradients)."""
    g = torch.Generator().manual_seed(seed)
    shapes = [
        (batch, length, d),
        (batch, length, d),
        (d, n),
        (batch, length, n),
        (batch, length, n),
        (d,),
        (batch, length, d),
        (d,),
    ]
    xs = [torch.randn(s, generator=g, dtype=dtype) for s in shapes]
    xs[2] = -torch.exp(xs[2])  # A < 0, as -exp(A_log)
    return [x.to(device).requires_grad_() for x in xs]


# ------------------------------------------------------------------ the scans
@pytest.mark.parametrize("length", [1, 2, 5, 9, 16, 23])
@pytest.mark.parametrize("chunked", [False, True])
@pytest.mark.parametrize("chunk", [None, 4])
def test_fast_scans_equal_the_loop(length, chunked, chunk):
    xs = scan_inputs(3, length, 5, 4, seed=length)
    expected = selective_scan_reference(*xs, delta_softplus=True)
    got = selective_scan_torch(*xs, delta_softplus=True, chunk=chunk, chunked=chunked)
    assert torch.allclose(got, expected, rtol=0, atol=1e-10)
    w = torch.randn(expected.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    g_expected = torch.autograd.grad((expected * w).sum(), xs)
    g_got = torch.autograd.grad((got * w).sum(), xs)
    for name, a, b in zip(["u", "delta", "A", "B", "C", "D", "z", "delta_bias"], g_got, g_expected):
        assert torch.allclose(a, b, rtol=0, atol=1e-10), name


def test_scan_without_optional_inputs_and_dispatch():
    u, delta, A, B, C = scan_inputs(2, 7, 3, 2)[:5]
    assert torch.allclose(selective_scan(u, delta, A, B, C, impl="torch"), selective_scan_reference(u, delta, A, B, C))
    assert torch.allclose(
        selective_scan(u, delta, A, B, C, impl="chunked"), selective_scan_reference(u, delta, A, B, C)
    )
    assert resolve_scan_impl("auto", torch.device("cpu")) == "torch"
    with pytest.raises(ConfigError, match="scan_impl='flash'"):
        resolve_scan_impl("flash", torch.device("cpu"))
    if not mamba_ssm_available():
        with pytest.raises(ConfigError, match="mamba_ssm cannot be imported"):
            resolve_scan_impl("mamba_ssm", torch.device("cpu"))


# ------------------------------------------------------------------ the model
def reference_forward(m, seq, lengths):
    """The reference forward (mamba4rec.py + mamba_ssm.Mamba), written out with the model's
    weights, eval mode: no dropout."""
    h = m.LayerNorm(m.item_embedding(seq))
    length = seq.shape[1]
    for layer in m.mamba_layers:
        mx = layer.mamba
        x, z = (h @ mx.in_proj.weight.t()).chunk(2, dim=-1)
        x = F.conv1d(
            x.transpose(1, 2),
            mx.conv1d.weight,
            mx.conv1d.bias,
            padding=mx.conv1d.weight.shape[-1] - 1,
            groups=mx.d_inner,
        )
        x = F.silu(x[..., :length]).transpose(1, 2)
        dt, b, c = torch.split(x @ mx.x_proj.weight.t(), [mx.dt_rank, mx.d_state, mx.d_state], dim=-1)
        delta = F.softplus(dt @ mx.dt_proj.weight.t() + mx.dt_proj.bias)
        A = -torch.exp(mx.A_log)
        state = x.new_zeros(x.shape[0], mx.d_inner, mx.d_state)
        ys = []
        for t in range(length):
            state = (
                torch.exp(delta[:, t, :, None] * A) * state + delta[:, t, :, None] * b[:, t, None, :] * x[:, t, :, None]
            )
            ys.append(state @ c[:, t][:, :, None])
        y = (torch.cat(ys, -1).transpose(1, 2) + mx.D * x) * F.silu(z)
        out = y @ mx.out_proj.weight.t()
        out = layer.LayerNorm(out + h) if len(m.mamba_layers) > 1 else layer.LayerNorm(out)
        f = layer.ffn
        h = f.LayerNorm(f.w_2(F.gelu(f.w_1(out))) + out)
    return h[torch.arange(len(seq)), lengths - 1]


@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("last_position_only", [True, False])
def test_forward_equals_reference_formula(slice_data, num_layers, last_position_only):
    model = make_model(
        slice_data, hidden_size=16, d_state=4, num_layers=num_layers, last_position_only=last_position_only
    )
    model = model.double().eval()
    for p in model.parameters():  # away from the initialisation's zeros, so every term counts
        p.data.add_(0.1 * torch.randn_like(p))
    seq, lengths = random_batch(model.n_items)
    with torch.no_grad():
        assert torch.allclose(model(seq, lengths), reference_forward(model, seq, lengths), rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize("last_position_only", [True, False])
def test_state_at_last_item_ignores_what_follows(slice_data, last_position_only):
    model = make_model(slice_data, hidden_size=16, d_state=4, num_layers=2, last_position_only=last_position_only)
    model = model.double().eval()
    seq, lengths = random_batch(model.n_items, batch=8, length=15)
    with torch.no_grad():
        out = model(seq, lengths)
        # items after the last real one (instead of padding), or more padding, change nothing
        assert torch.allclose(model(scramble_after_last(seq, lengths, model.n_items), lengths), out, rtol=0, atol=1e-12)
        padded = torch.cat([seq, torch.zeros(8, 9, dtype=seq.dtype)], 1)
        assert torch.allclose(model(padded, lengths), out, rtol=0, atol=1e-12)
        # an earlier item does matter
        earlier = seq.clone()
        earlier[:, 0] = earlier[:, 0] % (model.n_items - 1) + 1
        assert not torch.allclose(model(earlier, lengths), out)


def test_initialisation_and_size_follow_the_reference(slice_data):
    model = make_model(slice_data)  # d 64, E 128, N 32, dt_rank 4, d_conv 4, one layer
    n = sum(p.numel() for p in model.parameters()) - model.item_embedding.weight.numel()
    mixer = 64 * 256 + (128 * 4 + 128) + 128 * (4 + 64) + (4 * 128 + 128) + 128 * 32 + 128 + 128 * 64
    ffn = (64 * 256 + 256) + (256 * 64 + 64) + 128
    assert n == 128 + mixer + 128 + ffn == 72_256
    mx = model.mamba_layers[0].mamba
    assert float(mx.dt_proj.bias.detach().abs().sum()) == 0  # the reference's _init_weights zeroes it
    assert torch.allclose(-torch.exp(mx.A_log.detach()[0]), -torch.arange(1.0, 33.0)) and torch.equal(
        mx.D.detach(), torch.ones(128)
    )
    assert abs(float(mx.in_proj.weight.detach().std()) - 0.02) < 0.002
    mx = make_model(slice_data, dt_init="mamba").mamba_layers[0].mamba
    dt = F.softplus(mx.dt_proj.bias.detach())
    assert float(dt.min()) >= 1e-4 - 1e-7 and float(dt.max()) <= 0.1 + 1e-6
    assert float(mx.dt_proj.weight.detach().abs().max()) <= 0.5  # dt_rank ** -0.5


def test_training_mode_runs_and_backpropagates(slice_data):
    model = make_model(slice_data, hidden_size=16, d_state=4, num_layers=2).train()
    seq, lengths = random_batch(model.n_items)
    loss = F.cross_entropy(model.score_all(model(seq, lengths)), torch.ones(len(seq), dtype=torch.long))
    loss.backward()
    assert torch.isfinite(loss)
    assert all(p.grad is not None for n, p in model.named_parameters() if n != "item_bias")


@pytest.mark.parametrize(
    "key, value, message",
    [
        ("scan_impl", "flash", r"scan_impl='flash'; allowed: str: auto \| torch \| chunked \| mamba_ssm"),
        ("dt_init", "zero", r"dt_init='zero'; allowed: str: reference \| mamba"),
        ("d_state", 0, r"d_state=0; allowed: int >= 1"),
        ("dropout_prob", 1.0, r"dropout_prob=1.0"),
    ],
)
def test_invalid_key_is_a_config_error(ml100k_slice, key, value, message):
    with pytest.raises(ConfigError, match=message):
        Config("Mamba4Rec", "ml-slice", config_dict={"data_path": ml100k_slice, key: value})


# ------------------------------------------------------------------ mamba_ssm (CUDA only)
@pytest.mark.skipif(not torch.cuda.is_available(), reason="mamba_ssm's selective scan needs CUDA")
def test_mamba_ssm_kernel_equals_the_loop():
    pytest.importorskip("mamba_ssm")
    xs = scan_inputs(4, 37, 16, 8, dtype=torch.float32, device="cuda")
    expected = selective_scan_reference(*xs, delta_softplus=True)
    got = selective_scan(*xs, delta_softplus=True, impl="mamba_ssm")
    assert resolve_scan_impl("auto", torch.device("cuda")) == "mamba_ssm"
    assert torch.allclose(got, expected, rtol=1e-3, atol=1e-4)
    w = torch.randn_like(expected)
    for a, b in zip(torch.autograd.grad((got * w).sum(), xs), torch.autograd.grad((expected * w).sum(), xs)):
        assert torch.allclose(a, b, rtol=1e-3, atol=1e-3)
