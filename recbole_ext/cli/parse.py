"""``argv`` to a typed request (:mod:`recbole_ext.command`), once, for every command.

Each command takes its own options and no other: an option of another command is a one-line
error (``tune does not take --devices: it is an option of compare``), not a config key. Every
other ``--key=value`` pair of the commands that train is a config key. :func:`parse` is the one
place that decides which command a line asks for, ``train`` and ``compare`` included: ``train``
(the default command) with a comma in ``--model`` or an option only ``compare`` has compares.
"""

from __future__ import annotations

import argparse
import os
import shlex
from typing import Callable, Dict, List, Optional, Tuple, Union

from recbole_ext.command import (
    CompareRequest,
    ConvertRequest,
    DataRequest,
    EvaluateRequest,
    ModelsRequest,
    RecommendRequest,
    ReportRequest,
    ReproduceRequest,
    TrainRequest,
    TuneRequest,
    parse_devices,
    parse_seeds,
    split_list,
)
from recbole_ext.data.convert import FORMATS
from recbole_ext.errors import ArgumentParser, UserError

PROG = "recbole-ext"
COMMANDS = ("train", "compare", "tune", "reproduce", "evaluate", "report", "recommend", "convert", "data", "models")
USAGE = (
    f'{PROG} [train] --model=NAME --dataset=NAME [--config_files="a.yaml b.yaml"] [--resume=CKPT] [--key=value ...]\n'
    f"       {PROG} compare --model=A,B,C --dataset=NAME [--seeds=1,2,3] [--results-dir=DIR] [--jobs=N]"
    " [--devices=0,1]\n"
    f"       {PROG} tune --model=A,B,C --dataset=NAME --trials=T [--space=FILE] [--jobs=N] [--results-dir=DIR]\n"
    f"       {PROG} reproduce PAPER --dataset=NAME [--model=A,B] [--seeds=1,2,3] [--budget=BATCHES] [--jobs=N]"
    " [--devices=0,1] [--results-dir=DIR] [--paper-dataset=NAME] [--plan]\n"
    f"       {PROG} evaluate --checkpoint=CKPT [--device=DEV] [--eval_key=value ...]\n"
    f"       {PROG} report LOGDIR... [--out DIR] [--no-plot]\n"
    f"       {PROG} recommend --checkpoint=CKPT (--items=ID,ID,... | --items-file=IN --output=OUT) [--k=10]\n"
    f"       {PROG} convert FORMAT INPUT --name NAME [--out DIR] [--force]\n"
    f"       {PROG} data list | fetch NAME | stats NAME [--data_path=DIR]\n"
    f"       {PROG} models"
)
Request = Union[
    TrainRequest,
    CompareRequest,
    TuneRequest,
    ReproduceRequest,
    EvaluateRequest,
    RecommendRequest,
    ReportRequest,
    ConvertRequest,
    DataRequest,
    ModelsRequest,
]

