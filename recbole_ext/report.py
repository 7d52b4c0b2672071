"""``recbole-ext report LOGDIR... [--out DIR] [--no-plot]``: rebuild the comparison table from
RecBole log files (ours or plain RecBole's)."""

from __future__ import annotations

import os
from typing import Dict, List

from recbole_ext.command import ReportRequest
from recbole_ext.results.logparse import records_from_logs
from recbole_ext.results.record import RunRecord
from recbole_ext.results.render import write_outputs


def run(request: ReportRequest) -> int:
    """The table of every data set the logs hold (in ``out/<dataset>`` when there are several);
    returns 1 when a log holds a failed run, else 0."""
    by_dataset: Dict[str, List[RunRecord]] = {}
    for rec in records_from_logs(list(request.logs)):
        by_dataset.setdefault(rec.dataset, []).append(rec)
    failed = False
    for dataset, recs in by_dataset.items():
        out = request.out
        if out and len(by_dataset) > 1:
            out = os.path.join(out, dataset)
        write_outputs(recs, dataset, out, plot=request.plot, title=f"Rebuilt from {len(recs)} log(s)")
        failed |= not all(r.ok for r in recs)
    return 1 if failed else 0
