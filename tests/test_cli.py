"""The command line: user mistakes give one clear line, exit status 2, no traceback, no files."""

from __future__ import annotations

import os
import subprocess
import sys
import types

import pytest

from conftest import write_inter

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUNNER = os.path.join(ROOT, "run_recbole_ext.py")


def run_script(args, cwd):
    """``python run_recbole_ext.py ARGS`` in a process of its own, from ``cwd``."""
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    return subprocess.run(
        [sys.executable, RUNNER, *args], cwd=cwd, capture_output=True, text=True, env=env, timeout=600
    )


@pytest.fixture
def run_cli(monkeypatch, capsys):
    """``run_cli(args, cwd)``: what ``run_recbole_ext.py ARGS`` runs (``cli.main``), in this
    process from ``cwd``, as ``(returncode, stdout, stderr)`` (the script itself and the module
    entry point run as processes in their own tests)."""
    from recbole_ext.cli import main

    def run(args, cwd):
        monkeypatch.chdir(cwd)
        capsys.readouterr()
        try:
            code = main(list(args))
        except SystemExit as e:
            code = e.code
        out = capsys.readouterr()
        return types.SimpleNamespace(returncode=code, stdout=out.out, stderr=out.err)

    return run


def files_under(folder):
    return sorted(os.path.relpath(os.path.join(d, f), folder) for d, _, fs in os.walk(folder) for f in fs)


def assert_user_error(proc, *needles, cwd=None):
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [l for l in proc.stderr.splitlines() if l.startswith("recbole_ext: error:")]
    assert len(lines) == 1, proc.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    if cwd is not None:
        left = [f for f in files_under(cwd) if f.startswith(("log", "saved"))]
        assert not left, f"files left behind: {left}"


def test_unknown_model_lists_close_matches_and_where_all_names_are(tmp_path, run_cli):
    proc = run_cli(["--model=SASRek", "--dataset=ml-100k"], tmp_path)
    assert_user_error(
        proc, "unknown model 'SASRek'", "Did you mean: SASRec", "'recbole-ext models' lists all", cwd=tmp_path
    )


def test_missing_dataset_says_where_it_looked(tmp_path, run_cli):
    proc = run_cli(["--model=GRU4Rec", "--dataset=no-such-data"], tmp_path)
    assert_user_error(
        proc, "data set 'no-such-data' not found", "no-such-data.inter", "recbole-ext data list", cwd=tmp_path
    )


@pytest.mark.parametrize(
    "header,rows,needle",
    [
        (("user_id", "item_id:token", "timestamp:float"), [(1, 1, 1)], "user_id"),
        (("user_id:token", "item_id:token", "timestamp:float"), [(1, 1, 1), (1, 2, "soon")], "soon"),
        (("user_id:token", "item_id:token", "timestamp:float"), [], "line 2: no rows after the header"),
        (
            ("user_id:token", "item_id:token", "item_id:token", "timestamp:float"),
            [(1, 1, 1, 1)],
            "columns 2 and 3: field 'item_id' appears twice",
        ),
        (
            ("user_id:token", "item_id:token", "timestamp:float"),
            [(u, i, i) for u in (1, 2, 3) for i in range(1, 6)] + [(1, 7, "")],
            "line 17, column 3 ('timestamp'): blank",
        ),
        (
            ("user_id:token", "item_id:token", "timestamp:float"),
            [(1, 1, 1), (1, "caf\xe9", 2)],
            "line 3: not utf-8 text",
        ),
        (
            ("user_id:token", "item_id:token", "timestamp:float"),
            [(u, i, i) for u in (1, 2, 3) for i in range(1, 6)],
            "evaluation mode full ranks 5 items per user, fewer than topk [10]",
        ),
        (("user_id:token", "item_id:token", "timestamp:float"), [(1, 1, 1), (1, 2, 2), (2, 3, 1)], "part empty"),
    ],
    ids=[
        "header-without-type",
        "non-numeric-float",
        "header-only",
        "duplicated-column",
        "blank-time",
        "latin-1",
        "fewer-items-than-topk",
        "too-few-rows-to-split",
    ],
)
def test_malformed_atomic_file(tmp_path, header, rows, needle, run_cli):
    data = tmp_path / "data"
    write_inter(str(data), "bad", rows, header=header)
    if "latin-1" in needle or "utf-8" in needle:  # the same rows in another encoding
        path = data / "bad" / "bad.inter"
        path.write_bytes(path.read_text().encode("latin-1"))
    proc = run_cli(["--model=GRU4Rec", "--dataset=bad", f"--data_path={data}", "--epochs=1"], tmp_path)
    where = "data set 'bad'" if ("topk" in needle or "split" in needle or "part" in needle) else "bad.inter"
    assert_user_error(proc, where, needle, cwd=tmp_path)


