"""The one run pipeline (:class:`Run`): resolve config -> prepare data -> build loaders -> build
model -> fit -> evaluate -> record. See :mod:`recbole_ext.pipeline.run`."""

from recbole_ext.pipeline.outcome import Fitted, RunResult, plain_metrics
from recbole_ext.pipeline.resolve import canonical_entry, model_of, resolve_all, split_entry
from recbole_ext.pipeline.run import Loaders, Run, Splits

__all__ = [
    "Fitted",
    "Loaders",
    "Run",
    "RunResult",
    "Splits",
    "canonical_entry",
    "model_of",
    "plain_metrics",
    "resolve_all",
    "split_entry",
]
