"""Optuna studies of a tuning run and the trials themselves.

One study per model, kept in ``<results>/tune/studies.journal`` (Optuna's journal file storage:
several processes may write it at once, and it survives a killed run). A trial trains on the
training split and scores the validation split; the test split is never evaluated.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Dict, List, Optional

import optuna
from optuna.trial import TrialState

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

    @property
    def tune_dir(self) -> str:
        return os.path.join(self.results_dir, "tune")


def study_storage(spec: TuneSpec):
    """The run's Optuna storage (one journal file for every model's study)."""
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    os.makedirs(spec.tune_dir, exist_ok=True)
    return JournalStorage(JournalFileBackend(os.path.join(spec.tune_dir, STUDY_FILE)))


def open_study(spec: TuneSpec, model: str) -> optuna.Study:
    """The model's study (created at the first call, loaded after)."""
    return optuna.create_study(
        study_name=model,
        storage=study_storage(spec),
        direction=spec.directions[model],
        sampler=optuna.samplers.TPESampler(seed=spec.sampler_seed),
        load_if_exists=True,
    )


def mark_interrupted(spec: TuneSpec, model: str) -> int:
    """Fail the trials a killed run left running in the model's study (they do not count against
    the budget); returns how many. Only for a study no other process is working on."""
    storage = study_storage(spec)
    study_id = storage.get_study_id_from_name(model)
    stale = storage.get_all_trials(study_id, deepcopy=False, states=(TrialState.RUNNING,))
    for t in stale:
        trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, t.number)
        storage.set_trial_user_attr(trial_id, "interrupted", True)
        storage.set_trial_state_values(trial_id, TrialState.FAIL)
    return len(stale)


def used_budget(study: optuna.Study) -> int:
    """Trials that count against the budget: finished ones and those that failed on their own."""
    return sum(
        1
        for t in study.get_trials(deepcopy=False)
        if t.state == TrialState.COMPLETE or (t.state == TrialState.FAIL and not t.user_attrs.get("interrupted"))
    )


def best_trial(study: optuna.Study) -> Optional[optuna.trial.FrozenTrial]:
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    return study.best_trial if complete else None


def run_trial(spec: TuneSpec, model: str, threads: int = 0) -> str:
    """Ask the model's study for a setting, train and validate it, tell the study; returns a
    one-line summary. A failing setting is a failed trial (it counts against the budget)."""
    if threads:
        import torch

        torch.set_num_threads(threads)
    study = open_study(spec, model)
    trial = study.ask()
    params = suggest(trial, spec.spaces[model])
    try:
        score = train_and_validate(spec, model, params)
    except Exception as e:  # noqa: BLE001 - a failed trial is a result, not a crash
        from recbole_ext.compare.runner import one_line

        trial.set_user_attr("error", one_line(e))
        study.tell(trial, state=TrialState.FAIL)
        return f"{model} trial {trial.number}: failed: {one_line(e)}"
    study.tell(trial, score)
    return f"{model} trial {trial.number}: valid score {score:.4f} with {params}"


def train_and_validate(spec: TuneSpec, model: str, params: Dict[str, Any]) -> float:
    """Train ``model`` with ``params`` and return its best validation score (early stopping on
    ``valid_metric``, as a run does); nothing is saved and the test split is never scored."""
    from recbole_ext.compare.memory import release_memory
    from recbole_ext.logger import close_logger
    from recbole_ext.pipeline import Run

    inside = {
        "checkpoint_dir": os.path.join(spec.tune_dir, "saved"),
        "tensorboard_dir": os.path.join(spec.tune_dir, "log_tensorboard"),
    }
    run = Run.resolve(model, spec.dataset, spec.config_files, {**inside, **params}, spec.cmd_args)
    run.attach_device()
    run.locate_data()
    run.open_log(os.path.join(spec.tune_dir, "log"), console=False)
    try:
        result = run.train_and_test(run.build_loaders(run.prepare_data()), saved=False, test=False)
    finally:
        close_logger()
        release_memory()
    return float(result.best_valid_score)
