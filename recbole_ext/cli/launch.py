"""``recbole-ext-torchrun``: torchrun (its options unchanged) with recbole_ext's exit codes.

``torchrun`` itself exits 1 on Ctrl-C and on any failed rank, after its own failure block and
log lines. This launcher runs torchrun's own code (``torch.distributed.run``) and ends as a
recbole_ext command does: 130 on SIGINT and 143 on SIGTERM (each rank has printed its
interrupted line with the command that continues the run), a rank's own exit code when the rank
said why in its one line (1: the run failed, 2: a user error), and one line naming the rank
when a rank died without a word (killed, out of memory). Its ranks' resume commands name this
launcher (:func:`recbole_ext.cli.relaunch.relaunch_prefix`).

Before any agent starts it checks its own options (:func:`check_launch_options`: a mistake, or
no arguments, is one line, exit 2, not torchrun's usage text), reads the run's configuration (a
mistake in it is one line, exit 2, on this machine) and waits for the other machines' agents at
most ``dist_timeout_s`` (torchrun: 600 s of silence): a machine that never starts is one line,
exit 1, on every machine that did.
An explicit ``--rdzv-conf timeout=...`` or ``join_timeout=...`` wins.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import sys
import time
from typing import List, Optional

import torch
import yaml
from torch.distributed import DistError
from torch.distributed.elastic.multiprocessing.api import SignalException
from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
from torch.distributed.elastic.rendezvous import RendezvousError
from torch.distributed.run import get_args_parser, run

from recbole_ext.cli.parse import parse
from recbole_ext.cli.relaunch import LAUNCHER_VARIABLE
from recbole_ext.command import RunRequest
from recbole_ext.config_sources import OVERALL_YAML, load_yaml_file
from recbole_ext.errors import UserError
from recbole_ext.pipeline import Run

#: exit codes with which a rank of ours has already said why in one line
OWN_CODES = (1, 2, 130, 143)
NAME = "recbole-ext-torchrun"
#: the rendezvous keys of torchrun's static (``timeout``) and c10d (``join_timeout``) backends
RDZV_TIMEOUT_KEYS = ("timeout", "join_timeout")


def _our_script(args: argparse.Namespace) -> bool:
    """Whether torchrun starts recbole_ext's runner (whose arguments we can read)."""
    script = args.training_script
    if args.module:
        return script in ("recbole_ext", "recbole_ext.__main__")
    ours = os.path.basename(script) == "run_recbole_ext.py"
    return ours or script.endswith(os.path.join("recbole_ext", "__main__.py"))


def rendezvous_timeout(args: argparse.Namespace) -> float:
    """``dist_timeout_s`` of the run torchrun starts (files, then the command line, as the ranks
    resolve it); the package default for a script not ours. A mistake in the run's
    configuration is a UserError here, before any agent starts."""
    request = parse(list(args.training_script_args)) if _our_script(args) else None
    if not isinstance(request, RunRequest):
        return float(load_yaml_file(OVERALL_YAML, yaml.SafeLoader)["dist_timeout_s"])
    run = Run.resolve(request.models[0], request.dataset, request.files, cmd_args=request.config_args)
    return float(run.config["dist_timeout_s"])


def with_rendezvous_timeout(rdzv_conf: str, seconds: float) -> str:
    """``rdzv_conf`` (torchrun's ``k=v,k=v``) with both timeout keys set to ``seconds``, unless
    the user set one of them."""
    given = {item.split("=", 1)[0].strip() for item in rdzv_conf.split(",") if "=" in item}
    if given & set(RDZV_TIMEOUT_KEYS):
        return rdzv_conf
    ours = [f"{key}={max(1, round(seconds))}" for key in RDZV_TIMEOUT_KEYS]
    return ",".join([c for c in [rdzv_conf] if c] + ours)


def wait_for_master(args: argparse.Namespace, seconds: float) -> bool:
    """On a machine other than node 0 of torchrun's static rendezvous: whether node 0's
    rendezvous port accepts connections within ``seconds`` (checked here so that a node 0 that
    never starts is our one line, not torchrun's client-socket log)."""
    if args.rdzv_backend != "static" or int(args.node_rank) == 0:
        return True
    deadline = time.monotonic() + seconds
    while True:
        try:
            socket.create_connection((args.master_addr, int(args.master_port)), timeout=1.0).close()
            return True
        except OSError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.5)


