"""Command line: ``recbole-ext COMMAND ...`` (also ``python -m recbole_ext`` and
``python run_recbole_ext.py``).

Commands (``train`` is the default, so ``run_recbole_ext.py --model=NAME --dataset=NAME`` trains):

- ``train --model=NAME --dataset=NAME [--config_files="a.yaml b.yaml"] [--resume=CKPT] [--key=value ...]``
- ``compare --model=A,B,C --dataset=NAME [--seeds=1,2,3] [--results-dir=DIR] [--force] [--no-plot] [--jobs=N]
  [--devices=0,1] [--model-configs=DIR]``
  (``train`` with a comma in ``--model``, or with ``--seeds``/``--results-dir``/``--force``, compares)
- ``tune --model=A,B,C --dataset=NAME --trials=T [--space=FILE] [--jobs=N] [--no-compare]``: the same
  Optuna budget for every model on the validation split, then the comparison with the best settings
- ``report LOGDIR... [--out DIR] [--no-plot]``: the comparison table from existing log files
- ``recommend --checkpoint=CKPT (--items=ID,ID,... | --items-file=IN --output=OUT) [--k=10] [--exclude-seen]``
- ``convert FORMAT INPUT --name NAME [--out datasets/]``: raw files to RecBole atomic files
- ``data list | fetch NAME | stats NAME [--data_path=DIR]``: the registry of public data sets
  (fetched from their publishers when first used), what is on disk, and its figures
- ``models``: every model name, ours and RecBole's

The flags of earlier versions keep working: ``--list-models`` is ``models``, ``--recommend`` is
``recommend``. A mistake the user can make (unknown model, missing data, bad YAML, conflicting
options, malformed data file) prints one line ``recbole_ext: error: ...`` on stderr and exits with
status 2, without a traceback.
"""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import sys
import threading
from typing import Callable, Dict, List, Optional, Tuple

from recbole_ext.errors import ArgumentParser, Interrupted, UserError

PROG = "recbole-ext"
COMMANDS = ("train", "compare", "tune", "report", "recommend", "convert", "data", "models")
USAGE = (
    f"{PROG} [train] --model=NAME --dataset=NAME [--config_files=\"a.yaml b.yaml\"] [--resume=CKPT] [--key=value ...]\n"
    f"       {PROG} compare --model=A,B,C --dataset=NAME [--seeds=1,2,3] [--results-dir=DIR] [--jobs=N] [--devices=0,1]\n"
    f"       {PROG} tune --model=A,B,C --dataset=NAME --trials=T [--space=FILE] [--jobs=N] [--results-dir=DIR]\n"
    f"       {PROG} report LOGDIR... [--out DIR] [--no-plot]\n"
    f"       {PROG} recommend --checkpoint=CKPT (--items=ID,ID,... | --items-file=IN --output=OUT) [--k=10]\n"
    f"       {PROG} convert FORMAT INPUT --name NAME [--out DIR]\n"
    f"       {PROG} data list | fetch NAME | stats NAME [--data_path=DIR]\n"
    f"       {PROG} models"
)


def _parser(command: str, description: str) -> argparse.ArgumentParser:
    # no abbreviations: else --seed=7 would be taken for --seeds=7 and start a comparison
    return ArgumentParser(prog=f"{PROG} {command}", usage=USAGE, description=description)


def _run_options(parser: argparse.ArgumentParser) -> None:
    """Options of ``train`` and ``compare``; any other ``--key=value`` pair is a config key."""
    parser.add_argument("--model", "-m", help="model name, e.g. GLINTRU, mLSTM, SASRec (compare: A,B,C)")
    parser.add_argument("--dataset", "-d", help="data set name, e.g. ml-100k (bundled), amazon-beauty")
    parser.add_argument("--config_files", help="space-separated YAML files, later ones win")
    parser.add_argument("--no-save", action="store_true", help="do not write a checkpoint; test the last epoch")
    parser.add_argument("--seeds", help="compare: seeds separated by commas, e.g. 1,2,3 (mean, std, t-test)")
    parser.add_argument("--results-dir", dest="results_dir", help="compare: results folder")
    parser.add_argument("--force", action="store_true", help="compare: rerun models already in the results folder")
    parser.add_argument("--no-plot", dest="no_plot", action="store_true", help="compare: do not draw comparison.png")
    parser.add_argument("--jobs", type=int, help="compare: runs of the grid at a time, each its own process")
    parser.add_argument("--devices", help="compare: device indices, e.g. 0,1 (one run per device at a time)")
    parser.add_argument("--model-configs", dest="model_configs", metavar="DIR",
                        help="compare: a folder of <Model>.yaml files, each for its model (e.g. tune's best/)")
    parser.add_argument("--verbose", action="store_true", help="also print the resolved configuration on the console")


