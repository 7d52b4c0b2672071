"""``attention_impl``: ``sdpa`` (``scaled_dot_product_attention``) computes RecBole's attention.

With dropout off, an ``sdpa`` model with a ``manual`` model's weights gives the same encoder
outputs at every real position of right-padded batches (lengths 1 to the maximum) and the same
gradients of the training loss for every parameter; ``manual`` is the default; the state_dict keys
do not change; an unknown value is a configuration error.
"""

from __future__ import annotations

import ast
import glob
import os
import warnings
from typing import Dict, List, Tuple

import pytest
import recbole
import torch
from recbole.model.layers import MultiHeadAttention, TransformerEncoder

from recbole_ext.config import Config
from recbole_ext.errors import ConfigError
from recbole_ext.model import attention
from recbole_ext.model.attention import ATTENTION_MODELS, SDPAMultiHeadAttention, use_attention_impl
from recbole_ext.model.recbole_fixes import FIXES

from conftest import build

MAX_LEN = 8
SMALL = {
    "hidden_size": 16,
    "embedding_size": 16,
    "inner_size": 32,
    "n_layers": 2,
    "n_heads": 2,
    "MAX_ITEM_LIST_LENGTH": MAX_LEN,
    "train_batch_size": 64,
    "eval_batch_size": 64,
    "show_progress": False,
    "state": "WARNING",
    "load_col": {"inter": ["user_id", "item_id", "timestamp"]},
}
NO_DROPOUT = {"hidden_dropout_prob": 0.0, "attn_dropout_prob": 0.0, "sess_dropout": 0.0, "item_dropout": 0.0}
#: model -> (extra keys, bidirectional: compare every position, padded ones too)
MODELS = {
    "SASRec": ({}, False),
    "BERT4Rec": ({}, True),
    "GCSAN": ({}, False),
    "CORE": ({"dnn_type": "trm"}, False),  # its attention mask comes from a submodule (TransNet)
}


# ----------------------------------------------------------------------------- the layer alone
def layer_pair(heads: int = 2, hidden: int = 8) -> Tuple[MultiHeadAttention, MultiHeadAttention]:
    """A RecBole layer and an SDPA layer with its weights (dropout 0.5: eval mode switches it off)."""
    torch.manual_seed(0)
    manual = MultiHeadAttention(heads, hidden, 0.5, 0.5, 1e-12).eval()
    sdpa = MultiHeadAttention(heads, hidden, 0.5, 0.5, 1e-12).eval()
    sdpa.load_state_dict(manual.state_dict())
    sdpa.__class__ = SDPAMultiHeadAttention
    return manual, sdpa


def recbole_mask(lengths: torch.Tensor, length: int, bidirectional: bool) -> torch.Tensor:
    """RecBole's ``get_attention_mask`` for right-padded sequences of ``lengths``."""
    item_seq = (torch.arange(length) < lengths[:, None]).long()
    real = item_seq.bool()[:, None, None, :]
    if not bidirectional:
        real = torch.tril(real.expand(-1, -1, length, -1))
    return torch.where(real, 0.0, -10000.0)


def test_causal_layer_matches_recboles_at_real_positions():
    manual, sdpa = layer_pair()
    lengths = torch.tensor([1, 3, 6, 6])
    x = torch.randn(4, 6, 8)
    real = torch.arange(6) < lengths[:, None]
    expected = manual(x, recbole_mask(lengths, 6, bidirectional=False))
    got = sdpa(x, None)
    torch.testing.assert_close(got[real], expected[real], atol=1e-6, rtol=1e-6)
    # padded queries attend to padded keys too under is_causal: they differ, and nothing reads them
    assert not torch.allclose(got[~real], expected[~real], atol=1e-3)


def test_bidirectional_layer_matches_recboles_everywhere():
    manual, sdpa = layer_pair()
    lengths = torch.tensor([1, 4, 6])
    x = torch.randn(3, 6, 8)
    mask = recbole_mask(lengths, 6, bidirectional=True)
    torch.testing.assert_close(sdpa(x, mask), manual(x, mask), atol=1e-6, rtol=1e-6)
    boolean = torch.arange(6)[None, None, None, :] < lengths[:, None, None, None]
    torch.testing.assert_close(sdpa(x, boolean), manual(x, mask), atol=1e-6, rtol=1e-6)


