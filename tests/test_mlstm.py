"""mLSTM and LSTM4Rec: the fast multiplicative-LSTM layer against a naive reference, its reduction
to an LSTM, padding independence, and one epoch through the pipeline (learning on the rule data: the model
contract, tests/test_model_contract.py)."""

from __future__ import annotations

import pytest
import torch

from recbole_ext.model.mlstm import MLSTM_IMPLS, MultiplicativeLSTM

from conftest import assert_ranking_metrics
from mlstm_reference import naive_mlstm

#: implementations that run on the CPU at any size ("triton": tests/test_mlstm_triton.py)
CPU_IMPLS = tuple(i for i in MLSTM_IMPLS if i != "triton")


def _grads(tensors):
    return [t.grad.clone() for t in tensors]


@pytest.mark.parametrize("impl", CPU_IMPLS)
def test_fast_mlstm_matches_naive_reference(impl):
    torch.manual_seed(0)
    b, n, d, hid, n_layers = 5, 9, 6, 7, 2
    net = MultiplicativeLSTM(d, hid, num_layers=n_layers, impl=impl).double()
    x = torch.randn(b, n, d, dtype=torch.double, requires_grad=True)
    h0 = torch.randn(n_layers, b, hid, dtype=torch.double, requires_grad=True)
    c0 = torch.randn(n_layers, b, hid, dtype=torch.double, requires_grad=True)
    wh = torch.randn(b, n, hid, dtype=torch.double)
    wc = torch.randn(b, n, hid, dtype=torch.double)
    leaves = [x, h0, c0, *net.parameters()]

    h, c = net(x, (h0, c0))
    ((h * wh).sum() + (c.tanh() * wc).sum()).backward()
    fast = [h.detach(), c.detach()] + _grads(leaves)
    for t in leaves:
        t.grad = None
    h_ref, c_ref = naive_mlstm(x, list(net.layers), h0, c0)
    ((h_ref * wh).sum() + (c_ref.tanh() * wc).sum()).backward()
    ref = [h_ref.detach(), c_ref.detach()] + _grads(leaves)

    assert len(fast) == len(ref)
    for a, r in zip(fast, ref):
        assert torch.allclose(a, r, atol=1e-10, rtol=1e-8), (a - r).abs().max()


def test_native_recurrence_builds_and_is_used(monkeypatch):
    """The C++ forward loop builds here (CI machines have a compiler), ``auto`` uses it for
    training (saving what the backward needs) and for inference (saving nothing), and it
    agrees with the TorchScript implementation in float32."""
    from recbole_ext.model.mlstm import layer as mlstm_layer
    from recbole_ext.model.mlstm import native as mlstm_native

    ext = mlstm_native.native_extension()
    assert ext is not None, f"the C++ mLSTM recurrence did not build: {mlstm_native.build_error()}"
    calls = []

    class Recorder:
        def forward(self, *args):
            calls.append(args[7])  # save
            return ext.forward(*args)

    monkeypatch.setattr(mlstm_layer, "native_extension", lambda: Recorder())
    torch.manual_seed(3)
    net = MultiplicativeLSTM(16, 24, num_layers=2)
    assert all(layer.impl == "auto" for layer in net.layers)
    x = torch.randn(32, 11, 16, requires_grad=True)
    h, c = net(x)
    (h.sum() + c.sum()).backward()
    assert calls == [True, True]
    grads = [p.grad.clone() for p in net.parameters()]
    with torch.no_grad():
        h_inf, _ = net(x)
    assert calls == [True, True, False, False]
    assert torch.allclose(h_inf, h.detach(), atol=1e-6)
    for layer in net.layers:
        layer.impl = "fused"
    net.zero_grad()
    h_ref, c_ref = net(x)
    (h_ref.sum() + c_ref.sum()).backward()
    assert len(calls) == 4
    assert torch.allclose(h, h_ref, atol=1e-5) and torch.allclose(c, c_ref, atol=1e-5)
    for g, p in zip(grads, net.parameters()):
        assert torch.allclose(g, p.grad, atol=1e-4, rtol=1e-4)


