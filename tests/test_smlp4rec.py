"""SMLP4Rec (TOIS 2024): the model against the reference forward written out with einsums (and
RecBole's own feature layer), the feature layer against RecBole's on every kind of field,
padding in both modes, the YAML keys, runs by name with and without item features, and
``full_sort_predict`` against ``predict``."""

from __future__ import annotations

import logging
import math
import os
import shutil

import pytest
import torch
from recbole.data.interaction import Interaction
from recbole.model.layers import FeatureSeqEmbLayer

from recbole_ext.config import Config
from recbole_ext.config_schema import read_yaml_specs
from recbole_ext.errors import ConfigError
from recbole_ext.registry import OWN_MODEL_YAML_DIR

from conftest import ML100K, SEQ_DATA, build, model_on_slice, scramble_after_last, slice_config_and_data
from sweep_data import write_sweep_dataset

SMALL = dict(hidden_size=16, MAX_ITEM_LIST_LENGTH=12)
#: the slice's interactions and ml-100k's item file (token, and two token_seq fields)
ITEM_COLS = {"inter": ["user_id", "item_id", "timestamp"], "item": ["item_id", "movie_title", "release_year", "class"]}
ML_FIELDS = ["class", "release_year", "movie_title"]
SWEEP_COLS = {
    "inter": ["user_id", "item_id", "timestamp"],
    "item": ["item_id", "release_year", "class", "price", "price_hist"],
}
YAML = os.path.join(OWN_MODEL_YAML_DIR, "SMLP4Rec.yaml")


def built_data(model: str, dataset: str, root: str, **keys):
    """``(config, built dataset)``: item features become tensors only when the data set is built."""
    from recbole_ext.pipeline import Run

    run = Run.resolve(model, dataset, config_dict=dict(SEQ_DATA, data_path=root, state="WARNING", **keys))
    data = run.load_dataset()
    data.build()
    return run.config, data


@pytest.fixture(scope="module")
def slice_data(ml100k_slice):
    """The slice with no item file: the model runs on ids only."""
    return slice_config_and_data("SMLP4Rec", ml100k_slice)


@pytest.fixture(scope="module")
def item_root(ml100k_slice, tmp_path_factory):
    """A data root with the slice's interactions and ml-100k's item file."""
    root = tmp_path_factory.mktemp("slice_items")
    os.makedirs(root / "ml-slice")
    shutil.copy(os.path.join(ml100k_slice, "ml-slice", "ml-slice.inter"), root / "ml-slice" / "ml-slice.inter")
    shutil.copy(ML100K[: -len(".inter")] + ".item", root / "ml-slice" / "ml-slice.item")
    return str(root)


@pytest.fixture(scope="module")
def item_data(item_root):
    return built_data("SMLP4Rec", "ml-slice", item_root, load_col=ITEM_COLS)


@pytest.fixture(scope="module")
def sweep_data(tmp_path_factory):
    """Every kind of item field (token, token_seq, float, float_seq), blanks and items without a row."""
    root = write_sweep_dataset(str(tmp_path_factory.mktemp("sweep")), n_users=30, n_items=40, per_user=6)
    return built_data("SMLP4Rec", "sweep", root, load_col=SWEEP_COLS, numerical_features=["price", "price_hist"])


def padded_batch(n_items: int, rows: int = 8, length: int = 12, seed: int = 0):
    """Right-padded sequences; row ``i`` has ``i + 1`` items, the last row is full."""
    g = torch.Generator().manual_seed(seed)
    seq = torch.randint(1, n_items, (rows, length), generator=g)
    lengths = torch.arange(1, rows + 1)
    lengths[-1] = length
    for i, n in enumerate(lengths.tolist()):
        seq[i, n:] = 0
    return seq, lengths


def jitter(model):
    """Move every parameter away from its initialisation (zero-mean tables, unit LayerNorms)."""
    g = torch.Generator().manual_seed(3)
    for p in model.parameters():
        p.data.add_(0.1 * torch.randn(p.shape, generator=g, dtype=p.dtype))
    return model


