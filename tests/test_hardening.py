"""Inputs and faults a hostile user finds, each from an empty folder: one line
``recbole_ext: error: ...``, exit 2 for an input (1 for a run that failed midway), no traceback,
nothing left that was not there before."""

from __future__ import annotations

import os

import pytest
import torch

from recbole_ext import cli

SLICE = ["--dataset=ml-slice", "--load_col={'inter': ['user_id', 'item_id', 'timestamp']}", "--show_progress=False"]
TINY = ["--epochs=1", "--MAX_ITEM_LIST_LENGTH=10", "--hidden_size=8", "--embedding_size=8", "--state=ERROR"]


def files(folder):
    return sorted(os.path.relpath(os.path.join(d, f), folder) for d, _, fs in os.walk(folder) for f in fs)


def one_line(capsys, rc, code=2, needle=""):
    """The command's stderr: exactly one line of ours, no traceback; returns it."""
    err = capsys.readouterr().err
    ours = [line for line in err.splitlines() if line.startswith("recbole_ext: error:")]
    assert rc == code and len(ours) == 1 and "Traceback" not in err, err[-3000:]
    assert needle in ours[0], ours[0]
    return ours[0]


@pytest.mark.parametrize(
    "args,needle",
    [
        (
            ["--model=GLINTRU", "--dataset=ml-100k", "--MAX_ITEM_LIST_LENGTH=0"],
            "MAX_ITEM_LIST_LENGTH=0; allowed: int >= 1",
        ),
        (
            ["--model=SASRec", "--dataset=ml-100k", "--MAX_ITEM_LIST_LENGTH=0"],
            "MAX_ITEM_LIST_LENGTH=0; allowed: int >= 1",
        ),
        (["--model=SASRec", "--eval_args={'mode': 'pop-1'}"], "eval_args mode 'pop-1'"),
        (
            [
                "--model=GRU4Rec",
                "--loss_type=BPR",
                "--train_neg_sample_args={'distribution': 'uniform', 'sample_num': -3}",
            ],
            "train_neg_sample_args=",
        ),
        (
            ["--model=GRU4Rec", "--train_neg_sample_args={'distribution': 'uniform', 'sample_nm': 1}"],
            "has no key 'sample_nm'",
        ),
        (["--model=GRU4Rec", "--epoch=1"], "--epoch: config key 'epoch' is not a key of GRU4Rec"),
        (["--model=GRU4Rec", "--mod=SASRec"], "--mod:"),
        (["--model=GRU4Rec", "--checkpoint_dir=FILE"], "checkpoint_dir: "),
        (["--model=GRU4Rec", "--checkpoint_dir=/proc/no-such/saved"], "checkpoint_dir: /proc/no-such/saved cannot"),
        (["--model=GRU4Rec", "--data_path=FILE"], "data_path "),
        (["--model=GRU4Rec", "--data_path=MISSING"], "no ml-slice.inter in"),
    ],
    ids=[
        "len0-glintru",
        "len0-sasrec",
        "mode",
        "sample-num",
        "neg-key",
        "epoch",
        "mod",
        "ckpt-file",
        "ckpt-ro",
        "data-file",
        "data-missing",
    ],
)
def test_bad_inputs_are_one_line_before_any_work(args, needle, empty, capsys):
    work, data = empty
    (work.parent / "FILE").write_text("not a folder")
    args = [a.replace("FILE", str(work.parent / "FILE")).replace("MISSING", str(work.parent / "nowhere")) for a in args]
    path = [] if any(a.startswith("--data_path") for a in args) else [f"--data_path={data}"]
    given = {a.split("=", 1)[0] for a in args}
    rest = [t for t in TINY + SLICE + path if t.split("=", 1)[0] not in given]
    if "--dataset=ml-100k" in args:  # the bundled copy, with the shipped data-set YAML
        rest = [t for t in rest if not t.startswith(("--data_path", "--load_col"))]
    one_line(capsys, cli.main(args + rest), needle=needle)
    assert files(work) == []


