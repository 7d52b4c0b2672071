"""More hostile inputs and faults (issue 38), each from an empty folder: one line
``recbole_ext: error: ...``, exit 2 for an input (1 for a run that failed midway), no traceback,
nothing left that was not there before."""

from __future__ import annotations

import errno
import os

import pytest
import torch
from test_hardening import SLICE, TINY, files, one_line

from recbole_ext import cli


def test_a_full_disk_inside_torchs_writer_is_one_line(empty, capsys, monkeypatch):
    """torch's zip writer turns the ``OSError`` of a full disk into a ``RuntimeError``; the run
    still ends in one line naming the disk, and the first epoch's checkpoint stays whole."""
    from recbole_ext.trainer import checkpoint as ckpt_module
    from recbole_ext.trainer.checkpoint import load_checkpoint

    work, data = empty
    real, written = torch.save, []

    def save(obj, f, *args, **kwargs):
        written.append(getattr(f, "name", f))
        if len(written) == 1:
            return real(obj, f, *args, **kwargs)
        f.write(b"PK\x03\x04 half a file")
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError:
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 64 vs 0")  # noqa: B904

    monkeypatch.setattr(ckpt_module.torch, "save", save)
    rc = cli.main(["--model=GRU4Rec", *SLICE, f"--data_path={data}", *TINY[1:], "--epochs=3"])
    line = one_line(capsys, rc, code=1, needle="No space left on device")
    assert "after epoch 1" in line and "the last good one is whole" in line
    (ckpt,) = [f for f in files(work) if f.endswith(".pth")]
    monkeypatch.undo()
    assert load_checkpoint(str(work / ckpt)).epoch == 0


@pytest.mark.parametrize(
    "argv,needle",
    [
        (["--nproc_per_node=0", "run_recbole_ext.py"], "--nproc_per_node=0; allowed: a number >= 1"),
        (["--nproc_per_node=abc", "run_recbole_ext.py"], "--nproc_per_node=abc; allowed"),
        (["--nnodes=0", "run_recbole_ext.py"], "--nnodes=0; allowed"),
        (["--nnodes=3:2", "run_recbole_ext.py"], "--nnodes=3:2; allowed"),
        ([], "recbole-ext-torchrun --help lists the options"),
        (["--bogus", "run_recbole_ext.py"], "--bogus"),
    ],
    ids=["nproc-0", "nproc-abc", "nnodes-0", "nnodes-range", "no-args", "bogus"],
)
def test_the_launchers_own_options_are_one_line(argv, needle, empty, capsys):
    from recbole_ext.cli import launch

    rc = launch.main(argv)
    line = one_line(capsys, rc, needle=needle)
    assert len(line) < 200 and capsys.readouterr().out == ""


def test_the_launcher_takes_torchruns_words(monkeypatch):
    from recbole_ext.cli import launch

    args = launch.parse_launch_args(["--nproc_per_node=auto", "--nnodes=1:2", "x.py"])
    assert args.nproc_per_node == "auto" and args.nnodes == "1:2"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(Exception, match="this machine has no gpu"):
        launch.check_launch_options(launch.parse_launch_args(["--nproc_per_node=gpu", "x.py"]))


def tree(folder):
    """Every file and folder under ``folder``."""
    return sorted(os.path.relpath(os.path.join(d, n), folder) for d, ds, fs in os.walk(folder) for n in ds + fs)


def test_resuming_with_another_size_is_refused_before_the_summary_and_writes_nothing(empty, capsys):
    work, data = empty
    base = ["--model=GRU4Rec", *SLICE, f"--data_path={data}", *TINY]
    assert cli.main(base) == 0
    (ckpt,) = [f for f in files(work) if f.endswith(".pth")]
    before = tree(work)
    capsys.readouterr()
    wider = [a for a in base if not a.startswith(("--hidden_size", "--embedding_size", "--state"))]
    rc = cli.main([*wider, "--hidden_size=16", "--embedding_size=16", "--state=INFO", f"--resume={ckpt}"])
    err = capsys.readouterr().err
    assert rc == 2 and "does not fit this model" in err and "hidden_size=8 there, 16 here" in err, err
    assert "The number of users" not in err and "Traceback" not in err
    assert tree(work) == before


@pytest.mark.parametrize("model", ["GRU4Rec", "SASRec"])
def test_a_width_that_cannot_fit_memory_is_refused_before_the_model_is_built(model, empty, capsys):
    work, data = empty
    tiny = [a for a in TINY if not a.startswith(("--hidden_size", "--embedding_size"))]
    rc = cli.main([f"--model={model}", *SLICE, f"--data_path={data}", *tiny, "--hidden_size=100000000"])
    line = one_line(capsys, rc, needle="training needs at least")
    assert "lower its sizes" in line and len(line) < 250
    assert tree(work) == []


