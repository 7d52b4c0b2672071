"""The global temporal split (``eval_args: {split: {GT: [valid_cut, test_cut]}, order: TO}``) and
the leakage figure: a hand-made data set whose parts are written out below, a naive per-user
reference on ml-100k and on the shared data sets with real times, the argument checks, and the
split through a training run and a checkpoint's evaluation."""

from __future__ import annotations

import json
import os

import numpy as np
import pandas as pd
import pytest

from recbole_ext.data.temporal_split import global_temporal_rows, leakage, resolve_cuts, split_leakage
from recbole_ext.errors import ConfigError
from recbole_ext.pipeline import Run

from conftest import ML100K, write_inter

SHARED = os.environ.get("RECBOLE_EXT_TEST_DATA")
GT_CUTS = [100, 200]

#: (user, item, time) in file order; cuts at times 100 and 200
ROWS = [
    ("a", "i1", 10), ("a", "i2", 50), ("a", "i3", 120), ("a", "i4", 150), ("a", "i5", 210), ("a", "i6", 250),
    ("b", "i1", 20), ("b", "i3", 220), ("b", "i2", 220),  # equal times: file order (i3 first)
    ("c", "i2", 130), ("c", "i4", 140), ("c", "i5", 230),  # nothing before the first cut: no validation
    ("d", "i4", 30), ("d", "i5", 60), ("d", "i6", 90),  # training only
    ("e", "i6", 100), ("e", "i1", 110),  # first interaction at the cut: not before it
    ("f", "i3", 199), ("f", "i2", 200),  # the test cut itself is in the test period
]  # fmt: skip

#: the parts by hand: user -> [(history, target)]
EXPECTED_TRAIN = {"a": [(("i1",), "i2")], "d": [(("i4",), "i5"), (("i4", "i5"), "i6")]}
EXPECTED_VALID = {"a": [(("i1", "i2"), "i3")]}
EXPECTED_TEST = {
    "a": [(("i1", "i2", "i3", "i4"), "i5")],
    "b": [(("i1",), "i3")],
    "c": [(("i2", "i4"), "i5")],
    "f": [(("i3",), "i2")],
}


def _parts(run: Run):
    """The built parts as ``user -> [(history, target)]`` in tokens."""
    splits = run.prepare_data()
    ds = splits.dataset
    out = []
    for part in splits.parts:
        inter = part.inter_feat
        users = ds.id2token(ds.uid_field, inter[ds.uid_field].numpy())
        seqs, lens = inter[ds.item_id_list_field].numpy(), inter[ds.item_list_length_field].numpy()
        targets = ds.id2token(ds.iid_field, inter[ds.iid_field].numpy())
        got: dict = {}
        for u, s, n, t in zip(users, seqs, lens, targets):
            got.setdefault(str(u), []).append((tuple(ds.id2token(ds.iid_field, s[:n]).tolist()), str(t)))
        out.append(got)
    return splits, out


def _run(data_path: str, dataset: str, split, **keys) -> Run:
    cfg = {
        "data_path": data_path,
        "download": "never",
        "load_col": {"inter": ["user_id", "item_id", "timestamp"]},
        "eval_args": {"split": split, "order": "TO", "mode": "full", "group_by": "user"},
        "MAX_ITEM_LIST_LENGTH": 50,
        "topk": [1],
        "valid_metric": "MRR@1",
        "state": "ERROR",
        **keys,
    }
    return Run.resolve("GRU4Rec", dataset, config_dict=cfg)


@pytest.fixture(scope="module")
def toy(tmp_path_factory) -> str:
    return write_inter(str(tmp_path_factory.mktemp("gt")), "toy", ROWS)


def test_the_split_of_a_hand_made_data_set(toy):
    """Training: targets before the first cut; validation and test: each warm user's first item
    in its period, given everything before it (the validation period's items too)."""
    _, (train, valid, test) = _parts(_run(toy, "toy", {"GT": GT_CUTS}))
    assert train == EXPECTED_TRAIN
    assert valid == EXPECTED_VALID
    assert test == EXPECTED_TEST


def test_the_leakage_figure_of_both_splits_on_the_hand_made_data_set(toy):
    """GT: no test target is older than training. Leave-one-out (RecBole's): the newest training
    target is b's i3 at 220; of the test targets (a 250, b 220, c 230, d 90) only d's is older
    (b's ties and does not count)."""
    splits = _run(toy, "toy", {"GT": GT_CUTS}).prepare_data()
    gt = split_leakage(splits.parts, splits.dataset.time_field, splits.dataset.uid_field)
    assert gt == {"test_targets": 4, "older_than_newest_training": 0, "test_users": 4, "share_of_test_users": 0.0}
    splits = _run(toy, "toy", {"LS": "valid_and_test"}).prepare_data()
    loo = split_leakage(splits.parts, splits.dataset.time_field, splits.dataset.uid_field)
    assert loo == {"test_targets": 4, "older_than_newest_training": 1, "test_users": 4, "share_of_test_users": 0.25}