def test_invalid_yaml(tmp_path, run_cli):
    bad = tmp_path / "bad.yaml"
    bad.write_text("epochs: [1, 2\nlearning_rate: 0.1\n")
    proc = run_cli(["--model=GRU4Rec", "--dataset=ml-100k", f"--config_files={bad}"], tmp_path)
    assert_user_error(proc, "invalid YAML", "bad.yaml", cwd=tmp_path)


def test_ce_loss_with_negative_sampling_conflicts(tmp_path, run_cli):
    cfg = tmp_path / "neg.yaml"
    cfg.write_text("loss_type: CE\ntrain_neg_sample_args:\n  distribution: uniform\n  sample_num: 1\n")
    proc = run_cli(["--model=GRU4Rec", "--dataset=ml-100k", f"--config_files={cfg}"], tmp_path)
    assert_user_error(proc, "CE", "negative sampling", cwd=tmp_path)


def test_option_without_value(tmp_path, run_cli):
    proc = run_cli(["--model=GRU4Rec", "--dataset=ml-100k", "--epochs"], tmp_path)
    assert_user_error(proc, "--epochs", cwd=tmp_path)


def test_misspelled_key_of_our_model_warns_with_known_keys(ml100k_slice):
    from recbole_ext.config import Config
    from recbole_ext.registry import own_model_names

    name = own_model_names()[0]
    probe = Config(name, "ml-slice", config_dict={"data_path": ml100k_slice})
    key = next(k for k in probe.own_model_keys if len(k) > 5 and k[2] != k[3])
    typo = key[:2] + key[3] + key[2] + key[4:]  # swap two letters
    cfg = Config(name, "ml-slice", config_dict={"data_path": ml100k_slice, typo: 1})
    warnings = getattr(cfg, "unknown_key_warnings", [])
    assert len(warnings) == 1 and repr(key) in warnings[0] and f"Known keys of {name}" in warnings[0]


