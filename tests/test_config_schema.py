"""Typed configuration (``recbole_ext.config_schema``): the grammar of the YAML type comments,
no false alarm on any default of RecBole's or ours, and every bad value of the issue's list
stopped before anything is built: one line, exit 2, no files."""

from __future__ import annotations

import glob
import os
import sys

import pytest
import recbole
import yaml

from recbole_ext.config_schema import Alt, KeySpec, Schema, accepts, parse_spec, read_yaml_specs
from recbole_ext.errors import ConfigError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RECBOLE_PROPS = os.path.join(os.path.dirname(recbole.__file__), "properties")
OWN_PROPS = os.path.join(ROOT, "recbole_ext", "properties")


@pytest.mark.parametrize(
    "text,value,ok",
    [
        ("int >= 1", 1, True),
        ("int >= 1", 0, False),
        ("int >= 1", 1.5, False),
        ("int >= 1", True, False),
        ("int >= 1", "abc", False),
        ("float > 0", 1, True),
        ("float > 0", float("inf"), False),
        ("float > 0", float("nan"), False),
        ("float >= 0, < 1", 0.0, True),
        ("float >= 0, < 1", 1.0, False),
        ("str: CE | BPR", "BPR", True),
        ("str: CE | BPR", "bpr", False),
        ("str", 3, False),
        ("str", "3", True),
        ("int >= 1 or ~", None, True),
        ("list of int >= 1", [1, 2], True),
        ("list of int >= 1", [1, 0], False),
        ("list or int or None", None, True),
        ("str, optional", None, True),
        ("bool", 1, True),
        ("bool", 2, False),
        ("dict", None, True),
        ("dict", [1], False),
    ],
)
def test_grammar(text, value, ok):
    spec = parse_spec(text)
    assert spec is not None
    assert any(accepts(a, value) for a in spec.alts) is ok


def test_text_outside_the_grammar_is_not_a_type():
    assert parse_spec("file name of stored xgb model or 'Booster' instance") is None
    assert parse_spec("int >= one") is None
    assert KeySpec((Alt("int", limits=((">=", 1.0),)),)).text() == "int >= 1"


def test_every_key_of_ours_has_a_type():
    files = [
        p
        for p in glob.glob(os.path.join(OWN_PROPS, "**", "*.yaml"), recursive=True)
        if os.path.basename(p) not in ("config_limits.yaml", "sources.yaml")
        and os.path.basename(os.path.dirname(p)) != "tune"
    ]  # search spaces, not defaults
    assert len(files) >= 10
    for path in files:
        specs, _ = read_yaml_specs(path)
        with open(path) as f:
            keys = list(yaml.safe_load(f) or {})
        missing = [k for k in keys if specs.get(k) is None]
        assert not missing, f"{path}: no '# (type) meaning' comment in the grammar for {missing}"


def test_recbole_defaults_pass_their_own_schema():
    """Each RecBole model's defaults, read with RecBole's own YAML loader, pass the schema made
    from the same files (so a wrong type comment, or a wrong limit of ours, shows here)."""
    from recbole.config import Config as RecBoleConfig

    loader = RecBoleConfig._build_yaml_loader(None)
    base = [os.path.join(RECBOLE_PROPS, "overall.yaml"), os.path.join(RECBOLE_PROPS, "dataset", "sample.yaml")]
    base += sorted(glob.glob(os.path.join(RECBOLE_PROPS, "quick_start_config", "*.yaml")))
    models = sorted(glob.glob(os.path.join(RECBOLE_PROPS, "model", "*.yaml")))
    assert len(models) > 80
    for model in models:
        files = base + [model]
        config = {}
        for path in files:
            with open(path) as f:
                config.update(yaml.load(f, Loader=loader) or {})
        Schema.from_files(files).check(config)


def test_every_sweep_case_passes(tmp_path):
    """Every model the sweep runs (RecBole's 90 and ours) gets past the checks with its settings."""
    sys.path.insert(0, os.path.join(ROOT, "tools"))
    import sweep

    from recbole_ext.config import Config

    from sweep_data import write_sweep_dataset

    root = write_sweep_dataset(str(tmp_path), n_users=20, n_items=20, per_user=4)
    cases = [c for c in sweep.all_cases() if not sweep.missing_packages(c.model)]
    assert len(cases) > 130
    for case in cases:
        Config(case.model, sweep.DATASET, config_dict=sweep.case_config(case, root, str(tmp_path / "w")))


def test_a_bad_value_is_refused(ml100k_slice):
    from recbole_ext.config import Config

    with pytest.raises(ConfigError, match=r"epochs=0; allowed: int >= 1"):
        Config("GRU4Rec", "ml-slice", config_dict={"data_path": ml100k_slice, "epochs": 0})
    with pytest.raises(ConfigError, match="hidden_size=64 is not divisible by n_heads=3"):
        Config("SASRec", "ml-slice", config_dict={"data_path": ml100k_slice, "n_heads": 3})


