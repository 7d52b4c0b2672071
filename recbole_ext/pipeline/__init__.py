"""The one run pipeline (:class:`Run`): resolve config -> prepare data -> build loaders -> build
model -> fit -> evaluate -> record. See :mod:`recbole_ext.pipeline.run`."""

from recbole_ext.pipeline.outcome import RunResult, plain_metrics
from recbole_ext.pipeline.resolve import resolve_all
from recbole_ext.pipeline.run import Loaders, Run, Splits

__all__ = ["Loaders", "Run", "RunResult", "Splits", "plain_metrics", "resolve_all"]