def test_a_partial_eval_args_keeps_the_protocols_other_fields(ml100k_slice):
    from recbole_ext.config import Config

    cfg = Config("SASRec", "ml-slice", cmd_args=[f"--data_path={ml100k_slice}", "--eval_args={'mode': 'pop100'}"])
    assert cfg["eval_args"]["order"] == "TO" and cfg["eval_args"]["split"] == {"LS": "valid_and_test"}
    assert cfg["eval_args"]["mode"] == {"valid": "pop100", "test": "pop100"}


def test_a_data_set_yaml_does_not_loosen_a_limit():
    """ml-100k's shipped YAML types MAX_ITEM_LIST_LENGTH as a bare ``(int)``; the ``>= 1`` of
    the limits still holds."""
    from recbole_ext.config import Config
    from recbole_ext.config_schema import Schema

    cfg = Config("SASRec", "ml-100k")
    assert Schema.from_files(cfg.default_files).specs["MAX_ITEM_LIST_LENGTH"].text() == "int >= 1"


def test_resume_with_other_sizes_names_the_weights_and_settings(empty, capsys):
    work, data = empty
    base = ["--model=GRU4Rec", *SLICE, f"--data_path={data}", *TINY]
    assert cli.main(base) == 0
    (ckpt,) = [f for f in files(work) if f.endswith(".pth")]
    capsys.readouterr()
    wider = ["--model=GRU4Rec", *SLICE, f"--data_path={data}", "--epochs=2", "--MAX_ITEM_LIST_LENGTH=10"]
    rc = cli.main(wider + ["--hidden_size=16", "--embedding_size=16", "--state=ERROR", f"--resume={ckpt}"])
    line = one_line(capsys, rc, needle="does not fit this model")
    assert "item_embedding.weight [" in line and "hidden_size=8 there, 16 here" in line


def test_a_diverging_run_says_so_and_keeps_its_last_epoch(empty, capsys):
    work, data = empty
    rc = cli.main(["--model=GRU4Rec", *SLICE, f"--data_path={data}", *TINY[1:], "--epochs=3", "--learning_rate=1e30"])
    line = one_line(capsys, rc, code=1, needle="training diverged in epoch")
    assert "lower learning_rate" in line
    logs = [f for f in files(work) if f.endswith(".log")]
    assert logs and "training diverged" in open(work / logs[0]).read()


def test_a_full_disk_is_one_line_and_the_last_checkpoint_stays_whole(empty, capsys, monkeypatch):
    from recbole_ext.trainer import checkpoint as ckpt_module
    from recbole_ext.trainer.checkpoint import load_checkpoint

    work, data = empty
    real, calls = ckpt_module.Checkpoint.save, []

    def save(self, path):
        calls.append(path)
        if len(calls) > 1:
            raise OSError(28, "No space left on device")
        real(self, path)

    monkeypatch.setattr(ckpt_module.Checkpoint, "save", save)
    rc = cli.main(["--model=GRU4Rec", *SLICE, f"--data_path={data}", *TINY[1:], "--epochs=3"])
    line = one_line(capsys, rc, code=1, needle="No space left on device")
    assert "after epoch 1" in line and "the last good one is whole" in line
    assert load_checkpoint(calls[0]).epoch == 0


def test_compare_checks_every_model_before_the_first_run(empty, capsys, monkeypatch):
    from recbole_ext.pipeline import Run

    work, data = empty
    trained = []
    monkeypatch.setattr(Run, "train_and_test", lambda self, *a, **k: trained.append(self) or 1 / 0)
    rc = cli.main(["compare", "--model=GRU4Rec,NoSuchModel", *SLICE, f"--data_path={data}", *TINY])
    one_line(capsys, rc, needle="unknown model 'NoSuchModel'")
    rc = cli.main(["compare", "--model=GRU4Rec,SASRec", *SLICE, f"--data_path={data}", *TINY, "--n_layrs=1"])
    one_line(capsys, rc, needle="--n_layrs is a key of none of GRU4Rec, SASRec")
    assert trained == [] and files(work) == []


