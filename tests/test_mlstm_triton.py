"""The Triton mLSTM kernels (``impl="triton"``; ``"auto"`` never picks them: slower than
TorchScript on an H200) against the step-by-step reference, run on the CPU by Triton's
interpreter (``TRITON_INTERPRET=1``, which must be set before Triton is imported: hence a
subprocess). The GPU suite runs the same check on CUDA."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytest.importorskip("triton", reason="Triton is an optional dependency (the `test` extra installs it)")

HERE = os.path.dirname(os.path.abspath(__file__))

CHECK = r"""
import sys, torch
sys.path.insert(0, sys.argv[1])
from mlstm_reference import naive_mlstm
from recbole_ext.model.mlstm import MultiplicativeLSTM

def run(dtype, b, n, d, hid, layers, rtol, atol):
    torch.manual_seed(0)
    net = MultiplicativeLSTM(d, hid, num_layers=layers, impl="triton").to(dtype)
    x = torch.randn(b, n, d, dtype=dtype, requires_grad=True)
    h0 = torch.randn(layers, b, hid, dtype=dtype, requires_grad=True)
    c0 = torch.randn(layers, b, hid, dtype=dtype, requires_grad=True)
    wh, wc = torch.randn(b, n, hid, dtype=dtype), torch.randn(b, n, hid, dtype=dtype)
    leaves = [x, h0, c0, *net.parameters()]
    h, c = net(x, (h0, c0))
    ((h * wh).sum() + (c.tanh() * wc).sum()).backward()
    fast = [h.detach(), c.detach()] + [t.grad.clone() for t in leaves]
    for t in leaves:
        t.grad = None
    h_ref, c_ref = naive_mlstm(x, list(net.layers), h0, c0)
    ((h_ref * wh).sum() + (c_ref.tanh() * wc).sum()).backward()
    ref = [h_ref.detach(), c_ref.detach()] + [t.grad.clone() for t in leaves]
    gap = max(float((a - r).abs().max()) for a, r in zip(fast, ref))
    assert all(torch.allclose(a, r, rtol=rtol, atol=atol) for a, r in zip(fast, ref)), (dtype, gap)
    print(dtype, b, n, hid, "gap", gap)

run(torch.float64, 5, 9, 6, 16, 2, 1e-9, 1e-10)    # 5 rows: a partly masked block
run(torch.float64, 37, 4, 16, 32, 1, 1e-9, 1e-10)  # three blocks, the last partly masked
run(torch.float32, 20, 7, 8, 16, 1, 1e-4, 1e-5)
try:
    MultiplicativeLSTM(4, 12, impl="triton")(torch.randn(2, 3, 4))
except ValueError as e:
    assert "power of two" in str(e)
else:
    raise AssertionError("impl='triton' with hidden 12 must be refused")
print("ok")
"""


@pytest.mark.slow
def test_triton_kernels_match_the_reference_in_the_interpreter():
    env = dict(os.environ, TRITON_INTERPRET="1")
    proc = subprocess.run([sys.executable, "-c", CHECK, HERE], capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    assert proc.stdout.strip().endswith("ok")


SHARED = r"""
import sys
import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource
from recbole_ext.model.mlstm import triton_kernels as K
for case in sys.argv[1:]:
    kernel, stages = case.split(":")
    fn = {"fwd": K._fwd_kernel, "bwd": K._bwd_kernel}[kernel]
    sig = {a: "constexpr" if a in ("H", "BLOCK") else "i32" if a in ("L", "B") else "*fp32" for a in fn.arg_names}
    src = ASTSource(fn=fn, signature=sig, constexprs={"H": 128, "BLOCK": K.BLOCK_B})
    print(triton.compile(src, target=GPUTarget("cuda", 90, 32), options={"num_stages": int(stages)}).metadata.shared)
"""
#: shared memory per thread block on an H100 or H200 (sm_90), bytes
SM90_SHARED = 232448


def _sm90_shared_bytes(*cases: str) -> list:
    """Compile kernels ahead of time for sm_90 at the paper's H = 128 (no GPU needed: the Triton
    wheel carries ptxas), each case ``"fwd:<stages>"`` or ``"bwd:<stages>"``, all in one process,
    and return the shared memory each needs per block."""
    proc = subprocess.run([sys.executable, "-c", SHARED, *cases], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return [int(v) for v in proc.stdout.split()]


@pytest.mark.slow
def test_kernels_fit_the_shared_memory_of_an_h100_at_hidden_128():
    # an H200 refused the kernels at Triton's default 3 stages (262,144 B asked, 232,448 B there)
    from recbole_ext.model.mlstm.triton_kernels import NUM_STAGES

    fwd, bwd, fwd_at_3 = _sm90_shared_bytes(f"fwd:{NUM_STAGES}", f"bwd:{NUM_STAGES}", "fwd:3")
    assert fwd <= SM90_SHARED and bwd <= SM90_SHARED
    assert fwd_at_3 > SM90_SHARED, "the check must be able to fail"