def test_buffer_pool_reuses_only_freed_buffers():
    """The C++ loop's saved buffers come from a pool: a second forward while a retained graph is
    alive must not overwrite that graph's buffers, and freed buffers are reused."""
    import gc

    from recbole_ext.model.mlstm import native as mlstm_native

    assert mlstm_native.native_extension() is not None, mlstm_native.build_error()
    pool = mlstm_native.POOL
    torch.manual_seed(5)
    net = MultiplicativeLSTM(8, 12)
    x = torch.randn(16, 9, 8)
    h, c = net(x)
    h.sum().backward(retain_graph=True)
    first = [p.grad.clone() for p in net.parameters()]
    net.zero_grad()
    h2, c2 = net(torch.randn(16, 9, 8) * 3)  # different values in any buffer it takes
    h2.sum().backward()
    net.zero_grad()
    h.sum().backward()  # the retained graph again: its buffers must be intact
    for want, p in zip(first, net.parameters()):
        assert torch.allclose(p.grad, want)
    key = (16, 12, torch.float32)
    pool._free.pop(key, None)
    del h, c, h2, c2
    gc.collect()
    assert len(pool._free.get(key, [])) == 2  # both leases came back
    ptr = pool._free[key][-1][2].data_ptr()
    lease = pool.take(9, 16, 12, torch.float32)
    assert lease.views[2].data_ptr() == ptr and lease.views[2].shape == (9, 16, 48)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("scale", [1.0, 30.0, 1000.0])
def test_native_recurrence_on_extreme_inputs(dtype, scale):
    """Saturated gates (pre-activations in the hundreds) stay finite and equal TorchScript's:
    the extension is built with -ffast-math, which assumes exp never overflows."""
    from recbole_ext.model.mlstm import native as mlstm_native
    from recbole_ext.model.mlstm import recurrence

    ext = mlstm_native.native_extension()
    assert ext is not None, mlstm_native.build_error()
    torch.manual_seed(4)
    n, b, hid = 5, 8, 16
    xg = (torch.randn(n, b, 4 * hid) * scale).to(dtype)
    xm = torch.randn(n, b, hid, dtype=dtype)
    h0, c0 = torch.randn(b, hid, dtype=dtype), torch.randn(b, hid, dtype=dtype)
    w_mh = torch.randn(4 * hid, hid, dtype=dtype) * scale
    w_hm, b_hm = torch.randn(hid, hid, dtype=dtype), torch.randn(hid, dtype=dtype)
    got = ext.forward(xg, xm, h0, c0, w_mh, w_hm, b_hm, True)
    want = recurrence._mlstm_recurrence_fwd(xg, xm, h0, c0, w_mh, w_hm, b_hm)
    tol = 1e-4 if dtype == torch.float32 else 1e-10
    for g, w in zip(got, want):
        assert torch.isfinite(g).all()
        assert torch.allclose(g, w, atol=tol, rtol=tol), (g - w).abs().max()


def test_mlstm_with_identity_multiplier_is_an_lstm():
    torch.manual_seed(1)
    b, n, d, hid = 4, 8, 5, 6
    lstm = torch.nn.LSTM(d, hid, batch_first=True)
    net = MultiplicativeLSTM(d, hid)
    layer = net.layers[0]
    with torch.no_grad():
        layer.weight_im.zero_()
        layer.bias_im.fill_(1.0)
        layer.weight_hm.copy_(torch.eye(hid))
        layer.bias_hm.zero_()
        layer.weight_ih.copy_(lstm.weight_ih_l0)
        layer.weight_mh.copy_(lstm.weight_hh_l0)
        layer.bias.copy_(lstm.bias_ih_l0 + lstm.bias_hh_l0)
    x = torch.randn(b, n, d)
    h, c = net(x)
    out, (h_n, c_n) = lstm(x)
    assert torch.allclose(h, out, atol=1e-5)
    assert torch.allclose(c[:, -1], c_n[0], atol=1e-5)
    # and a perturbed multiplier is not an LSTM any more (the test can fail)
    with torch.no_grad():
        layer.bias_hm.fill_(0.5)
    assert not torch.allclose(net(x)[0], out, atol=1e-3)


