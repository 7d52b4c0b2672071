"""``attention_impl``: RecBole's hand-written self-attention, or the same math through
``torch.nn.functional.scaled_dot_product_attention`` (SDPA), for every RecBole model built on
``recbole.model.layers.MultiHeadAttention``.

RecBole's :class:`~recbole.model.layers.MultiHeadAttention` computes
``softmax(Q K^T / sqrt(d) + mask) V`` with the additive mask materialised by the model's
``get_attention_mask``: ``[B, 1, L, L]`` (0 or -10000) for the left-to-right models, ``[B, 1, 1, L]``
for the bidirectional ones; dropout on the attention probabilities; then dense, dropout and the
residual LayerNorm. ``attention_impl: sdpa`` keeps every parameter (the same modules, so the
``state_dict`` keys are identical and a checkpoint loads under either setting) and changes only
how the attention is computed:

- left-to-right (``get_attention_mask(item_seq, bidirectional=False)``: SASRec, SASRecF, GCSAN,
  FDSA, CORE, SASRecCPR, S3Rec fine-tuning): no mask is materialised; ``get_attention_mask``
  returns ``None`` and the layer calls SDPA with ``is_causal=True``. RecBole pads on the right,
  so every padded key lies in the future of every real query: the outputs at every real position
  are RecBole's (to float round-off); those at padded positions differ (they attend to padded keys
  too) and no model reads them.
- bidirectional (BERT4Rec, S3Rec pre-training): the model's own additive ``[B, 1, 1, L]`` padding
  mask goes to SDPA as ``attn_mask``: RecBole's math at every position.
- attention-probability dropout: ``dropout_p=attn_dropout_prob`` while training (the same
  distribution, a different random stream than RecBole's ``nn.Dropout``).

How the model tells the layer its mode: the mask itself. :class:`CausalMaskMixin` (put in front of
the model and of any submodule with its own ``get_attention_mask``, as CORE's ``TransNet``) returns
``None`` for a left-to-right mask under ``sdpa``; :class:`SDPAMultiHeadAttention` reads ``None`` as
causal and a tensor as an additive (or boolean) mask. ``manual`` (RecBole's code, untouched) stays the
default, so the published setting can be measured; ``sdpa`` lets fused kernels run (flash or
memory-efficient attention on GPUs) without the ``[B, 1, L, L]`` mask.
"""

from __future__ import annotations

import types
from typing import Any, Optional

import torch
import torch.nn.functional as F
from recbole.model.layers import MultiHeadAttention
from torch import nn

from recbole_ext.errors import ConfigError
from recbole_ext.model.choices import configured_choice

#: the values of ``attention_impl`` (the first is the default)
ATTENTION_IMPLS = ("manual", "sdpa")

#: RecBole's models whose attention is RecBole's ``MultiHeadAttention`` (through
#: ``TransformerEncoder``); LightSANs (its own low-rank attention) and FEARec (its own hybrid
#: attention) do not use it
ATTENTION_MODELS = ("BERT4Rec", "CORE", "FDSA", "GCSAN", "S3Rec", "SASRec", "SASRecCPR", "SASRecF")


class SDPAMultiHeadAttention(MultiHeadAttention):
    """RecBole's ``MultiHeadAttention`` with the attention through SDPA; the same parameters and
    submodules (a module's class is switched in place by :func:`use_attention_impl`)."""

    def forward(self, input_tensor: torch.Tensor, attention_mask: Optional[torch.Tensor]) -> torch.Tensor:
        """Self-attention, then dense, dropout and the residual LayerNorm (RecBole's order).

        Args:
            input_tensor: the layer's input.
            attention_mask: ``None`` for left-to-right attention (``is_causal``, right-padded
                sequences); else a mask broadcastable to ``[B, heads, L, L]``: additive (RecBole's
                0 / -10000) or boolean (True: attend).

        Returns:
            The layer's output.

        Shape:
            input_tensor ``[B, L, hidden]``; attention_mask ``[B, 1, 1 or L, L]``; output ``[B, L, hidden]``.
        """
        batch, length, _ = input_tensor.shape

        def heads(linear: nn.Linear) -> torch.Tensor:  # [B, L, hidden] -> [B, heads, L, head size]
            out = linear(input_tensor).view(batch, length, self.num_attention_heads, self.attention_head_size)
            return out.transpose(1, 2)

        query, key, value = heads(self.query), heads(self.key), heads(self.value)
        mask = attention_mask
        if mask is not None and mask.is_floating_point():
            mask = mask.to(query.dtype)
        context = F.scaled_dot_product_attention(
            query,
            key,
            value,
            attn_mask=mask,
            dropout_p=self.attn_dropout.p if self.training else 0.0,
            is_causal=mask is None,
            scale=1.0 / self.sqrt_attention_head_size,
        )
        context = context.transpose(1, 2).reshape(batch, length, self.all_head_size)
        hidden_states = self.out_dropout(self.dense(context))
        return self.LayerNorm(hidden_states + input_tensor)


