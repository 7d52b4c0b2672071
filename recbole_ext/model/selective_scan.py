"""The selective scan of Mamba (S6) in plain PyTorch, with an optional ``mamba_ssm`` route.

For every batch row, channel ``d`` and state ``n`` the scan runs the linear recurrence

    h_t = exp(delta_t * A) * h_{t-1} + delta_t * B_t * u_t,      y_t = <C_t, h_t> + D * u_t,

then gates ``y_t`` by ``SiLU(z_t)`` (Gu and Dao, "Mamba: Linear-Time Sequence Modeling with
Selective State Spaces", 2023; ``selective_scan_ref`` of ``mamba_ssm/ops/selective_scan_interface.py``
in https://github.com/state-spaces/mamba is the same formula). Layout here is channel-last, the
layout of the model around it: ``u, delta, z`` ``[B, L, D]``, ``B, C`` ``[B, L, N]``, ``A``
``[D, N]`` (``mamba_ssm`` wants ``[B, D, L]`` and ``[B, N, L]``; :func:`selective_scan`
transposes for it).

- :func:`selective_scan_reference`: a naive loop over time, plain autograd. The test oracle.
- :func:`selective_scan_torch`, two algorithms, both with the gradient written out and both
  equal to the loop to float64 round-off:

  * the default (``scan_impl: torch``, :class:`_SelectiveScanLoop`): a loop over time on
    ``[B, D, N]`` states that keeps only the state entering each chunk of about ``sqrt(L)``
    steps; the backward recomputes one chunk's states from it and runs the adjoint recurrence
    through the chunk, newest step first. Nothing of size ``[B, L, D, N]`` is ever built.
  * ``chunked=True`` (``scan_impl: chunked``, :func:`linear_scan`): ``L`` is cut into chunks
    of ``c`` steps; ``c`` steps run the recurrence inside every chunk at once from a zero state,
    the decay from each chunk's start is a ``cumprod`` of decays in ``(0, 1]`` (never ``exp`` of
    a positive sum, so as safe as the loop), and ``L / c`` small steps carry the state from
    chunk to chunk, added back in one product: about ``2 sqrt(L)`` sequential steps instead of
    ``L``, over whole ``[B, L, D, N]`` tensors.

  The loop is the default: on a CPU each time step already works on ``B * D * N`` elements (a
  million at B 256, D 128, N 32), so fewer sequential steps buy nothing, and every pass over a
  ``[B, L, D, N]`` tensor (200 MB there) costs; at that shape, forward + backward in float32 on
  one thread, the loop takes about the time of the naive autograd loop at less than half its
  peak memory, and the chunked form and ``mambapy``'s Blelloch scan each take about ten times
  as long. The chunked form is for CUDA devices without ``mamba_ssm``, where fewer, larger
  kernels can pay; no GPU timing of it is recorded.
- :func:`selective_scan`: chooses. ``impl='mamba_ssm'`` calls
  ``mamba_ssm.ops.selective_scan_interface.selective_scan_fn(u, delta, A, B, C, D, z,
  delta_bias, delta_softplus)`` (CUDA only); ``'auto'`` takes it when ``mamba_ssm`` imports and
  the tensors are on CUDA, else ``'torch'``.
"""

from __future__ import annotations

import functools
import math
from typing import Optional

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

from recbole_ext.errors import ConfigError

SCAN_IMPLS = ("auto", "torch", "chunked", "mamba_ssm")


@functools.lru_cache(maxsize=None)
def mamba_ssm_available() -> bool:
    """Whether ``mamba_ssm``'s CUDA selective scan can be imported."""
    try:
        from mamba_ssm.ops.selective_scan_interface import selective_scan_fn  # noqa: PLC0415, F401 (mamba_ssm is optional)
    except Exception:  # ImportError, or a broken CUDA extension
        return False
    return True


def _discretise(delta: torch.Tensor, delta_bias: Optional[torch.Tensor], delta_softplus: bool) -> torch.Tensor:
    if delta_bias is not None:
        delta = delta + delta_bias
    return F.softplus(delta) if delta_softplus else delta


def _finish(y: torch.Tensor, u: torch.Tensor, D: Optional[torch.Tensor], z: Optional[torch.Tensor]) -> torch.Tensor:
    if D is not None:
        y = y + u * D
    return y * F.silu(z) if z is not None else y


