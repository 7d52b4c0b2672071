"""FastGRU (recbole_ext.model.gru): its persistent Triton kernels against nn.GRU, run on the CPU by
Triton's interpreter (``TRITON_INTERPRET=1``, which must be set before Triton is imported: hence a
subprocess); an ahead-of-time compile of the kernels for sm_90 (no GPU needed); and, in process,
the torch path, ``impl="auto"``'s choice, :func:`swap_gru` and the error for ``impl="triton"``."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch
from torch import nn

from recbole_ext.model.gru import FastGRU, swap_gru
from recbole_ext.model.gru import layer as gru_layer

CHECK = r"""
import torch
from torch import nn
from recbole_ext.model.gru import FastGRU

def grads(net, x, h0, wo, wh):
    out, h_n = net(x, h0)
    ((out * wo).sum() + (h_n * wh).sum()).backward()
    leaves = [x] + ([h0] if h0 is not None else []) + list(net.parameters())
    res = [out.detach(), h_n.detach()] + [t.grad.clone() for t in leaves]
    for t in leaves:
        t.grad = None
    return res

def run(dtype, b, n, d, hid, layers, bias, with_h0, atol):
    torch.manual_seed(0)
    fast = FastGRU(d, hid, num_layers=layers, bias=bias, impl="triton").to(dtype)
    ref = nn.GRU(d, hid, num_layers=layers, bias=bias, batch_first=True).to(dtype)
    with torch.no_grad():  # uniform(-1/sqrt(H), 1/sqrt(H)) biases are small: make them count
        for name, p in fast.named_parameters():
            if "bias" in name:
                p.uniform_(-1.0, 1.0)
    ref.load_state_dict(fast.state_dict())
    x = torch.randn(b, n, d, dtype=dtype, requires_grad=True)
    h0 = torch.randn(layers, b, hid, dtype=dtype, requires_grad=True) if with_h0 else None
    wo, wh = torch.randn(b, n, hid, dtype=dtype), torch.randn(layers, b, hid, dtype=dtype)
    got, want = grads(fast, x, h0, wo, wh), grads(ref, x, h0, wo, wh)
    assert fast.last_impl == "triton"
    gap = max(float((a - r).abs().max()) for a, r in zip(got, want))
    assert gap <= atol, (dtype, b, n, hid, layers, bias, with_h0, gap)
    print(dtype, b, n, hid, layers, bias, with_h0, "gap", gap)

run(torch.float32, 5, 7, 6, 16, 1, True, True, 1e-5)     # 5 rows: one partly masked block of 16
run(torch.float32, 5, 7, 6, 16, 2, False, False, 1e-5)   # GLINT-RU's bias-free GRU, two layers
run(torch.float32, 19, 4, 8, 32, 1, False, True, 1e-5)   # two blocks, the last partly masked
run(torch.float32, 5, 7, 32, 32, 2, True, False, 1e-5)
run(torch.float64, 5, 6, 6, 16, 2, True, True, 1e-10)

# bfloat16 forward against nn.GRU in float32 on the same (bf16-rounded) weights and inputs
torch.manual_seed(0)
fast = FastGRU(8, 32, bias=True, impl="triton").bfloat16()
ref = nn.GRU(8, 32, bias=True, batch_first=True)
ref.load_state_dict({k: v.float() for k, v in fast.state_dict().items()})
x = torch.randn(5, 7, 8).bfloat16()
with torch.no_grad():
    out, h_n = fast(x)
    out_ref, h_ref = ref(x.float())
assert out.dtype == torch.bfloat16
gap = float((out.float() - out_ref).abs().max())
assert gap < 1.5e-2 and float((h_n.float() - h_ref).abs().max()) < 1.5e-2, gap
print("bf16 forward gap", gap)

for hid, dtype in ((24, torch.float32), (256, torch.float32), (256, torch.bfloat16)):
    try:
        FastGRU(4, hid, impl="triton").to(dtype)(torch.randn(2, 3, 4, dtype=dtype))
    except ValueError as e:
        assert "power of two" in str(e) or "KB" in str(e), e
    else:
        raise AssertionError(f"impl='triton' with hidden {hid} {dtype} must be refused")
