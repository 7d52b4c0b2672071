"""RecBole 1.2.1 on numpy 2 / pandas 3 / torch >= 2.6: each fix of recbole_ext, with a test that
fails without it (the RecBole behaviour is shown next to ours where it can be run safely)."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch

from conftest import write_inter

NUMPY2 = r"""
import sys
import numpy as np
from recbole.config import Config as RecBoleConfig
assert not hasattr(np, "float_"), "numpy 2 removed np.float_ (this process restored nothing yet)"
try:
    RecBoleConfig.compatibility_settings(object())  # RecBole's own step reaches np.float_
    sys.exit("RecBole's compatibility_settings no longer fails on numpy 2: drop our fix")
except AttributeError:
    pass
from recbole_ext.config import Config
cfg = Config("GRU4Rec", "ml-slice", config_dict={"data_path": sys.argv[1]})
assert cfg["model"] == "GRU4Rec"
# the names RecBole's code still uses resolve to what they meant
assert np.float is np.float64 and np.long is np.int_ and np.bool is np.bool_
print("ok")
"""


def test_recbole_config_compat_breaks_on_numpy2_and_ours_does_not(ml100k_slice):
    """In a fresh process: earlier tests of this one have already restored numpy's aliases."""
    proc = subprocess.run([sys.executable, "-c", NUMPY2, ml100k_slice], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and proc.stdout.strip().endswith("ok"), proc.stdout + proc.stderr[-3000:]


def test_checkpoint_loads_with_weights_only_and_evaluate_best_model(run_tiny, ml100k_slice):
    result = run_tiny("GRU4Rec", "ml-slice", ml100k_slice)
    path = result["saved_model_file"]
    ckpt = torch.load(path, map_location="cpu", weights_only=True)  # RecBole's pickled Config fails here
    assert ckpt["config"]["model"] == "GRU4Rec"
    assert isinstance(ckpt["config"]["MODEL_TYPE"], str)
    assert result["test_result"] is not None and "ndcg@10" in result["test_result"]


def test_recbole_checkpoint_is_refused_by_weights_only(tmp_path):
    """The bug we route around: a RecBole-style checkpoint (pickled Config) fails weights_only."""
    from recbole.utils import ModelType

    path = tmp_path / "legacy.pth"
    torch.save({"config": {"MODEL_TYPE": ModelType.SEQUENTIAL}, "state_dict": {}}, path)
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path, weights_only=True)


def _build(tmp_path, name, inter_rows, inter_header, item_rows=None, item_header=None, **cfg):
    from recbole_ext.pipeline import Run

    root = str(tmp_path)
    write_inter(root, name, inter_rows, header=inter_header)
    if item_rows is not None:
        with open(os.path.join(root, name, f"{name}.item"), "w") as f:
            f.write("\t".join(item_header) + "\n")
            for r in item_rows:
                f.write("\t".join(str(x) for x in r) + "\n")
    return Run.resolve("BPR", name, config_dict={"data_path": root, "normalize_all": False, **cfg}).load_dataset()


def test_fill_nan_really_fills_missing_float_and_token_values(tmp_path):
    """pandas 3: ``feat[field].fillna(inplace=True)`` is a silent no-op; ours writes back."""
    rows = [(u, i, "" if (u, i) == (1, 2) else float(u + i), u * 10 + i) for u in range(1, 6) for i in range(1, 6)]
    items = [(i, "" if i == 3 else f"c{i % 2}", "" if i == 4 else i * 1.5) for i in range(1, 6)]
    ds = _build(
        tmp_path,
        "nan-data",
        rows,
        ("user_id:token", "item_id:token", "rating:float", "timestamp:float"),
        items,
        ("item_id:token", "cat:token", "price:float"),
        load_col={"inter": ["user_id", "item_id", "rating", "timestamp"], "item": ["item_id", "cat", "price"]},
    )
    rating = np.asarray(ds.inter_feat["rating"])
    assert not np.isnan(rating).any(), "missing rating stayed NaN"
    known = [float(u + i) for u in range(1, 6) for i in range(1, 6) if (u, i) != (1, 2)]
    users = np.asarray(ds.inter_feat["user_id"])
    items = np.asarray(ds.inter_feat["item_id"])
    row = np.flatnonzero((users == ds.token2id("user_id", "1")) & (items == ds.token2id("item_id", "2")))
    assert len(row) == 1
    assert rating[row[0]] == pytest.approx(np.mean(known)), "missing rating must be the column mean"
    cat = np.asarray(ds.item_feat["cat"])
    price = np.asarray(ds.item_feat["price"], dtype=float)
    item_ids = list(np.asarray(ds.item_feat["item_id"]))
    item3 = item_ids.index(ds.token2id("item_id", "3"))
    item4 = item_ids.index(ds.token2id("item_id", "4"))
    assert cat[item3] == 0, "missing token must map to [PAD] (0)"
    assert price[item4] == pytest.approx(np.mean([i * 1.5 for i in (1, 2, 3, 5)]))
    assert not np.isnan(price).any()