def test_quantile_cuts_are_quantiles_of_all_interaction_times():
    times = np.array([5.0, 1.0, 3.0, 9.0, 7.0])
    assert resolve_cuts(times, [0.5, 0.75]) == (5.0, 7.0)
    assert resolve_cuts(times, [3, 8]) == (3.0, 8.0)
    assert leakage(np.array([1.0, 4.0]), np.array([3.0, 4.0, 5.0]))["older_than_newest_training"] == 1
    # several targets of one user (a general model's split): users count once
    figure = leakage(np.array([1.0, 4.0]), np.array([2.0, 3.0, 5.0, 3.0]), np.array([7, 7, 8, 9]))
    assert figure["older_than_newest_training"] == 3 and figure["test_users"] == 3
    assert figure["share_of_test_users"] == 0.6667  # users 7 and 9 of 7, 8, 9


@pytest.mark.parametrize(
    "cuts, problem",
    [
        ([0.9], "two cut points"),
        ([0.9, 0.8], "must increase"),
        ([0.5, 5], "both quantiles"),
        ([0, 0.5], "quantiles in \\(0, 1\\)"),
        (["a", 0.5], "numbers"),
    ],
)
def test_gt_arguments_are_checked_before_any_work(toy, cuts, problem):
    with pytest.raises(ConfigError, match=problem):
        _run(toy, "toy", {"GT": cuts})


def test_gt_needs_a_sequential_model_in_time_order(toy):
    with pytest.raises(ConfigError, match="sequential models"):
        gt = {"split": {"GT": [0.8, 0.9]}, "order": "TO"}
        Run.resolve("BPR", "toy", config_dict={"data_path": toy, "eval_args": gt})
    with pytest.raises(ConfigError, match="order: TO"):
        _run(toy, "toy", {"GT": [0.8, 0.9]}, eval_args={"split": {"GT": [0.8, 0.9]}, "order": "RO"})


def naive_gt(frame: pd.DataFrame, valid_time: float, test_time: float):
    """The split by its definition, one user at a time (rows in file order)."""
    parts: list = [{}, {}, {}]
    for user, g in frame.groupby("user_id", sort=False):
        g = g.sort_values("timestamp", kind="stable")
        items, times = g["item_id"].tolist(), g["timestamp"].tolist()
        for k in range(1, len(items)):
            if times[k] < valid_time:
                parts[0].setdefault(user, []).append((tuple(items[:k][-50:]), items[k]))
        for part, low, high in ((1, valid_time, test_time), (2, test_time, np.inf)):
            ks = [k for k in range(len(items)) if low <= times[k] < high]
            if ks and times[0] < low:
                parts[part][user] = [(tuple(items[: ks[0]][-50:]), items[ks[0]])]
    return parts


def _check_against_naive(data_path: str, dataset: str, frame: pd.DataFrame, cuts) -> None:
    run = _run(data_path, dataset, {"GT": cuts})
    splits, got = _parts(run)
    valid_time, test_time = resolve_cuts(frame["timestamp"].to_numpy(dtype=float), cuts)
    want = naive_gt(frame, valid_time, test_time)
    assert [len(p) for p in got] == [len(p) for p in want]
    assert got == want
    assert split_leakage(splits.parts, splits.dataset.time_field)["older_than_newest_training"] == 0


def _read(path: str, nrows=None) -> pd.DataFrame:
    frame = pd.read_csv(path, sep="\t", dtype=str, nrows=nrows)
    frame.columns = [c.split(":")[0] for c in frame.columns]
    # RecBole keeps float columns as float32: the reference sees the times the data set holds
    frame = frame.assign(timestamp=frame["timestamp"].astype(np.float32).astype(float))
    return frame[["user_id", "item_id", "timestamp"]]


def test_ml100k_slice_equals_the_naive_split(tmp_path):
    """The first 8,000 rows of ml-100k (real times) at the 0.8 / 0.9 quantiles."""
    frame = _read(ML100K, nrows=8000)
    write_inter(str(tmp_path), "ml-head", frame.itertuples(index=False))
    _check_against_naive(str(tmp_path), "ml-head", frame, [0.8, 0.9])


@pytest.mark.slow
@pytest.mark.skipif(not SHARED, reason="$RECBOLE_EXT_TEST_DATA names no data folder")
def test_amazon_beauty_time_equals_the_naive_split():
    """The shared Beauty with its review days (many equal times) at the 0.8 / 0.9 quantiles."""
    frame = _read(os.path.join(SHARED, "amazon-beauty-time", "amazon-beauty-time.inter"))
    _check_against_naive(SHARED, "amazon-beauty-time", frame, [0.8, 0.9])


