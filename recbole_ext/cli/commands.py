"""What each command does with its request (:mod:`recbole_ext.command`); every handler returns
the exit status."""

from __future__ import annotations

import json
import os
import sys
import warnings
from typing import Callable, Dict

from recbole_ext import compare as compare_command
from recbole_ext import reproduce as reproduce_command
from recbole_ext import tune as tune_command
from recbole_ext.command import (
    CompareRequest,
    ConvertRequest,
    DataRequest,
    EvaluateRequest,
    ModelsRequest,
    RecommendRequest,
    ReportRequest,
    ReproduceRequest,
    TrainRequest,
    TuneRequest,
)
from recbole_ext.data.convert import convert as convert_files
from recbole_ext.data.fetch import fetch_dataset, find_or_fetch
from recbole_ext.data.locate import locate_dataset, short_path
from recbole_ext.data.sources import registry
from recbole_ext.data.stats import dataset_stats
from recbole_ext.errors import DatasetNotFoundError
from recbole_ext.pipeline import plain_metrics
from recbole_ext.quick_start import run_recbole_ext
from recbole_ext.registry import own_model_names, recbole_model_names
from recbole_ext.report import run as report_run
from recbole_ext.serving import Recommender, recommend_file
from recbole_ext.serving import recommend as recommend_items
from recbole_ext.serving.evaluate import evaluate_checkpoint


def train(request: TrainRequest) -> int:
    result = run_recbole_ext(
        request.model,
        request.dataset,
        request.files,
        cmd_args=list(request.config_args),
        saved=request.saved,
        resume_file=request.resume,
        trust_checkpoint=request.trust_checkpoint,
    )
    if result.get("rank", 0) != 0:  # a data-parallel rank: rank 0 reports
        return 0
    print(f"best valid: {plain_metrics(result['best_valid_result'])}")
    print(f"test result: {plain_metrics(result['test_result'])}")
    return 0


def compare(request: CompareRequest) -> int:
    return compare_command.command(request)


def tune(request: TuneRequest) -> int:
    return tune_command.run(request)


def reproduce(request: ReproduceRequest) -> int:
    return reproduce_command.run(request)


def evaluate(request: EvaluateRequest) -> int:
    result = evaluate_checkpoint(request.checkpoint, request.config_args, request.trust_checkpoint, request.device)
    print(f"valid: {result['valid']}")
    print(f"test: {result['test']}")
    return 0


def report(request: ReportRequest) -> int:
    return report_run(request)


def recommend(request: RecommendRequest) -> int:
    """One history (``--items``) to stdout, or a file of histories to ``--output``."""

    def show(message, category, filename, lineno, file=None, line=None):
        print(f"recbole_ext: warning: {message}", file=sys.stderr)

    warnings.showwarning = show
    rec = Recommender(request.checkpoint, trust_checkpoint=request.trust_checkpoint)
    if request.items_file:
        recs = recommend_file(rec, request.items_file, request.output, request.k, request.exclude_seen)
        print(f"wrote {sum(len(v) for v in recs.values())} rows for {len(recs)} users to {request.output}")
        return 0
    top = recommend_items(rec, request.items, request.k, request.exclude_seen)  # an error comes before any output
    print("rank\titem\tscore")
    for rank, (item, score) in enumerate(top, 1):
        print(f"{rank}\t{item}\t{score:.6g}")
    return 0


def convert(request: ConvertRequest) -> int:
    done = convert_files(request.format, request.input, request.name, request.out, request.force)
    print(f"wrote {done.interactions} interactions to {done.path}")
    return 0


def data(request: DataRequest) -> int:
    """``data list``: the registry and what is on disk; ``data fetch NAME``: fetch and convert
    without training; ``data stats NAME``: the figures of a data set (fetched first if needed)."""
    progress = sys.stderr.isatty()
    if request.action == "list":
        rows = [("NAME", "WHERE", "FORMAT", "SOURCE")]
        for name, source in sorted(registry(request.data_sources).items()):
            try:
                where = "on disk: " + short_path(locate_dataset(name, request.data_path))
            except DatasetNotFoundError:
                where = "downloaded on first use" if source.fetchable else "by hand"
            rows.append((name, where, source.format or "-", source.url or source.terms))
        widths = [max(len(r[i]) for r in rows) for i in range(3)]
        for row in rows:
            print("  ".join(cell.ljust(w) for cell, w in zip(row[:3], widths)) + "  " + row[3])
        return 0
    if request.action == "fetch":
        folder = fetch_dataset(request.name, request.root, request.data_sources, progress=progress)
        print(f"{request.name}: {folder}")
        return 0
    given = request.data_path is not None  # a data_path named is the only place looked at
    folder = find_or_fetch(request.name, request.data_path, request.data_sources, progress=progress, given=given)
    figures = dataset_stats(folder, request.name)
    print(json.dumps({"name": request.name, "folder": os.path.abspath(folder), **figures}, indent=1))
    return 0


def models(request: ModelsRequest) -> int:
    print("recbole_ext: " + ", ".join(own_model_names()))
    print("RecBole:     " + ", ".join(recbole_model_names()))
    return 0


#: the handler of each request type
HANDLERS: Dict[type, Callable] = {
    TrainRequest: train,
    CompareRequest: compare,
    TuneRequest: tune,
    ReproduceRequest: reproduce,
    EvaluateRequest: evaluate,
    ReportRequest: report,
    RecommendRequest: recommend,
    ConvertRequest: convert,
    DataRequest: data,
    ModelsRequest: models,
}
