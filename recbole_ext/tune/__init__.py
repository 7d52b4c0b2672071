"""Equal-budget tuning, then the comparison with the tuned settings.

``recbole-ext tune --model=A,B,C --dataset=NAME [--space=space.yaml] --trials=T [--jobs=N]
[--seeds=1,2,3] [--results-dir=DIR] [--no-compare] [--key=value ...]``

Every model gets the same search: ``T`` trials of Optuna's TPE sampler (seeded) over its space
(:mod:`recbole_ext.tune.space`), each trained with the same settings otherwise (``--epochs``,
early stopping on ``valid_metric``) and scored on the validation split only. Studies live in
``<results>/tune/studies.journal``: a rerun with the same results folder continues them (trials
a killed run left running are marked interrupted and do not count), so a model is never tuned
past ``T``. Each model's best setting is written to ``<results>/best/<Model>.yaml`` and the
search with every trial to ``<results>/tuning.md`` (:mod:`recbole_ext.tune.report`); then the
comparison runs in the same folder with those files
(``compare --model-configs=<results>/best``), so the table sits beside the configs it used.
Optuna rather than RecBole's hyperopt path: that one imports ray 2.6.3, which does not import on
numpy 2.
"""

from __future__ import annotations

import difflib
import importlib.util
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from typing import Callable, List

from recbole_ext import compare
from recbole_ext.command import CompareRequest, TuneRequest, option_key
from recbole_ext.config_schema import Schema
from recbole_ext.errors import UserError
from recbole_ext.pipeline import Run, resolve_all
from recbole_ext.tune.space import extremes, load_space

__all__ = ["TuneRequest", "run", "run_tune"]


def run_tune(request: TuneRequest, echo: Callable[[str], None] = print) -> compare.Comparison:
    """Tune every model with the same budget, write the best configs, then compare them.

    Returns:
        the comparison (with no records when ``request.compare`` is off).
    """
    from recbole_ext.tune.trials import mark_interrupted, open_study, used_budget  # noqa: PLC0415 - Optuna is optional: checked first

    if importlib.util.find_spec("optuna") is None:
        raise UserError("the tune command needs Optuna: pip install 'optuna>=4.0' (or the [tune] extra)")
    results_dir = request.results_dir or compare.default_results_dir(request.dataset, "tune")
    spec = _checked_spec(request, results_dir)
    todo: List[str] = []
    for model in spec.spaces:
        study = open_study(spec, model)
        stale = mark_interrupted(spec, model)
        left = max(0, request.trials - used_budget(study))
        echo(
            f"[tune] {model}: {request.trials - left} of {request.trials} trials done"
            + (f", {stale} interrupted" if stale else "")
        )
        todo += [model] * left
    _run_trials(spec, _interleave(todo), request.jobs, echo)
    from recbole_ext.tune.report import write_best  # noqa: PLC0415 - Optuna is optional: checked first

    best_dir = write_best(spec, request.trials, echo)
    if not request.compare:
        return compare.Comparison([], results_dir)
    comparison = CompareRequest(
        tuple(spec.spaces),
        request.dataset,
        request.config_files,
        request.config_args,
        seeds=request.seeds,
        results_dir=results_dir,
        plot=request.plot,
        jobs=request.jobs if request.jobs > 1 else None,
        model_configs=best_dir,
    )
    return compare.run(comparison, echo)


def _checked_spec(request: TuneRequest, results_dir: str):
    """Every model's space, checked before any trial runs: its keys are keys of the model, each
    choice and both ends of each range pass the model's config types, no key is also set on the
    command line; the command line's keys are known to some model; the direction of each
    model's validation metric."""
    from recbole_ext.tune.trials import TuneSpec  # noqa: PLC0415 - Optuna is optional: checked first

    runs = resolve_all(request.models, request.dataset, lambda model: request.files, None, request.config_args)
    lenient = {k for k in map(option_key, request.config_args) if k is not None}
    spaces, directions, metrics, seed = {}, {}, {}, 0
    for model, plain in runs.items():
        space = load_space(request.space, model)
        both = sorted(k for k in space if k in lenient)
        if both:
            raise UserError(f"{model}: {', '.join(both)} is both searched and set on the command line")
        strange = sorted(k for k in space if k not in plain.config.final_config_dict)
        if strange:
            close = difflib.get_close_matches(strange[0], list(plain.config.final_config_dict), n=3)
            hint = f"did you mean {', '.join(close)}?" if close else f"{model}'s keys are in its properties/model YAML"
            raise UserError(
                f"the search space of {model} has {strange[0]!r}, which is not a key of {model}, "
                f"its data set or RecBole; {hint}"
            )
        config = Run.resolve(
            model, request.dataset, request.files, extremes(space)[0], request.config_args, lenient_keys=lenient
        ).config
        schema = Schema.from_files(config.default_files)
        for setting in extremes(space):
            schema.check(setting)
        spaces[model] = space
        directions[model] = "maximize" if config["valid_metric_bigger"] else "minimize"
        metrics[model] = str(config["valid_metric"]).lower()
        seed = int(config["seed"])
    return TuneSpec(
        request.dataset,
        results_dir,
        request.files,
        list(request.config_args),
        spaces,
        directions,
        seed,
        storage=request.storage,
        budget=request.trials,
        metrics=metrics,
    )


def _interleave(todo: List[str]) -> List[str]:
    """Trials ordered model by model in turn (A, B, A, B, ...), so a stopped run leaves every
    model about equally far."""
    order = list(dict.fromkeys(todo))
    queues = {m: todo.count(m) for m in order}
    out = []
    while len(out) < len(todo):
        for m in order:
            if queues[m]:
                out.append(m)
                queues[m] -= 1
    return out


def _run_trials(spec, todo: List[str], jobs: int, echo) -> None:
    """One trial per entry of ``todo``: in this process, or ``jobs`` processes at a time."""
    from recbole_ext.tune.trials import run_trial  # noqa: PLC0415 - Optuna is optional: checked first

    if jobs == 1 or len(todo) <= 1:
        for model in todo:
            echo("[tune] " + run_trial(spec, model))
        return

    threads = max(1, (os.cpu_count() or 1) // jobs)
    with ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        for line in pool.map(run_trial, [spec] * len(todo), todo, [threads] * len(todo)):
            echo("[tune] " + line)


def run(request: TuneRequest, echo: Callable[[str], None] = print) -> int:
    """The ``tune`` command; returns 1 when a compared model failed, else 0."""
    done = run_tune(request, echo)
    return compare.finish("tune", done.results_dir, request.results_dir, done.ok, echo, "resume this tuning")