def selective_scan_reference(
    u: torch.Tensor,
    delta: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: Optional[torch.Tensor] = None,
    z: Optional[torch.Tensor] = None,
    delta_bias: Optional[torch.Tensor] = None,
    delta_softplus: bool = False,
) -> torch.Tensor:
    """The selective scan as a plain loop over time (the test oracle; slow).

    Args:
        u: input.  delta: step sizes before ``delta_bias`` and softplus.  A: state matrix
        (diagonal per channel, negative for a decaying state).  B, C: input and output maps.
        D: skip weight.  z: gate input.  delta_bias: added to ``delta``.
        delta_softplus: apply softplus to ``delta`` after the bias.

    Returns:
        ``y`` ``[B, L, D]``.

    Shape:
        u, delta, z ``[B, L, D]``; A ``[D, N]``; B, C ``[B, L, N]``; D, delta_bias ``[D]``.
    """
    delta = _discretise(delta, delta_bias, delta_softplus)
    h = u.new_zeros(u.shape[0], u.shape[2], A.shape[1])
    ys = []
    for t in range(u.shape[1]):
        decay = torch.exp(delta[:, t, :, None] * A)
        h = decay * h + (delta[:, t] * u[:, t])[:, :, None] * B[:, t, None, :]
        ys.append((h * C[:, t, None, :]).sum(-1))
    return _finish(torch.stack(ys, 1), u, D, z)


def default_chunk_size(length: int) -> int:
    """About ``sqrt(L)``: balances the steps inside chunks against the steps across them."""
    return max(1, math.ceil(math.sqrt(length)))


