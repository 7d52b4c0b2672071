"""Table 3's measures as the paper measured them, beside our own definitions.

The paper's "inference per mini-batch of 2048" is RecBole's evaluation batch: under sampled
evaluation RecBole's loader fills a batch with ``eval_batch_size`` *candidate rows* (about 20
users x 101 candidates under pop100 at 2048), while our sampled loader puts ``eval_batch_size``
*users* in a batch. Its memory column is RecBole's own log figure, the CUDA allocator's peak
reserved memory in GiB. :data:`COST_MEASURES` names each measure with its unit and definition;
:func:`entry_costs` computes them for one row of the table from its runs' records (the fields
the comparison runner stores).
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Dict, Iterable, List, Optional

if TYPE_CHECKING:
    from recbole_ext.compare import RunRecord


@dataclasses.dataclass(frozen=True)
class Measure:
    """One column of the cost table: its header (with the unit) and what it is."""

    header: str
    definition: str


#: measure key -> its column; the paper's measures first, then our own definitions
COST_MEASURES: Dict[str, Measure] = {
    "train_s_epoch": Measure(
        "Train s/epoch",
        "seconds per training epoch, mean over epochs and seeds (a budget epoch's time scaled to the whole epoch)",
    ),
    "infer_ms_recbole_batch": Measure(
        "Infer ms/RecBole batch",
        "milliseconds per batch of RecBole's own evaluation loader (eval_batch_size candidate rows under sampled "
        "evaluation: about 20 users x 101 candidates at 2048), i.e. each evaluation's time divided by the number "
        "of batches RecBole's loader makes over the same users; mean over every validation and test evaluation "
        "(with --fast_sampled_eval=False the evaluation runs RecBole's own path, each user's sequence encoded once "
        "per candidate, as the paper's did)",
    ),
    "infer_ms_2048_users": Measure(
        "Infer ms/2048 users",
        "milliseconds per 2048 evaluated users: each evaluation's time / users evaluated x 2048; mean over every "
        "validation and test evaluation",
    ),
    "infer_ms_batch": Measure(
        "Infer ms/batch",
        "milliseconds per batch of the loader that ran (eval_batch_size users on the fast sampled path); mean over "
        "every validation and test evaluation",
    ),
    "mem_reserved_gib": Measure(
        "Reserved GiB",
        "CUDA only: peak memory reserved by PyTorch's allocator (torch.cuda.max_memory_reserved, the figure RecBole "
        "logs), GiB, mean over seeds; '-' on the CPU",
    ),
    "mem_allocated_gib": Measure(
        "Peak GiB",
        "peak memory of tensors on the GPU (torch.cuda.max_memory_allocated), or on the CPU the process's resident "
        "memory growth (approximate), GiB, mean over seeds",
    ),
}


#: a paper's cost column (the preset's key) -> the measure of :data:`COST_MEASURES` it stands beside
PAPER_MEASURES: Dict[str, str] = {
    "infer_ms": "infer_ms_recbole_batch",
    "train_s_epoch": "train_s_epoch",
    "mem_gb": "mem_reserved_gib",
}


def paper_measure(column: str) -> str:
    """The measure compared with a paper's cost column (the column itself when it names one)."""
    return PAPER_MEASURES.get(column, column)


def _mean(values: Iterable[Optional[float]]) -> Optional[float]:
    kept = [float(v) for v in values if v is not None]
    return sum(kept) / len(kept) if kept else None


def epoch_seconds(record: "RunRecord") -> List[float]:
    """Seconds of each training epoch of a run, a budget epoch (fewer batches run than the
    epoch holds) scaled to the whole epoch."""
    seconds = list(record.train_epoch_s or [])
    batches = list(record.train_batches or [])
    if not batches:
        return [float(s) for s in seconds]
    return [float(s) * total / max(done, 1) for s, (done, total) in zip(seconds, batches)]


def entry_costs(records: Iterable["RunRecord"]) -> Dict[str, Optional[float]]:
    """Every measure of :data:`COST_MEASURES` for one row, from its finished runs' records.

    Args:
        records: the row's run records (``status == "ok"`` ones are used).

    Returns:
        ``{measure key: value or None}``: means over every epoch, evaluation or seed there is.
    """
    ok = [r for r in records if r.ok]
    evals = {
        key: [v for r in ok for v in (getattr(r, field) or [])]
        for key, field in (
            ("infer_ms_recbole_batch", "eval_recbole_batch_ms"),
            ("infer_ms_2048_users", "eval_ms_per_2048_users"),
            ("infer_ms_batch", "eval_batch_ms"),
        )
    }
    peak_mb = [r.peak_mem_mb for r in ok]
    return {
        "train_s_epoch": _mean(s for r in ok for s in epoch_seconds(r)),
        **{key: _mean(values) for key, values in evals.items()},
        "mem_reserved_gib": _mean(r.peak_reserved_gib for r in ok),
        "mem_allocated_gib": None if _mean(peak_mb) is None else _mean(peak_mb) / 1024.0,
    }


def definitions_markdown() -> str:
    """One line per column: its header and definition (a table's footer)."""
    return "".join(f"- {m.header}: {m.definition}.\n" for m in COST_MEASURES.values())
