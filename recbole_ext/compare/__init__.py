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
data set, are checked before the first run (:func:`preflight`); a
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

import dataclasses
from typing import Callable, Dict, List, Optional

from recbole_ext.command import CompareRequest
from recbole_ext.compare.layout import ResultsLayout, default_results_dir
from recbole_ext.compare.parallel import run_parallel
from recbole_ext.compare.runner import lenient_keys, preflight, resolve_runs, run_comparison
from recbole_ext.pipeline import Run
from recbole_ext.results.record import RunRecord

__all__ = [
    "CompareRequest",
    "Comparison",
    "ResultsLayout",
    "RunRecord",
    "command",
    "default_results_dir",
    "finish",
    "lenient_keys",
    "preflight",
    "resolve_runs",
    "run",
]


@dataclasses.dataclass(frozen=True)
class Comparison:
    """What a comparison gives back: one record per model and seed (in the table's order) and
    the results folder that holds them."""

    records: List[RunRecord]
    results_dir: str

    @property
    def ok(self) -> bool:
        """Whether every run finished."""
        return all(r.ok for r in self.records)


def run(
    request: CompareRequest,
    echo: Callable[[str], None] = print,
    config_dict: Optional[dict] = None,
    checked: Optional[Dict[str, Run]] = None,
) -> Comparison:
    """Run the comparison and write its table: in this process, or as separate processes with
    ``jobs``/``devices`` (:mod:`recbole_ext.compare.parallel`).

    Args:
        request: what to compare.
        echo: where progress lines and the table go.
        config_dict: parameters for every model, between the config files and the options (in
            this process only: the parallel grid's processes read files and options).
        checked: the result of :func:`preflight` when the caller ran it already (it is not run
            again); else every model and setting is checked before the first run.
    """
    if request.parallel:
        records, results_dir = run_parallel(request, echo, runs=checked)
    else:
        records, results_dir = run_comparison(request, echo, config_dict, checked=checked is not None)
    return Comparison(records, results_dir)


def finish(
    command_name: str,
    results_dir: str,
    given: Optional[str],
    ok: bool,
    echo: Callable[[str], None] = print,
    what: str = "resume or extend this comparison",
) -> int:
    """The end of a command that ran a comparison: how to resume it when the results folder was
    named for it (``given`` is the folder the user gave, if any), and the exit status, 1 when a
    run failed."""
    if not given:
        echo(f"[{command_name}] to {what}, add --results-dir={results_dir}")
    return 0 if ok else 1


def command(request: CompareRequest, echo: Callable[[str], None] = print) -> int:
    """The ``compare`` command; returns 1 when a model failed, else 0."""
    comparison = run(request, echo)
    return finish("compare", comparison.results_dir, request.results_dir, comparison.ok, echo)