@pytest.fixture
def offline(monkeypatch):
    """Every download fails as it does without a network; the URLs tried are listed."""
    from recbole_ext.data import fetch
    from recbole_ext.errors import DataFetchError

    tried = []

    def download(url, *args, **kwargs):
        tried.append(url)
        raise DataFetchError(f"{url}: cannot download (offline)")

    monkeypatch.setattr(fetch, "download", download)
    monkeypatch.delenv("RECBOLE_EXT_DATA", raising=False)
    return tried


def test_a_failed_fetch_leaves_no_folders(empty, offline, capsys):
    work, _ = empty
    one_line(capsys, cli.main(["data", "fetch", "ml-1m", "--data_path=a/b/c"]), needle="offline")
    assert offline and tree(work) == []


def test_a_reproduction_whose_fetch_fails_leaves_no_results_folder(empty, offline, capsys):
    work, _ = empty
    rc = cli.main(["reproduce", "glint-ru", "--dataset=ml-1m", "--seeds=1"])
    one_line(capsys, rc, needle="offline")
    assert tree(work) == []


@pytest.mark.parametrize("dataset", ["ml-100k", "ml-1m"])
def test_a_data_path_that_does_not_exist_is_said_so_before_any_download(dataset, empty, offline, capsys):
    work, _ = empty
    rc = cli.main(["--model=GRU4Rec", f"--dataset={dataset}", "--data_path=nosuch/dir", *TINY])
    one_line(capsys, rc, needle="data_path nosuch/dir does not exist")
    assert offline == [] and tree(work) == []


@pytest.mark.parametrize(
    "rows,needle",
    [
        ([(1, 1, 5, 10), (1, 2, 4, 11), (2, 3, 12)], "line 4: 3 fields, the header has 4"),
        ([(1, 1, 5, 10), (1, 2, 4, "abc"), (2, 3, 3, 12)], "line 3, column 4 ('timestamp'): 'abc' is not a number"),
    ],
    ids=["fields", "time"],
)
def test_data_stats_reads_as_training_reads(rows, needle, empty, capsys):
    from conftest import write_inter

    work, _ = empty
    header = ("user_id:token", "item_id:token", "rating:float", "timestamp:float")
    write_inter(str(work.parent / "d"), "bad", rows, header=header)
    one_line(capsys, cli.main(["data", "stats", "bad", f"--data_path={work.parent / 'd'}"]), needle=needle)
    rc = cli.main(["--model=GRU4Rec", "--dataset=bad", f"--data_path={work.parent / 'd'}", *TINY])
    one_line(capsys, rc, needle=needle)
    assert tree(work) == []


def test_data_stats_looks_only_where_data_path_says(empty, offline, capsys):
    work, _ = empty
    rc = cli.main(["data", "stats", "ml-100k", "--data_path=/nonexistent/x"])
    one_line(capsys, rc, needle="data_path /nonexistent/x does not exist")
    assert offline == [] and capsys.readouterr().out == ""
    assert cli.main(["data", "stats", "ml-100k"]) == 0  # not given: the search path, the bundled copy
    assert '"interactions": 100000' in capsys.readouterr().out


@pytest.mark.parametrize(
    "eval_args,needle",
    [
        ("{'split': {'XX': [0.8, 0.9]}, 'order': 'TO'}", "split method 'XX' is unknown; allowed: RS: "),
        (
            "{'split': {'RS': [0.8, -0.1, 0.3]}, 'order': 'RO'}",
            "split {RS: [0.8, -0.1, 0.3]}; allowed: a list of 1 to 3",
        ),
        ("{'split': {'LS': 'valid_and_tset'}, 'order': 'TO'}", "allowed: valid_and_test, valid_only or test_only"),
        ("{'split': {'LS': 'valid_and_test'}, 'order': 'XO'}", "eval_args order 'XO'; allowed: RO, TO"),
    ],
    ids=["method", "ratios", "leave-one-out", "order"],
)
def test_a_split_method_and_its_argument_are_checked_with_eval_args(eval_args, needle, empty, capsys):
    work, data = empty
    rc = cli.main(["--model=GRU4Rec", *SLICE, f"--data_path={data}", *TINY, f"--eval_args={eval_args}"])
    one_line(capsys, rc, needle=needle)
    assert tree(work) == []


def test_every_split_method_is_one_entry_of_one_table():
    from recbole_ext.data.split_methods import SPLIT_METHODS, check_eval_split

    assert set(SPLIT_METHODS) >= {"RS", "LS", "TS"}
    check_eval_split({"split": {"RS": [0.8, 0.1, 0.1]}, "order": "RO", "group_by": "user"})
    check_eval_split({"split": {"LS": "valid_only"}, "order": "TO"})