def linear_scan(a: torch.Tensor, x: torch.Tensor, chunk: Optional[int] = None) -> torch.Tensor:
    """``h_t = a_t * h_{t-1} + x_t`` along dim 1 with ``h_{-1} = 0``, chunked (no autograd).

    Args:
        a: decays (``a[:, 0]`` is unused).  x: inputs; overwritten when no padding is needed.
        chunk: steps per chunk, ``None`` for :func:`default_chunk_size`.

    Returns:
        ``h``, the shape of ``x``.

    Shape:
        a, x ``[B, L, ...]``.
    """
    length = x.shape[1]
    c = min(chunk or default_chunk_size(length), length)
    n = -(-length // c)
    pad = n * c - length
    if pad:  # padding goes after the last step, so it cannot reach earlier states
        widths = [0, 0] * (x.dim() - 2) + [0, pad]
        a, x = F.pad(a, widths), F.pad(x, widths)
    rest = x.shape[2:]
    a = a.reshape(x.shape[0], n, c, *rest)
    h = x.reshape(x.shape[0], n, c, *rest)
    for i in range(1, c):  # the recurrence inside every chunk at once, from a zero state
        h[:, :, i].addcmul_(a[:, :, i], h[:, :, i - 1])
    if n > 1:
        decay = torch.cumprod(a, dim=2)  # decay from each chunk's start to each of its steps
        carry = h.new_zeros(x.shape[0], n, *rest)  # state entering chunk k
        for k in range(1, n):
            carry[:, k] = torch.addcmul(h[:, k - 1, -1], decay[:, k - 1, -1], carry[:, k - 1])
        h[:, 1:].addcmul_(decay[:, 1:], carry[:, 1:, None])
    return h.reshape(x.shape[0], n * c, *rest)[:, :length]


def reverse_linear_scan(a: torch.Tensor, x: torch.Tensor, chunk: Optional[int] = None) -> torch.Tensor:
    """``g_t = a_{t+1} * g_{t+1} + x_t`` with ``g_L = 0`` (the adjoint of :func:`linear_scan`).

    Shape: a, x ``[B, L, ...]`` -> ``[B, L, ...]``.
    """
    shifted = torch.zeros_like(a)
    shifted[:, :-1] = a[:, 1:]
    return linear_scan(shifted.flip(1), x.flip(1), chunk).flip(1)


def _states(delta, u, A, B, chunk):
    decay = torch.exp(delta.unsqueeze(-1) * A)  # [B, L, D, N]
    h = linear_scan(decay, (delta * u).unsqueeze(-1) * B.unsqueeze(2), chunk)
    return decay, h


class _SelectiveScanCore(torch.autograd.Function):
    """``y_t = <C_t, h_t>``, ``h_t = exp(delta_t A) h_{t-1} + delta_t u_t B_t``, gradient by hand."""

    @staticmethod
    def forward(ctx, delta, u, A, B, C, chunk):  # type: ignore[override]
        _, h = _states(delta, u, A, B, chunk)
        ctx.save_for_backward(delta, u, A, B, C)
        ctx.chunk = chunk
        return torch.einsum("bldn,bln->bld", h, C)

    @staticmethod
    @once_differentiable
    def backward(ctx, gy):  # type: ignore[override]
        delta, u, A, B, C = ctx.saved_tensors
        decay, h = _states(delta, u, A, B, ctx.chunk)
        dC = torch.einsum("bld,bldn->bln", gy, h)
        g = reverse_linear_scan(decay, gy.unsqueeze(-1) * C.unsqueeze(2), ctx.chunk)  # dLoss/dh_t
        h_prev = F.pad(h[:, :-1], [0, 0, 0, 0, 1, 0])
        s = g * h_prev * decay  # dLoss / d(delta_t * A)
        gb = torch.einsum("bldn,bln->bld", g, B)  # dLoss / d(delta_t * u_t)
        d_delta = torch.einsum("bldn,dn->bld", s, A) + gb * u
        dA = torch.einsum("bldn,bld->dn", s, delta)
        dB = torch.einsum("bldn,bld->bln", g, delta * u)
        return d_delta, gb * delta, dA, dB, dC, None


def _step_decay(delta_t: torch.Tensor, A: torch.Tensor) -> torch.Tensor:
    return torch.exp(delta_t.unsqueeze(-1) * A)  # [B, D, N]


def _run_states(h, delta, du, A, B, steps, out_states=None, y=None, C=None):
    """Advance ``h`` over ``steps``; optionally keep each state and write ``y_t = <C_t, h_t>``."""
    for t in steps:
        h = torch.addcmul(du[:, t].unsqueeze(-1) * B[:, t].unsqueeze(1), _step_decay(delta[:, t], A), h)
        if out_states is not None:
            out_states.append(h)
        if y is not None:
            y[:, t] = torch.bmm(h, C[:, t].unsqueeze(-1)).squeeze(-1)
    return h


class _SelectiveScanLoop(torch.autograd.Function):
    """The core ``y_t = <C_t, h_t>`` as a loop over time with the gradient written out. Keeps
    only the state entering each chunk of ``chunk`` steps; the backward recomputes a chunk's
    states from it and runs the adjoint recurrence through the chunk, newest step first."""

    @staticmethod
    def forward(ctx, delta, u, A, B, C, chunk):  # type: ignore[override]
        batch, length, d = u.shape
        c = min(chunk or default_chunk_size(length), length)
        du = delta * u
        y = u.new_empty(batch, length, d)
        h = u.new_zeros(batch, d, A.shape[1])
        starts = list(range(0, length, c))
        checkpoints = []
        for s in starts:
            checkpoints.append(h)
            h = _run_states(h, delta, du, A, B, range(s, min(s + c, length)), y=y, C=C)
        ctx.save_for_backward(delta, u, A, B, C, torch.stack(checkpoints))
        ctx.c = c
        return y

    @staticmethod
    @once_differentiable
    def backward(ctx, gy):  # type: ignore[override]
        delta, u, A, B, C, checkpoints = ctx.saved_tensors
        length = u.shape[1]
        du = delta * u
        d_delta, gb, dB, dC = (torch.empty_like(t) for t in (delta, delta, B, C))
        s_acc = torch.zeros_like(checkpoints[0])  # sum over t of dLoss/d(delta_t A) * delta_t
        carry = torch.zeros_like(checkpoints[0])  # exp(delta_{t+1} A) * dLoss/dh_{t+1}
        for k in reversed(range(checkpoints.shape[0])):
            steps = range(k * ctx.c, min((k + 1) * ctx.c, length))
            states = [checkpoints[k]]
            _run_states(checkpoints[k], delta, du, A, B, steps, out_states=states)
            for i, t in reversed(list(enumerate(steps))):
                h_t = states[i + 1]
                g = torch.addcmul(carry, gy[:, t].unsqueeze(-1), C[:, t].unsqueeze(1))  # dLoss/dh_t
                dC[:, t] = torch.bmm(gy[:, t].unsqueeze(1), h_t).squeeze(1)
                dB[:, t] = torch.bmm(du[:, t].unsqueeze(1), g).squeeze(1)
                gb[:, t] = torch.bmm(g, B[:, t].unsqueeze(-1)).squeeze(-1)
                carry = g * _step_decay(delta[:, t], A)
                s = carry * states[i]
                d_delta[:, t] = (s * A).sum(-1)
                s_acc.addcmul_(s, delta[:, t].unsqueeze(-1))
        return d_delta.addcmul_(gb, u), gb * delta, s_acc.sum(0), dB, dC, None


def selective_scan_torch(
    u: torch.Tensor,
    delta: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: Optional[torch.Tensor] = None,
    z: Optional[torch.Tensor] = None,
    delta_bias: Optional[torch.Tensor] = None,
    delta_softplus: bool = False,
    chunk: Optional[int] = None,
    chunked: bool = False,
) -> torch.Tensor:
    """The selective scan with a hand-written gradient (arguments and shapes as
    :func:`selective_scan_reference`).

    Args:
        chunk: steps per chunk (``None``: about ``sqrt(L)``).
        chunked: ``False``: the checkpointed loop over time (:class:`_SelectiveScanLoop`);
            ``True``: the chunked scan over whole ``[B, L, D, N]`` tensors (:class:`_SelectiveScanCore`).

    Returns:
        ``y`` ``[B, L, D]``.
    """
    delta = _discretise(delta, delta_bias, delta_softplus)
    core = _SelectiveScanCore if chunked else _SelectiveScanLoop
    return _finish(core.apply(delta, u, A, B, C, chunk), u, D, z)


def _selective_scan_mamba_ssm(u, delta, A, B, C, D, z, delta_bias, delta_softplus):
    from mamba_ssm.ops.selective_scan_interface import selective_scan_fn  # noqa: PLC0415 - mamba_ssm is optional

    def first(t):  # [B, L, X] -> [B, X, L], contiguous as the kernel wants
        return None if t is None else t.transpose(1, 2).contiguous()

    y = selective_scan_fn(
        first(u),
        first(delta),
        A.float(),
        first(B),
        first(C),
        None if D is None else D.float(),
        z=first(z),
        delta_bias=None if delta_bias is None else delta_bias.float(),
        delta_softplus=delta_softplus,
    )
    return y.transpose(1, 2)


def resolve_scan_impl(impl: str, device: torch.device) -> str:
    """``'auto'`` -> ``'mamba_ssm'`` when it imports and ``device`` is CUDA, else ``'torch'``.

    Raises:
        ConfigError: an unknown ``impl``, or ``'mamba_ssm'`` where it cannot run.
    """
    if impl not in SCAN_IMPLS:
        raise ConfigError(f"scan_impl={impl!r}; allowed: {' | '.join(SCAN_IMPLS)}")
    if impl == "auto":
        return "mamba_ssm" if device.type == "cuda" and mamba_ssm_available() else "torch"
    if impl == "mamba_ssm" and not mamba_ssm_available():
        raise ConfigError("scan_impl='mamba_ssm' but mamba_ssm cannot be imported (pip install mamba-ssm)")
    return impl


def selective_scan(
    u: torch.Tensor,
    delta: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: Optional[torch.Tensor] = None,
    z: Optional[torch.Tensor] = None,
    delta_bias: Optional[torch.Tensor] = None,
    delta_softplus: bool = False,
    impl: str = "auto",
) -> torch.Tensor:
    """The selective scan by ``impl`` (``auto | torch | chunked | mamba_ssm``, see
    :func:`resolve_scan_impl`).

    Arguments and shapes as :func:`selective_scan_reference`. Returns ``y`` ``[B, L, D]``.
    """
    impl = resolve_scan_impl(impl, u.device)
    if impl == "mamba_ssm":
        return _selective_scan_mamba_ssm(u, delta, A, B, C, D, z, delta_bias, delta_softplus)
    return selective_scan_torch(u, delta, A, B, C, D, z, delta_bias, delta_softplus, chunked=impl == "chunked")