def test_token_seq_field_builds_with_per_row_lengths(tmp_path):
    """pandas 3: ``Series.agg(len)`` returns one number; ours splits by per-row lengths."""
    rows = [(u, i, u * 10 + i) for u in range(1, 5) for i in range(1, 5)]
    genres = {1: "a b c", 2: "b", 3: "c a", 4: "d e f g"}
    ds = _build(
        tmp_path,
        "seq-data",
        rows,
        ("user_id:token", "item_id:token", "timestamp:float"),
        [(i, g) for i, g in genres.items()],
        ("item_id:token", "genre:token_seq"),
        load_col={"inter": ["user_id", "item_id", "timestamp"], "item": ["item_id", "genre"]},
    )
    genre = list(ds.item_feat["genre"])
    item_ids = list(np.asarray(ds.item_feat["item_id"]))
    for raw, g in genres.items():
        ids = genre[item_ids.index(ds.token2id("item_id", str(raw)))]
        tokens = [ds.id2token("genre", int(x)) for x in ids if int(x) != 0]
        assert tokens == g.split()


def test_training_emits_no_gradscaler_deprecation(run_tiny, ml100k_slice):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run_tiny("GRU4Rec", "ml-slice", ml100k_slice)
    assert not [w for w in caught if "GradScaler" in str(w.message)]


def test_package_does_not_import_ray_or_quick_start():
    import subprocess
    import sys

    code = (
        "import sys, recbole_ext, recbole_ext.quick_start, recbole_ext.cli;"
        "from recbole_ext.registry import get_model; get_model('SASRec');"
        "print('ray' in sys.modules, 'recbole.quick_start' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split()[-2:] == ["False", "False"]


def test_config_leaves_recboles_module_lists_alone(ml100k_slice):
    """RecBole 1.2.1's Config extends its module-level ``dataset_arguments`` in place; ours
    works on a copy, so making configs does not change what later ones start from."""
    from recbole.config import configurator

    from recbole_ext.config import Config

    before = {
        name: list(getattr(configurator, name))
        for name in ("general_arguments", "training_arguments", "evaluation_arguments", "dataset_arguments")
    }
    for model in ("GLINTRU", "SASRec"):
        Config(model, "ml-100k", config_dict={"state": "WARNING"})
        Config(model, "ml-slice", config_dict={"data_path": ml100k_slice, "state": "WARNING"})
    for name, keys in before.items():
        assert getattr(configurator, name) == keys, name


WARNINGS_RUN = r"""
import sys, warnings
# our package and the RecBole modules we override must raise no deprecation, and no torch warning
# about read-only arrays (pandas 3 copy-on-write): each one is an error here
scope = r"(recbole_ext|recbole\.data\.dataset)(\.|$)"
for category in (DeprecationWarning, FutureWarning):
    warnings.filterwarnings("error", category=category, module=scope)
warnings.filterwarnings("error", message="The given NumPy array is not writable")
from recbole_ext.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.slow
@pytest.mark.parametrize("model", ["GRU4Rec", "BPR"])
def test_a_normal_run_raises_no_deprecation_and_prints_plain_numbers(model, ml100k_slice, tmp_path):
    """One sequential and one general model: no warning on the console, deprecations of pandas
    (``inplace=``) and numpy in the code paths we own are errors, and metrics print as numbers."""
    args = [
        "--model=" + model,
        "--dataset=ml-slice",
        f"--data_path={ml100k_slice}",
        "--epochs=1",
        "--embedding_size=16",
        *(["--hidden_size=16"] if model == "GRU4Rec" else []),
        "--show_progress=False",
        "--no-save",
        "--load_col={'inter': ['user_id', 'item_id', 'timestamp']}",
    ]
    proc = subprocess.run(
        [sys.executable, "-c", WARNINGS_RUN, *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
        env={k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Warning" not in proc.stderr and "Warning" not in proc.stdout, proc.stderr[-3000:]
    assert "np.float64" not in proc.stdout + proc.stderr
    assert "test result: {'recall@10': " in proc.stdout