def test_dropouts_in_training():
    """Output dropout: RecBole's module, the same random stream. Attention dropout: SDPA's
    ``dropout_p`` (its own stream), the layer's probability, in training only."""
    manual, sdpa = layer_pair()
    x, lengths = torch.randn(3, 6, 8), torch.tensor([1, 4, 6])
    mask = recbole_mask(lengths, 6, bidirectional=True)
    assert torch.equal(sdpa(x, None), sdpa(x, None))  # eval: no dropout
    manual.train(), sdpa.train()
    manual.attn_dropout.p = sdpa.attn_dropout.p = 0.0
    torch.manual_seed(1)
    expected = manual(x, mask)
    torch.manual_seed(1)
    torch.testing.assert_close(sdpa(x, mask), expected, atol=1e-6, rtol=1e-6)
    manual.attn_dropout.p = sdpa.attn_dropout.p = 1.0  # every probability dropped: deterministic
    manual.out_dropout.p = sdpa.out_dropout.p = 0.0
    torch.testing.assert_close(sdpa(x, None), manual(x, mask), atol=1e-6, rtol=1e-6)
    sdpa.attn_dropout.p = 0.5
    assert not torch.allclose(sdpa(x, None), sdpa(x, None))


# ----------------------------------------------------------------------------- whole models
def model_pair(name: str, data_root: str, **keys) -> Tuple[object, object, object]:
    """(built manual run, its model, an sdpa model holding the manual model's weights)."""
    extra, _ = MODELS[name]
    manual = build(name, "ml-slice", data_root, **dict(SMALL, **extra, **keys))
    sdpa = build(name, "ml-slice", data_root, **dict(SMALL, **extra, **keys, attention_impl="sdpa")).model
    sdpa.load_state_dict(manual.model.state_dict())
    return manual, manual.model, sdpa


def encoder_outputs(model: torch.nn.Module) -> Tuple[List[torch.Tensor], List[object], list]:
    """Forward hooks recording every TransformerEncoder's output (each layer's hidden states) and
    the attention mask it was given."""
    out: List[torch.Tensor] = []
    masks: List[object] = []
    hooks = []
    for m in model.modules():
        if isinstance(m, TransformerEncoder):
            hooks.append(m.register_forward_hook(lambda _m, _i, o: out.extend(o)))
            hooks.append(m.register_forward_pre_hook(lambda _m, i: masks.append(i[1])))
    assert hooks, "the model has no TransformerEncoder"
    return out, masks, hooks


def loss_outputs_grads(model, batch) -> Tuple[torch.Tensor, List[torch.Tensor], List[object], Dict[str, torch.Tensor]]:
    """The training loss, the encoder outputs, the masks they were given and every parameter's
    gradient."""
    model.train()
    model.zero_grad()
    outs, masks, hooks = encoder_outputs(model)
    loss = model.calculate_loss(batch)
    loss = sum(loss) if isinstance(loss, tuple) else loss
    loss.backward()
    for h in hooks:
        h.remove()
    return loss.detach(), outs, masks, {n: p.grad for n, p in model.named_parameters()}


def real_positions(built, batch) -> torch.Tensor:
    """``[B, L]``: True at the real (not padded) positions of the batch's item sequences."""
    lengths = batch[built.config["ITEM_LIST_LENGTH_FIELD"]]
    seq = batch[built.config["ITEM_ID_FIELD"] + built.config["LIST_SUFFIX"]]
    assert int(lengths.min()) == 1 and int(lengths.max()) == seq.size(1) == MAX_LEN  # 1 and full length
    assert torch.equal(seq != 0, torch.arange(seq.size(1)) < lengths[:, None])  # right padding
    return seq != 0


