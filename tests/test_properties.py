"""Property-based tests (Hypothesis) of the input checks.

For every generated example the invariant is the same: the step either works or stops with a
:class:`~recbole_ext.errors.UserError` of one line (the command line prints it as one
``recbole_ext: error:`` line and exits 2), never another exception, and no file is left behind.

- configuration values of every type and size, given as command-line text, for every typed key
  of GLINTRU and of RecBole's SASRec (checked without training: the checks run before training);
- model settings within and beyond their limits: refused, or the model builds and one training
  batch gives a finite loss;
- malformed atomic files (random headers, cells, separators, encodings, truncation): refused, or
  the data set loads and splits.

The test command runs a small fixed-seed budget (``derandomize``). The longer search::

    HYPOTHESIS_PROFILE=long python -m pytest tests/test_properties.py   # 2,000 examples each
"""

from __future__ import annotations

import math
import os

import pytest
import torch
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from recbole_ext.errors import UserError

settings.register_profile(
    "ci",
    max_examples=40,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
settings.register_profile(
    "long",
    max_examples=2000,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def assert_one_line(error: UserError) -> None:
    message = str(error)
    assert message and "\n" not in message and "Traceback" not in message, message


def files_in(folder) -> list:
    return sorted(os.path.relpath(os.path.join(d, f), folder) for d, _, fs in os.walk(folder) for f in fs)


# ------------------------------------------------------------------ configuration values
def _typed_keys(model: str, data_path: str) -> list:
    from recbole_ext.config import Config

    probe = Config(model, "ml-slice", config_dict={"data_path": data_path})
    from recbole_ext.config_schema import Schema

    skip = {
        "data_path",
        "checkpoint_dir",
        "dataset_save_path",
        "dataloaders_save_path",
        "tensorboard_dir",
        "data_sources",
        "benchmark_filename",
        "gpu_id",
        "log_wandb",
        "save_dataset",
        "save_dataloaders",
    }
    return sorted(k for k in Schema.from_files(probe.default_files).specs if k not in skip)


VALUES = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(
        [
            "",
            "abc",
            "None",
            "~",
            "True",
            "false",
            "[]",
            "{}",
            "[1, 0]",
            "[Recall,NDCG]",
            "1/0",
            "{'a': 1}",
            "0.5",
            "-1",
            "1e400",
            "[[[",
            "'x'",
            "CE",
            "BPR",
            "uni100",
            "__import__('os')",
        ]
    ),
    st.text(max_size=12),
)


@pytest.mark.parametrize("model", ["GLINTRU", "SASRec"])
def test_any_command_line_value_is_accepted_or_one_line(model, ml100k_slice, tmp_path, monkeypatch):
    from recbole_ext.config import Config

    monkeypatch.chdir(tmp_path)
    keys = _typed_keys(model, ml100k_slice)
    assert len(keys) > 40

    @given(key=st.sampled_from(keys), text=VALUES)
    def check(key, text):
        try:
            Config(model, "ml-slice", config_dict={"data_path": ml100k_slice}, cmd_args=[f"--{key}={text}"])
        except UserError as e:
            assert_one_line(e)

    check()
    assert files_in(tmp_path) == []


# ------------------------------------------------------------------ model settings
@pytest.fixture(scope="module")
def built_data(ml100k_slice):
    """The ml-slice data set and one training batch, built once for every example."""
    from recbole_ext.pipeline import Run

    run = Run.resolve(
        "GLINTRU",
        "ml-slice",
        config_dict={"data_path": ml100k_slice, "MAX_ITEM_LIST_LENGTH": 10, "train_batch_size": 32, "state": "ERROR"},
    )
    splits = run.prepare_data()
    return splits.dataset, next(iter(run.build_loaders(splits).train))


MODEL_SETTINGS = {
    "GLINTRU": {
        "hidden_size": st.integers(-1, 40),
        "n_heads": st.integers(-1, 9),
        "num_layers": st.integers(-1, 3),
        "kernel_size": st.integers(-1, 12),
        "dropout_prob": st.floats(-0.5, 1.5),
        "gate_dropout_prob": st.floats(-0.5, 1.5),
        "layer_norm_eps": st.floats(-1, 1),
        "causal": st.booleans(),
        "share_layer_norm": st.booleans(),
        "item_bias": st.booleans(),
    },
    "SASRec": {
        "hidden_size": st.integers(-1, 40),
        "n_heads": st.integers(-1, 9),
        "n_layers": st.integers(-1, 3),
        "inner_size": st.integers(-1, 40),
        "hidden_dropout_prob": st.floats(-0.5, 1.5),
        "attn_dropout_prob": st.floats(-0.5, 1.5),
        "layer_norm_eps": st.floats(-1, 1),
    },
    "LSTM4Rec": {
        "hidden_size": st.integers(-1, 40),
        "embedding_size": st.integers(-1, 40),
        "num_layers": st.integers(-1, 3),
        "dropout_prob": st.floats(-0.5, 1.5),
        "output_state": st.sampled_from(["h", "c", "x"]),
        "learn_initial_state": st.booleans(),
    },
}


@pytest.mark.slow
@pytest.mark.parametrize("model", sorted(MODEL_SETTINGS))
def test_model_settings_are_refused_or_train(model, built_data, ml100k_slice, tmp_path, monkeypatch):
    from recbole_ext.config import Config
    from recbole_ext.registry import get_model

    monkeypatch.chdir(tmp_path)
    dataset, batch = built_data

    @given(st.fixed_dictionaries({}, optional=MODEL_SETTINGS[model]))
    def check(settings_):
        try:
            config = Config(
                model,
                "ml-slice",
                config_dict={"data_path": ml100k_slice, "MAX_ITEM_LIST_LENGTH": 10, "state": "ERROR", **settings_},
            )
        except UserError as e:
            assert_one_line(e)
            return
        torch.manual_seed(0)
        net = get_model(model)(config, dataset)
        loss = net.calculate_loss(batch)
        loss.backward()
        assert math.isfinite(float(loss.detach())), settings_

    check()
    assert files_in(tmp_path) == []


# ------------------------------------------------------------------ atomic files
NAMES = st.sampled_from(["user_id", "item_id", "timestamp", "rating", "x", "", "user id", "item_id "])
TYPES = st.sampled_from(["token", "float", "token_seq", "float_seq", "int", ""])
CELLS = st.one_of(
    st.integers(-3, 30).map(str),
    st.floats(allow_nan=True).map(repr),
    st.sampled_from(["", "a", "1 2", "nan", "\t", "1.5e3", "-0", "\u00e9", "\ufeff"]),
    st.text(max_size=4),
)


VALID_ROW = st.tuples(st.integers(1, 8), st.integers(1, 15), st.integers(0, 10**6))
DAMAGE = st.sampled_from(["none", "none", "none", "header", "cells", "encoding", "truncate", "all"])


@st.composite
def atomic_files(draw):
    """Bytes of an ``.inter`` file: well-formed rows of ``user item time [rating]``, with one kind
    of damage (or none, or all): header cells, cells (random text, separators, too few or too
    many fields), encoding, truncation."""
    damage = draw(DAMAGE)
    header = [("user_id", "token"), ("item_id", "token"), ("timestamp", "float")]
    if draw(st.booleans()):
        header.append(("rating", "float"))
    if damage in ("header", "all"):
        for _ in range(draw(st.integers(1, 2))):
            header[draw(st.integers(0, len(header) - 1))] = (draw(NAMES), draw(TYPES))
    rows = [
        [str(x) for x in r][: len(header)] + (["3"] if len(header) == 4 else [])
        for r in draw(st.lists(VALID_ROW, min_size=20, max_size=60))
    ]
    if damage in ("cells", "all") and rows:
        for _ in range(draw(st.integers(1, 3))):
            rows[draw(st.integers(0, len(rows) - 1))] = draw(st.lists(CELLS, min_size=1, max_size=len(header) + 1))
    text = "\t".join(":".join(h) for h in header) + "\n" + "".join("\t".join(r) + "\n" for r in rows)
    encoding = draw(st.sampled_from(["latin-1", "utf-16", "cp1252"])) if damage in ("encoding", "all") else "utf-8"
    data = text.encode(encoding, errors="replace")
    if damage in ("truncate", "all"):
        data = data[: draw(st.integers(0, len(data)))]
    return data


def test_malformed_atomic_files_are_refused_or_load(tmp_path, monkeypatch):
    from recbole_ext.pipeline import Run

    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "data" / "gen"
    folder.mkdir(parents=True)

    @given(atomic_files())
    def check(data):
        (folder / "gen.inter").write_bytes(data)
        try:
            run = Run.resolve(
                "GRU4Rec",
                "gen",
                config_dict={
                    "data_path": str(tmp_path / "data"),
                    "state": "ERROR",
                    "load_col": None,
                    "MAX_ITEM_LIST_LENGTH": 5,
                },
            )
            run.build_loaders(run.prepare_data())
            event("loaded and split")
        except UserError as e:
            assert_one_line(e)
            event(f"refused: {type(e).__name__}")

    check()
    assert files_in(tmp_path) == ["data/gen/gen.inter"]
