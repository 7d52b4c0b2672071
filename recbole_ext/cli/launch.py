"""``recbole-ext-torchrun``: torchrun (its options unchanged) with recbole_ext's exit codes.

``torchrun`` itself exits 1 on Ctrl-C and on any failed rank, after its own failure block and
log lines. This launcher runs torchrun's own code (``torch.distributed.run``) and ends as a
recbole_ext command does: 130 on SIGINT and 143 on SIGTERM (each rank has printed its
interrupted line with the command that continues the run), a rank's own exit code when the rank
said why in its one line (1: the run failed, 2: a user error), and one line naming the rank
when a rank died without a word (killed, out of memory). Its ranks' resume commands name this
launcher (:func:`recbole_ext.distributed.relaunch_prefix`).
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from typing import List, Optional

#: exit codes with which a rank of ours has already said why in one line
OWN_CODES = (1, 2, 130, 143)
NAME = "recbole-ext-torchrun"


def main(argv: Optional[List[str]] = None) -> int:
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import parse_args, run

    args = parse_args(sys.argv[1:] if argv is None else argv)
    os.environ["RECBOLE_EXT_LAUNCHER"] = NAME  # the ranks' resume commands start with it
    logging.getLogger("torch.distributed").setLevel(logging.CRITICAL)  # torchrun's own lines
    try:
        run(args)
    except SignalException as e:
        return 128 + int(e.sigval)
    except ChildFailedError as e:
        rank, failure = e.get_first_failure()
        if failure.exitcode in OWN_CODES:
            return failure.exitcode
        how = (
            f"signal {signal.Signals(-failure.exitcode).name}"
            if failure.exitcode < 0
            else f"exit code {failure.exitcode}"
        )
        print(
            f"recbole_ext: error: rank {rank} (pid {failure.pid}) ended with {how} without a word; "
            "the last finished epoch is in the checkpoint",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
