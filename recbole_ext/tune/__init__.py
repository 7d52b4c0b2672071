"""Equal-budget tuning, then the comparison with the tuned settings.

``recbole-ext tune --model=A,B,C --dataset=NAME [--space=space.yaml] --trials=T [--jobs=N]
[--seeds=1,2,3] [--results-dir=DIR] [--no-compare] [--key=value ...]``

Every model gets the same search: ``T`` trials of Optuna's TPE sampler (seeded) over its space
(:mod:`recbole_ext.tune.space`), each trained with the same settings otherwise (``--epochs``,
early stopping on ``valid_metric``) and scored on the validation split only. Studies live in
``<results>/tune/studies.journal``: a rerun with the same results folder continues them (trials
a killed run left running are marked interrupted and do not count), so a model is never tuned
past ``T``. Each model's best setting is written to ``<results>/best/<Model>.yaml`` and the
trials to ``<results>/tuning.md``; then the comparison runs in the same folder with those files
(``compare --model-configs=<results>/best``), so the table sits beside the configs it used.
Optuna rather than RecBole's hyperopt path: that one imports ray 2.6.3, which does not import on
numpy 2.
"""

from __future__ import annotations

import datetime
import os
from typing import Callable, List, Optional, Sequence, Tuple

from recbole_ext.errors import UserError
from recbole_ext.fileio import atomic_write_text

__all__ = ["run_tune", "run_from_args"]


def run_tune(models: Sequence[str], dataset: str, space_path: Optional[str], trials: int, jobs: int = 1,
             config_files: Optional[List[str]] = None, cmd_args: Sequence[str] = (),
             seeds: Optional[Sequence[int]] = None, results_dir: Optional[str] = None,
             compare: bool = True, plot: bool = True,
             echo: Callable[[str], None] = print) -> Tuple[List[dict], str]:
    """Tune every model with the same budget, write the best configs, then compare them.

    Returns:
        ``(records, results_dir)``: the comparison's records (``[]`` with ``compare=False``).
    """
    from recbole_ext.tune.trials import mark_interrupted, open_study, used_budget

    import importlib.util

    if importlib.util.find_spec("optuna") is None:
        raise UserError("the tune command needs Optuna: pip install 'optuna>=4.0' (or the [tune] extra)")
    if trials < 1 or jobs < 1:
        raise UserError(f"--trials and --jobs must be at least 1, got {trials} and {jobs}")
    results_dir = results_dir or os.path.join(
        "results", f"{dataset}-tune-{datetime.datetime.now().strftime('%Y%m%d-%H%M%S')}")
    spec = _checked_spec(list(models), dataset, space_path, config_files, list(cmd_args), results_dir)
    todo: List[str] = []
    for model in spec.spaces:
        study = open_study(spec, model)
        stale = mark_interrupted(spec, model)
        left = max(0, trials - used_budget(study))
        echo(f"[tune] {model}: {trials - left} of {trials} trials done" + (f", {stale} interrupted" if stale else ""))
        todo += [model] * left
    _run_trials(spec, _interleave(todo), jobs, echo)
    best_dir = write_best(spec, trials, echo)
    if not compare:
        return [], results_dir
    if jobs > 1:
        from recbole_ext.compare.parallel import run_parallel

        return run_parallel(list(spec.spaces), dataset, config_files, list(cmd_args), seeds, results_dir, jobs=jobs,
                            devices=[], plot=plot, echo=echo, model_config_dir=best_dir)
    from recbole_ext.compare.runner import run_comparison

    return run_comparison(list(spec.spaces), dataset, config_files, list(cmd_args), seeds=seeds,
                          results_dir=results_dir, plot=plot, echo=echo, model_config_dir=best_dir)


