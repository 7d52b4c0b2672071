"""``recbole-ext report LOGDIR... [--out DIR] [--no-plot]``: rebuild the comparison table from
RecBole log files (ours or plain RecBole's)."""

from __future__ import annotations

import os
import sys
from typing import Dict, List, Optional

from recbole_ext.errors import ArgumentParser, UserError
from recbole_ext.results.logparse import records_from_logs
from recbole_ext.results.render import write_outputs


def main(argv: Optional[List[str]] = None) -> int:
    parser = ArgumentParser(
        prog="recbole-ext report",
        description="Rebuild the comparison table from RecBole log files (ours or plain RecBole's).",
    )
    parser.add_argument("logs", nargs="+", metavar="LOGDIR", help="log files or folders (searched recursively)")
    parser.add_argument("--out", help="folder to write comparison.md/.csv/.tex and the plot into")
    parser.add_argument("--no-plot", action="store_true", help="do not draw the plot")
    try:
        args = parser.parse_args(argv)
        if args.out and os.path.exists(args.out) and not os.path.isdir(args.out):
            raise UserError(f"--out {args.out} is a file: name a folder for the tables")
        records = records_from_logs(args.logs)
        by_dataset: Dict[str, List[dict]] = {}
        for rec in records:
            by_dataset.setdefault(rec["dataset"], []).append(rec)
        failed = False
        for dataset, recs in by_dataset.items():
            out = args.out
            if out and len(by_dataset) > 1:
                out = os.path.join(out, dataset)
            write_outputs(recs, dataset, out, plot=not args.no_plot, title=f"Rebuilt from {len(recs)} log(s)")
            failed |= any(r["status"] != "ok" for r in recs)
        return 1 if failed else 0
    except UserError as e:
        print(f"recbole_ext: error: {e}", file=sys.stderr)
        return e.exit_code


if __name__ == "__main__":
    sys.exit(main())
