"""Command line: ``recbole-ext COMMAND ...`` (also ``python -m recbole_ext`` and
``python run_recbole_ext.py``).

Commands (``train`` is the default, so ``run_recbole_ext.py --model=NAME --dataset=NAME`` trains):

- ``train --model=NAME --dataset=NAME [--config_files="a.yaml b.yaml"] [--resume=CKPT] [--no-save]
  [--key=value ...]``
- ``compare --model=A,B,C --dataset=NAME [--seeds=1,2,3] [--results-dir=DIR] [--force] [--no-plot] [--jobs=N]
  [--devices=0,1] [--model-configs=DIR] [--no-save]``
  (``train`` with a comma in ``--model``, or with an option only ``compare`` has, compares)
- ``tune --model=A,B,C --dataset=NAME --trials=T [--space=FILE] [--jobs=N] [--seeds=...] [--results-dir=DIR]
  [--no-compare] [--no-plot]``: the same Optuna budget for every model on the validation split, then the
  comparison with the best settings
- ``reproduce PAPER --dataset=NAME [--model=A,B] [--seeds=1,2,3] [--budget=BATCHES] [--jobs=N | --devices=0,1]
  [--results-dir=DIR] [--paper-dataset=NAME] [--plan]``: a paper's models at its preset on one split, and
  its tables (``--plan``: every row's resolved settings, nothing run)
- ``evaluate --checkpoint=CKPT [--device=DEV] [--eval_key=value ...]``: a trained model's validation and
  test metrics again, under its own evaluation keys or others (``--eval_neg_exclude=history``, ...)
- ``report LOGDIR... [--out DIR] [--no-plot]``: the comparison table from existing log files
- ``recommend --checkpoint=CKPT (--items=ID,ID,... | --items-file=IN --output=OUT) [--k=10] [--exclude-seen]``
- ``convert FORMAT INPUT --name NAME [--out datasets/] [--force]``: raw files to RecBole atomic files
- ``data list | fetch NAME | stats NAME [--data_path=DIR]``: the registry of public data sets
  (fetched from their publishers when first used), what is on disk, and its figures
- ``models``: every model name, ours and RecBole's

Each command takes only its own options (:mod:`recbole_ext.cli.parse`); the flags of earlier
versions keep working: ``--list-models`` is ``models``, ``--recommend`` is ``recommend``. A
mistake the user can make (unknown model, missing data, bad YAML, conflicting options, malformed
data file) prints one line ``recbole_ext: error: ...`` on stderr and exits with status 2, without
a traceback.
"""

from __future__ import annotations

import shlex
import signal
import sys
import threading
from typing import List, Optional

from recbole_ext import __version__
from recbole_ext.cli.parse import COMMANDS, PROG, USAGE, Request, parse
from recbole_ext.cli.relaunch import relaunch_prefix
from recbole_ext.command import CompareRequest, ReproduceRequest, TuneRequest
from recbole_ext.errors import Interrupted, RunFailed, UserError

__all__ = ["COMMANDS", "main", "run"]


def run(argv: List[str]) -> int:
    """Parse ``argv`` into its request and run it; returns the exit status."""
    if argv[:1] == ["--version"]:
        print(f"{PROG} {__version__}")
        return 0
    request = parse(argv)
    if request is None:
        print("usage: " + USAGE + "\n\n" + __doc__.split("\n\n", 1)[1].replace("``", ""))
        return 0
    return run_request(request, argv)


def run_request(request: Request, argv: List[str]) -> int:
    """Run a parsed request; an interrupt ends in its one line (:func:`interrupted_line`)."""
    # the handlers import torch and RecBole: loaded once a request is parsed, so that help and
    # argument errors answer at once
    from recbole_ext.cli.commands import HANDLERS  # noqa: PLC0415 - keeps --help torch-free

    try:
        return HANDLERS[type(request)](request)
    except KeyboardInterrupt as stop:
        stop.request = request
        raise


def _on_sigterm(signum, frame):
    raise Interrupted("SIGTERM", 143)


def interrupted_line(stop: KeyboardInterrupt, request: Optional[Request], argv: List[str]) -> str:
    """What stopped the run and what continues it: for a comparison or a tuning, the same
    command; for a run with a finished epoch, the command with ``--resume`` (under torchrun,
    with torchrun's part: :func:`recbole_ext.cli.relaunch.relaunch_prefix`)."""
    name = getattr(stop, "signal_name", "SIGINT")
    checkpoint = getattr(stop, "checkpoint", None)
    if isinstance(request, (CompareRequest, ReproduceRequest, TuneRequest)):
        return f"recbole_ext: interrupted by {name}; run the same command again: finished runs are skipped"
    if not checkpoint:
        return f"recbole_ext: interrupted by {name}"
    rest = [a for a in argv if not a.startswith("--resume=")]
    command = shlex.join([*(relaunch_prefix() or [PROG]), *rest, f"--resume={checkpoint}"])
    return f"recbole_ext: interrupted by {name}; the last finished epoch is saved; continue with: {command}"


def main(argv: Optional[List[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    main_thread = threading.current_thread() is threading.main_thread()  # signals go to the main thread only
    previous = signal.signal(signal.SIGTERM, _on_sigterm) if main_thread else None
    try:
        return run(argv)
    except (UserError, RunFailed) as e:
        print(f"recbole_ext: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt as stop:
        print(interrupted_line(stop, getattr(stop, "request", None), argv), file=sys.stderr)
        return getattr(stop, "exit_code", 130)
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, previous)


def convert_main(argv: Optional[List[str]] = None) -> int:
    """``recbole-ext-convert FORMAT INPUT ...``: ``recbole-ext convert``."""
    return main(["convert", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
