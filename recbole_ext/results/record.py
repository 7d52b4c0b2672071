"""One run of one model with one seed: what a comparison stores (``runs/<Model>-seed<S>.json``)
and renders, whether it comes from the runner or from a log file."""

from __future__ import annotations

import dataclasses
from typing import Dict, List, Optional


@dataclasses.dataclass
class RunRecord:
    """A finished (``status == "ok"``) or failed run.

    ``test_result`` and ``best_valid_result`` map metric names (``ndcg@10``) to values;
    ``valid_curve`` is ``[[epoch, validation score], ...]``; ``train_epoch_s`` the seconds of each
    training epoch; ``train_batches`` ``[[batches run, batches in the epoch], ...]`` per epoch
    (fewer run under ``train_batches_per_epoch``); ``eval_batch_ms`` the milliseconds per batch
    of each evaluation.
    """

    model: str
    dataset: str
    seed: Optional[int]
    status: str = "ok"
    reason: Optional[str] = None
    test_result: Dict[str, float] = dataclasses.field(default_factory=dict)
    best_valid_result: Dict[str, float] = dataclasses.field(default_factory=dict)
    best_valid_score: Optional[float] = None
    valid_metric: str = ""
    valid_metric_bigger: bool = True
    epochs_run: int = 0
    protocol: str = "full"
    n_params: Optional[int] = None
    train_epoch_s: List[float] = dataclasses.field(default_factory=list)
    eval_batch_ms: List[float] = dataclasses.field(default_factory=list)
    train_batches: List[List[int]] = dataclasses.field(default_factory=list)
    peak_mem_mb: Optional[float] = None
    peak_rss_mb: Optional[float] = None
    mem_method: Optional[str] = None
    device: Optional[str] = None
    valid_curve: List[List[float]] = dataclasses.field(default_factory=list)
    #: the test split's top-k metrics per evaluated user (``{"ndcg@10": [...]}``), in evaluation order
    per_user: Dict[str, List[float]] = dataclasses.field(default_factory=dict)
    source: str = "compare"

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def failed_record(model: str, dataset: str, seed, reason: str, **extra) -> dict:
    """The record of a run that did not finish, with its one-line reason."""
    rec = RunRecord(model, dataset, seed, status="failed", reason=reason).to_dict()
    rec.update(extra)
    return rec
