"""Side-by-side runs and comparison tables, the way papers report them.

``recbole-ext compare --model=GLINTRU,SASRec,GRU4Rec --dataset=ml-100k [--seeds=1,2,3]
[--results-dir=DIR] [--force] [--no-plot] [--jobs=N] [--devices=0,1] [--key=value ...]``
(``--jobs``/``--devices``: the grid as separate processes, :mod:`recbole_ext.compare.parallel`)

For each seed, the data set is built and split once per *data-set class and data settings*
(RecBole builds sequential and general data sets differently; models that differ in a data key
such as ``MAX_ITEM_LIST_LENGTH`` get their own build), and every model of that group trains on
the same splits, with its own data loaders (built from the model's config: batch size, negative
sampling, its own training loader) and its own log file. Each finished run is stored as
``<results>/runs/<Model>-seed<S>.json`` (written atomically); a rerun with the same results
folder skips the runs found there unless ``--force``. Every model's name and settings, and the
data set, are checked before the first run (:func:`recbole_ext.compare.runner.preflight`); a
model that fails while it runs (out of memory, a diverging loss, any exception) is a row marked
failed with its one-line reason; the others still run and the exit status is 1.

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

from typing import Callable

from recbole_ext.command import CompareRequest
from recbole_ext.compare.runner import run_comparison

__all__ = ["CompareRequest", "run", "run_comparison"]


def run(request: CompareRequest, echo: Callable[[str], None] = print) -> int:
    """The ``compare`` command: the grid in this process, or as separate processes with
    ``jobs``/``devices``; returns 1 when a model failed, else 0."""
    if request.parallel:
        from recbole_ext.compare.parallel import run_parallel

        records, results_dir = run_parallel(request, echo)
    else:
        records, results_dir = run_comparison(request, echo)
    if not request.results_dir:
        echo(f"[compare] to resume or extend this comparison, add --results-dir={results_dir}")
    return 1 if any(r.get("status") != "ok" for r in records) else 0
