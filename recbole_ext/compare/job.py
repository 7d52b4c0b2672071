"""One run of the parallel comparison grid, in a process of its own:
``python -m recbole_ext.compare.job REQUEST`` (the JSON of a :class:`~recbole_ext.command.CompareRequest`
for one model and at most one seed). It writes the run's record, config and log into the results
folder; the table is the parent's (:mod:`recbole_ext.compare.parallel`), which checked every
model before starting any job."""

from __future__ import annotations

import json
import sys
from typing import List, Optional

from recbole_ext.command import CompareRequest
from recbole_ext.compare import Comparison, finish
from recbole_ext.compare.runner import run_comparison


def main(argv: Optional[List[str]] = None) -> int:
    """The job's run; exits as the ``compare`` command does (1 when the run failed)."""
    fields = json.loads((sys.argv[1:] if argv is None else argv)[0])
    request = CompareRequest(**{k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()})
    done = Comparison(*run_comparison(request, write_table=False, checked=True))
    return finish("compare", done.results_dir, request.results_dir, done.ok)


if __name__ == "__main__":
    sys.exit(main())