@pytest.mark.skipif(not SHARED, reason="$RECBOLE_EXT_TEST_DATA names no data folder")
def test_ml1m_item5_rows_equal_the_naive_split():
    """ml-1m-item5's first 1,500 users (the rows' selection alone, without a RecBole data set)."""
    path = os.path.join(SHARED, "ml-1m-item5", "ml-1m-item5.inter")
    frame = _read(path, nrows=300_000)
    frame = frame[frame["user_id"].isin(frame["user_id"].unique()[:1500])]
    valid_time, test_time = resolve_cuts(frame["timestamp"].to_numpy(), [0.8, 0.9])
    ordered = frame.assign(_row=np.arange(len(frame))).sort_values(["user_id", "timestamp", "_row"], kind="stable")
    codes, users = np.unique(ordered["user_id"].to_numpy(), return_inverse=True)
    times = ordered["timestamp"].to_numpy()
    first = np.r_[True, users[1:] != users[:-1]]
    first_time = np.full(len(codes), np.inf)
    np.minimum.at(first_time, users, times)
    rows = np.flatnonzero(~first)
    got = [rows[p] for p in global_temporal_rows(users[rows], times[rows], first_time, valid_time, test_time)]
    items = ordered["item_id"].to_numpy()
    want = naive_gt(frame, valid_time, test_time)
    for part, w in zip(got, want):
        pairs = {(codes[users[r]], items[r]) for r in part}
        assert pairs == {(u, t) for u, rs in w.items() for _, t in rs}


@pytest.mark.slow
def test_compare_report_and_evaluate_under_gt(ml100k_slice, tmp_path, monkeypatch):
    """``compare`` under GT with shared pop100 candidates: the table's protocol names the split and
    its leakage (none), ``report`` reads the same from the log, and ``evaluate`` rebuilds the
    same split from the checkpoint (same numbers) and ranks all items on it."""
    import csv
    import glob

    from recbole_ext.cli import main as cli
    from recbole_ext.results import logparse
    from recbole_ext.serving.evaluate import evaluate_checkpoint

    monkeypatch.chdir(tmp_path)
    res = str(tmp_path / "res")
    eval_args = "{'split': {'GT': [0.8, 0.9]}, 'order': 'TO', 'group_by': 'user', 'mode': 'pop100'}"
    args = [
        "--model=GRU4Rec",
        "--dataset=ml-slice",
        f"--data_path={ml100k_slice}",
        f"--results-dir={res}",
        "--epochs=1",
        "--embedding_size=16",
        "--hidden_size=16",
        "--MAX_ITEM_LIST_LENGTH=20",
        "--show_progress=False",
        "--eval_candidates=shared",
        f"--eval_args={eval_args}",
        "--no-plot",
        "--load_col={'inter': ['user_id', 'item_id', 'timestamp']}",
    ]
    assert cli(["compare"] + args) == 0
    with open(os.path.join(res, "comparison.csv")) as f:
        (row,) = list(csv.DictReader(f))
    assert row["protocol"].startswith("sampled pop100, shared negatives; GT [0.8, 0.9], leakage 0.0% of users (0/")
    (record,) = logparse.records_from_logs([os.path.join(res, "log")])
    assert record.protocol == row["protocol"]
    run = json.load(open(os.path.join(res, "runs", "GRU4Rec-seed2020.json")))
    (checkpoint,) = glob.glob(os.path.join(res, "**", "*.pth"), recursive=True)
    again = evaluate_checkpoint(checkpoint, device="cpu")
    assert again["test"] == pytest.approx(run["test_result"], abs=1e-12)
    full = evaluate_checkpoint(checkpoint, [f"--eval_args={eval_args.replace('pop100', 'full')}"], device="cpu")
    assert full["test"]["recall@10"] <= again["test"]["recall@10"]


def test_protocol_gt_yaml_selects_the_split_and_keeps_the_mode(toy):
    """``--config_files="protocol-pop100.yaml protocol-gt.yaml"`` (what ``reproduce`` and ``compare``
    take after a preset's protocol): the GT split with the earlier file's pop100 candidates."""
    run = Run.resolve(
        "GRU4Rec", "toy", ["protocol-pop100.yaml", "protocol-gt.yaml"], {"data_path": toy, "state": "ERROR"}
    )
    assert run.config["eval_args"]["split"] == {"GT": [0.8, 0.9]}
    assert run.config["eval_args"]["order"] == "TO" and run.config["eval_args"]["mode"]["test"] == "pop100"


@pytest.mark.slow
def test_reproduce_takes_the_split_as_a_protocol_file(tmp_path, ml100k_slice):
    """``reproduce PAPER --config_files=protocol-gt.yaml``: the preset's rows on the GT split with
    the preset's pop100 candidates; the tables' setting line names the split and its leakage."""
    from test_reproduce import TINY_KEYS, small_preset

    from recbole_ext.command import ReproduceRequest
    from recbole_ext.reproduce import run as reproduce

    out = str(tmp_path / "out")
    request = ReproduceRequest(
        paper=small_preset(tmp_path),
        dataset="ml-slice",
        models=("GRU4Rec", "GLINTRU"),
        seeds=(1,),
        budget=2,
        config_files=("protocol-gt.yaml",),
        config_args=(f"--data_path={ml100k_slice}", *TINY_KEYS),
        results_dir=out,
    )
    assert reproduce(request, echo=lambda line: None) == 0
    text = open(os.path.join(out, "reproduction.md")).read()
    assert "protocol sampled pop100, shared negatives; GT [0.8, 0.9], leakage 0.0% of users (0/" in text