print("ok")
"""


@pytest.mark.slow
def test_triton_kernels_match_nn_gru_in_the_interpreter():
    pytest.importorskip("triton", reason="Triton is an optional dependency (the `test` extra installs it)")
    env = dict(os.environ, TRITON_INTERPRET="1", OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    assert proc.stdout.strip().endswith("ok")


AOT = r"""
import os, subprocess, sys, tempfile
import triton, triton.language as tl
import torch
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource
from recbole_ext.model.gru import triton_gru as K
TL = {"fp32": (tl.float32, torch.float32), "bf16": (tl.bfloat16, torch.bfloat16)}
cuobjdump = os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia", "bin", "cuobjdump")
for case in sys.argv[1:]:
    name, hid, dt = case.split(":")
    fn, (tl_dt, torch_dt) = getattr(K, name), TL[dt]
    block, warps = K.launch_config(int(hid), torch_dt)
    cons = {"H": int(hid), "BLOCK": block, "DOT": tl_dt, "STATE": tl.float32, "PRECISION": "ieee", "SAVE": True}
    cons = {k: v for k, v in cons.items() if k in fn.arg_names}
    sig = {a: "constexpr" if a in cons else "i32" if a in ("L", "B") else "*" + dt for a in fn.arg_names}
    opts = {"num_stages": K.NUM_STAGES, "num_warps": warps}
    k = triton.compile(ASTSource(fn=fn, signature=sig, constexprs=cons), target=GPUTarget("cuda", 90, 32), options=opts)
    with tempfile.NamedTemporaryFile("wb", suffix=".cubin", delete=False) as f:
        f.write(k.asm["cubin"])
    usage = subprocess.run([cuobjdump, "-res-usage", f.name], capture_output=True, text=True).stdout
    stack = int(usage.split("STACK:")[1].split()[0])
    print(case, k.metadata.shared, stack)