#: the options of the commands that train, each with the commands that take it and its help
RUN_OPTIONS: Dict[str, Tuple[Tuple[str, ...], dict]] = {
    "--no-save": (("train", "compare"), dict(action="store_true", help="write no checkpoint; test the last epoch")),
    "--resume": (("train",), dict(metavar="CKPT", help="continue training from a checkpoint (updated in place)")),
    "--trust-checkpoint": (
        ("train", "recommend"),
        dict(
            action="store_true",
            help=("allow a legacy RecBole checkpoint (a pickle: loading it can run code; only for files you trust)"),
        ),
    ),
    "--seeds": (
        ("compare", "tune", "reproduce"),
        dict(help="seeds separated by commas, e.g. 1,2,3 (mean, std, t-test)"),
    ),
    "--results-dir": (("compare", "tune", "reproduce"), dict(help="results folder (the same folder resumes)")),
    "--force": (("compare", "reproduce"), dict(action="store_true", help="rerun models already in the results folder")),
    "--no-plot": (("compare", "tune"), dict(action="store_true", help="do not draw comparison.png")),
    "--jobs": (("compare", "tune", "reproduce"), dict(type=int, help="runs (trials) at a time, each its own process")),
    "--devices": (("compare", "reproduce"), dict(help="device indices, e.g. 0,1 (one run per device at a time)")),
    "--model-configs": (("compare",), dict(metavar="DIR", help="a folder of <Model>.yaml files (e.g. tune's best/)")),
    "--trials": (("tune",), dict(type=int, help="trials per model (the same for every model)")),
    "--space": (("tune",), dict(metavar="FILE", help="search space YAML (default: each model's packaged one)")),
    "--no-compare": (("tune",), dict(action="store_true", help="stop after tuning: write the best configs only")),
    "--storage": (("tune",), dict(metavar="URL", help="an Optuna RDB storage shared by several machines")),
    "--budget": (
        ("reproduce",),
        dict(type=int, metavar="BATCHES", help="train each run at most BATCHES batches an epoch, one epoch (CPU)"),
    ),
    "--plot": (("reproduce",), dict(action="store_true", help="draw comparison.png")),
    "--plan": (
        ("reproduce",),
        dict(action="store_true", help="write every row's resolved settings (plan.json) and run nothing"),
    ),
    "--paper-dataset": (
        ("reproduce",),
        dict(metavar="NAME", help="the preset's data set to run at, for a copy under another name"),
    ),
}
#: options of ``compare`` that ``train`` does not have: on a ``train`` line they make it compare
COMPARE_ONLY = tuple(o for o, (cmds, _) in RUN_OPTIONS.items() if "compare" in cmds and "train" not in cmds)
DESCRIPTIONS = {
    "train": "Train and test one model with RecBole's pipeline. Any other --key=value pair overrides that "
    "config key (RecBole's precedence).",
    "compare": "Run several models on the same splits and write the comparison table.",
    "tune": "Tune every model with the same budget (Optuna, validation split only), then compare them with "
    "their best settings.",
    "reproduce": "Run a paper's models and ablations at its settings (a preset shipped with recbole_ext) on one "
    "split and write its tables with the paper's values beside ours. Presets: glint-ru.",
}


def _parser(command: str, description: str) -> argparse.ArgumentParser:
    # no abbreviations: else --seed=7 would be taken for --seeds=7 and start a comparison
    return ArgumentParser(prog=f"{PROG} {command}", usage=USAGE, description=description)


def run_parser(command: str) -> argparse.ArgumentParser:
    """The parser of ``train``, ``compare`` or ``tune``: the shared options and its own."""
    parser = _parser(command, DESCRIPTIONS[command])
    parser.add_argument("--model", "-m", help="model name, e.g. GLINTRU, mLSTM, SASRec (compare, tune: A,B,C)")
    parser.add_argument("--dataset", "-d", help="data set name, e.g. ml-100k (bundled), amazon-beauty")
    parser.add_argument("--config_files", help="space-separated YAML files, later ones win")
    parser.add_argument("--verbose", action="store_true", help="also print the resolved configuration")
    for option, (commands, kwargs) in RUN_OPTIONS.items():
        if command in commands:
            parser.add_argument(option, dest=option[2:].replace("-", "_"), **kwargs)
    return parser


def split_args(command: str, argv: List[str]) -> Tuple[argparse.Namespace, List[str]]:
    """The command's own options, and the ``--key=value`` pairs that go to the config."""
    args, rest = run_parser(command).parse_known_args(argv)
    for arg in rest:
        name = arg.split("=", 1)[0]
        if name in RUN_OPTIONS:
            owners = " and ".join(RUN_OPTIONS[name][0])
            raise UserError(f"{command} does not take {name}: it is an option of {owners}")
        if not arg.startswith("--") or "=" not in arg:
            raise UserError(f"unrecognised argument '{arg}': config options are written --key=value")
    return args, rest + (["--verbose=True"] if args.verbose else [])


