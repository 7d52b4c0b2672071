"""The tune command: the same Optuna budget for every model, validation only, resumable after a
kill, best configs beside the comparison that used them; bad spaces refused in one line."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
import yaml

from recbole_ext.cli import main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SPACE = """\
all:
  learning_rate: {loguniform: [1.0e-3, 1.0e-2]}
GRU4Rec:
  dropout_prob: {choice: [0.1, 0.3]}
SASRec:
  hidden_dropout_prob: {choice: [0.2, 0.5]}
"""
SMALL = [
    "--epochs=1",
    "--MAX_ITEM_LIST_LENGTH=20",
    "--train_batch_size=256",
    "--hidden_size=16",
    "--embedding_size=16",
    "--n_layers=1",
    "--n_heads=2",
    "--inner_size=32",
    "--show_progress=False",
]


def _studies(results):
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    path = os.path.join(results, "tune", "studies.journal")
    if not os.path.exists(path):
        return {}
    storage = JournalStorage(JournalFileBackend(path))
    return {
        s.study_name: optuna.load_study(study_name=s.study_name, storage=storage).trials
        for s in optuna.get_all_study_summaries(storage)
    }


def _complete(trials):
    return [t for t in trials if t.state.name == "COMPLETE"]


@pytest.mark.slow
def test_tuning_two_models_is_killed_then_resumes_and_compares(ml100k_slice, tmp_path, monkeypatch):
    space = tmp_path / "space.yaml"
    space.write_text(SPACE)
    results = str(tmp_path / "results")
    args = [
        "tune",
        "--model=GRU4Rec,SASRec",
        "--dataset=ml-slice",
        f"--data_path={ml100k_slice}",
        f"--space={space}",
        "--trials=3",
        f"--results-dir={results}",
        "--no-plot",
        *SMALL,
    ]
    env = dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS="1")
    first = subprocess.Popen(
        [sys.executable, "-m", "recbole_ext", *args, "--jobs=2"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.time() + 240
    while time.time() < deadline and first.poll() is None:
        if any(_complete(t) for t in _studies(results).values()):
            break
        time.sleep(0.2)
    assert first.poll() is None, "the first run ended before it could be killed"
    os.killpg(first.pid, signal.SIGKILL)  # the parent and its trial processes
    first.wait()
    killed = _studies(results)
    kept = {m: len(_complete(t)) for m, t in killed.items()}
    running = {m: sum(t.state.name == "RUNNING" for t in ts) for m, ts in killed.items()}  # cut off by the kill
    assert sum(kept.values()) >= 1 and all(n < 3 for n in kept.values())

    monkeypatch.chdir(tmp_path)
    assert main([*args, "--jobs=2"]) == 0  # the comparison through the parallel grid: no failed row
    studies = _studies(results)
    for model in ("GRU4Rec", "SASRec"):
        trials = studies[model]
        budget = [t for t in trials if not t.user_attrs.get("interrupted") and not t.user_attrs.get("over_budget")]
        assert len(budget) == 3 and len(_complete(trials)) == 3  # the budget, not more
        assert sum(bool(t.user_attrs.get("interrupted")) for t in trials) == running.get(model, 0)
        assert len(_complete(trials)) >= kept.get(model, 0)  # finished trials were kept
        best = yaml.safe_load(open(os.path.join(results, "best", f"{model}.yaml")))
        used = yaml.safe_load(open(os.path.join(results, "configs", f"{model}.yaml")))
        assert best and all(used[k] == v for k, v in best.items())  # the comparison ran the best setting
        logs = os.path.join(results, "tune", "log", model)
        texts = [open(os.path.join(logs, log)).read() for log in os.listdir(logs)]
        assert sum("valid result" in t for t in texts) >= 3  # (a killed trial's log may be cut short)
        assert not any("test result" in t for t in texts)  # never scored on test
    assert os.path.isfile(os.path.join(results, "tuning.md"))
    table = open(os.path.join(results, "comparison.md")).read()
    assert "| GRU4Rec |" in table and "| SASRec |" in table and "failed" not in table


@pytest.mark.parametrize(
    "space,needle",
    [
        ("learning_rate: {logarithmic: [1, 2]}", "neither a model name nor a range"),
        ("learning_rate: {uniform: [0.1, 0.01]}", "low < high"),
        ("hidden_size: {choice: [[16, 32]]}", "choices must be"),
        ("dropout_prob: {choice: [0.1, 1.5]}", "dropout_prob=1.5"),
        ("epochs: {int: [1, 2]}", "both searched and set"),
    ],
)
def test_bad_search_space_is_one_line_before_any_trial(ml100k_slice, tmp_path, capsys, space, needle):
    path = tmp_path / "space.yaml"
    path.write_text(space + "\n")
    results = tmp_path / "results"
    rc = main(
        [
            "tune",
            "--model=GRU4Rec",
            "--dataset=ml-slice",
            f"--data_path={ml100k_slice}",
            f"--space={path}",
            "--trials=2",
            f"--results-dir={results}",
            "--epochs=1",
        ]
    )
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("recbole_ext: error:") and needle in err and len(err.strip().splitlines()) == 1
    assert not results.exists()


def test_packaged_spaces_fit_their_models():
    """Every packaged space of a RecBole model parses, and each of its values passes the model's
    config types (the model contract checks the spaces of ours: tests/test_model_contract.py)."""
    from recbole_ext.config import Config
    from recbole_ext.config_schema import Schema
    from recbole_ext.registry import own_model_names
    from recbole_ext.tune.space import TUNE_DIR, extremes, load_space

    recbole_models = [n[: -len(".yaml")] for n in sorted(os.listdir(TUNE_DIR)) if n[:-5] not in own_model_names()]
    assert recbole_models
    for model in recbole_models:
        space = load_space(None, model)
        config = Config(model, "ml-100k", config_dict={"download": "never"})
        schema = Schema.from_files(config.default_files)
        for setting in extremes(space):
            schema.check(setting)
            assert set(setting) <= set(config.final_config_dict), model


def test_model_configs_must_be_a_folder(tmp_path, capsys):
    rc = main(
        [
            "compare",
            "--model=GRU4Rec,SASRec",
            "--dataset=ml-100k",
            f"--model-configs={tmp_path / 'none'}",
            f"--results-dir={tmp_path / 'res'}",
        ]
    )
    err = capsys.readouterr().err
    assert rc == 2 and "--model-configs" in err and "is not a folder" in err
    assert not (tmp_path / "res").exists()


def test_a_trial_logs_unknown_keys_as_train_and_compare_do(ml100k_slice, tmp_path, monkeypatch):
    """A trial runs through the pipeline's steps: its log holds the unknown-key warning and the
    resolved config, as a training run's does."""
    import glob

    from recbole_ext.tune.trials import TuneSpec, train_and_validate

    monkeypatch.chdir(tmp_path)
    args = SMALL + [
        f"--data_path={ml100k_slice}",
        "--load_col={'inter': ['user_id', 'item_id', 'timestamp']}",
        "--hiden_size=8",
    ]
    spec = TuneSpec("ml-slice", str(tmp_path / "res"), None, args, {"GRU4Rec": {}}, {"GRU4Rec": "maximize"}, 0)
    score = train_and_validate(spec, "GRU4Rec", {"learning_rate": 0.005})
    (log,) = glob.glob(str(tmp_path / "res" / "tune" / "log" / "GRU4Rec" / "*.log"))
    text = open(log).read()
    assert "config key 'hiden_size' is not a key of GRU4Rec" in text and "Hyper Parameters" in text
    assert 0 <= score <= 1 and "test result" not in text