def train_parser() -> argparse.ArgumentParser:
    parser = _parser("train", "Train and test one model with RecBole's pipeline. Any other --key=value "
                     "pair overrides that config key (RecBole's precedence).")
    _run_options(parser)
    parser.add_argument("--resume", metavar="CKPT", help="continue training from a checkpoint (updated in place)")
    _trust_option(parser)
    return parser


def _trust_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--trust-checkpoint", action="store_true",
        help="allow a legacy RecBole checkpoint (a pickle: loading it can run code; only for files you trust)",
    )


def recommend_parser() -> argparse.ArgumentParser:
    parser = _parser("recommend", "Recommend items from a trained checkpoint.")
    parser.add_argument("--checkpoint", metavar="CKPT", help="checkpoint to recommend with")
    parser.add_argument("--items", help="comma-separated item tokens of one history, most recent last")
    parser.add_argument("--items-file", help="histories, one per line: user<TAB>item item item")
    parser.add_argument("--output", help="TSV written by --items-file: user, rank, item, score")
    parser.add_argument("--k", type=int, default=10, help="how many items to recommend (default 10)")
    parser.add_argument("--exclude-seen", action="store_true", help="do not recommend the input items")
    parser.add_argument("--recommend", action="store_true", help=argparse.SUPPRESS)
    _trust_option(parser)
    return parser


def split_args(argv: List[str], parser: Optional[argparse.ArgumentParser] = None) -> Tuple[argparse.Namespace, List[str]]:
    """Our own options, and the ``--key=value`` pairs that go to the config."""
    args, rest = (parser or train_parser()).parse_known_args(argv)
    for arg in rest:
        if not arg.startswith("--") or "=" not in arg:
            raise UserError(f"unrecognised argument '{arg}': config options are written --key=value")
    if getattr(args, "verbose", False):
        rest = rest + ["--verbose=True"]
    return args, rest


def cmd_train(argv: List[str]) -> int:
    args, config_args = split_args(argv)
    if args.model and ("," in args.model or args.seeds or args.results_dir or args.force or args.jobs or args.devices
                       or args.model_configs):
        return _compare(args, config_args)
    _need_model_and_data(args)
    from recbole_ext.quick_start import plain_metrics, run_recbole_ext

    config_files = args.config_files.split() if args.config_files else None
    result = run_recbole_ext(args.model, args.dataset, config_files, cmd_args=config_args, saved=not args.no_save,
                             resume_file=args.resume, trust_checkpoint=args.trust_checkpoint)
    if result.get("rank", 0) != 0:  # a data-parallel rank: rank 0 reports
        return 0
    print(f"best valid: {plain_metrics(result['best_valid_result'])}")
    print(f"test result: {plain_metrics(result['test_result'])}")
    return 0


def _need_model_and_data(args: argparse.Namespace) -> None:
    if not args.model:
        raise UserError(f"no model given: pass --model=NAME (see '{PROG} models')")
    if not args.dataset:
        raise UserError("no data set given: pass --dataset=NAME (ml-100k is bundled)")


def cmd_compare(argv: List[str]) -> int:
    parser = _parser("compare", "Run several models on the same splits and write the comparison table.")
    _run_options(parser)
    args, config_args = split_args(argv, parser)
    return _compare(args, config_args)


def _compare(args: argparse.Namespace, config_args: List[str]) -> int:
    _need_model_and_data(args)
    from recbole_ext.compare import run_from_args

    return run_from_args(args, config_args)


def cmd_tune(argv: List[str]) -> int:
    parser = _parser("tune", "Tune every model with the same budget (Optuna, validation split only), "
                     "then compare them with their best settings.")
    _run_options(parser)
    parser.add_argument("--space", metavar="FILE", help="search space YAML (default: each model's packaged space)")
    parser.add_argument("--trials", type=int, help="trials per model (the same for every model)")
    parser.add_argument("--no-compare", dest="no_compare", action="store_true",
                        help="stop after tuning: write the best configs, do not run the comparison")
    args, config_args = split_args(argv, parser)
    _need_model_and_data(args)
    from recbole_ext.tune import run_from_args

    return run_from_args(args, config_args)


def cmd_report(argv: List[str]) -> int:
    from recbole_ext.report import main as report_main

    return report_main(argv)


def cmd_convert(argv: List[str]) -> int:
    from recbole_ext.data.convert import main as convert_main

    return convert_main(argv)


def cmd_models(argv: List[str]) -> int:
    if argv:
        raise UserError(f"'models' takes no arguments, got {' '.join(argv)}")
    from recbole_ext.registry import own_model_names, recbole_model_names

    print("recbole_ext: " + ", ".join(own_model_names()))
    print("RecBole:     " + ", ".join(recbole_model_names()))
    return 0