def _build_model(model_name: str, data_root: str, **overrides):
    from recbole_ext.pipeline import Run
    from recbole_ext.registry import get_model

    cfg = {
        "data_path": data_root,
        "state": "WARNING",
        "embedding_size": 12,
        "hidden_size": 10,
        "MAX_ITEM_LIST_LENGTH": 20,
        "num_layers": 2,
        "dropout_prob": 0.0,
    }
    cfg.update(overrides)
    run = Run.resolve(model_name, "rule-seq", config_dict=cfg)
    return get_model(model_name)(run.config, run.load_dataset()).eval()


@pytest.mark.parametrize("model_name", ["mLSTM", "LSTM4Rec"])
@pytest.mark.parametrize("output_state,learn_init", [("h", False), ("c", True)])
def test_state_at_last_item_ignores_what_follows(rule_dataset, model_name, output_state, learn_init):
    torch.manual_seed(2)
    model = _build_model(model_name, rule_dataset, output_state=output_state, learn_initial_state=learn_init)
    b, n = 6, 20
    lengths = torch.tensor([1, 3, 7, 12, 19, 20])
    seq = torch.zeros(b, n, dtype=torch.long)
    for r, ln in enumerate(lengths.tolist()):
        seq[r, :ln] = torch.randint(1, model.n_items, (ln,))
    noisy = seq.clone()
    for r, ln in enumerate(lengths.tolist()):
        noisy[r, ln:] = torch.randint(1, model.n_items, (n - ln,))
    with torch.no_grad():
        clean_out = model(seq, lengths)
        noisy_out = model(noisy, lengths)
        # the same rows read one step too early must differ (the test can fail)
        early = model(seq, (lengths - 1).clamp_min(1))
    assert clean_out.shape == (b, 12)
    assert torch.allclose(clean_out, noisy_out, atol=1e-6)
    assert not torch.allclose(clean_out[1:], early[1:], atol=1e-4)


def test_bad_output_state_is_a_user_error(rule_dataset):
    from recbole_ext.errors import ConfigError

    with pytest.raises(ConfigError):
        _build_model("mLSTM", rule_dataset, output_state="x")


@pytest.mark.parametrize("model_name", ["mLSTM", "LSTM4Rec"])
def test_one_epoch_runs(run_tiny, rule_dataset, model_name):
    result = run_tiny(model_name, "rule-seq", rule_dataset, num_layers=2, output_state="c", learn_initial_state=True)
    assert result["model"] == model_name
    assert_ranking_metrics(result["test_result"])


@pytest.mark.parametrize("impl", CPU_IMPLS)
def test_mlstm_under_bf16_autocast_runs_in_float32(impl):
    """Under autocast (``precision: bf16``) the layer runs in its weights' dtype: same outputs
    and gradients as without autocast, to float32 round-off."""
    torch.manual_seed(0)
    net = MultiplicativeLSTM(6, 7, num_layers=2, impl=impl)
    x = torch.randn(4, 5, 6, requires_grad=True)
    h, c = net(x)
    (h.sum() + c.sum()).backward()
    plain = [h.detach(), c.detach(), x.grad.clone()]
    x.grad = None
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        h, c = net(x)
    (h.sum() + c.sum()).backward()  # outside autocast, as the trainer does
    assert h.dtype == torch.float32
    for got, want in zip([h.detach(), c.detach(), x.grad], plain):
        # float32 round-off only (the scripted loop re-optimises between calls); bf16 is ~1e-3 off
        assert torch.allclose(got, want, rtol=1e-6, atol=1e-7)


def test_a_stale_build_lock_is_removed_and_a_fresh_one_kept(tmp_path):
    from recbole_ext.model.mlstm import native

    lock = tmp_path / "lock"
    lock.write_text("")
    now = lock.stat().st_mtime
    assert not native.clear_stale_lock(str(tmp_path), now=now + 60)  # a build in progress
    assert lock.exists()
    assert native.clear_stale_lock(str(tmp_path), now=now + native.STALE_LOCK_S + 1)  # a killed build's
    assert not lock.exists()
    assert not native.clear_stale_lock(str(tmp_path)) and not native.clear_stale_lock(None)
    assert native._build_directory().endswith(native.EXTENSION_NAME)  # torch still says where it builds