def is_comparison(argv: List[str]) -> bool:
    """Whether a ``train`` line compares: a comma in ``--model`` or an option only compare has."""
    names = {a.split("=", 1)[0] for a in argv if a.startswith("--")}
    probe = ArgumentParser(add_help=False)
    probe.add_argument("--model", "-m")
    model = probe.parse_known_args(argv)[0].model or ""
    return "," in model or bool(names & set(COMPARE_ONLY))


def config_file_list(value: Optional[str]) -> Tuple[str, ...]:
    """``--config_files``: one path (spaces and all) when it names a file, else the paths it
    lists, separated by spaces, each quoted when it holds one (``"my a.yaml" b.yaml``)."""
    if not value:
        return ()
    if os.path.isfile(value):
        return (value,)
    try:
        return tuple(shlex.split(value))
    except ValueError as e:
        raise UserError(f"--config_files {value!r}: {e}") from None


def _run_fields(args: argparse.Namespace, config_args: List[str]) -> dict:
    return dict(
        models=tuple(split_list(args.model)),
        dataset=args.dataset or "",
        config_files=config_file_list(args.config_files),
        config_args=tuple(config_args),
    )


def parse_train(argv: List[str]) -> Request:
    if is_comparison(argv):
        return parse_compare(argv)
    args, rest = split_args("train", argv)
    return TrainRequest(
        **_run_fields(args, rest), saved=not args.no_save, resume=args.resume, trust_checkpoint=args.trust_checkpoint
    )


def parse_compare(argv: List[str]) -> CompareRequest:
    args, rest = split_args("compare", argv)
    return CompareRequest(
        **_run_fields(args, rest),
        saved=not args.no_save,
        seeds=parse_seeds(args.seeds),
        results_dir=args.results_dir,
        force=args.force,
        plot=not args.no_plot,
        jobs=args.jobs,
        devices=parse_devices(args.devices),
        model_configs=args.model_configs,
    )


def parse_tune(argv: List[str]) -> TuneRequest:
    args, rest = split_args("tune", argv)
    return TuneRequest(
        **_run_fields(args, rest),
        trials=args.trials,
        space=args.space,
        jobs=1 if args.jobs is None else args.jobs,
        seeds=parse_seeds(args.seeds),
        results_dir=args.results_dir,
        compare=not args.no_compare,
        storage=args.storage,
        plot=not args.no_plot,
    )


def parse_reproduce(argv: List[str]) -> ReproduceRequest:
    paper = argv[0] if argv and not argv[0].startswith("-") else ""
    args, rest = split_args("reproduce", argv[1:] if paper else argv)
    fields = _run_fields(args, rest)
    return ReproduceRequest(
        paper=paper,
        dataset=fields["dataset"],
        models=fields["models"],
        seeds=parse_seeds(args.seeds),
        budget=args.budget,
        config_files=fields["config_files"],
        config_args=fields["config_args"],
        results_dir=args.results_dir,
        force=args.force,
        plot=args.plot,
        jobs=args.jobs,
        devices=parse_devices(args.devices),
        plan=args.plan,
        paper_dataset=args.paper_dataset,
    )


def parse_recommend(argv: List[str]) -> RecommendRequest:
    parser = _parser("recommend", "Recommend items from a trained checkpoint.")
    parser.add_argument("--checkpoint", metavar="CKPT", help="checkpoint to recommend with")
    parser.add_argument("--items", help="comma-separated item tokens of one history, most recent last")
    parser.add_argument("--items-file", help="histories, one per line: user<TAB>item item item")
    parser.add_argument("--output", help="TSV written by --items-file: user, rank, item, score")
    parser.add_argument("--k", type=int, default=10, help="how many items to recommend (default 10)")
    parser.add_argument("--exclude-seen", action="store_true", help="do not recommend the input items")
    parser.add_argument("--force", action="store_true", help="overwrite an existing --output")
    parser.add_argument("--recommend", action="store_true", help=argparse.SUPPRESS)  # the flag of old versions
    parser.add_argument("--trust-checkpoint", **RUN_OPTIONS["--trust-checkpoint"][1])
    args, rest = parser.parse_known_args(argv)
    if rest:
        raise UserError(f"recommend takes no config options, got {' '.join(rest)}")
    return RecommendRequest(
        args.checkpoint,
        args.items,
        args.items_file,
        args.output,
        args.k,
        args.exclude_seen,
        args.trust_checkpoint,
        args.force,
    )