# ------------------------------------------------------------------ the reference, written out
def layer_norm(x, ln):
    mu = x.mean(-1, keepdim=True)
    var = ((x - mu) ** 2).mean(-1, keepdim=True)
    return (x - mu) / torch.sqrt(var + ln.eps) * ln.weight + ln.bias


def gelu(x):
    return 0.5 * x * (1.0 + torch.erf(x / math.sqrt(2.0)))


def reference_block(blk, x, mask=None):
    """The reference's ``SMLP.forward`` on ``x`` ``[B, C, L, d]``, each mixer as two einsums over
    its axis: ``c`` over the fields, ``h`` over the positions, ``w`` over the hidden units.
    ``mask`` (our deviation) zeroes padded positions of the position mixer's input."""
    xn = layer_norm(x, blk.norm)
    f, s, h = blk.feature_mixer, blk.sequence_mixer, blk.hidden_mixer
    y_c = torch.einsum("ck,bkld->bcld", f.fc2.weight, gelu(torch.einsum("kc,bcld->bkld", f.fc1.weight, xn)))
    xs = xn if mask is None else xn * mask[:, None, :, None]
    y_h = torch.einsum("lk,bckd->bcld", s.fc2.weight, gelu(torch.einsum("kl,bcld->bckd", s.fc1.weight, xs)))
    y_w = torch.einsum("dk,bclk->bcld", h.fc2.weight, gelu(torch.einsum("kd,bcld->bclk", h.fc1.weight, xn)))
    return y_c + y_h + y_w


def recbole_feature_layer(model, dataset):
    """RecBole's ``FeatureSeqEmbLayer`` (the reference's) holding ``model``'s feature tables."""
    ours = model.feature_embedding
    layer = FeatureSeqEmbLayer(dataset, model.hidden_size, model.feature_fields, model.pooling_mode, "cpu")
    layer = layer.to(model.item_embedding.weight.dtype)
    with torch.no_grad():
        if ours.token_table is not None:
            layer.token_embedding_table["item"].embedding.weight.copy_(ours.token_table.weight)
        if ours.float_table is not None:
            layer.float_embedding_table["item"].embedding.weight.copy_(ours.float_table.weight)
        for theirs, mine in zip(layer.token_seq_embedding_table["item"], ours.token_seq_tables):
            theirs.weight.copy_(mine.weight)
        for theirs, mine in zip(layer.float_seq_embedding_table["item"], ours.float_seq_tables):
            theirs.weight.copy_(mine.weight)
    return layer


def reference_forward(m, seq, lengths, features=None, mask=None):
    """``SMLPREC.forward`` of the reference (eval mode), in its layout and order of operations."""
    item_emb = m.item_embedding.weight[seq].unsqueeze(2)  # [B, L, 1, d]
    if features is not None:
        sparse, dense = features(None, seq)
        parts = [t for t in (sparse["item"], dense["item"]) if t is not None]
        item_emb = torch.cat([item_emb, *parts], 2)  # [B, L, C, d]
    x = item_emb.transpose(1, 2)
    for i in range(m.n_layers):
        x = reference_block(m.blocks[0 if m.share_layers else i], x, mask)
    out = x.transpose(1, 0)[0][torch.arange(len(seq)), lengths - 1]
    return layer_norm(out, m.LayerNorm)


@pytest.mark.parametrize("features", [False, True])
@pytest.mark.parametrize("share_layers", [True, False])
@pytest.mark.parametrize("mask_padding", [False, True])
@pytest.mark.parametrize("last_position_only", [True, False])
def test_forward_equals_reference(slice_data, item_data, features, share_layers, mask_padding, last_position_only):
    data, fields = (item_data, ML_FIELDS) if features else (slice_data, [])
    keys = dict(SMALL, selected_features=fields, share_layers=share_layers, mask_padding=mask_padding, n_layers=3)
    keys["last_position_only"] = last_position_only
    model = jitter(model_on_slice(data, "SMLP4Rec", **keys).double().eval())
    assert len(model.blocks) == (1 if share_layers else 3)
    assert model.feature_fields == fields
    seq, lengths = padded_batch(model.n_items)
    mask = (torch.arange(12)[None, :] < lengths[:, None]).double() if mask_padding else None
    twin = recbole_feature_layer(model, data[1]) if features else None
    with torch.no_grad():
        out = model(seq, lengths)
        assert out.shape == (8, 16)
        assert torch.allclose(out, reference_forward(model, seq, lengths, twin, mask), rtol=0, atol=1e-10)


