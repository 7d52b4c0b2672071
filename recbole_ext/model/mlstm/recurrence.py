"""The recurrence of one multiplicative-LSTM layer: TorchScript forward and hand-written BPTT
loops, the autograd Function that runs them (or the C++ pair of :mod:`.native`, or the Triton
pair of :mod:`.triton_kernels`), and the plain autograd loops kept for tests and benchmarks.
"""

from typing import List, Tuple

import torch

from recbole_ext.model.mlstm.native import POOL, native_applies

# One layer of Krause et al.'s multiplicative LSTM, time-major inside:
#   m_t = (W_im x_t + b_im) * (W_hm h_{t-1} + b_hm)
#   [i, f, g, o] = W_ih x_t + W_mh m_t + b   (PyTorch's gate order i, f, g, o)
#   c_t = sigmoid(f) c_{t-1} + sigmoid(i) tanh(g);  h_t = sigmoid(o) tanh(c_t)
# The input-side terms (W_ih x_t + b, W_im x_t + b_im) of all steps are one matmul; only the
# recurrent part runs step by step. ``impl="fused"`` wraps the recurrence in an autograd Function
# whose forward and hand-written backward (BPTT) loops are TorchScript functions, with the weight
# gradients of all steps computed after the loop as single matmuls; ``impl="native"`` (what the
# default ``"auto"`` picks on the CPU) runs both loops in C++ (``csrc/mlstm_cpu.cpp``: the same
# outputs; its backward fuses each step's element-wise gate gradients into one loop over the rows:
# a training step of one layer, B=256, L=50, H=64, 1 thread, is 1.4-1.7x faster than with this
# TorchScript backward after the C++ forward).


