"""The C++ BPTT of the mLSTM recurrence (``backward`` in ``recbole_ext/model/mlstm/csrc/mlstm_cpu.cpp``):
equal to the TorchScript backward it replaces, to round-off, on random inputs; the layer's
``native`` path uses it and its gradients equal the step-by-step reference's; without it the
TorchScript backward runs."""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

import pytest
import torch

from recbole_ext.model.mlstm import MultiplicativeLSTM, recurrence
from recbole_ext.model.mlstm import layer as mlstm_layer
from recbole_ext.model.mlstm import native as mlstm_native

from mlstm_reference import naive_mlstm

#: relative tolerance of C++ against TorchScript, per dtype (float round-off, summation order)
TOL = {torch.float64: 1e-12, torch.float32: 1e-5}
NAMES = ("d_xg", "d_xm", "d_h0", "d_c0", "d_w_mh", "d_w_hm", "d_b_hm")


def _extension() -> Any:
    """The built C++ extension (the test fails, saying why, if it did not build)."""
    ext = mlstm_native.native_extension()
    assert ext is not None, f"the C++ mLSTM recurrence did not build: {mlstm_native.build_error()}"
    return ext


def _saved(length: int, batch: int, hidden: int, dtype: torch.dtype, zero_state: bool) -> Tuple[torch.Tensor, ...]:
    """Random inputs through the TorchScript forward: ``h0, c0, xm, w_mh, w_hm`` and what the
    forward saves (``hs, cs, hms, ms, acts``), in the backward's argument order."""

    def rnd(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, dtype=dtype)

    xg, xm = rnd(length, batch, 4 * hidden), rnd(length, batch, hidden)
    zeros = torch.zeros(batch, hidden, dtype=dtype)
    h0, c0 = (zeros, zeros) if zero_state else (rnd(batch, hidden), rnd(batch, hidden))
    w_mh, w_hm, b_hm = rnd(4 * hidden, hidden) * hidden**-0.5, rnd(hidden, hidden) * hidden**-0.5, rnd(hidden)
    hs, cs, hms, ms, acts = recurrence._mlstm_recurrence_fwd(xg, xm, h0, c0, w_mh, w_hm, b_hm)
    return h0, c0, xm, w_mh, w_hm, hs, cs, hms, ms, acts


def assert_close_rel(got: torch.Tensor, want: torch.Tensor, tol: float, name: str) -> None:
    """``|got - want| <= tol * (1 + max |want|)`` elementwise, with a message naming the tensor."""
    assert got.shape == want.shape and got.dtype == want.dtype, (name, got.shape, want.shape)
    err = (got - want).abs().max().item()
    assert err <= tol * (1.0 + want.abs().max().item()), f"{name}: max abs error {err:.3g}"


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("hidden", [16, 64])
@pytest.mark.parametrize("length,batch", [(1, 5), (7, 37), (30, 13)])
@pytest.mark.parametrize("zero_state", [False, True])
def test_native_backward_equals_torchscript(dtype, hidden, length, batch, zero_state):
    """Every output of the C++ backward equals the TorchScript backward's, with both incoming
    gradients given, and with either one ``None`` (C++) against zeros (TorchScript)."""
    ext = _extension()
    torch.manual_seed(hidden + 100 * length + batch)
    saved = _saved(length, batch, hidden, dtype, zero_state)
    grad_h, grad_c = torch.randn_like(saved[5]), torch.randn_like(saved[6])
    for gh, gc in ((grad_h, grad_c), (grad_h, None), (None, grad_c)):
        want = recurrence._mlstm_recurrence_bwd(
            torch.zeros_like(grad_h) if gh is None else gh, torch.zeros_like(grad_c) if gc is None else gc, *saved
        )
        got = ext.backward(gh, gc, *saved)
        assert len(got) == len(want) == 8
        for name, g, w in zip(NAMES, got, want):
            assert_close_rel(g, w, TOL[dtype], f"{name} (grad_h {gh is not None}, grad_c {gc is not None})")


def _counting(ext: Any, calls: Dict[str, int], with_backward: bool = True) -> Any:
    """A stand-in for the extension that counts forward and backward calls (``backward``
    absent when ``with_backward`` is false, as in an extension built before it existed)."""

    class Counting:
        def forward(self, *args):
            calls["forward"] += 1
            return ext.forward(*args)

    if with_backward:

        def backward(self, *args):
            calls["backward"] += 1
            return ext.backward(*args)

        Counting.backward = backward
    return Counting()