# ------------------------------------------------------------------ the feature layer
@pytest.mark.parametrize("pooling_mode", ["mean", "sum", "max"])
def test_feature_layer_equals_recboles(item_data, sweep_data, pooling_mode):
    """ml-100k (token + token_seq) and the sweep set (float, float_seq, blanks, items with no row):
    RecBole's arithmetic, except that max of an empty sequence field is 0 (RecBole's ~ -1e9)."""
    sweep_fields = ["price_hist", "class", "price", "release_year"]
    cases = [
        (item_data, ML_FIELDS, ["release_year", "class", "movie_title"]),
        (sweep_data, sweep_fields, ["release_year", "class", "price", "price_hist"]),  # RecBole's order of kinds
    ]
    for data, fields, stacked in cases:
        model = jitter(model_on_slice(data, "SMLP4Rec", selected_features=fields, pooling_mode=pooling_mode, **SMALL))
        layer = model.double().feature_embedding
        assert layer.fields == stacked
        seq = torch.arange(model.n_items).view(1, -1)  # every item, the padding item 0 too
        sparse, dense = recbole_feature_layer(model, data[1])(None, seq)
        theirs = torch.cat([t for t in (sparse["item"], dense["item"]) if t is not None], 2)
        with torch.no_grad():
            ours = layer(seq)
        assert ours.shape == (1, model.n_items, len(fields), 16)
        empty = theirs.amax(-1) < -1e8  # RecBole's max over nothing
        assert bool(empty.any()) == (pooling_mode == "max")
        assert torch.allclose(ours[~empty], theirs[~empty], rtol=0, atol=1e-10)
        assert torch.equal(ours[empty], torch.zeros_like(ours[empty]))


def test_feature_columns_are_buffers_not_state(item_data):
    model = model_on_slice(item_data, "SMLP4Rec", selected_features=["class", "release_year"], **SMALL)
    names = {n for n, _ in model.named_buffers()}
    assert {"feature_embedding.feat_class", "feature_embedding.feat_release_year"} <= names
    assert not any(k.startswith("feature_embedding.feat_") for k in model.state_dict())
    other = model_on_slice(item_data, "SMLP4Rec", selected_features=["class", "release_year"], **SMALL)
    jitter(other).load_state_dict(model.state_dict(), strict=True)
    seq, lengths = padded_batch(model.n_items)
    model.eval(), other.eval()
    with torch.no_grad():
        assert torch.equal(other(seq, lengths), model(seq, lengths))
    assert model.double().feature_embedding.feat_class.dtype == torch.long


# ------------------------------------------------------------------ padding
@pytest.mark.parametrize("features", [False, True])
def test_padding_in_both_modes(slice_data, item_data, features):
    data, fields = (item_data, ML_FIELDS) if features else (slice_data, [])
    seq, lengths = padded_batch(slice_data[1].item_num)
    scrambled = scramble_after_last(seq, lengths, slice_data[1].item_num)
    short = seq[:, :9]  # the first 9 positions hold every real item but the last row's
    earlier = seq.clone()
    earlier[:, 0] = earlier[:, 0] % 100 + 1
    full = lengths == seq.shape[1]
    for mask_padding in (True, False):
        keys = dict(SMALL, selected_features=fields, mask_padding=mask_padding)
        model = jitter(model_on_slice(data, "SMLP4Rec", **keys).double().eval())
        with torch.no_grad():
            base = model(seq, lengths)
            # a shorter batch is padded to MAX_ITEM_LIST_LENGTH with 0, as RecBole pads
            assert torch.allclose(model(short[:-1], lengths[:-1]), base[:-1], rtol=0, atol=1e-12)
            assert not torch.allclose(model(earlier, lengths), base)
            # nothing after the last real item reaches the state with mask_padding; in the
            # reference's mode what the padded positions hold does
            moved = (model(scrambled, lengths) - base).abs().amax(-1)
            assert float(moved[full].max()) == 0
            if mask_padding:
                assert float(moved.max()) < 1e-12
            else:
                assert float(moved[~full].min()) > 1e-6
    with pytest.raises(ValueError, match="MAX_ITEM_LIST_LENGTH is 12"):
        model(torch.ones(2, 13, dtype=torch.long), torch.tensor([13, 13]))