def _checked_spec(models, dataset, space_path, config_files, cmd_args, results_dir):
    """Every model's space, checked against its config's types (each choice and both ends of
    each range) before any trial runs; the direction of its validation metric."""
    from recbole_ext.config import Config
    from recbole_ext.config_schema import Schema
    from recbole_ext.registry import canonical_model_name
    from recbole_ext.tune.space import extremes, load_space
    from recbole_ext.tune.trials import TuneSpec

    if not models:
        raise UserError("no model given: pass --model=A,B,...")
    spaces, directions, seed = {}, {}, 0
    for name in models:
        model = canonical_model_name(name)
        space = load_space(space_path, model)
        both = sorted(k for k in space if any(a.startswith(f"--{k}=") for a in cmd_args))
        if both:
            raise UserError(f"{model}: {', '.join(both)} is both searched and set on the command line")
        config = Config(model, dataset, config_files, extremes(space)[0], cmd_args)
        schema = Schema.from_files(config.default_files)
        for setting in extremes(space):
            schema.check(setting)
        spaces[model] = space
        directions[model] = "maximize" if config["valid_metric_bigger"] else "minimize"
        seed = int(config["seed"])
    return TuneSpec(dataset, results_dir, config_files, cmd_args, spaces, directions, seed)


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
    from recbole_ext.tune.trials import run_trial

    if jobs == 1 or len(todo) <= 1:
        for model in todo:
            echo("[tune] " + run_trial(spec, model))
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    threads = max(1, (os.cpu_count() or 1) // jobs)
    with ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        for line in pool.map(run_trial, [spec] * len(todo), todo, [threads] * len(todo)):
            echo("[tune] " + line)


def write_best(spec, trials: int, echo) -> str:
    """``best/<Model>.yaml`` (the best trial's settings, with where they came from) and
    ``tuning.md`` (one row per model); returns the ``best`` folder."""
    import yaml

    from recbole_ext.tune.trials import best_trial, open_study

    best_dir = os.path.join(spec.results_dir, "best")
    os.makedirs(best_dir, exist_ok=True)
    rows = ["| model | trials | failed | best valid score | best setting |", "|---|---|---|---|---|"]
    for model in spec.spaces:
        study = open_study(spec, model)
        done = [t for t in study.get_trials(deepcopy=False) if not t.user_attrs.get("interrupted")]
        failed = sum(1 for t in done if t.state.name == "FAIL")
        best = best_trial(study)
        if best is None:
            rows.append(f"| {model} | {len(done)} | {failed} | - | no trial finished |")
            echo(f"[tune] {model}: no trial finished; the comparison uses its defaults")
            continue
        head = (f"# {model} on {spec.dataset}: best of {len(done)} trials (budget {trials}), "
                f"trial {best.number}, validation score {best.value:.6g} ({spec.directions[model]})\n")
        atomic_write_text(os.path.join(best_dir, f"{model}.yaml"), head + yaml.safe_dump(best.params, sort_keys=True))
        setting = ", ".join(f"{k}={v!r}" for k, v in sorted(best.params.items()))
        rows.append(f"| {model} | {len(done)} | {failed} | {best.value:.4f} | {setting} |")
    atomic_write_text(os.path.join(spec.results_dir, "tuning.md"), "\n".join(rows) + "\n")
    echo("\n".join(rows))
    return best_dir


def run_from_args(args, config_args: List[str]) -> int:
    """Entry from :mod:`recbole_ext.cli`; returns 1 when a compared model failed, else 0."""
    from recbole_ext.compare import parse_list, parse_seeds

    if not args.dataset:
        raise UserError("no data set given: pass --dataset=NAME (ml-100k is bundled)")
    if args.trials is None:
        raise UserError("pass --trials=T: every model gets T trials")
    config_files = args.config_files.split() if args.config_files else None
    records, results_dir = run_tune(parse_list(args.model), args.dataset, args.space, args.trials, args.jobs or 1,
                                    config_files, config_args, parse_seeds(args.seeds), args.results_dir,
                                    compare=not args.no_compare, plot=not args.no_plot)
    if not args.results_dir:
        print(f"[tune] to resume this tuning, add --results-dir={results_dir}")
    return 1 if any(r.get("status") != "ok" for r in records) else 0
