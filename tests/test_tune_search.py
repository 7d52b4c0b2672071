"""The tuning search itself, with a stand-in for training (a score computed from the setting):
distinct, reproducible draws; a ``tuning.md`` that records the whole search; a journal lock that
a killed writer does not leave behind; trials marked interrupted only when their owner is gone."""

from __future__ import annotations

import os
import subprocess
import sys

from recbole_ext.cli import main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
#: a space of many points (two continuous ranges, 4 x 3 choices)
SPACE = """\
learning_rate: {loguniform: [1.0e-4, 1.0e-1]}
dropout_prob: {uniform: [0.0, 0.5]}
hidden_size: {choice: [8, 16, 32, 64]}
num_layers: {int: [1, 3]}
"""


def _fake_score(spec, model, params):
    """A deterministic score of the setting (no training)."""
    return params["learning_rate"] * 10 + params["dropout_prob"] - params["hidden_size"] / 1000


def _tune(tmp_path, ml100k_slice, name, monkeypatch, *extra):
    space = tmp_path / "space.yaml"
    space.write_text(SPACE)
    monkeypatch.setattr("recbole_ext.tune.trials.train_and_validate", _fake_score)
    results = tmp_path / name
    args = [
        "tune",
        "--model=GRU4Rec",
        "--dataset=ml-slice",
        f"--data_path={ml100k_slice}",
        f"--space={space}",
        "--trials=5",
        f"--results-dir={results}",
        "--no-compare",
        "--epochs=1",
        *extra,
    ]
    assert main(args) == 0
    import optuna

    from recbole_ext.tune.journal import journal_storage

    storage = journal_storage(str(results / "tune" / "studies.journal"))
    return optuna.load_study(study_name="GRU4Rec", storage=storage).trials, results


def test_five_trials_try_five_settings_and_a_rerun_draws_the_same(ml100k_slice, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    first, results = _tune(tmp_path, ml100k_slice, "a", monkeypatch)
    settings = [tuple(sorted(t.params.items())) for t in first]
    assert len(first) == 5 and all(t.state.name == "COMPLETE" for t in first)
    assert len(set(settings)) == 5, settings  # each trial its own draw
    again, _ = _tune(tmp_path, ml100k_slice, "b", monkeypatch)
    assert [tuple(sorted(t.params.items())) for t in again] == settings  # the seeded run reproduces
    other, _ = _tune(tmp_path, ml100k_slice, "c", monkeypatch, "--seed=7")
    assert [tuple(sorted(t.params.items())) for t in other] != settings

    text = (results / "tuning.md").read_text()
    assert "TPE" in text and "seed 2020" in text and "budget: 5 trials" in text
    assert "settings held fixed:" in text and "--epochs=1" in text
    assert "validation metric: mrr@10 (maximize)" in text
    assert "learning_rate loguniform [0.0001, 0.1]" in text and "hidden_size choice [8, 16, 32, 64]" in text
    for t in first:  # every trial's setting and score
        row = f"| {t.number} | complete | {t.value:.6g} |"
        assert row in text and f"learning_rate={t.params['learning_rate']!r}" in text


LOCK_AND_DIE = """\
import os, signal, sys
sys.path.insert(0, {root!r})
from recbole_ext.tune.trials import study_storage, TuneSpec
spec = TuneSpec("d", {results!r}, None, [], {{"GRU4Rec": {{}}}}, {{"GRU4Rec": "maximize"}}, 0)
storage = study_storage(spec)
storage._backend._lock.acquire()  # as a writer that is killed between taking and freeing it
os.kill(os.getpid(), signal.SIGKILL)
"""

OPEN_STUDY = """\
import sys
sys.path.insert(0, {root!r})
from recbole_ext.tune.trials import open_study, TuneSpec
spec = TuneSpec("d", {results!r}, None, [], {{"GRU4Rec": {{}}}}, {{"GRU4Rec": "maximize"}}, 0)
study = open_study(spec, "GRU4Rec")
study.enqueue_trial({{"x": 1}})
print("opened", len(study.trials))
"""


def test_a_writer_killed_while_holding_the_journal_lock_leaves_none_to_wait_on(tmp_path):
    results = str(tmp_path / "res")
    code = LOCK_AND_DIE.format(root=ROOT, results=results)
    killed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert killed.returncode == -9, killed.stderr
    rerun = subprocess.run(
        [sys.executable, "-c", OPEN_STUDY.format(root=ROOT, results=results)],
        capture_output=True,
        text=True,
        timeout=20,  # Optuna's symbolic-link lock waits 30 s before it forces a stale lock
    )
    assert rerun.returncode == 0 and "opened 1" in rerun.stdout, rerun.stderr
    assert "taking longer" not in rerun.stderr and "Forcibly" not in rerun.stderr


def test_a_symbolic_link_lock_left_by_a_killed_writer_is_released_with_one_line(tmp_path, capsys):
    from recbole_ext.tune.journal import STALE_LINK_S, journal_storage

    journal = tmp_path / "studies.journal"
    journal.write_text("")
    link = str(journal) + ".lock"
    os.symlink(str(journal), link)
    old = os.lstat(link).st_mtime - STALE_LINK_S - 60
    os.utime(link, (old, old), follow_symlinks=False)
    journal_storage(str(journal))
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("recbole_ext: released the lock") and link in err[0]
    assert not os.path.islink(link)


def test_a_running_trial_is_marked_interrupted_only_when_its_owner_is_gone(tmp_path):
    """A trial another live process runs (the second of two tune commands on one study) is left
    to it; a trial whose process has ended is failed as interrupted."""
    import socket

    from recbole_ext.tune.trials import TuneSpec, mark_interrupted, open_study

    spec = TuneSpec("d", str(tmp_path / "res"), None, [], {"GRU4Rec": {}}, {"GRU4Rec": "maximize"}, 0)
    study = open_study(spec, "GRU4Rec")
    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        for pid in (alive.pid, int(ended.stdout)):
            trial = study.ask()
            trial.set_user_attr("owner_host", socket.gethostname())
            trial.set_user_attr("owner_pid", pid)
        assert mark_interrupted(spec, "GRU4Rec") == 1
        states = [(t.user_attrs["owner_pid"], t.state.name) for t in open_study(spec, "GRU4Rec").trials]
        assert states == [(alive.pid, "RUNNING"), (int(ended.stdout), "FAIL")]
    finally:
        alive.kill()
        alive.wait()