class CausalMaskMixin:
    """``get_attention_mask`` that, under ``sdpa``, returns ``None`` for a left-to-right mask
    (the layers then attend causally); RecBole's mask otherwise."""

    #: ``manual`` or ``sdpa``, set by :func:`use_attention_impl`
    attention_impl: str = "manual"

    def get_attention_mask(self, item_seq: torch.Tensor, bidirectional: bool = False) -> Optional[torch.Tensor]:
        """The mask the model hands its ``TransformerEncoder``.

        Args:
            item_seq: item ids, right-padded with 0.
            bidirectional: every real position attends to every real position (else left to right).

        Returns:
            ``None`` (left to right under ``sdpa``: causal attention), else RecBole's additive mask.

        Shape:
            item_seq ``[B, L]``; the mask ``[B, 1, L, L]`` (left to right) or ``[B, 1, 1, L]``.
        """
        if not bidirectional and self.attention_impl == "sdpa":
            return None
        return super().get_attention_mask(item_seq, bidirectional=bidirectional)


class AttentionImplFix(CausalMaskMixin):
    """Mixin put in front of each model of :data:`ATTENTION_MODELS`: reads ``attention_impl``
    after RecBole's ``__init__`` and applies it (:func:`use_attention_impl`)."""

    def __init__(self, config: Any, dataset: Any) -> None:
        super().__init__(config, dataset)
        use_attention_impl(self, attention_impl_of(config))


def attention_impl_of(config: Any) -> str:
    """The configured ``attention_impl`` (:data:`ATTENTION_IMPLS`'s first where the configuration has none).

    Raises:
        ConfigError: the value is not one of :data:`ATTENTION_IMPLS`.
    """
    return configured_choice(config, "attention_impl", ATTENTION_IMPLS)


def _left_to_right_mask(self, item_seq: torch.Tensor, bidirectional: bool = False) -> Optional[torch.Tensor]:
    """A submodule's own ``get_attention_mask`` under ``attention_impl`` (bound to its instance
    by :func:`use_attention_impl`): ``None`` for left to right under ``sdpa``, else its class's."""
    if not bidirectional and self.attention_impl == "sdpa":
        return None
    return type(self).get_attention_mask(self, item_seq, bidirectional=bidirectional)


def use_attention_impl(model: nn.Module, impl: str) -> nn.Module:
    """Switch ``model`` (in place) to ``impl``: every ``MultiHeadAttention`` becomes an
    :class:`SDPAMultiHeadAttention` (``sdpa``) or RecBole's class (``manual``); the model and each
    submodule with its own ``get_attention_mask`` answer left-to-right masks accordingly.
    Parameters, buffers and ``state_dict`` keys are untouched.

    Args:
        model: a model of :data:`ATTENTION_MODELS` (or any module holding RecBole attention layers).
        impl: one of :data:`ATTENTION_IMPLS`.

    Returns:
        ``model``.
    """
    if impl not in ATTENTION_IMPLS:
        raise ConfigError(f"invalid configuration: attention_impl={impl!r}; allowed: {' | '.join(ATTENTION_IMPLS)}")
    layer_class = SDPAMultiHeadAttention if impl == "sdpa" else MultiHeadAttention
    for module in model.modules():
        if type(module) in (MultiHeadAttention, SDPAMultiHeadAttention):
            module.__class__ = layer_class
        elif hasattr(module, "get_attention_mask") and not isinstance(module, CausalMaskMixin):
            module.get_attention_mask = types.MethodType(_left_to_right_mask, module)  # CORE's TransNet
        if hasattr(module, "get_attention_mask"):
            module.attention_impl = impl
    return model
