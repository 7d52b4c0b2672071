"""One run of one model with one seed: what a comparison stores (``runs/<Model>-seed<S>.json``)
and renders, whether it comes from the runner or from a log file. A record is a
:class:`RunRecord` everywhere; it becomes JSON only where it is stored (:meth:`RunRecord.to_json`)
and read back (:meth:`RunRecord.from_json`)."""

from __future__ import annotations

import dataclasses
import json
from typing import Any, Dict, List, Optional


@dataclasses.dataclass
class RunRecord:
    """A finished (``status == "ok"``) or failed run.

    ``test_result`` and ``best_valid_result`` map metric names (``ndcg@10``) to values;
    ``valid_curve`` is ``[[epoch, validation score], ...]``; ``train_epoch_s`` the seconds of each
    training epoch; ``train_batches`` ``[[batches run, batches in the epoch], ...]`` per epoch
    (fewer run under ``train_batches_per_epoch``); ``eval_batch_ms`` the milliseconds per batch
    of each evaluation (of the loader that ran), ``eval_recbole_batch_ms`` the same time per batch
    of RecBole's own loader (``eval_batch_size`` candidate rows under sampled evaluation),
    ``eval_ms_per_2048_users`` the evaluation's time / users evaluated * 2048 (``None`` without a
    top-k ranking); ``peak_reserved_gib`` CUDA's peak reserved memory in GiB, RecBole's own figure
    (``None`` on the CPU); ``checkpoint`` the run's best-epoch checkpoint (``None`` without one).
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
    eval_recbole_batch_ms: List[float] = dataclasses.field(default_factory=list)
    eval_ms_per_2048_users: List[Optional[float]] = dataclasses.field(default_factory=list)
    train_batches: List[List[int]] = dataclasses.field(default_factory=list)
    peak_mem_mb: Optional[float] = None
    peak_rss_mb: Optional[float] = None
    peak_reserved_gib: Optional[float] = None
    mem_method: Optional[str] = None
    device: Optional[str] = None
    valid_curve: List[List[float]] = dataclasses.field(default_factory=list)
    #: the test split's top-k metrics per evaluated user (``{"ndcg@10": [...]}``), in evaluation order
    per_user: Dict[str, List[float]] = dataclasses.field(default_factory=dict)
    #: ``compare``, or the log file a record was read from
    source: str = "compare"
    #: hash of what decides the result (model, data set, seed, config files, options): a stored
    #: record with another one is run again
    fingerprint: Optional[str] = None
    #: the run's log file
    log_file: Optional[str] = None
    #: when the run finished (ISO 8601, seconds)
    finished_at: Optional[str] = None
    #: the time stamp in the log file's name (records read from logs)
    log_time: Optional[str] = None
    #: the run's best-epoch checkpoint (``None`` without one)
    checkpoint: Optional[str] = None

    @property
    def ok(self) -> bool:
        """Whether the run finished."""
        return self.status == "ok"

    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1, default=str)

    @classmethod
    def from_dict(cls, data: Dict[str, Any]) -> "RunRecord":
        """The record of a stored dict; keys it does not know are dropped, missing ones (and a
        ``null`` list or mapping) take their defaults. Raises ``TypeError`` without ``model``,
        ``dataset`` or ``seed``."""
        fields = {f.name: f for f in dataclasses.fields(cls)}
        known = {
            k: v
            for k, v in data.items()
            if k in fields and not (v is None and fields[k].default_factory is not dataclasses.MISSING)
        }
        return cls(**known)

    @classmethod
    def from_json(cls, text: str) -> Optional["RunRecord"]:
        """The record a stored JSON text holds, or ``None`` when it holds none (not JSON, not an
        object, or without ``model``, ``dataset`` or ``seed``): such a run is run again."""
        try:
            data = json.loads(text)
            return cls.from_dict(data) if isinstance(data, dict) else None
        except (ValueError, TypeError):
            return None


def failed_record(model: str, dataset: str, seed: Optional[int], reason: str, **extra: Any) -> RunRecord:
    """The record of a run that did not finish, with its one-line reason (``extra``: other
    fields of :class:`RunRecord`)."""
    return RunRecord(model, dataset, seed, status="failed", reason=reason, **extra)