# ------------------------------------------------------------------ config
def test_yaml_keys_are_typed_read_and_checked(ml100k_slice, slice_data):
    import yaml

    specs, _ = read_yaml_specs(YAML)
    with open(YAML) as f:
        defaults = yaml.safe_load(f)
    assert all(specs.get(k) is not None for k in defaults), "a key without a '# (type) meaning' comment"
    config, dataset = slice_data
    read = set()

    class Recording:  # the config, noting every key the model reads
        def __getitem__(self, key):
            read.add(key)
            return config[key]

        def __contains__(self, key):
            return key in config

    get_model_cls = type(model_on_slice(slice_data, "SMLP4Rec", **SMALL))
    get_model_cls(Recording(), dataset)
    assert set(defaults) <= read, f"keys never read: {set(defaults) - read}"

    base = {"data_path": ml100k_slice}
    cfg = Config("SMLP4Rec", "ml-slice", config_dict=base)
    assert {k: cfg[k] for k in defaults} == defaults
    for key, value, allowed in [
        ("n_layers", 0, "int >= 1"),
        ("share_layers", "yes", "bool"),
        ("expansion_factor", 0, "int >= 1"),
        ("hidden_dropout_prob", 1.0, "float >= 0, < 1"),
        ("selected_features", "class", "list of str"),
        ("pooling_mode", "avg", "str: mean | sum | max"),
        ("mask_padding", "no", "bool"),
        ("initializer_range", 0.0, "float > 0"),
    ]:
        with pytest.raises(ConfigError, match=f"{key}={value!r}; allowed: {allowed}"):
            Config("SMLP4Rec", "ml-slice", config_dict=dict(base, **{key: value}))


def test_item_features_are_checked_against_the_data(slice_data, item_data, sweep_data, caplog):
    with caplog.at_level(logging.WARNING):
        model = model_on_slice(slice_data, "SMLP4Rec", **SMALL)  # the default [class], no .item file
    assert model.feature_fields == [] and model.feature_embedding is None
    assert "running on item ids only" in caplog.text
    assert model.blocks[0].feature_mixer.fc1.weight.shape == (3, 1)
    assert model_on_slice(item_data, "SMLP4Rec", **SMALL).feature_fields == ["class"]
    assert model_on_slice(item_data, "SMLP4Rec", selected_features=[], **SMALL).feature_embedding is None
    with pytest.raises(ConfigError, match="'genre', which is not a loaded item feature; loaded item features"):
        model_on_slice(item_data, "SMLP4Rec", selected_features=["class", "genre"], **SMALL)
    with pytest.raises(ConfigError, match="float field 'price'; list it in numerical_features"):
        model_on_slice(sweep_data, "SMLP4Rec", selected_features=["price"], numerical_features=[], **SMALL)
    with pytest.raises(ConfigError, match="names a field twice"):
        model_on_slice(item_data, "SMLP4Rec", selected_features=["class", "class"], **SMALL)