@pytest.mark.parametrize(
    "model,keys,needle",
    [
        ("LRURec", ["--r_min=0.995"], "r_min=0.995 is larger than r_max=0.99"),
        ("Mamba4Rec", ["--scan_impl=mamba_ssm"], "mamba_ssm cannot be imported"),
        (
            "SMLP4Rec",
            [
                "--selected_features=['nosuch']",
                "--load_col={'inter': ['user_id', 'item_id', 'timestamp'], 'item': ['item_id']}",
            ],
            "selected_features names 'nosuch', which is not a loaded item feature",
        ),
    ],
    ids=["lrurec", "mamba4rec", "smlp4rec"],
)
def test_a_models_own_rules_run_before_the_data_set_is_read(model, keys, needle, empty, capsys, monkeypatch):
    import importlib.util

    from recbole_ext.pipeline import run as run_module

    if model == "Mamba4Rec" and importlib.util.find_spec("mamba_ssm") is not None:
        pytest.skip("mamba_ssm is installed here")
    work, data = empty
    monkeypatch.setattr(run_module, "create_dataset", lambda config: pytest.fail("the data set was read"))
    given = {k.split("=", 1)[0] for k in keys}
    rest = [a for a in [*SLICE, *TINY[:-1], "--state=INFO"] if a.split("=", 1)[0] not in given]
    rc = cli.main([f"--model={model}", f"--data_path={data}", *rest, *keys])
    line = one_line(capsys, rc, needle=needle)
    assert len(line) < 250 and tree(work) == []


@pytest.mark.parametrize(
    "argv,needle",
    [
        (["reproduce", "glint-ru", "--dataset=ml-100k", "--seeds="], "--seeds is empty"),
        (["tune", "--model=GRU4Rec,SASRec", "--dataset=ml-100k", "--trials=1", "--storage="], "--storage is empty"),
        (["compare", "--model=GRU4Rec,SASRec", "--dataset=ml-100k", "--results-dir="], "--results-dir is empty"),
        (["data", "stats", "ml-100k", "--data_path="], "--data_path is empty"),
    ],
    ids=["seeds", "storage", "results-dir", "data-path"],
)
def test_an_empty_value_is_an_error_not_the_default(argv, needle, empty, capsys, monkeypatch):
    from recbole_ext.pipeline import Run

    work, _ = empty
    monkeypatch.setattr(Run, "prepare_data", lambda self: pytest.fail("a run started"))
    one_line(capsys, cli.main(argv), needle=needle)
    assert tree(work) == []


@pytest.mark.parametrize("command", ["compare", "reproduce"])
def test_devices_this_machine_lacks_are_refused(command, empty, capsys, monkeypatch):
    work, _ = empty
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    what = ["compare", "--model=GRU4Rec,SASRec"] if command == "compare" else ["reproduce", "glint-ru"]
    rc = cli.main([*what, "--dataset=ml-100k", "--devices=0"])
    one_line(capsys, rc, needle="--devices 0: this machine has no CUDA device")
    assert tree(work) == []


def test_parallel_runs_keep_the_users_thread_limit(empty, capsys, monkeypatch):
    """``OMP_NUM_THREADS=1`` holds in every process of a parallel comparison."""
    import subprocess

    from recbole_ext.compare import parallel

    work, data = empty
    envs = []
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setattr(parallel.os, "cpu_count", lambda: 8)
    monkeypatch.setattr(
        parallel.subprocess, "run", lambda cmd, env, **kw: envs.append(env) or subprocess.CompletedProcess(cmd, 1)
    )
    cli.main(["compare", "--model=GRU4Rec,SASRec", *SLICE, f"--data_path={data}", *TINY, "--jobs=2", "--no-plot"])
    assert len(envs) == 2 and {e["OMP_NUM_THREADS"] for e in envs} == {"1"}, [e["OMP_NUM_THREADS"] for e in envs]


