"""Optuna studies of a tuning run and the trials themselves.

One study per model, kept in ``<results>/tune/studies.journal`` (Optuna's journal file storage:
several processes may write it at once, and it survives a killed run), or in the database that
``tune --storage=URL`` names (Optuna's RDB storage through SQLAlchemy, e.g. PostgreSQL), which
several machines share. A trial trains on the training split and scores the validation split;
the test split is never evaluated.

The budget is exact however many processes and machines work on a study: every trial records
its owner (host and process id), and a trial runs only if fewer than the budget of the trials
numbered before it count (finished, failed on their own, or running with a live owner); the
others are told over budget at once and never count. A running trial is marked interrupted (it
does not count) only when its owner is gone: its process on this host has ended.
"""

from __future__ import annotations

import dataclasses
import os
import socket
import time
from typing import Any, Dict, List, Optional

import numpy as np
import optuna
import torch
from optuna.trial import TrialState

from recbole_ext.command import option_key
from recbole_ext.compare import ResultsLayout
from recbole_ext.errors import UserError, one_line
from recbole_ext.logger import close_logger
from recbole_ext.memory import release_memory
from recbole_ext.pipeline import Run
from recbole_ext.tune.journal import journal_storage
from recbole_ext.tune.space import Range, suggest

STUDY_FILE = "studies.journal"


@dataclasses.dataclass
class TuneSpec:
    """What every trial of one tuning run shares."""

    dataset: str
    results_dir: str
    config_files: Optional[List[str]]
    cmd_args: List[str]
    spaces: Dict[str, Dict[str, Range]]
    directions: Dict[str, str]
    sampler_seed: int
    #: an Optuna RDB storage URL (``None``: the journal file in the results folder)
    storage: Optional[str] = None
    #: trials per model
    budget: int = 0
    #: each model's validation metric (``valid_metric``, lower case)
    metrics: Dict[str, str] = dataclasses.field(default_factory=dict)

    @property
    def tune_dir(self) -> str:
        return os.path.abspath(os.path.join(self.results_dir, "tune"))


def study_storage(spec: TuneSpec):
    """The run's Optuna storage: the database of ``spec.storage``, else one journal file under a
    lock a killed run cannot leave behind (:mod:`recbole_ext.tune.journal`)."""
    if spec.storage:
        return _rdb_storage(spec.storage)

    return journal_storage(os.path.join(spec.tune_dir, STUDY_FILE))


def _rdb_storage(url: str, attempts: int = 5):
    """Optuna's RDB storage at ``url``; two processes creating its tables at the same moment
    collide once (the loser tries again); any other failure is one line."""
    for attempt in range(attempts):
        try:
            return optuna.storages.RDBStorage(url)
        except Exception as e:  # noqa: BLE001 - no driver, no server, a bad URL: one line
            cause = e.__cause__ or e
            text = f"{type(cause).__name__} {cause}".lower()  # e.g. DuplicateObject: type "..." already exists
            if ("duplicate" in text or "already exists" in text) and attempt < attempts - 1:
                time.sleep(0.5 * (attempt + 1))
                continue

            raise UserError(
                f"--storage {url}: {type(cause).__name__}: {str(cause).splitlines()[0]}; {_storage_hint(url)}"
            ) from None
    raise AssertionError("unreachable")


def _storage_hint(url: str) -> str:
    """What to check when the database of ``url`` cannot be opened."""
    if url.startswith("sqlite:"):
        return "the database file's folder must exist and be writable (sqlite:////absolute/path.db)"
    return "check the URL, that the server answers and that its Python driver is installed"