def _postgres_bin(name: str):
    """A PostgreSQL server program (Debian keeps them in /usr/lib/postgresql/<version>/bin)."""
    import glob
    import shutil

    return shutil.which(name) or next(iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))[-1:]), None)


@pytest.fixture
def postgres():
    """A PostgreSQL server of the test's own on 127.0.0.1 (as the ``postgres`` user when the
    test runs as root: the server refuses root); yields its URL for database ``tune``."""
    import pwd

    from recbole_ext.distributed import free_port

    initdb, pg_ctl = _postgres_bin("initdb"), _postgres_bin("pg_ctl")
    if not (initdb and pg_ctl):
        pytest.skip("PostgreSQL's server programs are not installed (.ci/run installs Debian's postgresql)")
    import pathlib
    import shutil
    import tempfile

    folder = pathlib.Path(tempfile.mkdtemp(prefix="recbole_ext-pg-"))  # the server's user must reach it
    as_user = []
    if os.geteuid() == 0:
        os.chown(folder, pwd.getpwnam("postgres").pw_uid, -1)
        as_user = ["runuser", "-u", "postgres", "--"]
    port = free_port()
    subprocess.run(
        as_user + [initdb, "-D", str(folder / "db"), "-A", "trust", "-U", "postgres"], check=True, capture_output=True
    )
    options = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1"
    subprocess.run(
        as_user + [pg_ctl, "-D", str(folder / "db"), "-o", options, "-l", str(folder / "log"), "-w", "start"],
        check=True,
        capture_output=True,
    )
    try:
        import psycopg

        with psycopg.connect(host="127.0.0.1", port=port, user="postgres", dbname="postgres", autocommit=True) as conn:
            conn.execute("CREATE DATABASE tune")  # outside a transaction
        yield f"postgresql://postgres@127.0.0.1:{port}/tune"
    finally:
        subprocess.run(as_user + [pg_ctl, "-D", str(folder / "db"), "-m", "fast", "stop"], capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.slow
def test_two_tune_commands_share_one_study_in_postgresql(postgres, ml100k_slice, tmp_path):
    """Two ``tune`` processes (two "machines": their own results folders) on one study in one
    PostgreSQL database: together exactly the budget, none marks the other's trial interrupted."""
    import optuna

    space = tmp_path / "space.yaml"
    space.write_text("GRU4Rec:\n  learning_rate: {loguniform: [1.0e-3, 1.0e-2]}\n")
    env = dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS="1")

    def tune(name):
        args = [
            "tune",
            "--model=GRU4Rec",
            "--dataset=ml-slice",
            f"--data_path={ml100k_slice}",
            f"--space={space}",
            "--trials=4",
            f"--results-dir={tmp_path / name}",
            "--no-compare",
            f"--storage={postgres}",
            *SMALL[:1],
            "--MAX_ITEM_LIST_LENGTH=10",
            "--hidden_size=8",
            "--embedding_size=8",
            "--show_progress=False",
        ]
        return subprocess.Popen(
            [sys.executable, "-m", "recbole_ext", *args],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )

    first, second = tune("a"), tune("b")
    outs = [p.communicate(timeout=400)[0] for p in (first, second)]
    assert first.returncode == 0 and second.returncode == 0, outs
    trials = optuna.load_study(study_name="GRU4Rec", storage=postgres).trials
    counted = [t for t in trials if not t.user_attrs.get("over_budget")]
    assert len(counted) == 4 and all(t.state.name == "COMPLETE" for t in counted), [t.state for t in trials]
    assert not any(t.user_attrs.get("interrupted") for t in trials)
    owners = {t.user_attrs["owner_pid"] for t in counted}
    assert owners <= {first.pid, second.pid}


def test_rdb_storage_retries_a_schema_race(monkeypatch):
    """Two tune commands creating the database's tables at once: PostgreSQL's loser sees
    ``DuplicateObject: type "studydirection" already exists``; it tries again, and any other
    failure is one line."""
    import optuna

    from recbole_ext.errors import UserError
    from recbole_ext.tune import trials

    class DuplicateObject(Exception):
        pass

    calls = []

    def storage(url):
        calls.append(url)
        if len(calls) == 1:
            raise RuntimeError("wrapped") from DuplicateObject('type "studydirection" already exists')
        return "storage"

    monkeypatch.setattr(optuna.storages, "RDBStorage", storage)
    monkeypatch.setattr("time.sleep", lambda s: None)
    assert trials._rdb_storage("postgresql://x/db") == "storage" and len(calls) == 2

    def refused(url):
        raise RuntimeError("could not connect to server")

    monkeypatch.setattr(optuna.storages, "RDBStorage", refused)
    with pytest.raises(UserError, match="could not connect"):
        trials._rdb_storage("postgresql://x/db")