def _layer_grads(
    net: MultiplicativeLSTM, x: torch.Tensor, state: Optional[Tuple[torch.Tensor, torch.Tensor]], use_c: bool, ref: bool
) -> List[torch.Tensor]:
    """Outputs and the gradients of x, the initial state (if given) and every parameter of a
    random linear loss on h (and tanh(c) when ``use_c``); ``ref``: through the naive reference."""
    leaves = [x, *([] if state is None else list(state)), *net.parameters()]
    for t in leaves:
        t.grad = None
    if ref:
        h, c = naive_mlstm(x, list(net.layers), *(state or (None, None)))
    else:
        h, c = net(x, state)
    gen = torch.Generator().manual_seed(7)
    loss = (h * torch.randn(h.shape, generator=gen, dtype=h.dtype)).sum()
    if use_c:
        loss = loss + (c.tanh() * torch.randn(c.shape, generator=gen, dtype=c.dtype)).sum()
    loss.backward()
    return [h.detach(), c.detach()] + [t.grad.clone() for t in leaves]


@pytest.mark.parametrize("hidden,batch,length", [(16, 37, 1), (16, 13, 12), (64, 21, 9)])
@pytest.mark.parametrize("given_state", [False, True])
@pytest.mark.parametrize("use_c", [False, True])
def test_native_path_gradients_match_reference(monkeypatch, hidden, batch, length, given_state, use_c):
    """``impl="native"`` (two layers, float64) runs the C++ forward and the C++ backward, and its
    outputs and all gradients equal the step-by-step reference's; with a loss on h only the
    backward gets ``grad_c=None``."""
    ext = _extension()
    calls = {"forward": 0, "backward": 0}
    monkeypatch.setattr(mlstm_layer, "native_extension", lambda: _counting(ext, calls))
    torch.manual_seed(hidden + batch + length)
    net = MultiplicativeLSTM(5, hidden, num_layers=2, impl="native").double()
    x = torch.randn(batch, length, 5, dtype=torch.double, requires_grad=True)
    state = None
    if given_state:
        state = tuple(torch.randn(2, batch, hidden, dtype=torch.double, requires_grad=True) for _ in range(2))
    fast = _layer_grads(net, x, state, use_c, ref=False)
    assert calls == {"forward": 2, "backward": 2}
    ref = _layer_grads(net, x, state, use_c, ref=True)
    for k, (a, r) in enumerate(zip(fast, ref)):
        assert_close_rel(a, r, 1e-10, f"output/gradient {k}")


def test_native_forward_without_native_backward_uses_torchscript(monkeypatch):
    """An extension without ``backward`` still trains: the TorchScript BPTT runs, same gradients."""
    ext = _extension()
    calls = {"forward": 0, "backward": 0}
    torch.manual_seed(11)
    net = MultiplicativeLSTM(6, 16, impl="native").double()
    x = torch.randn(19, 8, 6, dtype=torch.double, requires_grad=True)
    monkeypatch.setattr(mlstm_layer, "native_extension", lambda: _counting(ext, calls))
    with_cpp = _layer_grads(net, x, None, True, ref=False)
    monkeypatch.setattr(mlstm_layer, "native_extension", lambda: _counting(ext, calls, with_backward=False))
    script = _layer_grads(net, x, None, True, ref=False)
    assert calls == {"forward": 2, "backward": 1}
    for k, (a, r) in enumerate(zip(with_cpp, script)):
        assert_close_rel(a, r, 1e-12, f"output/gradient {k}")


def test_native_backward_with_create_graph_uses_torchscript(monkeypatch):
    """``create_graph=True`` runs the TorchScript BPTT (the C++ loop records no graph): same
    first-order gradients, and the gradients carry a graph."""
    ext = _extension()
    calls = {"forward": 0, "backward": 0}
    monkeypatch.setattr(mlstm_layer, "native_extension", lambda: _counting(ext, calls))
    torch.manual_seed(12)
    net = MultiplicativeLSTM(4, 16, impl="native").double()
    x = torch.randn(9, 6, 4, dtype=torch.double, requires_grad=True)
    (plain,) = torch.autograd.grad(net(x)[0].sum(), x)
    (graphed,) = torch.autograd.grad(net(x)[0].sum(), x, create_graph=True)
    assert calls == {"forward": 2, "backward": 1}
    assert graphed.requires_grad
    assert_close_rel(graphed.detach(), plain, 1e-12, "d_x")