def cmd_recommend(argv: List[str]) -> int:
    """One history (``--items``) to stdout, or a file of histories to ``--output``."""
    args, rest = recommend_parser().parse_known_args(argv)
    if rest:
        raise UserError(f"recommend takes no config options, got {' '.join(rest)}")
    _check_recommend_args(args)
    import warnings

    from recbole_ext.serving import Recommender, recommend, recommend_file

    def show(message, category, filename, lineno, file=None, line=None):
        print(f"recbole_ext: warning: {message}", file=sys.stderr)

    warnings.showwarning = show
    rec = Recommender(args.checkpoint, trust_checkpoint=args.trust_checkpoint)
    if args.items_file:
        recs = recommend_file(rec, args.items_file, args.output, args.k, args.exclude_seen)
        print(f"wrote {sum(len(v) for v in recs.values())} rows for {len(recs)} users to {args.output}")
        return 0
    print("rank\titem\tscore")
    for rank, (item, score) in enumerate(recommend(rec, args.items, args.k, args.exclude_seen), 1):
        print(f"{rank}\t{item}\t{score:.6g}")
    return 0


def _check_recommend_args(args: argparse.Namespace) -> None:
    if not args.checkpoint:
        raise UserError("recommend needs --checkpoint=PATH")
    if bool(args.items) == bool(args.items_file):
        raise UserError("recommend needs exactly one of --items=ID,ID,... or --items-file=PATH")
    if args.items_file and not args.output:
        raise UserError("--items-file needs --output=PATH")
    if args.items_file and not os.path.isfile(args.items_file):
        raise UserError(f"--items-file {args.items_file} is not a file")
    if args.output and os.path.isdir(args.output):
        raise UserError(f"--output {args.output} is a folder: name the TSV file to write")
    if args.k < 1:
        raise UserError(f"--k must be at least 1, got {args.k}")


def cmd_data(argv: List[str]) -> int:
    """``data list``, ``data fetch NAME``, ``data stats NAME``."""
    parser = _parser("data", "The registry of public data sets, fetching, and figures of a data set.")
    parser.add_argument("action", choices=("list", "fetch", "stats"))
    parser.add_argument("name", nargs="?")
    parser.add_argument("--data_path", default="datasets", help="data folder (default datasets/)")
    parser.add_argument("--data_sources", help="a YAML file of your own registry entries")
    args = parser.parse_args(argv)
    if args.action != "list" and not args.name:
        raise UserError(f"'data {args.action}' needs a data-set name")
    from recbole_ext.data import commands

    return getattr(commands, args.action)(args)


HANDLERS: Dict[str, Callable[[List[str]], int]] = {
    "train": cmd_train, "compare": cmd_compare, "report": cmd_report, "recommend": cmd_recommend,
    "convert": cmd_convert, "data": cmd_data, "models": cmd_models, "tune": cmd_tune,
}


def run(argv: List[str]) -> int:
    if argv and argv[0] in ("-h", "--help"):
        print("usage: " + USAGE + "\n\n" + __doc__.split("\n\n", 1)[1].replace("``", ""))
        return 0
    if argv and argv[0] in HANDLERS:
        return HANDLERS[argv[0]](argv[1:])
    if argv and not argv[0].startswith("-"):
        raise UserError(f"unknown command '{argv[0]}': choose from {', '.join(COMMANDS)}")
    # the flags of earlier versions that chose another command
    if "--list-models" in argv:
        return cmd_models([a for a in argv if a != "--list-models"])
    if "--recommend" in argv:
        return cmd_recommend(argv)
    return cmd_train(argv)


def _on_sigterm(signum, frame):
    raise Interrupted("SIGTERM", 143)


def _interrupted_line(stop: KeyboardInterrupt, argv: List[str]) -> str:
    """What stopped the run and, when an epoch had finished, the command that continues it."""
    name = getattr(stop, "signal_name", "SIGINT")
    checkpoint = getattr(stop, "checkpoint", None)
    comparing = (argv[:1] == ["compare"] or any(a.startswith(("--model=", "-m=")) and "," in a for a in argv)
                 or any(a.startswith(("--seeds", "--results-dir")) for a in argv))
    if comparing:
        return f"recbole_ext: interrupted by {name}; run the same command again: finished runs are skipped"
    if not checkpoint:
        return f"recbole_ext: interrupted by {name}"
    rest = [a for a in argv if not a.startswith("--resume=")]
    command = shlex.join([PROG, *rest, f"--resume={checkpoint}"])
    return f"recbole_ext: interrupted by {name}; the last finished epoch is saved; continue with: {command}"


def main(argv: Optional[List[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    main_thread = threading.current_thread() is threading.main_thread()  # signals go to the main thread only
    previous = signal.signal(signal.SIGTERM, _on_sigterm) if main_thread else None
    try:
        return run(argv)
    except UserError as e:
        print(f"recbole_ext: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt as stop:
        print(_interrupted_line(stop, argv), file=sys.stderr)
        return getattr(stop, "exit_code", 130)
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