def test_a_key_of_one_compared_model_is_no_error_for_the_others(ml100k_slice):
    from recbole_ext.pipeline import resolve_all

    runs = resolve_all(["GRU4Rec", "SASRec"], "ml-slice", lambda m: None, {"data_path": ml100k_slice}, ["--n_layers=1"])
    assert runs["GRU4Rec"].config.unknown_cmd_keys == {"n_layers"} and not runs["SASRec"].config.unknown_cmd_keys


def test_a_search_space_key_the_model_lacks_is_refused(empty, capsys):
    work, data = empty
    space = work.parent / "space.yaml"
    space.write_text("GRU4Rec:\n  hidden_sizee: {choice: [8, 16]}\n")
    rc = cli.main(["tune", "--model=GRU4Rec", *SLICE, f"--data_path={data}", "--trials=2", f"--space={space}"])
    one_line(capsys, rc, needle="'hidden_sizee', which is not a key of GRU4Rec")
    assert files(work) == []


def test_outputs_are_not_overwritten_without_force(empty, capsys):
    work, _ = empty
    (work / "recs.tsv").write_text("old")
    (work / "items.tsv").write_text("u\t1 2\n")
    rc = cli.main(["recommend", "--checkpoint=x.pth", "--items-file=items.tsv", "--output=recs.tsv"])
    one_line(capsys, rc, needle="--output recs.tsv exists; pass --force")
    (work / "tables").mkdir()
    (work / "tables" / "comparison.md").write_text("old")
    rc = cli.main(["report", "log", "--out", "tables"])
    one_line(capsys, rc, needle="holds a comparison table; pass --force")
    assert (work / "recs.tsv").read_text() == "old" and (work / "tables" / "comparison.md").read_text() == "old"


def test_read_only_output_folders_are_one_line(empty, capsys):
    work, _ = empty
    (work / "in.csv").write_text("user,item\n1,2\n1,3\n")
    ro = "/proc/no-such/out"
    assert cli.main(["convert", "csv", "in.csv", "--name=x", f"--out={ro}"]) == 2
    assert "cannot be written" in capsys.readouterr().err
    assert cli.main(["data", "fetch", "ml-1m", f"--data_path={ro}"]) == 2
    assert "--data_path: /proc/no-such/out cannot be written" in capsys.readouterr().err
    assert cli.main(["compare", "--model=GRU4Rec,SASRec", "--dataset=ml-100k", f"--results-dir={ro}"]) == 2
    assert "--results-dir" in capsys.readouterr().err
    (work / "items.tsv").write_text("u\t1\n")
    assert cli.main(["recommend", "--checkpoint=x.pth", "--items-file=items.tsv", f"--output={ro}/recs.tsv"]) == 2
    assert "--output: /proc/no-such/out cannot be written" in capsys.readouterr().err
    assert cli.main(["report", "log", "--out", ro]) == 2
    assert "--out: /proc/no-such/out cannot be written" in capsys.readouterr().err
    assert files(work) == ["in.csv", "items.tsv"]


def test_a_source_named_like_a_path_is_refused(empty, capsys):
    work, _ = empty
    src = work.parent / "evil.yaml"
    src.write_text("../evil:\n  url: http://127.0.0.1:9/x.zip\n  hash: ~\n  format: csv\n  terms: none\n")
    one_line(capsys, cli.main(["data", "fetch", "../evil", f"--data_sources={src}"]), needle="'../evil'")
    assert files(work) == []


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_convert_refuses_timestamps_that_are_no_finite_number(value, empty, capsys):
    work, _ = empty
    (work / "in.csv").write_text(f"user,item,rating,timestamp\n1,2,5,10\n1,3,4,{value}\n")
    one_line(capsys, cli.main(["convert", "csv", "in.csv", "--name=x"]), needle="is not a finite number")
    assert files(work) == ["in.csv"]


