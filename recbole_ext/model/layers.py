"""Neural blocks shared by the models of recbole_ext (each section is owned by the model that added it)."""


import math
from typing import List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from recbole_ext.model.mlstm_native import POOL, native_applies, native_extension


# ============================================================== shared blocks (every model)

#: Dropout probabilities are rounded to multiples of 1 / DROPOUT_LEVELS by :class:`FastDropout`.
DROPOUT_LEVELS = 1 << 16


def dropout_keep_mask(shape: torch.Size, p: float, device: torch.device) -> Tuple[torch.Tensor, float]:
    """A random boolean keep-mask and its exact keep probability, from 16 random bits per
    element (four elements per 64-bit draw of the default generator).

    ``p`` is rounded to the nearest multiple of ``1 / 65536``; the returned keep probability
    ``q`` is the exact one, so scaling by ``1 / q`` keeps the expectation unchanged.

    Args:
        shape: shape of the mask.
        p: drop probability, ``0 <= p <= 1``.
        device: where to draw.

    Returns:
        ``(keep, q)``: ``keep`` a boolean tensor of ``shape``, ``q = P(keep)``.
    """
    n = math.prod(shape)
    cut = int(round(p * DROPOUT_LEVELS))
    words = torch.empty((n + 3) // 4, dtype=torch.int64, device=device).random_(-(2**63), 2**63 - 1)
    bits = words.view(torch.int16)[:n]  # uniform over [-32768, 32767]
    keep = (bits >= cut - DROPOUT_LEVELS // 2).view(shape)
    return keep, (DROPOUT_LEVELS - cut) / DROPOUT_LEVELS


class _FastDropoutFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, p: float) -> torch.Tensor:  # type: ignore[override]
        keep, q = dropout_keep_mask(x.shape, p, x.device)
        scale = keep.to(x.dtype).mul_(1.0 / q) if q > 0 else torch.zeros_like(x)
        ctx.save_for_backward(scale)
        return x * scale

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        (scale,) = ctx.saved_tensors
        return grad * scale, None


class FastDropout(nn.Dropout):
    """Inverted dropout as ``nn.Dropout``, about 4x faster on CPU.

    PyTorch's CPU dropout draws one Bernoulli variable per element, which costs more than the
    matrix products of the small models here (measured: 95 ms against 24 ms forward + backward
    on ``[2048, 50, 64]``, 2 cores). This draws 16 random bits per element instead
    (:func:`dropout_keep_mask`), so ``p`` is rounded to a multiple of ``1 / 65536`` (0.3 becomes
    0.300003). The random stream differs from ``nn.Dropout``'s; evaluation mode is the identity.

    Args:
        p: drop probability.

    Shape:
        - input: any
        - output: same as input
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        return _FastDropoutFunction.apply(x, float(self.p))


# ============================================================== GLINT-RU blocks (GLINTRU model)


def elu_norm_linear_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    key_mask: Optional[torch.Tensor] = None,
    eps: float = 1e-12,
) -> torch.Tensor:
    """GLINT-RU's ELU-normalised linear attention ``Q' (K'^T V) / sqrt(d_h)``, linear in ``L``.

    ``Q' = ELU(Q) / ||ELU(Q)||_2`` and ``K' = ELU(K) / ||ELU(K)||_2``, each token normalised over
    the head dimension; no softmax. ``key_mask`` (``True`` = real token) removes padded keys from
    ``K'^T V``.

    Args:
        q, k, v: per-head queries, keys and values.
        key_mask: optional boolean mask of the keys to keep.
        eps: floor of the norms (the reference divides by the bare norm).

    Returns:
        The context per head.

    Shape:
        - q, k, v: ``[B, H, L, d_h]``
        - key_mask: ``[B, L]``
        - output: ``[B, H, L, d_h]``
    """
    q = F.elu(q)
    k = F.elu(k)
    q = q / q.norm(p=2, dim=-1, keepdim=True).clamp_min(eps)
    k = k / k.norm(p=2, dim=-1, keepdim=True).clamp_min(eps)
    if key_mask is not None:
        k = k * key_mask[:, None, :, None].to(k.dtype)
    kv = torch.matmul(k.transpose(-2, -1), v)  # [B, H, d_h, d_h]
    return torch.matmul(q, kv) / math.sqrt(q.shape[-1])


class EluNormLinearAttention(nn.Module):
    """Multi-head ELU-normalised linear attention with output projection, dropout and a residual
    LayerNorm (GLINT-RU's attention expert).

    Args:
        hidden_size: model width ``d``.
        n_heads: number of heads ``H`` (``d`` must be divisible by ``H``).
        hidden_dropout_prob: dropout on the projected output.
        layer_norm_eps: epsilon of the LayerNorm.
    """

    def __init__(self, hidden_size: int, n_heads: int, hidden_dropout_prob: float, layer_norm_eps: float) -> None:
        super().__init__()
        if hidden_size % n_heads != 0:
            raise ValueError(f"hidden_size ({hidden_size}) is not a multiple of n_heads ({n_heads})")
        self.n_heads = n_heads
        self.head_size = hidden_size // n_heads
        self.query = nn.Linear(hidden_size, hidden_size)
        self.key = nn.Linear(hidden_size, hidden_size)
        self.value = nn.Linear(hidden_size, hidden_size)
        self.dense = nn.Linear(hidden_size, hidden_size)
        self.out_dropout = FastDropout(hidden_dropout_prob)
        self.LayerNorm = nn.LayerNorm(hidden_size, eps=layer_norm_eps)

    def split_heads(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, L, d] -> [B, H, L, d_h]``."""
        b, l, _ = x.shape
        return x.view(b, l, self.n_heads, self.head_size).transpose(1, 2)

    def forward(self, x: torch.Tensor, key_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Shape: x ``[B, L, d]``, key_mask ``[B, L]`` (optional) -> ``[B, L, d]``."""
        b, l, d = x.shape
        ctx = elu_norm_linear_attention(
            self.split_heads(self.query(x)), self.split_heads(self.key(x)), self.split_heads(self.value(x)), key_mask
        )
        ctx = ctx.transpose(1, 2).reshape(b, l, d)
        return self.LayerNorm(self.out_dropout(self.dense(ctx)) + x)


class TimeConv1d(nn.Module):
    """1-D convolution over time on ``[B, L, d]`` tensors, keeping the length ``L``.

    ``causal=False`` pads ``(k - 1) // 2`` steps before and the rest after (for ``k = 3``: one
    each side, as ``nn.Conv1d(..., padding=1)``); ``causal=True`` pads ``k - 1`` steps before,
    so position ``t`` sees only positions ``<= t``.

    Args:
        channels: input and output channels ``d``.
        kernel_size: ``k``.
        causal: left padding only.
    """

    def __init__(self, channels: int, kernel_size: int = 3, causal: bool = False) -> None:
        super().__init__()
        if kernel_size < 1:
            raise ValueError(f"kernel_size must be >= 1, got {kernel_size}")
        self.conv = nn.Conv1d(channels, channels, kernel_size=kernel_size)
        total = kernel_size - 1
        self.pad = (total, 0) if causal else (total // 2, total - total // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Shape: ``[B, L, d] -> [B, L, d]``."""
        y = F.pad(x.transpose(1, 2), self.pad)
        return self.conv(y).transpose(1, 2)


class GatedGRUExpert(nn.Module):
    """GLINT-RU's GRU expert: ``conv(Linear(x))`` -> bias-free GRU -> Linear, times the selective
    gate ``Dropout(Linear(SiLU(Linear(h1))))``, then a second time convolution.

    Args:
        hidden_size: ``d``.
        kernel_size: kernel of both time convolutions.
        num_layers: GRU layers.
        gate_dropout_prob: dropout at the end of the selective gate (0.3 in the reference).
        causal: causal time convolutions.
    """

    def __init__(
        self, hidden_size: int, kernel_size: int = 3, num_layers: int = 1, gate_dropout_prob: float = 0.3, causal: bool = False
    ) -> None:
        super().__init__()
        self.dense_in = nn.Linear(hidden_size, hidden_size)
        self.conv_in = TimeConv1d(hidden_size, kernel_size, causal)
        self.gru = nn.GRU(hidden_size, hidden_size, num_layers=num_layers, bias=False, batch_first=True)
        self.projection = nn.Linear(hidden_size, hidden_size)
        self.selective_gate = nn.Sequential(
            nn.Linear(hidden_size, hidden_size // 2),
            nn.SiLU(),
            nn.Linear(hidden_size // 2, hidden_size),
            FastDropout(gate_dropout_prob),
        )
        self.conv_out = TimeConv1d(hidden_size, kernel_size, causal)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Shape: ``[B, L, d] -> [B, L, d]``."""
        h1 = self.conv_in(self.dense_in(x))
        out, _ = self.gru(h1)
        out = self.projection(out) * self.selective_gate(h1)
        return self.conv_out(out)


class GatedMLP(nn.Module):
    """``Linear(Linear(h) * GELU(Linear(h)))`` then dropout (GLINT-RU's output MLP; the residual
    LayerNorm is applied by the caller, which the reference shares with the mixing block).

    Args:
        hidden_size: ``d``.
        dropout_prob: dropout on the output (0.3 in the reference).
    """

    def __init__(self, hidden_size: int, dropout_prob: float = 0.3) -> None:
        super().__init__()
        self.dense_value = nn.Linear(hidden_size, hidden_size)
        self.dense_gate = nn.Linear(hidden_size, hidden_size)
        self.dense_out = nn.Linear(hidden_size, hidden_size)
        self.dropout = FastDropout(dropout_prob)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        """Shape: ``[..., d] -> [..., d]``."""
        return self.dropout(self.dense_out(self.dense_value(h) * F.gelu(self.dense_gate(h))))


# ============================================================== multiplicative LSTM (mLSTM model)
# One layer of Krause et al.'s multiplicative LSTM, time-major inside:
#   m_t = (W_im x_t + b_im) * (W_hm h_{t-1} + b_hm)
#   [i, f, g, o] = W_ih x_t + W_mh m_t + b   (PyTorch's gate order i, f, g, o)
#   c_t = sigmoid(f) c_{t-1} + sigmoid(i) tanh(g);  h_t = sigmoid(o) tanh(c_t)
# The input-side terms (W_ih x_t + b, W_im x_t + b_im) of all steps are one matmul; only the
# recurrent part runs step by step. ``impl="fused"`` wraps the recurrence in an autograd Function
# whose forward and hand-written backward (BPTT) loops are TorchScript functions, with the weight
# gradients of all steps computed after the loop as single matmuls; ``impl="native"`` (what the
# default ``"auto"`` picks on the CPU) runs the forward loop in C++ (``csrc/mlstm_cpu.cpp``).


@torch.jit.script
def _mlstm_recurrence_fwd(
    xg: torch.Tensor, xm: torch.Tensor, h0: torch.Tensor, c0: torch.Tensor, w_mh: torch.Tensor, w_hm: torch.Tensor, b_hm: torch.Tensor
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
) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
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
    """Autograd wrapper of the mLSTM recurrence: forward loop in TorchScript or, with
    ``native``, the C++ extension (:mod:`recbole_ext.model.mlstm_native`, same outputs); the
    backward (BPTT) loop in TorchScript."""

    @staticmethod
    def forward(ctx, xg, xm, h0, c0, w_mh, w_hm, b_hm, native=None, kernels=None):  # type: ignore[override]
        ctx.kernels = kernels
        if kernels is not None:  # the Triton pair (recbole_ext.model.mlstm_triton)
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
        grad_h = torch.zeros_like(hs) if grad_h is None else grad_h.contiguous()
        grad_c = torch.zeros_like(cs) if grad_c is None else grad_c.contiguous()
        bwd = _mlstm_recurrence_bwd if ctx.kernels is None else ctx.kernels.recurrence_bwd
        d_xg, d_xm, d_h0, d_c0, d_w_mh, d_w_hm, d_b_hm, _ = bwd(
            grad_h, grad_c, h0, c0, xm, w_mh, w_hm, hs, cs, hms, ms, acts
        )
        return d_xg, d_xm, d_h0, d_c0, d_w_mh, d_w_hm, d_b_hm, None, None


def _mlstm_recurrence_autograd(
    xg: torch.Tensor, xm: torch.Tensor, h0: torch.Tensor, c0: torch.Tensor, w_mh: torch.Tensor, w_hm: torch.Tensor, b_hm: torch.Tensor
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Same recurrence as :func:`_mlstm_recurrence_fwd`, step by step under autograd (``impl="loop"``)."""
    hidden = h0.size(1)
    h, c = h0, c0
    hs: List[torch.Tensor] = []
    cs: List[torch.Tensor] = []
    for t in range(xg.size(0)):
        m = xm[t] * torch.addmm(b_hm, h, w_hm.t())
        gates = torch.addmm(xg[t], m, w_mh.t())
        i, f, o = torch.sigmoid(gates[:, :hidden]), torch.sigmoid(gates[:, hidden : 2 * hidden]), torch.sigmoid(gates[:, 3 * hidden :])
        g = torch.tanh(gates[:, 2 * hidden : 3 * hidden])
        c = f * c + i * g
        h = o * torch.tanh(c)
        hs.append(h)
        cs.append(c)
    return torch.stack(hs), torch.stack(cs)


_mlstm_recurrence_scripted = torch.jit.script(_mlstm_recurrence_autograd)

MLSTM_IMPLS = ("auto", "native", "fused", "script", "loop", "triton")


def _triton_kernels(x: torch.Tensor, hidden: int, required: bool):
    """:mod:`recbole_ext.model.mlstm_triton` when its kernels apply to ``x`` (and, unless
    ``required``, passed their first-use check), else ``None``; a ``ValueError`` saying why when
    ``required``."""
    from recbole_ext.model import mlstm_triton

    if not required:
        return mlstm_triton if mlstm_triton.works_on(x, hidden) else None
    if not mlstm_triton.applies(x, hidden):
        raise ValueError(
            "impl='triton' needs Triton installed, a CUDA tensor (or TRITON_INTERPRET=1), a hidden "
            f"size that is a power of two >= 16 and float32/float64 (got {x.device}, {hidden}, {x.dtype})"
        )
    return mlstm_triton


class MultiplicativeLSTMLayer(nn.Module):
    """One multiplicative-LSTM layer over a batch-first sequence.

    Parameters (PyTorch's LSTM naming where one exists): ``weight_ih`` ``[4H, D]``, ``bias``
    ``[4H]`` (one bias; an ``nn.LSTM``'s ``bias_ih + bias_hh``), ``weight_mh`` ``[4H, H]`` (gates
    from ``m_t``, the role of ``weight_hh``), ``weight_im`` ``[H, D]``, ``bias_im`` ``[H]``,
    ``weight_hm`` ``[H, H]``, ``bias_hm`` ``[H]``. All start uniform in ``±1/sqrt(H)``, as
    ``nn.LSTM`` and the reference code.

    Args:
        input_size: ``D``.
        hidden_size: ``H``.
        impl: ``"native"`` (forward loop in C++, :mod:`recbole_ext.model.mlstm_native`, built
            on first use; backward as ``"fused"``), ``"fused"`` (scripted forward and
            hand-written backward loops), ``"script"`` (TorchScript loop under autograd),
            ``"loop"`` (Python loop under autograd), ``"triton"`` (forward and backward loops
            as one Triton kernel each, :mod:`recbole_ext.model.mlstm_triton`; CUDA), or
            ``"auto"`` (default: on CUDA ``"triton"`` where it applies, else ``"fused"``; on the
            CPU ``"native"`` when the extension builds, else ``"fused"``). All compute the same
            function; they differ in speed only.
    """

    def __init__(self, input_size: int, hidden_size: int, impl: str = "auto") -> None:
        super().__init__()
        if impl not in MLSTM_IMPLS:
            raise ValueError(f"impl must be one of {MLSTM_IMPLS}, got {impl!r}")
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.impl = impl
        self.weight_ih = nn.Parameter(torch.empty(4 * hidden_size, input_size))
        self.weight_mh = nn.Parameter(torch.empty(4 * hidden_size, hidden_size))
        self.bias = nn.Parameter(torch.empty(4 * hidden_size))
        self.weight_im = nn.Parameter(torch.empty(hidden_size, input_size))
        self.bias_im = nn.Parameter(torch.empty(hidden_size))
        self.weight_hm = nn.Parameter(torch.empty(hidden_size, hidden_size))
        self.bias_hm = nn.Parameter(torch.empty(hidden_size))
        self.reset_parameters()
        if impl in ("auto", "native"):
            native_extension()  # build (or load) now, not inside the first timed epoch

    def reset_parameters(self) -> None:
        bound = 1.0 / math.sqrt(self.hidden_size)
        for p in self.parameters():
            nn.init.uniform_(p, -bound, bound)

    def forward(
        self, x: torch.Tensor, state: Optional[Tuple[torch.Tensor, torch.Tensor]] = None
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """Run the layer over all steps.

        Args:
            x: input sequence (batch first).
            state: ``(h_0, c_0)``, zeros when ``None``.

        Returns:
            ``(h, c)``: hidden and cell state at every step.

        Shape:
            - x: ``[B, L, D]``; h_0, c_0: ``[B, H]``
            - h, c: ``[B, L, H]``
        """
        if torch.is_autocast_enabled(x.device.type):
            # mixed precision: the recurrence carries its state over every step, so the layer
            # runs in its weights' precision (the C++ loop and the scripted BPTT take one dtype)
            dtype = self.weight_ih.dtype
            with torch.autocast(device_type=x.device.type, enabled=False):
                return self._forward(x.to(dtype), None if state is None else (state[0].to(dtype), state[1].to(dtype)))
        return self._forward(x, state)

    def _forward(
        self, x: torch.Tensor, state: Optional[Tuple[torch.Tensor, torch.Tensor]]
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        b, _, _ = x.shape
        hid = self.hidden_size
        if state is None:
            h0 = x.new_zeros(b, hid)
            c0 = x.new_zeros(b, hid)
        else:
            h0, c0 = state
        impl = self.impl
        native = kernels = None
        if impl == "triton" or (impl == "auto" and x.is_cuda):
            kernels = _triton_kernels(x, hid, required=impl == "triton")
            impl = "triton" if kernels is not None else "fused"
        if impl in ("auto", "native"):
            native = native_extension() if native_applies(x, h0, c0) else None
            impl = "native" if native is not None else "fused"
        self.last_impl = impl  # what ran, for reports
        training = torch.is_grad_enabled() and any(
            t.requires_grad for t in (x, h0, c0, *self.parameters())
        )
        if native is not None and not training:
            # inference: one matmul over all steps, batch first; the C++ loop reads the
            # time-major views without copying them, and saves nothing for a backward pass
            proj = F.linear(x, torch.cat([self.weight_ih, self.weight_im]), torch.cat([self.bias, self.bias_im]))
            xg = proj[:, :, : 4 * hid].transpose(0, 1)
            xm = proj[:, :, 4 * hid :].transpose(0, 1)
            hs, cs = native.forward(xg, xm, h0, c0, self.weight_mh, self.weight_hm, self.bias_hm, False)[:2]
            return hs.transpose(0, 1), cs.transpose(0, 1)
        # input-side terms of every step, time-major: two matmuls over all steps ([L, B, 4H] and
        # [L, B, H]; one [L, B, 5H] matmul split in two costs more, in the slices' backward)
        xt = x.transpose(0, 1).contiguous()
        xg = F.linear(xt, self.weight_ih, self.bias)
        xm = F.linear(xt, self.weight_im, self.bias_im)
        if impl in ("native", "fused", "triton"):  # C++, TorchScript or Triton loops
            hs, cs = _MLSTMRecurrence.apply(xg, xm, h0, c0, self.weight_mh, self.weight_hm, self.bias_hm, native, kernels)
        elif impl == "script":
            hs, cs = _mlstm_recurrence_scripted(xg, xm, h0, c0, self.weight_mh, self.weight_hm, self.bias_hm)
        else:
            hs, cs = _mlstm_recurrence_autograd(xg, xm, h0, c0, self.weight_mh, self.weight_hm, self.bias_hm)
        return hs.transpose(0, 1), cs.transpose(0, 1)


class MultiplicativeLSTM(nn.Module):
    """Stacked multiplicative LSTM (batch first); dropout between layers as ``nn.LSTM``.

    Args:
        input_size: ``D``.
        hidden_size: ``H``.
        num_layers: stacked layers.
        dropout: dropout on each layer's output ``h`` except the last.
        impl: see :class:`MultiplicativeLSTMLayer`.
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, dropout: float = 0.0, impl: str = "auto") -> None:
        super().__init__()
        if num_layers < 1:
            raise ValueError(f"num_layers must be >= 1, got {num_layers}")
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.layers = nn.ModuleList(
            MultiplicativeLSTMLayer(input_size if k == 0 else hidden_size, hidden_size, impl) for k in range(num_layers)
        )
        self.dropout = nn.Dropout(dropout)

    def forward(
        self, x: torch.Tensor, state: Optional[Tuple[torch.Tensor, torch.Tensor]] = None
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """Args: x, and optional ``(h_0, c_0)`` per layer. Returns ``(h, c)`` of the last layer at every step.

        Shape:
            - x: ``[B, L, D]``; h_0, c_0: ``[num_layers, B, H]``
            - h, c: ``[B, L, H]``
        """
        h = x
        c = x
        for k, layer in enumerate(self.layers):
            if k > 0:
                h = self.dropout(h)
            h, c = layer(h, None if state is None else (state[0][k], state[1][k]))
        return h, c


# ============================================================== VAE blocks (MultVAE, SVAE models)


class GaussianLatent(nn.Module):
    """Diagonal-Gaussian latent layer of a VAE: two linear heads for ``mu`` and ``log sigma^2``,
    then the reparameterised sample ``z = mu + eps * exp(logvar / 2)``, ``eps ~ N(0, I)``, in
    training mode and ``z = mu`` in evaluation mode (deterministic predictions).

    The log-variance is clamped to ``[-logvar_clamp, logvar_clamp]`` so extreme inputs cannot
    overflow ``exp`` in the sample or in the KL term.

    Args:
        in_dim: width of the input.
        latent_dim: size of ``mu`` and of ``logvar`` (each; not one layer split in half).
        logvar_clamp: bound on ``|logvar|``.
    """

    def __init__(self, in_dim: int, latent_dim: int, logvar_clamp: float = 10.0) -> None:
        super().__init__()
        self.mu = nn.Linear(in_dim, latent_dim)
        self.logvar = nn.Linear(in_dim, latent_dim)
        self.logvar_clamp = float(logvar_clamp)

    def forward(self, h: torch.Tensor):
        """Return ``(z, mu, logvar)``.

        Shape:
            - h: ``[..., in_dim]``
            - z, mu, logvar: ``[..., latent_dim]``
        """
        mu = self.mu(h)
        logvar = self.logvar(h).clamp(-self.logvar_clamp, self.logvar_clamp)
        if self.training:
            z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        else:
            z = mu
        return z, mu, logvar
