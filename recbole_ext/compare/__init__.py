"""Side-by-side runs and comparison tables, the way papers report them.

``python run_recbole_ext.py --model=GLINTRU,SASRec,GRU4Rec --dataset=ml-100k [--seeds=1,2,3]
[--results-dir=DIR] [--force] [--no-plot] [--jobs=N] [--devices=0,1] [--key=value ...]``
(``--jobs``/``--devices``: the grid as separate processes, :mod:`recbole_ext.compare.parallel`)

For each seed, the data set is built and split once per *data-set class and data settings*
(RecBole builds sequential and general data sets differently; models that differ in a data key
such as ``MAX_ITEM_LIST_LENGTH`` get their own build), and every model of that group trains on
the same splits, with its own data loaders (built from the model's config: batch size, negative
sampling, its own training loader) and its own log file. Each finished run is stored as
``<results>/runs/<Model>-seed<S>.json`` (written atomically); a rerun with the same results
folder skips the runs found there unless ``--force``. A model that fails (bad config, out of
memory, any exception) is a row marked failed with its one-line reason; the others still run and
the exit status is 1.

The results folder (default ``results/<dataset>-<YYYYmmdd-HHMMSS>/``) holds
``comparison.md`` (also printed), ``comparison.csv``, ``comparison.tex``, ``comparison.png``
``configs/<Model>.yaml`` (resolved config, plain YAML), ``runs/*.json`` and
``log/<Model>/*.log``.

Columns: the test metrics RecBole reports, the best validation score, epochs run, the protocol
(``full`` ranking or ``sampled uni100``/``pop100``), trainable parameters, training seconds per
epoch, inference milliseconds per evaluation batch (mean over every valid and test evaluation),
peak memory (see :class:`PeakMemory`) and the device. With several seeds each cell is
``mean ± std`` (sample standard deviation) and the best model of every metric column is compared
with each other model by a paired t-test over seeds (:func:`scipy.stats.ttest_rel`); its value
gets ``*`` when it beats every other model with p < 0.05, and the p-values are listed below the
table. With one seed the test is a Wilcoxon signed-rank test over the test users' per-user values
(:mod:`recbole_ext.evaluation.per_user`). The best value of each column is bold (higher is better
for metrics, lower for errors and cost).
"""

from __future__ import annotations

import os
from typing import List, Optional

from recbole_ext.compare.runner import run_comparison
from recbole_ext.errors import UserError

__all__ = ["run_comparison", "run_from_args"]


def parse_list(value: Optional[str]) -> List[str]:
    return [v.strip() for v in (value or "").split(",") if v.strip()]


def parse_seeds(value: Optional[str]) -> Optional[List[int]]:
    if not value:
        return None
    try:
        seeds = [int(s) for s in parse_list(value)]
    except ValueError:
        raise UserError(f"--seeds takes integers separated by commas, got '{value}'") from None
    if len(set(seeds)) != len(seeds):
        raise UserError(f"--seeds lists a seed twice: '{value}'")
    return seeds


def run_from_args(args, config_args: List[str]) -> int:
    """Entry from :mod:`recbole_ext.cli`; returns 1 when a model failed, else 0."""
    if not args.dataset:
        raise UserError("no data set given: pass --dataset=NAME (ml-100k is bundled)")
    models = parse_list(args.model)
    seeds = parse_seeds(getattr(args, "seeds", None))
    config_files = args.config_files.split() if args.config_files else None
    options = dict(results_dir=getattr(args, "results_dir", None), force=bool(getattr(args, "force", False)),
                   saved=not getattr(args, "no_save", False), plot=not getattr(args, "no_plot", False),
                   model_config_dir=getattr(args, "model_configs", None))
    if options["model_config_dir"] and not os.path.isdir(options["model_config_dir"]):
        raise UserError(f"--model-configs: {options['model_config_dir']} is not a folder")
    jobs, devices = getattr(args, "jobs", None), getattr(args, "devices", None)
    if jobs is not None or devices:
        from recbole_ext.compare.parallel import parse_devices, run_parallel

        records, results_dir = run_parallel(models, args.dataset, config_files, config_args, seeds,
                                            jobs=1 if jobs is None else jobs, devices=parse_devices(devices), **options)
    else:
        records, results_dir = run_comparison(models, args.dataset, config_files, config_args, seeds=seeds, **options)
    if not getattr(args, "results_dir", None):
        print(f"[compare] to resume or extend this comparison, add --results-dir={results_dir}")
    return 1 if any(r.get("status") != "ok" for r in records) else 0
