"""Neural blocks shared by the models of recbole_ext (each section is owned by the model that added it)."""

import math
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from recbole_ext.model.gru import FastGRU

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
    On CUDA tensors and under ``torch.compile`` it is ``F.dropout`` (a fused kernel there; the
    16-bit draw's in-place ``random_`` would split a compiled graph at every dropout).

    Args:
        p: drop probability.

    Shape:
        - input: any
        - output: same as input
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        if x.is_cuda or torch.compiler.is_compiling():  # PyTorch's own: fused on GPUs, traceable
            return F.dropout(x, self.p, True)
        return _FastDropoutFunction.apply(x, float(self.p))


# ============================================================== GLINT-RU blocks (GLINTRU model)


def normal_init_(module: nn.Module, std: float) -> None:
    """RecBole's transformer initialisation of one module (SASRec's and the references of
    LinRec, FMLP-Rec and SMLP4Rec): ``N(0, std)`` for Linear and Embedding weights (padding rows
    too), zero Linear biases, LayerNorm weights one and biases zero; other modules unchanged."""
    if isinstance(module, (nn.Linear, nn.Embedding)):
        nn.init.normal_(module.weight, mean=0.0, std=std)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)
    if isinstance(module, nn.Linear) and module.bias is not None:
        nn.init.zeros_(module.bias)


def gather_positions(x: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """Row ``b``'s vector at ``positions[b]``. Shape: x ``[B, L, d]``, positions ``[B]`` -> ``[B, d]``."""
    return x[torch.arange(x.shape[0], device=x.device), positions]


def elu_norm_linear_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    key_mask: Optional[torch.Tensor] = None,
    eps: float = 1e-12,
) -> torch.Tensor:
    """GLINT-RU's ELU-normalised linear attention ``Q' (K'^T V) / sqrt(d_h)``, linear in ``L``
    (LinRec's attention, which GLINT-RU adopts: also :data:`recbole_ext.model.linear_attention.l2_linear_attention`).

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

    def forward(
        self, x: torch.Tensor, key_mask: Optional[torch.Tensor] = None, positions: Optional[torch.Tensor] = None
    ) -> torch.Tensor:
        """The attention expert at every position, or only at ``positions`` (one per row: the
        keys and values still come from every position; queries, projection and LayerNorm are
        per position, so the result equals the full output gathered there).

        Shape:
            - x: ``[B, L, d]``; key_mask: ``[B, L]`` (optional); positions: ``[B]`` (optional)
            - output: ``[B, L, d]``, or ``[B, d]`` with ``positions``
        """
        queries = x if positions is None else gather_positions(x, positions)[:, None]
        b, l, d = queries.shape
        q, k, v = self.split_heads(self.query(queries)), self.split_heads(self.key(x)), self.split_heads(self.value(x))
        ctx = elu_norm_linear_attention(q, k, v, key_mask)
        ctx = ctx.transpose(1, 2).reshape(b, l, d)
        out = self.LayerNorm(self.out_dropout(self.dense(ctx)) + queries)
        return out if positions is None else out[:, 0]


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

    def window(self, positions: torch.Tensor, length: int) -> Tuple[torch.Tensor, torch.Tensor]:
        """The input positions the output at ``positions`` reads, and which of them lie inside
        the sequence (the others are the zero padding).

        Shape: positions ``[B]`` -> (indices ``[B, k]`` clamped into ``[0, L)``, inside ``[B, k]``).
        """
        offsets = torch.arange(-self.pad[0], self.pad[1] + 1, device=positions.device)
        idx = positions[:, None] + offsets[None, :]
        inside = (idx >= 0) & (idx < length)
        return idx.clamp(0, length - 1), inside

    def at_window(self, window: torch.Tensor) -> torch.Tensor:
        """The output at one position from its window of inputs (zeros where padded).

        Shape: window ``[B, k, d]`` -> ``[B, d]``.
        """
        return torch.einsum("bkc,ock->bo", window, self.conv.weight) + self.conv.bias


class NoTimeConv(nn.Module):
    """The identity with :class:`TimeConv1d`'s interface (GLINT-RU's "without the temporal
    convolution" ablation)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Shape: ``[B, L, d] -> [B, L, d]`` (unchanged)."""
        return x

    def window(self, positions: torch.Tensor, length: int) -> Tuple[torch.Tensor, torch.Tensor]:
        """Shape: positions ``[B]`` -> (indices ``[B, 1]``, inside ``[B, 1]``, all true)."""
        return positions[:, None], torch.ones_like(positions[:, None], dtype=torch.bool)

    def at_window(self, window: torch.Tensor) -> torch.Tensor:
        """Shape: window ``[B, 1, d]`` -> ``[B, d]``."""
        return window[:, 0]


