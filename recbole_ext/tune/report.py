"""What a tuning run leaves for its reader: ``best/<Model>.yaml`` (each model's best setting) and
``tuning.md`` (how the search was made and every trial it ran).

``tuning.md`` holds what a paper's appendix needs: the sampler and its seed, the budget, the
settings held fixed (the command line's keys and config files), then per model its validation
metric and direction, its search space, and one row per trial (number, state, score, setting,
the error of a failed one). Trials that did not count against the budget (interrupted by a kill,
or over the budget) are listed as such.
"""

from __future__ import annotations

import os
from typing import Callable, List

import optuna
import yaml

from recbole_ext.fileio import atomic_write_text
from recbole_ext.tune.trials import STUDY_FILE, best_trial, counts, open_study


def write_best(spec, trials: int, echo: Callable[[str], None]) -> str:
    """``best/<Model>.yaml`` for every model with a finished trial and ``tuning.md``; echoes the
    summary table and returns the ``best`` folder."""
    best_dir = os.path.join(spec.results_dir, "best")
    os.makedirs(best_dir, exist_ok=True)
    summary = [
        "| model | validation metric | trials | failed | best valid score | best setting |",
        "|---|---|---|---|---|---|",
    ]
    sections: List[str] = []
    for model in spec.spaces:
        study = open_study(spec, model)
        all_trials = study.get_trials(deepcopy=False)
        done = [t for t in all_trials if counts(t) and t.state.name != "RUNNING"]
        failed = sum(1 for t in done if t.state.name == "FAIL")
        best = best_trial(study)
        metric = spec.metrics.get(model, "validation score")
        sections.append(model_section(spec, model, all_trials))
        if best is None:
            summary.append(f"| {model} | {metric} | {len(done)} | {failed} | - | no trial finished |")
            echo(f"[tune] {model}: no trial finished; the comparison uses its defaults")
            continue
        head = (
            f"# {model} on {spec.dataset}: best of {len(done)} trials (budget {trials}), "
            f"trial {best.number}, {metric} {best.value:.6g} on the validation split ({spec.directions[model]})\n"
        )
        atomic_write_text(os.path.join(best_dir, f"{model}.yaml"), head + yaml.safe_dump(best.params, sort_keys=True))
        summary.append(f"| {model} | {metric} | {len(done)} | {failed} | {best.value:.4f} | {_setting(best.params)} |")
    text = "\n".join([*header(spec, trials), *summary, "", *sections])
    atomic_write_text(os.path.join(spec.results_dir, "tuning.md"), text.rstrip() + "\n")
    echo("\n".join(summary))
    return best_dir


def header(spec, trials: int) -> List[str]:
    """The lines that say how the search was made."""
    where = spec.storage.split("@")[-1] if spec.storage else os.path.join(spec.tune_dir, STUDY_FILE)
    fixed = " ".join(spec.cmd_args) or "(none)"
    files = " ".join(spec.config_files or []) or "(none)"
    return [
        f"# Tuning on {spec.dataset}",
        "",
        f"- sampler: Optuna {optuna.__version__} TPE (independent; its first 10 trials random), seed "
        f"{spec.sampler_seed}; trial n draws with a seed derived from ({spec.sampler_seed}, n)",
        f"- budget: {trials} trials per model, each scored on the validation split only",
        f"- settings held fixed: {fixed}",
        f"- config files: {files}",
        f"- studies: {where}",
        "",
    ]


def model_section(spec, model: str, trials) -> str:
    """One model's validation metric, space and trials."""
    metric = spec.metrics.get(model, "validation score")
    space = "; ".join(f"{key} {kind} {values}" for key, (kind, values) in spec.spaces[model].items())
    rows = [
        f"## {model}",
        "",
        f"- validation metric: {metric} ({spec.directions[model]})",
        f"- search space: {space}",
        "",
        f"| trial | state | {metric} | setting |",
        "|---|---|---|---|",
    ]
    for t in sorted(trials, key=lambda t: t.number):
        if t.user_attrs.get("over_budget"):
            continue
        score = f"{t.value:.6g}" if t.value is not None else "-"
        state = _state(t)
        if state == "failed" and t.user_attrs.get("error"):
            state += f": {t.user_attrs['error']}".replace("|", "/")
        rows.append(f"| {t.number} | {state} | {score} | {_setting(t.params)} |")
    return "\n".join(rows) + "\n"


def _state(trial) -> str:
    if trial.user_attrs.get("interrupted"):
        return "interrupted (not counted)"
    if trial.user_attrs.get("over_budget"):
        return "over budget (not run)"
    names = {"COMPLETE": "complete", "FAIL": "failed", "RUNNING": "running"}
    return names.get(trial.state.name, trial.state.name.lower())


def _setting(params) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in sorted(params.items()))