"""
#: shared memory per thread block on an H100 or H200 (sm_90), bytes
SM90_SHARED = 232448


def _sm90(*cases: str) -> dict:
    """Compile kernels (``"_fwd_kernel:128:bf16"``, ...) for sm_90 with the launcher's settings
    (the Triton wheel carries ptxas) and return ``case -> (shared bytes, stack bytes a thread)``;
    a stack means ptxas spilled registers to local memory."""
    proc = subprocess.run([sys.executable, "-c", AOT, *cases], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    rows = [line.split() for line in proc.stdout.splitlines()]
    return {r[0]: (int(r[1]), int(r[2])) for r in rows}


@pytest.mark.slow
def test_kernels_fit_an_h100_at_the_largest_admitted_widths():
    triton = pytest.importorskip("triton", reason="Triton is an optional dependency (the `test` extra installs it)")
    if not os.path.exists(os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia", "bin", "cuobjdump")):
        pytest.skip("this Triton wheel carries no cuobjdump")
    admitted = [f"{k}:{h}:{dt}" for k in ("_fwd_kernel", "_bwd_kernel") for h, dt in ((128, "bf16"), (64, "fp32"))]
    got = _sm90(*admitted, "_fwd_kernel:128:fp32")
    for case in admitted:  # weights on chip in shared memory, and no register spills
        assert got[case][0] <= SM90_SHARED and got[case][1] == 0, (case, got[case])
    # float32 at H = 128 fits shared memory but spills: why the guard refuses it
    assert got["_fwd_kernel:128:fp32"][1] > 0, got


def _grads(net: nn.Module, x: torch.Tensor, h0: torch.Tensor) -> list:
    out, h_n = net(x, h0)
    (out.square().sum() + h_n.sum()).backward()
    leaves = [x, h0, *net.parameters()]
    res = [out.detach(), h_n.detach()] + [t.grad.clone() for t in leaves]
    for t in leaves:
        t.grad = None
    return res


@pytest.mark.parametrize("bias", [True, False])
def test_torch_impl_equals_nn_gru_and_shares_its_state_dict(bias):
    torch.manual_seed(0)
    fast = FastGRU(6, 16, num_layers=2, bias=bias, impl="torch")
    ref = nn.GRU(6, 16, num_layers=2, bias=bias, batch_first=True)
    assert fast.state_dict().keys() == ref.state_dict().keys()
    ref.load_state_dict(fast.state_dict())
    x, h0 = torch.randn(3, 5, 6, requires_grad=True), torch.randn(2, 3, 16, requires_grad=True)
    for a, b in zip(_grads(fast, x, h0), _grads(ref, x, h0)):
        assert torch.equal(a, b)
    assert fast.last_impl == "torch"


def test_auto_on_the_cpu_runs_torch(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "1")  # even where the kernels could run, the CPU gets torch
    monkeypatch.setattr(gru_layer, "AUTO_CHOICE", {})
    torch.manual_seed(0)
    fast = FastGRU(4, 16, impl="auto")
    ref = nn.GRU(4, 16, batch_first=True)
    ref.load_state_dict(fast.state_dict())
    x = torch.randn(2, 3, 4)
    assert torch.equal(fast(x)[0], ref(x)[0])
    assert fast.last_impl == "torch" and not gru_layer.AUTO_CHOICE  # no timing either


def test_auto_times_once_per_shape_and_keeps_the_faster(monkeypatch):
    times = {"triton": 1.0, "torch": 2.0}
    calls = []

    def fake_time(self, impl, x, h0):
        calls.append(impl)
        return times[impl]

    monkeypatch.setattr(gru_layer.FastGRU, "_time", fake_time)
    monkeypatch.setattr(gru_layer, "AUTO_CHOICE", {})
    fast = FastGRU(4, 16)
    assert fast._decide(torch.randn(2, 3, 4), None) == "triton"
    assert fast._decide(torch.randn(2, 3, 4), None) == "triton" and len(calls) == 2  # cached
    times["triton"] = 3.0
    assert fast._decide(torch.randn(5, 3, 4), None) == "torch"  # another batch size: timed again


class _FakeEvent:
    """Stands in for ``torch.cuda.Event`` on the CPU: every timed span is 1 ms."""

    def __init__(self, enable_timing: bool = False) -> None:
        pass

    def record(self) -> None:
        pass

    def synchronize(self) -> None:
        pass

    def elapsed_time(self, other: "_FakeEvent") -> float:
        return 1.0


def test_auto_timing_leaves_grads_and_rng_alone(monkeypatch):
    monkeypatch.setattr(torch.cuda, "Event", _FakeEvent)
    torch.manual_seed(0)
    fast = FastGRU(4, 16, num_layers=2, dropout=0.5)  # dropout draws random numbers in training
    x, h0 = torch.randn(2, 3, 4, requires_grad=True), torch.randn(2, 2, 16, requires_grad=True)
    rng = torch.get_rng_state()
    assert fast._time("torch", x, h0) == 1.0 / gru_layer.AUTO_REPS
    assert torch.equal(torch.get_rng_state(), rng)
    assert x.grad is None and h0.grad is None and all(p.grad is None for p in fast.parameters())


def test_swap_gru_replaces_the_batch_first_gru_and_keeps_outputs():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.Module())
    model[1].gru = nn.GRU(8, 16, num_layers=2, bias=False, batch_first=True)
    model.time_major = nn.GRU(8, 16)  # not batch first: left alone
    x = torch.randn(3, 5, 4)
    before = model[1].gru(model[0](x))[0]
    params = list(model[1].gru.parameters())
    keys = model.state_dict().keys()
    assert swap_gru(model, "torch") == 1
    assert isinstance(model[1].gru, FastGRU) and type(model.time_major) is nn.GRU
    assert all(a is b for a, b in zip(model[1].gru.parameters(), params))  # shared, not copied
    assert model.state_dict().keys() == keys
    assert torch.equal(model[1].gru(model[0](x))[0], before)
    assert swap_gru(model, "torch") == 0


def test_triton_impl_without_a_gpu_or_the_interpreter_is_a_clear_error(monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    with pytest.raises(ValueError, match="cannot run here") as err:
        FastGRU(4, 16, impl="triton")(torch.randn(2, 3, 4))
    assert "\n" not in str(err.value)
    with pytest.raises(ValueError, match="impl must be one of"):
        FastGRU(4, 16, impl="cudnn")


@pytest.mark.parametrize("model", ["GRU4Rec", "GLINTRU"])
def test_the_gru_impl_key_reaches_the_models_gru(ml100k_slice, model):
    """``gru_impl`` (overall.yaml): GRU4Rec's and GLINTRU's GRU is a FastGRU of that impl
    (GRU4Rec's only when asked: ``torch`` keeps RecBole's nn.GRU), with the same parameter
    names, and on the CPU ``auto`` computes what ``torch`` does."""
    from conftest import build

    keys = dict(state="WARNING", MAX_ITEM_LIST_LENGTH=10, hidden_size=16, embedding_size=16, n_heads=2)
    keys["load_col"] = {"inter": ["user_id", "item_id", "timestamp"]}
    plain = build(model, "ml-slice", ml100k_slice, **keys).model.eval()
    auto = build(model, "ml-slice", ml100k_slice, gru_impl="auto", **keys).model.eval()
    grus = [m for m in auto.modules() if isinstance(m, nn.GRU)]
    assert len(grus) == 1 and type(grus[0]) is FastGRU and grus[0].impl == "auto"
    expected = FastGRU if model == "GLINTRU" else nn.GRU
    assert [type(m) for m in plain.modules() if isinstance(m, nn.GRU)] == [expected]
    auto.load_state_dict(plain.state_dict(), strict=True)
    seq = torch.randint(1, plain.n_items, (4, 10))
    lengths = torch.tensor([10, 3, 1, 7])
    with torch.no_grad():
        assert torch.equal(auto(seq, lengths), plain(seq, lengths))