@torch.jit.script
def _mlstm_recurrence_fwd(
    xg: torch.Tensor,
    xm: torch.Tensor,
    h0: torch.Tensor,
    c0: torch.Tensor,
    w_mh: torch.Tensor,
    w_hm: torch.Tensor,
    b_hm: torch.Tensor,
) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Forward recurrence. xg ``[L, B, 4H]``, xm ``[L, B, H]``, h0/c0 ``[B, H]``.

    Returns ``h, c, hm, m, act`` (each ``[L, B, *]``): states, ``W_hm h_{t-1} + b_hm``, ``m_t`` and
    the gate activations (sigmoid of i, f, o; tanh of g)."""
    n_steps = xg.size(0)
    hidden = h0.size(1)
    w_mh_t = w_mh.t()
    w_hm_t = w_hm.t()
    h = h0
    c = c0
    hs: List[torch.Tensor] = []
    cs: List[torch.Tensor] = []
    hms: List[torch.Tensor] = []
    ms: List[torch.Tensor] = []
    acts: List[torch.Tensor] = []
    for t in range(n_steps):
        hm = torch.addmm(b_hm, h, w_hm_t)
        m = xm[t] * hm
        gates = torch.addmm(xg[t], m, w_mh_t)
        act = torch.sigmoid(gates)
        g = torch.tanh(gates[:, 2 * hidden : 3 * hidden])
        act[:, 2 * hidden : 3 * hidden] = g
        i = act[:, :hidden]
        f = act[:, hidden : 2 * hidden]
        o = act[:, 3 * hidden :]
        c = torch.addcmul(f * c, i, g)
        h = o * torch.tanh(c)
        hs.append(h)
        cs.append(c)
        hms.append(hm)
        ms.append(m)
        acts.append(act)
    return torch.stack(hs), torch.stack(cs), torch.stack(hms), torch.stack(ms), torch.stack(acts)


@torch.jit.script
def _mlstm_recurrence_bwd(
    grad_h: torch.Tensor,
    grad_c: torch.Tensor,
    h0: torch.Tensor,
    c0: torch.Tensor,
    xm: torch.Tensor,
    w_mh: torch.Tensor,
    w_hm: torch.Tensor,
    hs: torch.Tensor,
    cs: torch.Tensor,
    hms: torch.Tensor,
    ms: torch.Tensor,
    acts: torch.Tensor,
) -> Tuple[
    torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor
]:
    """Backpropagation through time for :func:`_mlstm_recurrence_fwd`.

    Returns the gradients of ``xg, xm, h0, c0, w_mh, w_hm, b_hm`` and, unused, a placeholder."""
    n_steps = hs.size(0)
    hidden = h0.size(1)
    i = acts[:, :, :hidden]
    f = acts[:, :, hidden : 2 * hidden]
    g = acts[:, :, 2 * hidden : 3 * hidden]
    o = acts[:, :, 3 * hidden :]
    c_prev = torch.cat([c0.unsqueeze(0), cs[:-1]], 0)
    h_prev = torch.cat([h0.unsqueeze(0), hs[:-1]], 0)
    tc = torch.tanh(cs)
    # everything that does not depend on the carried gradients, for all steps at once
    dc_from_dh = o * (1.0 - tc * tc)
    k = torch.cat([g * i * (1.0 - i), c_prev * f * (1.0 - f), i * (1.0 - g * g), tc * o * (1.0 - o)], 2)
    dh = torch.zeros_like(h0)
    dc = torch.zeros_like(c0)
    dgs: List[torch.Tensor] = []
    dms: List[torch.Tensor] = []
    for s in range(n_steps):
        t = n_steps - 1 - s
        dh = grad_h[t] + dh
        dct = torch.addcmul(grad_c[t] + dc, dh, dc_from_dh[t])
        dgate = torch.cat([dct, dct, dct, dh], 1) * k[t]
        dm = torch.mm(dgate, w_mh)
        dh = torch.mm(dm * xm[t], w_hm)
        dc = dct * f[t]
        dgs.append(dgate)
        dms.append(dm)
    dgs.reverse()
    dms.reverse()
    d_gates = torch.stack(dgs)
    d_m = torch.stack(dms)
    d_hm = d_m * xm
    d_xm = d_m * hms
    four_h = 4 * hidden
    d_w_mh = torch.mm(d_gates.reshape(-1, four_h).t(), ms.reshape(-1, hidden))
    d_w_hm = torch.mm(d_hm.reshape(-1, hidden).t(), h_prev.reshape(-1, hidden))
    d_b_hm = d_hm.sum(dim=(0, 1))
    return d_gates, d_xm, dh, dc, d_w_mh, d_w_hm, d_b_hm, d_b_hm


class _MLSTMRecurrence(torch.autograd.Function):
    """Autograd wrapper of the mLSTM recurrence. With ``native`` (the C++ extension,
    :mod:`recbole_ext.model.mlstm.native`) both loops run in C++ (its ``backward`` returns what
    :func:`_mlstm_recurrence_bwd` returns); with ``kernels`` both run in Triton; otherwise both
    run in TorchScript. The TorchScript backward also serves a native forward when the extension
    has no ``backward``, the gradients are not CPU tensors of the states' dtype, or the backward
    pass records a graph (``create_graph=True``)."""

    @staticmethod
    def forward(ctx, xg, xm, h0, c0, w_mh, w_hm, b_hm, native=None, kernels=None):  # type: ignore[override]
        ctx.kernels = kernels
        ctx.native = native
        if kernels is not None:  # the Triton pair (recbole_ext.model.mlstm.triton_kernels)
            hs, cs, hms, ms, acts = kernels.recurrence_fwd(xg, xm, h0, c0, w_mh, w_hm, b_hm)
        elif native is not None:
            lease = POOL.take(xg.size(0), xg.size(1), h0.size(1), xg.dtype)
            hs, cs, hms, ms, acts = native.forward(xg, xm, h0, c0, w_mh, w_hm, b_hm, True, *lease.views)
            ctx.lease = lease  # the buffers go back to the pool when this node is freed
        else:
            hs, cs, hms, ms, acts = _mlstm_recurrence_fwd(xg, xm, h0, c0, w_mh, w_hm, b_hm)
        ctx.save_for_backward(h0, c0, xm, w_mh, w_hm, hs, cs, hms, ms, acts)
        return hs, cs

    @staticmethod
    def backward(ctx, grad_h, grad_c):  # type: ignore[override]
        h0, c0, xm, w_mh, w_hm, hs, cs, hms, ms, acts = ctx.saved_tensors
        grad_h = None if grad_h is None else grad_h.contiguous()
        grad_c = None if grad_c is None else grad_c.contiguous()
        given = [g for g in (grad_h, grad_c) if g is not None]
        native_bwd = getattr(ctx.native, "backward", None)
        if torch.is_grad_enabled():  # create_graph: the C++ loop records no graph (and rejects one)
            native_bwd = None
        if native_bwd is not None and native_applies(*given) and all(g.dtype == hs.dtype for g in given):
            bwd = native_bwd  # C++ BPTT; takes None for a gradient that is zero
        else:
            grad_h = torch.zeros_like(hs) if grad_h is None else grad_h
            grad_c = torch.zeros_like(cs) if grad_c is None else grad_c
            bwd = _mlstm_recurrence_bwd if ctx.kernels is None else ctx.kernels.recurrence_bwd
        d_xg, d_xm, d_h0, d_c0, d_w_mh, d_w_hm, d_b_hm, _ = bwd(
            grad_h, grad_c, h0, c0, xm, w_mh, w_hm, hs, cs, hms, ms, acts
        )
        return d_xg, d_xm, d_h0, d_c0, d_w_mh, d_w_hm, d_b_hm, None, None


def _mlstm_recurrence_autograd(
    xg: torch.Tensor,
    xm: torch.Tensor,
    h0: torch.Tensor,
    c0: torch.Tensor,
    w_mh: torch.Tensor,
    w_hm: torch.Tensor,
    b_hm: torch.Tensor,
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Same recurrence as :func:`_mlstm_recurrence_fwd`, step by step under autograd (``impl="loop"``)."""
    hidden = h0.size(1)
    h, c = h0, c0
    hs: List[torch.Tensor] = []
    cs: List[torch.Tensor] = []
    for t in range(xg.size(0)):
        m = xm[t] * torch.addmm(b_hm, h, w_hm.t())
        gates = torch.addmm(xg[t], m, w_mh.t())
        i, f, o = (
            torch.sigmoid(gates[:, :hidden]),
            torch.sigmoid(gates[:, hidden : 2 * hidden]),
            torch.sigmoid(gates[:, 3 * hidden :]),
        )
        g = torch.tanh(gates[:, 2 * hidden : 3 * hidden])
        c = f * c + i * g
        h = o * torch.tanh(c)
        hs.append(h)
        cs.append(c)
    return torch.stack(hs), torch.stack(cs)


_mlstm_recurrence_scripted = torch.jit.script(_mlstm_recurrence_autograd)