# ------------------------------------------------------------------ scoring and runs
def test_full_sort_predict_equals_predict_on_every_item(item_data):
    keys = dict(SMALL, selected_features=ML_FIELDS, item_bias=True)
    model = jitter(model_on_slice(item_data, "SMLP4Rec", **keys).double().eval())
    seq, lengths = padded_batch(model.n_items, rows=3)
    n = model.n_items
    with torch.no_grad():
        full = model.full_sort_predict(Interaction({model.ITEM_SEQ: seq, model.ITEM_SEQ_LEN: lengths}))
        each = Interaction(
            {
                model.ITEM_SEQ: seq.repeat_interleave(n, 0),
                model.ITEM_SEQ_LEN: lengths.repeat_interleave(n),
                model.ITEM_ID: torch.arange(n).repeat(3),
            }
        )
        one_by_one = model.predict(each).view(3, n)
    assert full.shape == (3, n)
    assert torch.allclose(full, one_by_one, rtol=0, atol=1e-12)


def test_loss_reaches_every_table_through_the_pipeline(item_root):
    keys = dict(SEQ_DATA, load_col=ITEM_COLS, selected_features=ML_FIELDS, state="WARNING", **SMALL)
    built = build("SMLP4Rec", "ml-slice", item_root, **keys)
    loss = built.model.calculate_loss(next(iter(built.train)))
    loss.backward()
    assert torch.isfinite(loss)
    fe = built.model.feature_embedding
    for table in (fe.token_table, *fe.token_seq_tables, built.model.blocks[0].sequence_mixer.fc1):
        assert float(table.weight.grad.abs().sum()) > 0


@pytest.mark.parametrize("with_features", [False, True])
def test_parameter_count_from_first_principles(ml100k_slice, item_root, with_features):
    small = dict(hidden_size=16, MAX_ITEM_LIST_LENGTH=20, state="WARNING")
    if with_features:
        b = build("SMLP4Rec", "ml-slice", item_root, load_col=ITEM_COLS, eval_args=SEQ_DATA["eval_args"], **small)
    else:
        b = build("SMLP4Rec", "ml-slice", ml100k_slice, **SEQ_DATA, **small)
    # d 16, L 20, expansion 3, one block shared by the two layers; C = 2 with the default [class]
    c = 2 if with_features else 1
    block = 2 * 16 + 2 * 3 * c * c + 2 * 3 * 20 * 20 + 2 * 3 * 16 * 16
    with open(os.path.join(ml100k_slice, "ml-slice", "ml-slice.inter")) as f:
        slice_items = len({line.split("\t")[1] for line in list(f)[1:]})
    items = 1683 if with_features else 1 + slice_items  # the item file brings all of ml-100k's items
    genres = 20  # ml-100k's 19 classes and [PAD]
    trainable = sum(p.numel() for p in b.model.parameters() if p.requires_grad)
    assert trainable == 16 * items + block + 2 * 16 + (16 * genres if with_features else 0)


def test_rebuilds_from_its_checkpoint_alone_with_features(item_root, tmp_path):
    """The feature columns are not saved; the checkpoint's data-set schema brings them back."""
    from recbole_ext.serving import Recommender

    keys = dict(SEQ_DATA, load_col=ITEM_COLS, selected_features=ML_FIELDS, state="WARNING", **SMALL)
    built = build("SMLP4Rec", "ml-slice", item_root, trainer=True, checkpoint_dir=str(tmp_path), **keys)
    built.trainer._train_data = built.train
    built.trainer._save_checkpoint(0, verbose=False)
    rec = Recommender(built.trainer.saved_model_file)
    assert rec.built_on == "checkpoint" and rec.model.feature_embedding.fields == [
        "release_year",
        "class",
        "movie_title",
    ]
    net = built.model.eval()
    seq = torch.zeros(2, 12, dtype=torch.long)
    seq[0, :4] = torch.tensor([1, 2, 3, 4])
    seq[1, 0] = 9
    inter = Interaction({net.ITEM_SEQ: seq, net.ITEM_SEQ_LEN: torch.tensor([4, 1])})
    with torch.no_grad():
        expected = net.full_sort_predict(inter)
    assert torch.allclose(rec.scores([[1, 2, 3, 4], [9]]), expected, atol=1e-5)
