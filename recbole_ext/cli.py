"""Command line: ``python run_recbole_ext.py --model=NAME --dataset=NAME [--config_files="a.yaml b.yaml"] [--key=value ...]``.

Also ``python -m recbole_ext`` and the ``recbole-ext`` console script. A mistake the user can make
(unknown model, missing data, bad YAML, conflicting options, malformed data file) prints one line
``recbole_ext: error: ...`` on stderr and exits with status 2, without a traceback.
"""

from __future__ import annotations

import argparse
import sys
from typing import List, Optional, Tuple

from recbole_ext.errors import UserError

USAGE = (
    "run_recbole_ext.py --model=NAME --dataset=NAME [--config_files=\"a.yaml b.yaml\"] [--key=value ...]\n"
    "       run_recbole_ext.py --list-models\n"
    "       run_recbole_ext.py --model=NAME --dataset=NAME --resume=CKPT [--trust-checkpoint] [--key=value ...]\n"
    "       run_recbole_ext.py --recommend --checkpoint=CKPT (--items=ID,ID,... | --items-file=IN --output=OUT)"
    " [--k=10] [--exclude-seen]\n"
    "       run_recbole_ext.py --model=A,B,C --dataset=NAME [--seeds=1,2,3] [--results-dir=DIR] [--force]"
    " [--no-plot] [--key=value ...]\n"
    "       run_recbole_ext.py report LOGDIR... [--out DIR] [--no-plot]"
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="run_recbole_ext.py",
        usage=USAGE,
        allow_abbrev=False,  # else --seed=7 would be taken for --seeds=7 and start a comparison
        description="Train and evaluate recbole_ext's and RecBole's models with RecBole's pipeline. "
        "Any other --key=value pair overrides that config key (RecBole's precedence).",
    )
    parser.add_argument("--model", "-m", help="model name, e.g. GLINTRU, mLSTM, SASRec")
    parser.add_argument("--dataset", "-d", help="data set name, e.g. ml-100k (bundled), amazon-beauty")
    parser.add_argument("--config_files", help="space-separated YAML files, later ones win")
    parser.add_argument("--list-models", action="store_true", help="print every known model name and exit")
    parser.add_argument("--no-save", action="store_true", help="do not write a checkpoint; test the last epoch")
    parser.add_argument("--resume", metavar="CKPT", help="continue training from a checkpoint (updated in place)")
    parser.add_argument(
        "--trust-checkpoint",
        action="store_true",
        help="allow a legacy RecBole checkpoint (a pickle: loading it can run code; only for files you trust)",
    )
    parser.add_argument("--recommend", action="store_true", help="recommend items from a trained checkpoint")
    parser.add_argument("--checkpoint", metavar="CKPT", help="checkpoint to recommend with")
    parser.add_argument("--items", help="comma-separated item tokens of one history, most recent last")
    parser.add_argument("--items-file", help="histories, one per line: user<TAB>item item item")
    parser.add_argument("--output", help="TSV written by --items-file: user, rank, item, score")
    parser.add_argument("--k", type=int, default=10, help="how many items to recommend (default 10)")
    parser.add_argument("--exclude-seen", action="store_true", help="do not recommend the input items")
    # side-by-side comparison (recbole_ext.compare): --model=A,B,C or any of these options
    parser.add_argument("--seeds", help="compare: seeds separated by commas, e.g. 1,2,3 (mean, std, t-test)")
    parser.add_argument("--results-dir", dest="results_dir", help="compare: results folder (default results/<dataset>-<time>)")
    parser.add_argument("--force", action="store_true", help="compare: rerun models already in the results folder")
    parser.add_argument("--no-plot", dest="no_plot", action="store_true", help="compare: do not draw comparison.png")
    return parser


def split_args(argv: List[str]) -> Tuple[argparse.Namespace, List[str]]:
    """Our own options, and the ``--key=value`` pairs that go to the config."""
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    for arg in rest:
        if not arg.startswith("--") or "=" not in arg:
            raise UserError(f"unrecognised argument '{arg}': config options are written --key=value")
    return args, rest


def plain_metrics(result) -> dict:
    """Metric dict with plain floats (RecBole returns numpy scalars)."""
    return {k: float(v) for k, v in (result or {}).items()}


def run(argv: List[str]) -> int:
    if argv and argv[0] == "report":  # run_recbole_ext.py report LOGDIR... (recbole_ext.report)
        from recbole_ext.report import main as report_main

        return report_main(argv[1:])
    args, config_args = split_args(argv)
    if args.list_models:
        from recbole_ext.utils import own_model_names, recbole_model_names

        print("recbole_ext: " + ", ".join(own_model_names()))
        print("RecBole:     " + ", ".join(recbole_model_names()))
        return 0
    if args.recommend:
        return run_recommend(args, config_args)
    if not args.model:
        raise UserError("no model given: pass --model=NAME (see --list-models)")
    if not args.dataset:
        raise UserError("no data set given: pass --dataset=NAME (ml-100k is bundled)")
    if "," in args.model or args.seeds or args.results_dir or args.force:
        from recbole_ext.compare import run_from_args

        return run_from_args(args, config_args)
    config_files = args.config_files.split() if args.config_files else None

    from recbole_ext.quick_start import run_recbole_ext

    result = run_recbole_ext(
        args.model,
        args.dataset,
        config_files,
        cmd_args=config_args,
        saved=not args.no_save,
        resume_file=args.resume,
        trust_checkpoint=args.trust_checkpoint,
    )
    print(f"best valid: {plain_metrics(result['best_valid_result'])}")
    print(f"test result: {plain_metrics(result['test_result'])}")
    return 0


def run_recommend(args: argparse.Namespace, config_args: List[str]) -> int:
    """``--recommend``: one history (``--items``) to stdout, or a file of histories to ``--output``."""
    import warnings

    if config_args:
        raise UserError(f"--recommend takes no config options, got {' '.join(config_args)}")
    if not args.checkpoint:
        raise UserError("--recommend needs --checkpoint=PATH")
    if bool(args.items) == bool(args.items_file):
        raise UserError("--recommend needs exactly one of --items=ID,ID,... or --items-file=PATH")
    if args.items_file and not args.output:
        raise UserError("--items-file needs --output=PATH")
    if args.k < 1:
        raise UserError(f"--k must be at least 1, got {args.k}")
    from recbole_ext.recommend import Recommender, recommend, recommend_file

    def show(message, category, filename, lineno, file=None, line=None):
        print(f"recbole_ext: warning: {message}", file=sys.stderr)

    warnings.showwarning = show
    rec = Recommender(args.checkpoint, trust_checkpoint=args.trust_checkpoint)
    if args.items_file:
        recs = recommend_file(rec, args.items_file, args.output, args.k, args.exclude_seen)
        print(f"wrote {sum(len(v) for v in recs.values())} rows for {len(recs)} users to {args.output}")
        return 0
    recs = recommend(rec, args.items, args.k, args.exclude_seen)
    print("rank\titem\tscore")
    for rank, (item, score) in enumerate(recs, 1):
        print(f"{rank}\t{item}\t{score:.6g}")
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        return run(argv)
    except UserError as e:
        print(f"recbole_ext: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("recbole_ext: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
