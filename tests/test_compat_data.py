"""Data-set and graph fixes for RecBole 1.2.1 on pandas 3 / scipy 1.17 / numpy 2.

Each test checks the data a fix produces (filled values, padding rows, per-row lengths, graph
matrices against a dense reference), so it fails when the fix is removed.
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch
from recbole.utils import FeatureType

from recbole_ext.config import Config
from recbole_ext.data.dataset import CompatDatasetMixin
from recbole_ext.errors import DataFormatError
from recbole_ext.model import recbole_fixes
from recbole_ext.pipeline import Run

from sweep_data import LOAD_COL, write_sweep_dataset


def _write(root, name, suffix, header, rows):
    d = os.path.join(root, name)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, f"{name}.{suffix}"), "w") as f:
        f.write("\t".join(header) + "\n")
        for r in rows:
            f.write("\t".join(r) + "\n")


def _build(model, dataset, root, **cfg):
    base = {"data_path": root, "state": "ERROR", "filter_inter_by_user_or_item": False, "normalize_all": False}
    return Run.resolve(model, dataset, config_dict={**base, **cfg}).load_dataset()


@pytest.fixture(scope="module")
def blank_root(tmp_path_factory):
    """Known values with blanks: user 1..6 x items 1..5; two blank timestamps, one blank rating."""
    root = str(tmp_path_factory.mktemp("blank"))
    rows = []
    t = 100
    for u in range(1, 7):
        for i in range(1, 6):
            t += 10
            rows.append([str(u), str(i), str((u + i) % 5 + 1), str(t)])
    rows[0][3] = ""
    rows[7][3] = ""
    rows[3][2] = ""
    _write(root, "blank", "inter", ["user_id:token", "item_id:token", "rating:float", "timestamp:float"], rows)
    _write(
        root,
        "blank",
        "item",
        ["item_id:token", "genre:token", "tags:token_seq", "price:float", "hist:float_seq"],
        [
            ["1", "a", "x y", "1.0", "1 2 3"],
            ["2", "", "", "", ""],  # blank token, token_seq, float, float_seq
            ["3", "b", "y", "4.0", "4"],
            ["4", "a", "z x", "7.0", "5 6"],
            # item 5 has no row at all
        ],
    )
    _write(
        root,
        "blank",
        "user",
        ["user_id:token", "gender:token", "income:float"],
        [
            ["1", "M", "10"],
            ["2", "", "20"],
            ["3", "F", ""],
            ["4", "M", "30"],
        ],
    )
    return root, rows


LOAD_ALL = {
    "inter": ["user_id", "item_id", "rating", "timestamp"],
    "item": ["item_id", "genre", "tags", "price", "hist"],
    "user": ["user_id", "gender", "income"],
}


def test_blank_cells_are_filled(blank_root):
    root, rows = blank_root
    ds = _build("BPR", "blank", root, load_col=LOAD_ALL)
    inter = ds.inter_feat
    # missing floats get the column mean (RecBole's intent; a no-op under pandas 3 without the fix)
    assert not inter["timestamp"].isna().any() and not inter["rating"].isna().any()
    # (filtering ran before filling, so the mean is over the rows still there)
    known_t = {float(r[3]) for r in rows if r[3]}
    ts = inter["timestamp"].to_numpy()
    filled = np.array([t not in known_t for t in ts])
    assert filled.sum() >= 1
    assert np.allclose(ts[filled], ts[~filled].mean())

    item = ds.item_feat
    iid = ds.field2token_id["item_id"]
    # padding row 0 and the item without a feature row: token 0, empty sequences, mean floats
    for row in (0, iid["5"]):
        assert item["genre"][row] == 0
        assert len(item["tags"][row]) == 0 and len(item["hist"][row]) == 0
        assert np.isclose(item["price"][row], 4.0)
    blank = iid["2"]
    assert item["genre"][blank] == 0 and len(item["tags"][blank]) == 0 and len(item["hist"][blank]) == 0
    assert np.isclose(item["price"][blank], 4.0)
    # per-row sequence lengths survive the remap
    assert [len(item["tags"][iid[t]]) for t in ("1", "3", "4")] == [2, 1, 2]
    assert list(item["hist"][iid["4"]]) == [5.0, 6.0]

    user = ds.user_feat
    uid = ds.field2token_id["user_id"]
    assert user["gender"][0] == 0 and user["gender"][uid["2"]] == 0
    assert np.isclose(user["income"][uid["3"]], 20.0) and np.isclose(user["income"][0], 20.0)


def test_padding_row_is_zero_as_tensor(blank_root):
    """DIN/DIEN look up user/item features by id: row 0 must be 0, not INT64_MIN from NaN."""
    root, _ = blank_root
    ds = _build("BPR", "blank", root, load_col=LOAD_ALL)
    ds.build()  # turns the frames into Interactions (tensors)
    gender = ds.user_feat["gender"]
    genre = ds.item_feat["genre"]
    assert gender.dtype == torch.int64 and genre.dtype == torch.int64
    assert int(gender[0]) == 0 and int(genre[0]) == 0
    assert int(gender.min()) >= 0 and int(genre.min()) >= 0
    assert int(genre.max()) < ds.num("genre") and int(gender.max()) < ds.num("gender")


def test_normalize_and_discretize_sequences(blank_root):
    root, _ = blank_root
    ds = _build("BPR", "blank", root, load_col=LOAD_ALL, normalize_all=True)
    item = ds.item_feat
    iid = ds.field2token_id["item_id"]
    assert len(item["hist"][iid["1"]]) == 3 and len(item["hist"][iid["4"]]) == 2
    assert np.allclose(item["hist"][iid["1"]], [0.0, 0.2, 0.4])  # (x - 1) / (6 - 1)
    assert np.allclose(ds.inter_feat["timestamp"].min(), 0) and np.allclose(ds.inter_feat["timestamp"].max(), 1)

    ds = _build(
        "BPR",
        "blank",
        root,
        load_col=LOAD_ALL,
        numerical_features=["price", "hist"],
        discretization={"hist": {"method": "ED", "bucket": 2}},
    )
    hist = ds.item_feat["hist"]
    # equal-distance buckets over 1..6: 1, 2, 3 -> bucket 1; 5, 6 -> bucket 2 (per row, lengths kept)
    ret, res = hist[iid["1"]]
    assert list(ret) == [1, 1, 1] and list(res) == [1, 1, 1]
    ret, res = hist[iid["4"]]
    assert list(ret) == [1, 1] and list(res) == [2, 2]


def test_reset_ent_remap_splits_by_row():
    class Stub(CompatDatasetMixin):
        pass

    stub = Stub()
    feat = pd.DataFrame({"ent": [np.array([1, 2]), np.array([3]), np.array([], dtype=np.int64), np.array([2, 1, 3])]})
    stub.field2id_token, stub.field2token_id = {}, {}
    stub.field2type = {"ent": FeatureType.TOKEN_SEQ}
    stub.field2feats = lambda field: [feat]
    idmap = np.array([0, 30, 10, 20])
    stub._reset_ent_remapID("ent", idmap, ["x"], {"x": 0})
    assert [list(x) for x in feat["ent"]] == [[30, 10], [20], [], [10, 30, 20]]


def test_benchmark_presets_lengths():
    class Base:
        def _benchmark_presets(self):
            self.inter_feat[self.item_list_length_field] = self.inter_feat["item_id_list"].agg(len)

    class Stub(CompatDatasetMixin, Base):
        pass

    stub = Stub()
    stub.item_list_length_field = "item_length"
    stub.item_id_list_field = "item_id_list"
    stub.inter_feat = pd.DataFrame({"item_id_list": [np.array([1, 2, 3]), np.array([4])]})
    stub._benchmark_presets()
    assert list(stub.inter_feat["item_length"]) == [3, 1]


def test_kg_dataset_with_blank_cells_builds(tmp_path):
    root = write_sweep_dataset(str(tmp_path), n_users=40, n_items=40, per_user=6)
    ds = _build("CKE", "sweep", root, load_col=LOAD_COL)
    assert ds.entity_num > ds.item_num and ds.relation_num > 1
    assert not ds.inter_feat["timestamp"].isna().any()


# --------------------------------------------------------------------- malformed files
@pytest.mark.parametrize(
    "header,row,expect",
    [
        (["user_id:token", "item_id", "rating:float"], ["1", "2", "3"], "line 1, column 2"),
        (["user_id:token", "item_id:token", "rating:int"], ["1", "2", "3"], "unknown type 'int'"),
        (
            ["user_id:token", "item_id:token", "rating:float"],
            ["1", "2", "abc"],
            "line 3, column 3 ('rating'): 'abc' is not a number",
        ),
        (
            ["user_id:token", "item_id:token", "w:float_seq"],
            ["1", "2", "1.0 x2"],
            "line 3, column 3 ('w'): 'x2' is not a number",
        ),
    ],
)
def test_malformed_file_raises_data_format_error(tmp_path, header, row, expect):
    root = str(tmp_path)
    _write(root, "bad", "inter", header, [["1", "1", "1"], row])
    with pytest.raises(DataFormatError) as e:
        _build("BPR", "bad", root, load_col=None)
    assert "bad.inter" in str(e.value) and expect in str(e.value)
    assert "\n" not in str(e.value)


# --------------------------------------------------------------------- graphs (scipy 1.17)
def _dense_sym_norm(inter: np.ndarray, eps: float) -> np.ndarray:
    nu, ni = inter.shape
    a = np.zeros((nu + ni, nu + ni))
    a[:nu, nu:] = inter > 0
    a[nu:, :nu] = (inter > 0).T
    d = a.sum(1) + eps
    with np.errstate(divide="ignore"):  # d = 0 rows (eps 0) get 0, as RecBole's
        dinv = np.where(d > 0, d**-0.5, 0.0)
    return dinv[:, None] * a * dinv[None, :]


def test_graph_models_build_without_dok_update(blank_root):
    assert not hasattr(sp.dok_matrix, "_update")  # why the fix exists
    from recbole_ext.registry import get_model

    root, _ = blank_root
    run = Run.resolve("LightGCN", "blank", config_dict={"data_path": root, "state": "ERROR", "normalize_all": False})
    config, ds = run.config, run.load_dataset()
    train, _, _ = ds.build()
    model = get_model("LightGCN")(config, train)
    dense = train.inter_matrix(form="coo").toarray()
    ref = _dense_sym_norm(dense, 1e-7)
    assert torch.allclose(model.norm_adj_matrix.to_dense(), torch.tensor(ref, dtype=torch.float32), atol=1e-6)

    config = Config("SpectralCF", "blank", config_dict={"data_path": root, "state": "ERROR", "normalize_all": False})
    model = get_model("SpectralCF")(config, train)
    a = (_dense_sym_norm(dense, 0) > 0).astype(float)
    lap = np.eye(len(a)) - a / (a.sum(1, keepdims=True) + 1e-7)
    assert torch.allclose(
        model.L.to_dense() if hasattr(model, "L") else model.get_laplacian_matrix().to_dense(),
        torch.tensor(lap, dtype=torch.float32),
        atol=1e-6,
    )


def test_bipartite_adjacency_collapses_duplicates_and_normalizes():
    inter = sp.coo_matrix((np.array([1.0, 1.0, 5.0]), (np.array([0, 0, 1]), np.array([1, 1, 0]))), shape=(3, 2))
    adj = recbole_fixes.bipartite_adjacency(inter, 3, 5).toarray()
    assert adj.max() == 1.0 and adj.sum() == 4 and np.allclose(adj, adj.T)
    si, _ = recbole_fixes.normalize_adjacency(sp.csr_matrix(adj), -1.0, symmetric=False, eps=0.0)
    rows = si.toarray().sum(1)
    assert np.allclose(rows[[0, 1, 3, 4]], 1.0) and rows[2] == 0.0  # user 2 isolated -> zero row
    bi, _ = recbole_fixes.normalize_adjacency(sp.csr_matrix(adj), -0.5, symmetric=True, eps=0.0)
    full = np.zeros((5, 5))
    full[:3, 3:] = inter.toarray() > 0
    full[3:, :3] = full[:3, 3:].T
    assert np.allclose(bi.toarray(), _dense_sym_norm((inter.toarray() > 0).astype(float), 0))


def test_numpy_aliases_recbole_uses():
    Config("BPR", "ml-100k", config_dict={"state": "ERROR"})
    for name in ("float", "long", "bool", "int", "object", "str", "complex", "unicode", "float_"):
        assert hasattr(np, name), name
    assert np.zeros(2, dtype=np.float).dtype == np.float64 and np.dtype(np.long) == np.int64


def test_sort_is_recboles_order_without_numpy_on_tensors():
    """Our ``sort`` (torch, stable) orders rows exactly as RecBole's ``Interaction.sort``
    (``np.argsort`` of a tensor, deprecated in numpy 2), ties included; a descending key (which
    RecBole's own method cannot do on this stack: a negative-stride array to torch) reverses the
    stable ascending order, as RecBole's code means to."""
    import types
    import warnings

    from recbole.data.interaction import Interaction

    gen = torch.Generator().manual_seed(0)
    fields = {
        "user_id": torch.randint(0, 5, (200,), generator=gen),
        "timestamp": torch.randint(0, 7, (200,), generator=gen),
        "row": torch.arange(200),
    }

    def ours(by, ascending):
        data = types.SimpleNamespace(inter_feat=Interaction({k: v.clone() for k, v in fields.items()}))
        CompatDatasetMixin.sort(data, by, ascending)
        return data.inter_feat["row"]

    theirs = Interaction({k: v.clone() for k, v in fields.items()})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        theirs.sort(by=["user_id", "timestamp"], ascending=True)
    assert torch.equal(ours(["user_id", "timestamp"], True), theirs["row"])
    # descending, written out: Python's sort is stable; reversing the stable ascending order
    rows = sorted(range(200), key=lambda r: int(fields["timestamp"][r]))[::-1]
    assert ours("timestamp", False).tolist() == rows
    rows = sorted(rows, key=lambda r: int(fields["user_id"][r]))
    assert ours(["user_id", "timestamp"], [True, False]).tolist() == rows