class GatedGRUExpert(nn.Module):
    """GLINT-RU's GRU expert: ``conv(Linear(x))`` -> bias-free GRU -> Linear, times the selective
    gate ``Dropout(Linear(SiLU(Linear(h1))))``, then a second time convolution.

    Args:
        hidden_size: ``d``.
        kernel_size: kernel of both time convolutions.
        num_layers: GRU layers.
        gate_dropout_prob: dropout at the end of the selective gate (0.3 in the reference).
        causal: causal time convolutions.
        gru_impl: the GRU's recurrence (:class:`~recbole_ext.model.gru.FastGRU`): ``torch``
            (``nn.GRU``: cuDNN on GPUs), ``triton`` or ``auto``.
        temporal_conv: ``False``: no time convolutions (both are the identity; an ablation).
    """

    def __init__(
        self,
        hidden_size: int,
        kernel_size: int = 3,
        num_layers: int = 1,
        gate_dropout_prob: float = 0.3,
        causal: bool = False,
        gru_impl: str = "torch",
        temporal_conv: bool = True,
    ) -> None:
        super().__init__()
        conv = (lambda: TimeConv1d(hidden_size, kernel_size, causal)) if temporal_conv else NoTimeConv
        self.dense_in = nn.Linear(hidden_size, hidden_size)
        self.conv_in = conv()
        self.gru = FastGRU(hidden_size, hidden_size, num_layers=num_layers, bias=False, batch_first=True, impl=gru_impl)
        self.projection = nn.Linear(hidden_size, hidden_size)
        self.selective_gate = nn.Sequential(
            nn.Linear(hidden_size, hidden_size // 2),
            nn.SiLU(),
            nn.Linear(hidden_size // 2, hidden_size),
            FastDropout(gate_dropout_prob),
        )
        self.conv_out = conv()

    def forward(self, x: torch.Tensor, positions: Optional[torch.Tensor] = None) -> torch.Tensor:
        """The expert at every position, or only at ``positions`` (one per row): the GRU runs
        over the whole sequence either way; the projection and gate then run only on the
        ``kernel_size`` steps the output convolution reads there.

        Shape:
            - x: ``[B, L, d]``; positions: ``[B]`` (optional)
            - output: ``[B, L, d]``, or ``[B, d]`` with ``positions``
        """
        h1 = self.conv_in(self.dense_in(x))
        out, _ = self.gru(h1)
        if positions is None:
            return self.conv_out(self.projection(out) * self.selective_gate(h1))
        idx, inside = self.conv_out.window(positions, x.shape[1])
        rows = torch.arange(x.shape[0], device=x.device)[:, None]
        y = self.projection(out[rows, idx]) * self.selective_gate(h1[rows, idx])
        return self.conv_out.at_window(y * inside[..., None].to(y.dtype))


class FeedForward(nn.Module):
    """``LayerNorm(x + Dropout(W2 Dropout(GELU(W1 x))))``: the point-wise block of the Mamba4Rec
    and LRURec references (their ``FeedForward`` and ``PositionwiseFeedForward``).

    Args:
        d_model: width ``d``.  inner_size: hidden width.  dropout: both dropouts.  eps: LayerNorm epsilon.
    """

    def __init__(self, d_model: int, inner_size: int, dropout: float, eps: float):
        super().__init__()
        self.w_1 = nn.Linear(d_model, inner_size)
        self.w_2 = nn.Linear(inner_size, d_model)
        self.dropout = FastDropout(dropout)
        self.LayerNorm = nn.LayerNorm(d_model, eps=eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Shape: ``[..., d] -> [..., d]``."""
        h = self.dropout(self.w_2(self.dropout(F.gelu(self.w_1(x)))))
        return self.LayerNorm(h + x)


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