def test_recommend_with_only_unknown_tokens_prints_only_the_error(tmp_path, capsys, ml100k_slice):
    from conftest import build

    b = build(
        "GRU4Rec",
        "ml-slice",
        ml100k_slice,
        trainer=True,
        checkpoint_dir=str(tmp_path),
        load_col={"inter": ["user_id", "item_id", "timestamp"]},
        MAX_ITEM_LIST_LENGTH=10,
    )
    b.trainer._train_data = b.train
    b.trainer._save_checkpoint(0, verbose=False)
    capsys.readouterr()
    rc = cli.main(["recommend", f"--checkpoint={b.trainer.saved_model_file}", "--items=zzz,yyy"])
    out = capsys.readouterr()
    assert rc == 2 and out.out == "" and len(out.err.strip().splitlines()) == 1, out


def test_a_raw_pickle_is_refused_without_torchs_warning(tmp_path, capsys):
    path = tmp_path / "raw.pth"
    with open(path, "wb") as f:
        import pickle

        pickle.dump({"config": object.__new__(object), "state_dict": {}}, f)
    rc = cli.main(["recommend", f"--checkpoint={path}", "--items=1"])
    err = capsys.readouterr().err
    assert rc == 2 and len(err.strip().splitlines()) == 1 and "refusing to load" in err, err


def test_a_split_too_small_prints_no_summary_first(empty, capsys):
    work, _ = empty
    from conftest import write_inter

    write_inter(str(work.parent / "d"), "tiny", [(1, 1, 1), (1, 2, 2), (2, 3, 1)])
    rc = cli.main(
        [
            "--model=GRU4Rec",
            "--dataset=tiny",
            f"--data_path={work.parent / 'd'}",
            *TINY[:-1],
            "--state=INFO",
            "--load_col={'inter': ['user_id', 'item_id', 'timestamp']}",
        ]
    )
    err = capsys.readouterr().err
    assert rc == 2 and "The number of users" not in err and "part empty" in err, err


def test_written_files_follow_the_umask(tmp_path):
    from recbole_ext.fileio import atomic_write_text

    old = os.umask(0o022)
    try:
        atomic_write_text(str(tmp_path / "t.md"), "x")
    finally:
        os.umask(old)
    assert (os.stat(tmp_path / "t.md").st_mode & 0o777) == 0o644


def test_version_and_an_aligned_data_list(capsys):
    from recbole_ext import __version__

    assert cli.main(["--version"]) == 0 and capsys.readouterr().out.strip() == f"recbole-ext {__version__}"
    assert cli.main(["data", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:3] == ["NAME", "WHERE", "FORMAT"]
    column = lines[0].index("WHERE")
    assert all(line[column - 2 : column] == "  " for line in lines[1:])


def test_config_files_may_hold_spaces(tmp_path):
    from recbole_ext.cli.parse import parse

    spaced = tmp_path / "my settings.yaml"
    spaced.write_text("epochs: 1\n")
    assert parse(["--model=A", "--dataset=d", f"--config_files={spaced}"]).config_files == (str(spaced),)
    two = parse(["--model=A", "--dataset=d", f'--config_files="{spaced}" b.yaml'])
    assert two.config_files == (str(spaced), "b.yaml")


def test_the_model_printout_stays_in_the_log(empty, capsys):
    work, data = empty
    assert cli.main(["--model=GRU4Rec", *SLICE, f"--data_path={data}", *TINY[:-1], "--state=INFO", "--no-save"]) == 0
    err = capsys.readouterr().err
    assert "GRU4Rec(" not in err and "Trainable parameters" in err
    (log,) = [f for f in files(work) if f.endswith(".log")]
    assert "GRU4Rec(" in open(work / log).read()
    assert torch.get_num_threads() >= 1


@pytest.mark.parametrize("where,needle", [("file", "is a file"), ("missing", "download is 'never'")])
def test_a_data_path_given_never_falls_back_to_the_bundled_copy(where, needle, empty, capsys):
    """ml-100k ships inside RecBole; a data_path the user names that does not hold it is an
    error (a fetch into it, here not allowed), never a silent run on the bundled copy."""
    work, _ = empty
    (work.parent / "FILE").write_text("x")
    path = work.parent / ("FILE" if where == "file" else "nowhere")
    rc = cli.main(["--model=GRU4Rec", "--dataset=ml-100k", f"--data_path={path}", "--download=never", *TINY])
    one_line(capsys, rc, needle=needle)
    assert files(work) == []
