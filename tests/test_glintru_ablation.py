"""GLINTRU's ablation keys (the paper's Table 4 and an activation study as settings): each variant
against the formula written out from the full model's own submodules, exact on both the
last-position and the every-position path, and the parameters each variant leaves out."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from recbole_ext.model.glintru_layers import NoTimeConv

from conftest import model_on_slice, slice_config_and_data

SMALL = dict(hidden_size=16, n_heads=2, dropout_prob=0.0, hidden_dropout_prob=0.0)
SMALL.update(gate_dropout_prob=0.0, mix_dropout_prob=0.0, mlp_dropout_prob=0.0)
VARIANTS = [
    dict(),
    dict(experts="gru"),
    dict(experts="attention"),
    dict(temporal_conv=False),
    dict(gated_mlp=False),
    dict(experts="gru", temporal_conv=False, gated_mlp=False),
    dict(gate_act="relu"),
    dict(gate_act="sigmoid", selective_act="tanh", mlp_act="silu"),
    dict(gate_act="identity", selective_act="gelu", mlp_act="identity"),
    dict(selective_act="relu"),  # the paper's Table 6 rows: the dense selective gate's activation
    dict(selective_act="sigmoid"),
    dict(selective_act="elu"),
]
#: each activation written out here, independently of the model's table
ACT = {
    "gelu": lambda x: 0.5 * x * (1 + torch.erf(x / 2**0.5)),
    "silu": lambda x: x / (1 + torch.exp(-x)),
    "relu": lambda x: torch.where(x > 0, x, torch.zeros_like(x)),
    "sigmoid": lambda x: 1 / (1 + torch.exp(-x)),
    "tanh": lambda x: (torch.exp(x) - torch.exp(-x)) / (torch.exp(x) + torch.exp(-x)),
    "elu": lambda x: torch.where(x > 0, x, torch.exp(x) - 1),
    "identity": lambda x: x,
}


@pytest.fixture(scope="module")
def slice_data(ml100k_slice):
    return slice_config_and_data("GLINTRU", ml100k_slice)


def batch(n_items: int, rows: int = 6, length: int = 10):
    g = torch.Generator().manual_seed(1)
    seq = torch.randint(1, n_items, (rows, length), generator=g)
    lengths = torch.tensor([1, 3, 5, 7, 9, 10][:rows])
    for i, n in enumerate(lengths.tolist()):
        seq[i, n:] = 0
    return seq, lengths


def gru_expert_formula(expert, x, act):
    """The GRU expert at every position: conv(dense(x)) -> GRU -> projection * gate -> conv, the
    gate ``Linear(act(Linear(h1)))`` (its dropout is off)."""
    h1 = expert.conv_in(expert.dense_in(x))
    out, _ = torch.nn.GRU.forward(expert.gru, h1)
    first, second = expert.selective_gate[0], expert.selective_gate[2]
    return expert.conv_out(expert.projection(out) * second(act(first(h1))))


def formula(model, seq, lengths):
    """The variant's state at the last real item, composed from its own submodules."""
    x = model.item_embedding(seq)
    parts = []
    if model.experts != "attention":
        parts.append(gru_expert_formula(model.gru_expert, x, ACT[model.selective_act]))
    if model.experts != "gru":
        parts.append(model.attention(x))
    if model.experts == "both":
        w = F.softmax(model.expert_logits, dim=0)
        mixed = w[0] * parts[0] + w[1] * parts[1]
    else:
        mixed = parts[0]
    h = model.LayerNorm(model.mix_dense(mixed * ACT[model.gate_act](model.data_gate(x))) + x)
    if model.gated_mlp:
        mlp = model.mlp
        h = model.mlp_LayerNorm(mlp.dense_out(mlp.dense_value(h) * ACT[model.mlp_act](mlp.dense_gate(h))) + h)
    return h[torch.arange(len(seq)), lengths - 1]


@pytest.mark.parametrize("keys", VARIANTS, ids=lambda k: ",".join(f"{a}={b}" for a, b in k.items()) or "defaults")
@pytest.mark.parametrize("last_only", [True, False])
def test_variant_equals_its_formula(slice_data, keys, last_only):
    model = model_on_slice(slice_data, "GLINTRU", last_position_only=last_only, **SMALL, **keys).double().eval()
    seq, lengths = batch(model.n_items)
    with torch.no_grad():
        got = model(seq, lengths)
        want = formula(model, seq, lengths)
    assert torch.allclose(got, want, atol=1e-12, rtol=0), (got - want).abs().max()


def test_variants_leave_out_their_parameters(slice_data):
    def names(**keys):
        return {n for n, _ in model_on_slice(slice_data, "GLINTRU", **SMALL, **keys).named_parameters()}

    full = names()
    assert names(experts="gru") == {n for n in full if not n.startswith("attention.") and n != "expert_logits"}
    assert names(experts="attention") == {n for n in full if not n.startswith("gru_expert.") and n != "expert_logits"}
    assert names(temporal_conv=False) == {n for n in full if ".conv_in." not in n and ".conv_out." not in n}
    assert names(gated_mlp=False) == {n for n in full if not n.startswith("mlp.")}
    no_conv = model_on_slice(slice_data, "GLINTRU", **SMALL, temporal_conv=False)
    assert isinstance(no_conv.gru_expert.conv_in, NoTimeConv) and isinstance(no_conv.gru_expert.conv_out, NoTimeConv)
    assert names(gate_act="relu", selective_act="tanh", mlp_act="identity") == full  # activations add no parameters


def test_unknown_activation_is_a_user_error(ml100k_slice):
    """An activation the model does not know is a mistake named by its key, before any data."""
    from recbole_ext.errors import UserError
    from recbole_ext.pipeline import Run

    with pytest.raises(UserError, match="gate_act"):
        Run.resolve("GLINTRU", "ml-slice", config_dict=dict(data_path=ml100k_slice, gate_act="swishy"))


def test_full_model_unchanged_by_the_keys(slice_data):
    """The defaults build the model as before: the same parameter names and a loss that trains."""
    model = model_on_slice(slice_data, "GLINTRU", **SMALL)
    assert (model.gate_act, model.selective_act, model.mlp_act) == ("gelu", "silu", "gelu")  # the reference's
    assert {"expert_logits", "mlp.dense_out.weight", "gru_expert.conv_in.conv.weight"} <= set(
        n for n, _ in model.named_parameters()
    )
    seq, lengths = batch(model.n_items)
    interaction = {"item_id_list": seq, "item_length": lengths, "item_id": torch.ones(len(seq), dtype=torch.long)}
    loss = model.calculate_loss(interaction)
    loss.backward()
    assert torch.isfinite(loss) and model.expert_logits.grad is not None


@pytest.mark.parametrize(
    "model, keys", [("GLINTRU", ("gate_act", "selective_act", "mlp_act")), ("FMLPRec", ("hidden_act",))]
)
def test_every_activation_a_yaml_offers_is_in_the_one_table(model, keys):
    """The YAMLs' choices and the one activation table agree (``swish`` is RecBole's SiLU)."""
    import os

    from recbole_ext._paths import PROPERTIES_DIR
    from recbole_ext.config_schema import read_yaml_specs
    from recbole_ext.model.activations import ACTIVATIONS

    specs, _ = read_yaml_specs(os.path.join(PROPERTIES_DIR, "model", f"{model}.yaml"))
    for key in keys:
        choices = specs[key].alts[0].choices
        assert choices and set(choices) <= set(ACTIVATIONS), (key, choices)
    assert ACTIVATIONS["swish"] is ACTIVATIONS["silu"] is F.silu and ACTIVATIONS["elu"] is F.elu