def test_data_list_is_narrow_and_says_downloaded_on_first_use(empty, capsys):
    assert cli.main(["data", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    where = lines[0].index("FORMAT") - lines[0].index("WHERE")
    assert where <= 45, lines[0]
    assert any("downloaded on first use" in line for line in lines) and not any(
        "fetches itself" in line for line in lines
    )
    assert any(line.startswith("ml-100k") and "on disk: <recbole>/dataset_example/ml-100k" in line for line in lines)


@pytest.mark.parametrize(
    "argv,needle",
    [
        (["--model=SASRek", "--dataset=ml-100k"], "Did you mean: SASRec"),
        (["--model=SASRec", "--dataset=ml-1mm", "--download=never"], "Did you mean: ml-1m"),
    ],
    ids=["model", "data-set"],
)
def test_unknown_names_list_close_matches_not_the_whole_registry(argv, needle, empty, capsys):
    line = one_line(capsys, cli.main(argv), needle=needle)
    assert len(line) <= 240 and "GRU4Rec" not in line and "amazon-beauty" not in line, line


def test_a_preset_without_a_section_says_where_to_compare(empty, capsys):
    work, _ = empty
    (work.parent / "mine.yaml").write_text("paper: x\ndatasets: {}\n")
    rc = cli.main(["reproduce", str(work.parent / "mine.yaml"), "--dataset=ml-100k"])
    line = one_line(capsys, rc, needle="compare its layout with")
    assert "KeyError" not in line and "glint-ru.yaml" in line


def test_an_unopenable_study_database_says_what_to_check():
    from recbole_ext.errors import UserError
    from recbole_ext.tune.trials import _rdb_storage

    with pytest.raises(UserError, match="the database file's folder must exist and be writable"):
        _rdb_storage("sqlite:////nonexistent/folder/study.db", attempts=1)


def test_a_damaged_checkpoint_says_what_to_do(empty, capsys):
    work, _ = empty
    torch.save({"format": 1, "config": {}, "state_dict": {"w": torch.zeros(1000)}}, str(work / "whole.pth"))
    data = (work / "whole.pth").read_bytes()
    (work / "cut.pth").write_bytes(data[: len(data) // 2])
    (work / "noise.pth").write_bytes(b"\x80\x02}q\x00(X\x01")
    for name in ("cut.pth", "noise.pth"):
        rc = cli.main(["recommend", f"--checkpoint={name}", "--items=1"])
        line = one_line(capsys, rc, needle="cut short or damaged; use another checkpoint, or train again")
        assert len(line) < 250, line


def test_a_search_space_typo_without_a_close_match_says_where_the_keys_are(empty, capsys):
    work, data = empty
    space = work.parent / "space.yaml"
    space.write_text("GRU4Rec:\n  zzqx: {choice: [8, 16]}\n")
    rc = cli.main(["tune", "--model=GRU4Rec", *SLICE, f"--data_path={data}", "--trials=2", f"--space={space}"])
    one_line(capsys, rc, needle="'zzqx', which is not a key of GRU4Rec, its data set or RecBole; GRU4Rec's keys are in")
    assert tree(work) == []


def test_a_misspelt_key_of_a_variant_file_is_said_before_the_first_run(empty):
    from recbole_ext.command import CompareRequest
    from recbole_ext.compare.runner import preflight

    work, data = empty
    configs = work.parent / "variants"
    configs.mkdir()
    (configs / "GRU4Rec@hi.yaml").write_text("dropout_prob: 0.5\ndropout_prop: 0.5\n")  # a real key and a typo
    request = CompareRequest(
        models=("GRU4Rec", "GRU4Rec@hi"),
        dataset="ml-slice",
        config_args=(*SLICE[1:], f"--data_path={data}"),
        model_configs=str(configs),
    )
    said: list = []
    assert list(preflight(request, echo=said.append)) == ["GRU4Rec", "GRU4Rec@hi"]
    assert len(said) == 1 and said[0].startswith("[compare] GRU4Rec@hi: warning: config key 'dropout_prop'")
    assert "did you mean 'dropout_prob'" in said[0]


def test_a_variant_file_that_changes_nothing_is_refused_before_the_first_run(empty, capsys, monkeypatch):
    from recbole_ext.pipeline import Run

    work, data = empty
    configs = work.parent / "variants"
    configs.mkdir()
    (configs / "GRU4Rec@hi.yaml").write_text("dropout_prop: 0.5\n")
    monkeypatch.setattr(Run, "train_and_test", lambda self, *a, **k: pytest.fail("a model trained"))
    argv = ["compare", "--model=GRU4Rec,GRU4Rec@hi", *SLICE, f"--data_path={data}", *TINY, f"--model-configs={configs}"]
    line = one_line(capsys, cli.main(argv), needle="GRU4Rec@hi would train with the same settings as GRU4Rec")
    assert "dropout_prop is no key of GRU4Rec" in line and "dropout_prob" in line
    assert tree(work) == []
    (configs / "GRU4Rec@hi.yaml").write_text("dropout_prob: 0.5\n")  # a real difference runs
    from recbole_ext.command import CompareRequest
    from recbole_ext.compare.runner import preflight

    request = CompareRequest(
        models=("GRU4Rec", "GRU4Rec@hi"),
        dataset="ml-slice",
        config_args=(*SLICE[1:], f"--data_path={data}"),
        model_configs=str(configs),
    )
    assert list(preflight(request)) == ["GRU4Rec", "GRU4Rec@hi"]