def test_list_models_and_module_entry_point(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "recbole_ext", "--list-models"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert "SASRec" in proc.stdout and "recbole_ext:" in proc.stdout


@pytest.mark.slow
def test_cli_trains_and_prints_test_metrics(tmp_path, ml100k_slice):
    proc = run_script(
        [
            "--model=GRU4Rec",
            "--dataset=ml-slice",
            f"--data_path={ml100k_slice}",
            "--epochs=1",
            "--hidden_size=16",
            "--embedding_size=16",
            "--MAX_ITEM_LIST_LENGTH=20",
            "--show_progress=False",
            "--load_col={'inter': ['user_id', 'item_id', 'timestamp']}",
        ],
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "test result: {'recall@10':" in proc.stdout
    assert any(f.startswith("log") and f.endswith(".log") for f in files_under(tmp_path))


def test_options_are_never_abbreviated():
    """``--seed`` is RecBole's key, not an abbreviation of our ``--seeds`` (which would silently
    switch the run into comparison mode); likewise ``--resu`` is not ``--resume``."""
    from recbole_ext.cli.parse import parse

    request = parse(["--model=GLINTRU", "--dataset=ml-100k", "--seed=7", "--resu=x"])
    assert type(request).__name__ == "TrainRequest" and request.resume is None
    assert request.config_args == ("--seed=7", "--resu=x")


def test_each_line_parses_once_into_its_typed_request(monkeypatch):
    """One place decides the command: ``train`` is the default, a comma in ``--model`` or an
    option only ``compare`` has makes it compare, the flags of earlier versions still work."""
    from recbole_ext import command
    from recbole_ext.cli.parse import parse

    cases = {
        ("--model=GLINTRU", "--dataset=ml-100k", "--epochs=1"): command.TrainRequest,
        ("train", "--model=GLINTRU", "--dataset=ml-100k", "--no-save"): command.TrainRequest,
        ("--model=GLINTRU,SASRec", "--dataset=ml-100k"): command.CompareRequest,
        ("--model=GLINTRU", "--dataset=ml-100k", "--results-dir=r"): command.CompareRequest,
        ("--model=GLINTRU", "--dataset=ml-100k", "--jobs=2"): command.CompareRequest,
        ("compare", "-m", "A,B", "-d", "ml-100k", "--seeds=1,2"): command.CompareRequest,
        ("tune", "--model=A", "--dataset=d", "--trials=3"): command.TuneRequest,
        ("report", "logs/"): command.ReportRequest,
        ("models",): command.ModelsRequest,
        ("--list-models",): command.ModelsRequest,
        ("--recommend", "--checkpoint=x.pth", "--items=1"): command.RecommendRequest,
        ("data", "list"): command.DataRequest,
    }
    for argv, kind in cases.items():
        assert type(parse(list(argv))) is kind, argv
    train = parse(["--model=GLINTRU", "--dataset=ml-100k", "--no-save", "--epochs=1", "--verbose"])
    assert (train.model, train.saved, train.config_args) == ("GLINTRU", False, ("--epochs=1", "--verbose=True"))
    monkeypatch.setattr("recbole_ext.devices.cuda_indices", lambda: ("0", "1"))  # a machine with two GPUs
    comp = parse(["--model=A,B", "--dataset=d", "--seeds=1,2", "--devices=0,1", "--lr=1"])
    assert (comp.models, comp.seeds, comp.devices, comp.config_args) == (("A", "B"), (1, 2), ("0", "1"), ("--lr=1",))


@pytest.mark.parametrize(
    "argv,needle",
    [
        (["tune", "--model=A", "--dataset=d", "--trials=2", "--devices=0,1"], "tune does not take --devices"),
        (["tune", "--model=A", "--dataset=d", "--trials=2", "--force"], "tune does not take --force"),
        (
            ["tune", "--model=A", "--dataset=d", "--trials=2", "--model-configs=best"],
            "tune does not take --model-configs",
        ),
        (["tune", "--model=A", "--dataset=d", "--trials=2", "--no-save"], "tune does not take --no-save"),
        (["compare", "--model=A,B", "--dataset=d", "--resume=x.pth"], "compare does not take --resume"),
        (["--model=A,B", "--dataset=d", "--trials=3"], "compare does not take --trials"),
        (["train", "--model=A", "--dataset=d", "--space=s.yaml"], "train does not take --space"),
        (["compare", "--model=A,a", "--dataset=d"], "listed twice"),
        (["compare", "--model=A,B", "--dataset=d", "--seeds=1,x"], "--seeds takes integers"),
        (["compare", "--model=A,B", "--dataset=d", "--seeds=1", "--seed=3"], "either --seeds"),
        (["compare", "--model=A,B", "--dataset=d", "--jobs=0"], "--jobs must be at least 1"),
        (["compare", "--model=A,B", "--dataset=d", "--devices=a"], "--devices takes distinct"),
        (["tune", "--model=A", "--dataset=d"], "pass --trials=T"),
        (["compare", "--dataset=d"], "no model given"),
        (["tune", "--model=A", "--trials=2"], "no data set given"),
        (["recommend", "--items=1"], "needs --checkpoint"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_an_option_a_command_does_not_use_is_one_line(argv, needle, capsys):
    """Before any work: an option of another command is refused, not taken as a config key."""
    from recbole_ext import cli

    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("recbole_ext: error:") and needle in err[0], err


def test_requests_reach_their_handlers(monkeypatch):
    from recbole_ext import command
    from recbole_ext.cli import commands

    seen = []
    for kind in list(commands.HANDLERS):
        monkeypatch.setitem(commands.HANDLERS, kind, lambda request: seen.append(request) or 0)
    from recbole_ext import cli

    assert cli.main(["compare", "--model=A,B", "--dataset=d"]) == 0
    assert cli.main(["report", "logs/"]) == 0
    assert cli.main(["--model=GLINTRU", "--dataset=ml-100k"]) == 0
    assert [type(r) for r in seen] == [command.CompareRequest, command.ReportRequest, command.TrainRequest]
    assert seen[0].models == ("A", "B") and seen[1].logs == ("logs/",) and seen[2].model == "GLINTRU"


#: a fresh interpreter runs the command line's entry on argv, then prints what it imported
IMPORTS_OF = (
    "import sys\n"
    "from recbole_ext.cli import main\n"
    "try:\n"
    "    code = main(sys.argv[1:])\n"
    "except SystemExit as e:\n"
    "    code = e.code\n"
    "heavy = sorted(m for m in sys.modules if m == 'torch' or m.startswith(('torch.', 'recbole.')))\n"
    "print('EXIT', code, 'HEAVY', heavy[:5], file=sys.stderr)\n"
)


@pytest.mark.parametrize(
    "argv, code",
    [
        (["--help"], 0),
        (["train", "--help"], 0),
        (["compare", "--help"], 0),
        (["tune", "--help"], 0),
        (["--version"], 0),
        (["train", "--model=SASRec", "--dataset=x", "--bogus"], 2),
        (["compare", "--model=A,B", "--dataset=x", "--jobs=0"], 2),
        (["trian"], 2),
    ],
)
def test_help_and_argument_errors_import_neither_torch_nor_recbole(argv, code, tmp_path):
    """Help, the version and a mistaken command line answer without importing torch or RecBole's
    modules (RecBole's top package, which holds its version only, is read for the check)."""
    proc = subprocess.run(
        [sys.executable, "-c", IMPORTS_OF, *argv], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    last = proc.stderr.strip().splitlines()[-1]
    assert last == f"EXIT {code} HEAVY []", proc.stderr[-2000:]


def test_the_import_check_sees_torch(tmp_path):
    """The check above can fail: a request that runs (``models``) imports both."""
    proc = subprocess.run(
        [sys.executable, "-c", IMPORTS_OF, "models"], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("EXIT 0 HEAVY ['recbole.") or "'torch'" in last, proc.stderr[-2000:]


def test_unknown_subcommand_is_one_line(tmp_path, run_cli):
    proc = run_cli(["trian", "--model=GRU4Rec"], tmp_path)
    assert_user_error(proc, "unknown command 'trian'", "train, compare", cwd=tmp_path)


def test_models_subcommand(tmp_path, run_cli):
    proc = run_cli(["models"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "GLINTRU" in proc.stdout and "SASRec" in proc.stdout


def test_dataset_yaml_and_protocols_come_from_the_package(tmp_path, monkeypatch):
    """Outside the checkout (no ./yaml), a data set's YAML and a protocol named by file name are
    the ones shipped in the package."""
    from recbole_ext._paths import OWN_DATASET_YAML_DIR, PROTOCOL_YAML_DIR
    from recbole_ext.pipeline import Run

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("RECBOLE_EXT_YAML_DIR", raising=False)
    write_inter(
        str(tmp_path / "data"), "amazon-beauty", [(u, i, t) for u in range(1, 6) for t, i in enumerate(range(u, u + 6))]
    )
    run = Run.resolve(
        "GLINTRU", "amazon-beauty", ["protocol-pop100.yaml"], {"data_path": str(tmp_path / "data"), "download": "never"}
    )
    assert run.locate_data() == str(tmp_path / "data" / "amazon-beauty")  # the file written here
    cfg = run.config
    assert cfg["data_path"] == str(tmp_path / "data" / "amazon-beauty")
    assert cfg.dataset_yaml == os.path.join(OWN_DATASET_YAML_DIR, "amazon-beauty.yaml")
    assert cfg["user_inter_num_interval"] is None  # set by the shipped data-set YAML
    assert cfg["eval_args"]["mode"]["test"] == "pop100"  # set by the shipped protocol
    assert os.path.isfile(os.path.join(PROTOCOL_YAML_DIR, "protocol-pop100.yaml"))


def test_wheel_ships_the_yaml_files(tmp_path):
    """The data-set YAMLs and protocols are package data: a wheel built from the checkout holds them."""
    import zipfile

    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "-w",
            str(tmp_path),
            ROOT,
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    (wheel,) = [f for f in os.listdir(tmp_path) if f.endswith(".whl")]
    names = set(zipfile.ZipFile(tmp_path / wheel).namelist())
    assert "recbole_ext/properties/dataset/amazon-beauty.yaml" in names
    assert "recbole_ext/properties/quick_start_config/protocol-pop100.yaml" in names
    assert "recbole_ext/properties/model/GLINTRU.yaml" in names
    assert "recbole_ext/properties/config_limits.yaml" in names  # the typed configuration needs it
    assert "recbole_ext/properties/quick_start_config/protocol-ctr.yaml" in names
    assert not any(n.startswith(("tools/", "tests/")) for n in names)