@pytest.mark.parametrize("name", list(MODELS))
def test_sdpa_model_has_manual_outputs_and_gradients(name, ml100k_slice):
    built, manual, sdpa = model_pair(name, ml100k_slice, **NO_DROPOUT)
    assert all(type(m) is MultiHeadAttention for m in manual.modules() if isinstance(m, MultiHeadAttention))
    assert sum(isinstance(m, SDPAMultiHeadAttention) for m in sdpa.modules()) == 2
    batch = next(iter(built.train))
    real = torch.ones_like(real_positions(built, batch)) if MODELS[name][1] else real_positions(built, batch)
    loss_m, outs_m, masks_m, grads_m = loss_outputs_grads(manual, batch)
    loss_s, outs_s, masks_s, grads_s = loss_outputs_grads(sdpa, batch)
    assert len(outs_m) == len(outs_s) >= 2
    # left to right: no mask is materialised; bidirectional: RecBole's [B, 1, 1, L] padding mask
    assert all(m.shape[1:3] == ((1, 1) if MODELS[name][1] else (1, MAX_LEN)) for m in masks_m)
    assert all(torch.equal(s, m) for s, m in zip(masks_s, masks_m)) if MODELS[name][1] else masks_s == [None]
    for a, b in zip(outs_s, outs_m):
        torch.testing.assert_close(a[real], b[real], atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(loss_s, loss_m, atol=1e-6, rtol=1e-6)
    assert grads_m.keys() == grads_s.keys()
    checked = 0
    for key, grad in grads_m.items():
        assert (grad is None) == (grads_s[key] is None), key
        if grad is not None:
            torch.testing.assert_close(grads_s[key], grad, atol=1e-6, rtol=1e-5, msg=key)
            checked += 1
    assert checked > 10


@pytest.mark.parametrize("name", ["SASRec", "BERT4Rec"])
def test_sdpa_model_predicts_as_manual_in_eval(name, ml100k_slice):
    """Eval mode with the models' own (nonzero) dropout probabilities: full-sort scores agree."""
    built, manual, sdpa = model_pair(name, ml100k_slice)
    assert manual.trm_encoder.layer[0].multi_head_attention.attn_dropout.p > 0
    batch = next(iter(built.test))[0]
    with torch.no_grad():
        expected = manual.eval().full_sort_predict(batch)
        got = sdpa.eval().full_sort_predict(batch)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


def test_the_comparison_sees_a_missing_causal_flag(ml100k_slice, monkeypatch):
    """The comparison above fails when SDPA is called without ``is_causal`` (full attention)."""
    sdpa_function = attention.F.scaled_dot_product_attention

    def without_causal(*args, is_causal=False, **kwargs):
        return sdpa_function(*args, is_causal=False, **kwargs)

    monkeypatch.setattr(attention.F, "scaled_dot_product_attention", without_causal)
    with pytest.raises(AssertionError):
        test_sdpa_model_has_manual_outputs_and_gradients("SASRec", ml100k_slice)


# ----------------------------------------------------------------------------- configuration
def test_manual_is_the_default_and_state_dict_keys_are_unchanged(ml100k_slice):
    assert Config("SASRec", "ml-slice", config_dict={"data_path": ml100k_slice})["attention_impl"] == "manual"
    manual = build("SASRec", "ml-slice", ml100k_slice, **SMALL).model
    assert manual.attention_impl == "manual"
    assert all(type(m) is not SDPAMultiHeadAttention for m in manual.modules())
    sdpa = build("SASRec", "ml-slice", ml100k_slice, **SMALL, attention_impl="sdpa").model
    assert list(sdpa.state_dict()) == list(manual.state_dict())
    manual.load_state_dict(sdpa.state_dict())  # strict, both ways
    sdpa.load_state_dict(manual.state_dict())
    # switched in place, the parameters are the same tensors
    params = [p.data_ptr() for p in manual.parameters()]
    use_attention_impl(manual, "sdpa")
    assert [p.data_ptr() for p in manual.parameters()] == params
    assert sum(type(m) is SDPAMultiHeadAttention for m in manual.modules()) == 2
    assert manual.get_attention_mask(torch.ones(2, 3, dtype=torch.long)) is None
    assert manual.get_attention_mask(torch.ones(2, 3, dtype=torch.long), bidirectional=True).shape == (2, 1, 1, 3)


def test_unknown_value_is_a_config_error(ml100k_slice):
    with pytest.raises(ConfigError, match=r"attention_impl='flash'; allowed: str: manual \| sdpa"):
        Config("SASRec", "ml-slice", config_dict={"data_path": ml100k_slice, "attention_impl": "flash"})
    with pytest.raises(ConfigError, match="attention_impl='flash'"):
        attention.attention_impl_of({"attention_impl": "flash"})
    assert attention.attention_impl_of({}) == "manual"


def test_every_recbole_model_with_multi_head_attention_is_covered():
    """Each RecBole model class defined in a module that builds a TransformerEncoder or a
    MultiHeadAttention (read from the sources) gets the mixin."""
    found = set()
    root = os.path.join(os.path.dirname(recbole.__file__), "model")
    for path in glob.glob(os.path.join(root, "**", "*.py"), recursive=True):
        with open(path, encoding="utf-8") as f, warnings.catch_warnings():
            warnings.simplefilter("ignore", SyntaxWarning)  # invalid escapes in RecBole's docstrings
            warnings.simplefilter("ignore", DeprecationWarning)
            tree = ast.parse(f.read())
        calls = {n.func.id for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}
        if os.path.basename(path) == "layers.py" or not calls & {"TransformerEncoder", "MultiHeadAttention"}:
            continue
        for node in tree.body:
            bases = [b.id if isinstance(b, ast.Name) else getattr(b, "attr", "") for b in getattr(node, "bases", [])]
            if isinstance(node, ast.ClassDef) and any(b.endswith("Recommender") for b in bases):
                found.add(node.name)
    assert found == set(ATTENTION_MODELS)
    assert all(FIXES[name][0] is attention.AttentionImplFix for name in ATTENTION_MODELS)