# ------------------------------------------------------------------ the cases, end to end
CASES = {
    "epochs=abc": (["--epochs=abc"], "epochs='abc'"),
    "epochs=1.5": (["--epochs=1.5"], "epochs=1.5"),
    "epochs=0": (["--epochs=0"], "epochs=0"),
    "epochs=-1": (["--epochs=-1"], "epochs=-1"),
    "epochs=1/0": (["--epochs=1/0"], "epochs='1/0'"),
    "max-length=0": (["--MAX_ITEM_LIST_LENGTH=0"], "MAX_ITEM_LIST_LENGTH=0"),
    "lr=-1": (["--learning_rate=-1"], "learning_rate=-1"),
    "lr=abc": (["--learning_rate=abc"], "learning_rate='abc'"),
    "batch=0": (["--train_batch_size=0"], "train_batch_size=0"),
    "hidden=0": (["--hidden_size=0"], "hidden_size=0"),
    "heads=3": (["--n_heads=3"], "n_heads=3"),
    "bpr-without-negatives": (["--loss_type=BPR"], "loss_type BPR"),
    "dropout=2": (["--dropout_prob=2"], "dropout_prob=2"),
    "valid-metric": (["--valid_metric=NDCG@20"], "valid_metric='NDCG@20'"),
    "config-folder": (["--config_files=."], "is a folder"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_option_is_one_line_before_anything_is_built(case, tmp_path, monkeypatch, capsys):
    """``--dataset=nowhere`` does not exist: the value's line (not "data set not found") shows that
    the check runs before the data set is looked for, let alone loaded."""
    from recbole_ext import cli

    monkeypatch.chdir(tmp_path)
    args, needle = CASES[case]
    rc = cli.main(["--model=GLINTRU", "--dataset=nowhere", *args])
    err = capsys.readouterr().err
    assert rc == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("recbole_ext: error:") and needle in lines[0], err
    assert os.listdir(tmp_path) == []


def test_dataset_given_as_a_path(tmp_path, monkeypatch, capsys):
    from recbole_ext import cli

    monkeypatch.chdir(tmp_path)
    assert cli.main(["--model=GRU4Rec", f"--dataset={tmp_path}/data/ml-slice"]) == 2
    err = capsys.readouterr().err
    assert f"use --dataset=ml-slice --data_path={tmp_path}/data" in err and len(err.strip().splitlines()) == 1
    assert os.listdir(tmp_path) == []


def test_command_line_values_are_never_run_as_code():
    from recbole_ext.config_sources import convert_cli_value

    assert convert_cli_value("__import__('os').getcwd()") == "__import__('os').getcwd()"
    assert convert_cli_value("[Recall,NDCG]") == ["Recall", "NDCG"]
    assert convert_cli_value("1e-3") == 0.001 and convert_cli_value("TRUE") is True
    assert convert_cli_value("None") is None and convert_cli_value("[5, 10]") == [5, 10]


def test_misspelled_key_of_a_recbole_model_is_warned(ml100k_slice):
    from recbole_ext.config import Config

    cfg = Config("SASRec", "ml-slice", config_dict={"data_path": ml100k_slice, "epoch": 1})
    warnings = getattr(cfg, "unknown_key_warnings", [])
    assert len(warnings) == 1 and "'epoch'" in warnings[0] and "'epochs'" in warnings[0], warnings


# ------------------------------------------------------------------ whose error it is
#: an internal step of building a Config, made to fail as a bug of ours would
INTERNAL_FAILURES = {
    "check_rules": ("recbole_ext.config.check_rules", ValueError),
    "schema": ("recbole_ext.config_schema.Schema.check", TypeError),
    "device": ("recbole_ext.config.device_for", RuntimeError),
    "time-field": ("recbole_ext.config.Config._load_time_field_for_time_order", KeyError),
}


@pytest.mark.parametrize("case", sorted(INTERNAL_FAILURES))
def test_an_internal_error_while_building_a_config_is_a_traceback(case, tmp_path, monkeypatch, capsys):
    """A ValueError, TypeError, RuntimeError or KeyError raised by our own code while a Config is
    built is a bug: it propagates as itself (the command line shows its traceback), and is not
    called an invalid configuration."""
    from recbole_ext import cli
    from recbole_ext.config import Config
    from recbole_ext.errors import UserError

    target, error = INTERNAL_FAILURES[case]

    def broken(*args, **kwargs):
        raise error("our bug")

    monkeypatch.setattr(target, broken)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(error, match="our bug") as caught:
        Config("SASRec", "ml-100k")
    assert not isinstance(caught.value, UserError)
    with pytest.raises(error, match="our bug"):
        cli.main(["--model=SASRec", "--dataset=ml-100k"])
    assert "invalid configuration" not in capsys.readouterr().err


@pytest.mark.parametrize(
    "args,needle",
    [
        (["--repeatable=False"], "Sequential models currently only support repeatable recommendation"),
        (
            ["--metrics=['Recall','RMSE']", "--valid_metric=Recall@10"],
            "Ranking metrics and value metrics can not be used at the same time",
        ),
    ],
)
def test_a_mistake_recboles_checks_find_stays_one_line(args, needle, tmp_path, monkeypatch, capsys):
    """RecBole's own checks of the settings (a ValueError, a RuntimeError) judge the user's
    input: one line, exit 2, before the data set is looked for."""
    from recbole_ext import cli

    monkeypatch.chdir(tmp_path)
    rc = cli.main(["--model=SASRec", "--dataset=nowhere", *args])
    err = capsys.readouterr().err
    assert rc == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("recbole_ext: error: invalid configuration:"), err
    assert needle in lines[0]
    assert os.listdir(tmp_path) == []
