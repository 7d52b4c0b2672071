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
    "       run_recbole_ext.py --list-models"
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="run_recbole_ext.py",
        usage=USAGE,
        description="Train and evaluate recbole_ext's and RecBole's models with RecBole's pipeline. "
        "Any other --key=value pair overrides that config key (RecBole's precedence).",
    )
    parser.add_argument("--model", "-m", help="model name, e.g. GLINTRU, mLSTM, SASRec")
    parser.add_argument("--dataset", "-d", help="data set name, e.g. ml-100k (bundled), amazon-beauty")
    parser.add_argument("--config_files", help="space-separated YAML files, later ones win")
    parser.add_argument("--list-models", action="store_true", help="print every known model name and exit")
    parser.add_argument("--no-save", action="store_true", help="do not write a checkpoint; test the last epoch")
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
    args, config_args = split_args(argv)
    if args.list_models:
        from recbole_ext.utils import own_model_names, recbole_model_names

        print("recbole_ext: " + ", ".join(own_model_names()))
        print("RecBole:     " + ", ".join(recbole_model_names()))
        return 0
    if not args.model:
        raise UserError("no model given: pass --model=NAME (see --list-models)")
    if not args.dataset:
        raise UserError("no data set given: pass --dataset=NAME (ml-100k is bundled)")
    config_files = args.config_files.split() if args.config_files else None

    from recbole_ext.quick_start import run_recbole_ext

    result = run_recbole_ext(
        args.model, args.dataset, config_files, cmd_args=config_args, saved=not args.no_save
    )
    print(f"best valid: {plain_metrics(result['best_valid_result'])}")
    print(f"test result: {plain_metrics(result['test_result'])}")
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