#: the words torchrun's ``--nproc_per_node`` takes for "one per device of this kind"
NPROC_WORDS = ("auto", "cpu", "gpu", "xpu")


def _positive(text: str) -> bool:
    return text.strip().isdigit() and int(text) >= 1


def check_launch_options(args: argparse.Namespace) -> None:
    """The launcher's own options, before torchrun reads them (a one-line UserError otherwise):
    ``--nproc_per_node`` a positive number or one of :data:`NPROC_WORDS` whose device is here,
    ``--nnodes`` a positive number or a range ``MIN:MAX`` with ``1 <= MIN <= MAX``."""
    nproc = str(args.nproc_per_node)
    if not _positive(nproc) and nproc not in NPROC_WORDS:
        raise UserError(f"--nproc_per_node={nproc}; allowed: a number >= 1, or one of {', '.join(NPROC_WORDS)}")
    here = {"gpu": torch.cuda.is_available, "xpu": lambda: hasattr(torch, "xpu") and torch.xpu.is_available()}
    if nproc in here and not here[nproc]():
        raise UserError(f"--nproc_per_node={nproc}: this machine has no {nproc}; use a number, or 'cpu'")
    parts = str(args.nnodes).split(":")
    if len(parts) > 2 or not all(_positive(p) for p in parts) or int(parts[0]) > int(parts[-1]):
        raise UserError(f"--nnodes={args.nnodes}; allowed: a number >= 1, or MIN:MAX with 1 <= MIN <= MAX")


def parse_launch_args(argv: List[str]) -> argparse.Namespace:
    """torchrun's options parsed by torchrun's own parser, a mistake in them one line
    (:func:`check_launch_options`) instead of torchrun's usage text."""
    parser = get_args_parser()

    def error(message: str):
        raise UserError(f"{message} ({NAME} --help lists the options)")

    parser.error = error
    args = parser.parse_args(argv)
    check_launch_options(args)
    return args


def _rank_failure(e) -> int:
    rank, failure = e.get_first_failure()
    if failure.exitcode in OWN_CODES:
        return failure.exitcode
    code = failure.exitcode
    how = f"signal {signal.Signals(-code).name}" if code < 0 else f"exit code {code}"
    print(
        f"recbole_ext: error: rank {rank} (pid {failure.pid}) ended with {how} without a word; "
        "the last finished epoch is in the checkpoint",
        file=sys.stderr,
    )
    return 1


def _machines_missing(args: argparse.Namespace, seconds: float, e: BaseException) -> int:
    cause = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    print(
        f"recbole_ext: error: not every machine's launcher joined at {args.master_addr}:{args.master_port} "
        f"(node rank {args.node_rank} of {args.nnodes}) within {seconds:g} s ({cause}); nothing was started: "
        "start the others with the same --master-addr/--master-port, or raise dist_timeout_s",
        file=sys.stderr,
    )
    return 1


def main(argv: Optional[List[str]] = None) -> int:
    try:
        args = parse_launch_args(sys.argv[1:] if argv is None else argv)
        seconds = rendezvous_timeout(args)
    except UserError as e:
        print(f"recbole_ext: error: {e}", file=sys.stderr)
        return 2
    args.rdzv_conf = with_rendezvous_timeout(args.rdzv_conf, seconds)
    if not wait_for_master(args, seconds):
        return _machines_missing(args, seconds, ConnectionError("node 0 never answered"))
    os.environ[LAUNCHER_VARIABLE] = NAME  # the ranks' resume commands start with it
    logging.getLogger("torch.distributed").setLevel(logging.CRITICAL)  # torchrun's own lines
    try:
        run(args)
    except SignalException as e:
        return 128 + int(e.sigval)
    except ChildFailedError as e:
        return _rank_failure(e)
    except (DistError, RendezvousError) as e:
        return _machines_missing(args, seconds, e)
    return 0


if __name__ == "__main__":
    sys.exit(main())