def open_study(spec: TuneSpec, model: str, storage=None) -> optuna.Study:
    """The model's study (created at the first call, loaded after). Optuna's own info lines stay
    off the console: the tune command says what happens in its own lines."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.create_study(
        study_name=model,
        storage=storage or study_storage(spec),
        direction=spec.directions[model],
        sampler=trial_sampler(spec.sampler_seed, 0),
        load_if_exists=True,
    )


def trial_sampler(seed: int, number: int) -> optuna.samplers.TPESampler:
    """The sampler that draws trial ``number``'s setting: TPE over the study's history, its
    random stream seeded from ``(seed, number)``. Every trial opens the study afresh (in its own
    process, perhaps on another machine), so one seed for all would make every start-up trial
    draw the first draw again; a seed per trial number gives distinct draws, the same ones in a
    rerun, however many processes share the study."""
    state = int(np.random.SeedSequence([int(seed) & 0xFFFFFFFF, int(number)]).generate_state(1)[0])
    return optuna.samplers.TPESampler(seed=state)


def _owner_alive(trial) -> bool:
    """Whether the process that runs ``trial`` may still be at work (another host: assumed)."""
    host, pid = trial.user_attrs.get("owner_host"), trial.user_attrs.get("owner_pid")
    if host is None or pid is None:
        return False  # a trial of an older run, without an owner
    if host != socket.gethostname():
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a killed process nobody has reaped yet (a zombie) is gone too
        with open(f"/proc/{int(pid)}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def mark_interrupted(spec: TuneSpec, model: str) -> int:
    """Fail the running trials whose owner is gone (they do not count against the budget);
    returns how many. Trials another live process runs are left to it."""
    storage = study_storage(spec)
    study_id = storage.get_study_id_from_name(model)
    stale = [
        t for t in storage.get_all_trials(study_id, deepcopy=False, states=(TrialState.RUNNING,)) if not _owner_alive(t)
    ]
    for t in stale:
        trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, t.number)
        storage.set_trial_user_attr(trial_id, "interrupted", True)
        storage.set_trial_state_values(trial_id, TrialState.FAIL)
    return len(stale)


def counts(trial) -> bool:
    """Whether ``trial`` counts against the budget: finished, failed on its own, or running."""
    if trial.user_attrs.get("interrupted") or trial.user_attrs.get("over_budget"):
        return False
    return trial.state in (TrialState.COMPLETE, TrialState.FAIL, TrialState.RUNNING)


def used_budget(study: optuna.Study) -> int:
    """Trials that count against the budget (:func:`counts`) that are done."""
    return sum(1 for t in study.get_trials(deepcopy=False) if counts(t) and t.state != TrialState.RUNNING)


def best_trial(study: optuna.Study) -> Optional[optuna.trial.FrozenTrial]:
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    return study.best_trial if complete else None


def run_trial(spec: TuneSpec, model: str, threads: int = 0) -> str:
    """Ask the model's study for a setting, train and validate it, tell the study; returns a
    one-line summary. A failing setting is a failed trial (it counts against the budget); a
    trial beyond the budget (other processes got there first) is told so and does not run."""
    if threads:
        torch.set_num_threads(threads)
    storage = study_storage(spec)
    study = open_study(spec, model, storage)
    trial = study.ask()
    study.sampler = trial_sampler(spec.sampler_seed, trial.number)  # before the first suggestion
    trial.set_user_attr("owner_host", socket.gethostname())
    trial.set_user_attr("owner_pid", os.getpid())
    before = [t for t in study.get_trials(deepcopy=False) if t.number < trial.number and counts(t)]
    if spec.budget and len(before) >= spec.budget:
        trial.set_user_attr("over_budget", True)
        study.tell(trial, state=TrialState.FAIL)
        return f"{model}: the budget of {spec.budget} trials is taken (trial {trial.number} not run)"
    params = suggest(trial, spec.spaces[model])
    try:
        score = train_and_validate(spec, model, params)
    except Exception as e:  # noqa: BLE001 - a failed trial is a result, not a crash
        trial.set_user_attr("error", one_line(e))
        study.tell(trial, state=TrialState.FAIL)
        return f"{model} trial {trial.number}: failed: {one_line(e)}"
    study.tell(trial, score)
    return f"{model} trial {trial.number}: valid score {score:.4f} with {params}"


def train_and_validate(spec: TuneSpec, model: str, params: Dict[str, Any]) -> float:
    """Train ``model`` with ``params`` and return its best validation score (early stopping on
    ``valid_metric``, as a run does); nothing is saved and the test split is never scored. The
    trial's log, TensorBoard run and checkpoint folder sit in ``<results>/tune/`` as a
    comparison's sit in its results folder."""
    layout = ResultsLayout(spec.tune_dir)
    lenient = [k for k in map(option_key, spec.cmd_args) if k is not None]
    settings = {**layout.run_outputs(), **params}
    run = Run.resolve(model, spec.dataset, spec.config_files, settings, spec.cmd_args, lenient_keys=lenient)
    run.attach_device()
    run.locate_data()
    run.open_log(layout.log_dir, console=False)
    try:
        fitted = run.fit(run.build_loaders(run.prepare_data()), saved=False)
    finally:
        close_logger()
        release_memory()
    return float(fitted.best_valid_score)