def parse_evaluate(argv: List[str]) -> EvaluateRequest:
    parser = _parser("evaluate", "Evaluate a trained checkpoint again, under its own or other evaluation keys.")
    parser.add_argument("--checkpoint", metavar="CKPT", help="checkpoint to evaluate")
    parser.add_argument("--device", help="where to evaluate: cpu, cuda, cuda:1 (default: a GPU when one is visible)")
    parser.add_argument("--trust-checkpoint", **RUN_OPTIONS["--trust-checkpoint"][1])
    args, rest = parser.parse_known_args(argv)
    return EvaluateRequest(args.checkpoint, tuple(rest), args.trust_checkpoint, args.device)


def parse_report(argv: List[str]) -> ReportRequest:
    parser = _parser("report", "Rebuild the comparison table from RecBole log files (ours or plain RecBole's).")
    parser.add_argument("logs", nargs="+", metavar="LOGDIR", help="log files or folders (searched recursively)")
    parser.add_argument("--out", help="folder to write comparison.md/.csv/.tex and the plot into")
    parser.add_argument("--no-plot", action="store_true", help="do not draw the plot")
    parser.add_argument("--force", action="store_true", help="overwrite the tables already in --out")
    args = parser.parse_args(argv)
    return ReportRequest(tuple(args.logs), args.out, not args.no_plot, args.force)


def parse_convert(argv: List[str]) -> ConvertRequest:
    parser = _parser("convert", "Convert raw interaction files into RecBole atomic files.")
    parser.add_argument("format", choices=sorted(FORMATS), help="input format")
    parser.add_argument("input", help="input file, folder or zip")
    parser.add_argument("--name", required=True, help="data set name (folder and file stem)")
    parser.add_argument("--out", default="datasets", help="output root folder (default: datasets)")
    parser.add_argument("--force", action="store_true", help="overwrite an existing output")
    args = parser.parse_args(argv)
    return ConvertRequest(args.format, args.input, args.name, args.out, args.force)


def parse_data(argv: List[str]) -> DataRequest:
    parser = _parser("data", "The registry of public data sets, fetching, and figures of a data set.")
    parser.add_argument("action", choices=("list", "fetch", "stats"))
    parser.add_argument("name", nargs="?")
    parser.add_argument("--data_path", default=None, help="data folder (default datasets/)")
    parser.add_argument("--data_sources", help="a YAML file of your own registry entries")
    args = parser.parse_args(argv)
    return DataRequest(args.action, args.name, args.data_path, args.data_sources)


def parse_models(argv: List[str]) -> ModelsRequest:
    if argv:
        raise UserError(f"'models' takes no arguments, got {' '.join(argv)}")
    return ModelsRequest()


PARSERS: Dict[str, Callable[[List[str]], Request]] = {
    "train": parse_train,
    "compare": parse_compare,
    "tune": parse_tune,
    "reproduce": parse_reproduce,
    "evaluate": parse_evaluate,
    "report": parse_report,
    "recommend": parse_recommend,
    "convert": parse_convert,
    "data": parse_data,
    "models": parse_models,
}


def parse(argv: List[str]) -> Optional[Request]:
    """The request of a command line; ``None`` for ``--help``."""
    if argv and argv[0] in ("-h", "--help"):
        return None
    if argv and argv[0] in PARSERS:
        return PARSERS[argv[0]](argv[1:])
    if argv and not argv[0].startswith("-"):
        raise UserError(f"unknown command '{argv[0]}': choose from {', '.join(COMMANDS)}")
    if "--list-models" in argv:  # the flags of earlier versions that chose another command
        return parse_models([a for a in argv if a != "--list-models"])
    if "--recommend" in argv:
        return parse_recommend(argv)
    return parse_train(argv)
