"""Sweep: run every model RecBole tests itself, plus every model of ours, through recbole_ext.

``python tools/sweep.py [--models A,B] [--out FILE] [--isolate process|none]``

A developer tool, outside the installed package.

The cases are RecBole's own model test list (``tests/model/test_model_auto.py`` of
RUCAIBox/RecBole, 137 cases over 90 models, config variants included: :data:`RECBOLE_CASES`),
followed by one case per model of ours (:func:`recbole_ext.registry.own_model_names`). Each case
trains one epoch (KTUP's first case two, as RecBole's test does) on a small generated data set
(``tests/sweep_data.py``: 200 users, 200 items, token / token_seq / float / float_seq fields,
user and item features, a knowledge graph with ``.kg`` and ``.link``, blank cells in every
kind of field) through :func:`recbole_ext.quick_start.run_recbole_ext`.

Every case is isolated: by default in its own process (``--isolate process``), so a crash or a
hang in one case (limit ``--timeout`` seconds) does not stop the sweep; ``--isolate none`` runs
the cases in this process, each in ``try/except`` (what the test suite uses). The sweep prints
a Markdown table: model, type, status (``ok`` / ``failed`` / ``skipped``), seconds, and a
one-line cause for a failure or the package to install for a skip. A case is skipped only when
a model needs an optional package RecBole does not install (:data:`OPTIONAL_PACKAGES`); exit
status is 1 when a case failed.

Deviation from RecBole's test set-up: RecBole's default ``train_neg_sample_args`` (uniform, one
negative) is passed explicitly to RecBole's cases that do not set it, because recbole_ext's
sequential base YAML turns negative sampling off for sequential models; except for models whose
loss is CE (RepeatNet), which recbole_ext's Config refuses to combine with negative sampling
(RecBole skips that check for models with an ``input_type``; RepeatNet ignores the negatives).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from typing import List, Optional

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests"))

from sweep_cases import _C, _G, _K, _S, BASE_CONFIG, OPTIONAL_PACKAGES, PIP_NAMES, RECBOLE_CASES, RECBOLE_DEFAULT_NEG  # noqa: E402
from sweep_data import DATASET, write_sweep_dataset  # noqa: E402


@dataclass
class Case:
    """One sweep case: a model, its type and the config of RecBole's test case (or ours)."""

    model: str
    mtype: str
    config: dict
    label: str = ""
    origin: str = "recbole"

    @property
    def name(self) -> str:
        return self.label or self.model


@dataclass
class Result:
    case: Case
    status: str  # ok / failed / skipped
    seconds: float
    cause: str = ""
    extra: dict = field(default_factory=dict)


def _label(config: dict) -> str:
    rest = {k: v for k, v in config.items() if k != "model"}
    if not rest:
        return config["model"]
    parts = []
    for k, v in rest.items():
        if k == "train_neg_sample_args":
            v = "none" if v is None else ("dns" if v.get("dynamic") else "uniform")
        elif isinstance(v, dict):
            continue
        parts.append(f"{k}={v}")
    return f"{config['model']} ({', '.join(parts)})" if parts else config["model"]


def own_cases() -> List[Case]:
    """One case per model of ours, with its own defaults (names read at call time)."""
    from recbole.utils import ModelType

    from recbole_ext.registry import get_model, own_model_names

    names = {ModelType.GENERAL: _G, ModelType.SEQUENTIAL: _S, ModelType.CONTEXT: _C, ModelType.KNOWLEDGE: _K}
    cases = []
    for name in own_model_names():
        config = {"model": name}
        try:
            model_class = get_model(name)
            mtype = names.get(model_class.type, "other")
            config.update(_protocol(getattr(model_class, "protocol", None)))
        except Exception:  # noqa: BLE001 - a broken own model shows up as a failed case
            mtype = "?"
        cases.append(Case(name, mtype, config, name + " (recbole_ext)", origin="recbole_ext"))
    return cases


def _protocol(name: Optional[str]) -> dict:
    """The settings of the shipped evaluation protocol a model is evaluated under (its class's
    ``protocol``: the rating models' ``protocol-rating.yaml``), without the data-set columns."""
    from recbole_ext.config_sources import protocol_settings

    return protocol_settings(name) if name else {}


def all_cases(models: Optional[List[str]] = None) -> List[Case]:
    """RecBole's cases then ours, filtered by model name (case-insensitive) when given."""
    cases = [Case(c["model"], t, dict(c), _label(c)) for t, c in RECBOLE_CASES] + own_cases()
    if models:
        wanted = {m.lower() for m in models}
        cases = [c for c in cases if c.model.lower() in wanted]
    return cases


# ----------------------------------------------------------------------------- running
def missing_packages(model: str) -> List[str]:
    """The optional modules ``model`` needs that cannot be imported here."""
    out = []
    for module in OPTIONAL_PACKAGES.get(model, []):
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            out.append(module)
    return out


def _loss_type(case: Case) -> Optional[str]:
    """The case's loss type: its config's, else the default in RecBole's model YAML."""
    if "loss_type" in case.config:
        return case.config["loss_type"]
    import yaml

    from recbole_ext.registry import RECBOLE_MODEL_YAML_DIR

    path = os.path.join(RECBOLE_MODEL_YAML_DIR, f"{case.model}.yaml")
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as f:
        return (yaml.safe_load(f) or {}).get("loss_type")


def case_config(case: Case, data_root: str, workdir: str) -> dict:
    cfg = dict(BASE_CONFIG)
    cfg["data_path"] = data_root
    cfg["checkpoint_dir"] = os.path.join(workdir, "saved")
    if case.origin == "recbole" and "train_neg_sample_args" not in case.config and _loss_type(case) != "CE":
        cfg["train_neg_sample_args"] = dict(RECBOLE_DEFAULT_NEG)
    cfg.update({k: v for k, v in case.config.items() if k != "model"})
    return cfg


def one_line(exc: BaseException) -> str:
    """``Type: message (file:line)`` of an exception, on one line."""
    msg = " ".join(str(exc).split())[:200]
    tb = traceback.extract_tb(exc.__traceback__)
    where = f" ({os.path.basename(tb[-1].filename)}:{tb[-1].lineno})" if tb else ""
    return f"{type(exc).__name__}: {msg}{where}"


def run_case(case: Case, data_root: str, workdir: str) -> Result:
    """Run one case in this process; never raises (except KeyboardInterrupt)."""
    from recbole_ext.quick_start import run_recbole_ext

    missing = missing_packages(case.model)
    if missing:
        return Result(case, "skipped", 0.0, "pip install " + " ".join(PIP_NAMES.get(m, m) for m in missing))
    start = time.perf_counter()
    old_cwd = os.getcwd()
    os.makedirs(workdir, exist_ok=True)
    os.chdir(workdir)
    try:
        out = run_recbole_ext(
            case.model,
            DATASET,
            None,
            case_config(case, data_root, workdir),
            saved=False,
            log_dir=os.path.join(workdir, "log"),
        )
        test = {k: float(v) for k, v in (out.get("test_result") or {}).items()}
        bad = [k for k, v in test.items() if not np.isfinite(v)]
        if bad:
            return Result(case, "failed", time.perf_counter() - start, f"non-finite test metrics: {', '.join(bad)}")
        return Result(case, "ok", time.perf_counter() - start, extra={"test_result": test})
    except KeyboardInterrupt:
        raise
    except ModuleNotFoundError as e:
        root = (e.name or "").split(".")[0]
        if root in PIP_NAMES:
            return Result(case, "skipped", time.perf_counter() - start, f"pip install {PIP_NAMES[root]}")
        return Result(case, "failed", time.perf_counter() - start, one_line(e))
    except BaseException as e:  # noqa: BLE001 - one crash must not stop the sweep
        return Result(case, "failed", time.perf_counter() - start, one_line(e))
    finally:
        os.chdir(old_cwd)
        try:
            from recbole_ext.logger import close_logger

            close_logger()
        except Exception:  # noqa: BLE001
            pass


def run_case_in_process(index: int, case: Case, data_root: str, workdir: str, timeout: float) -> Result:
    """Run case ``index`` of :func:`all_cases` in a fresh Python process."""
    cmd = [
        sys.executable,
        os.path.abspath(__file__),
        "--_one",
        str(index),
        "--_data",
        data_root,
        "--_work",
        workdir,
        "--threads",
        str(torch_threads()),
    ]
    start = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return Result(case, "failed", time.perf_counter() - start, f"timed out after {timeout:.0f} s")
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("SWEEP_RESULT "):
            d = json.loads(line[len("SWEEP_RESULT ") :])
            return Result(case, d["status"], d["seconds"], d["cause"], d.get("extra", {}))
    tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
    return Result(case, "failed", time.perf_counter() - start, f"process exited {proc.returncode}: {tail[:200]}")


def torch_threads() -> int:
    import torch

    return torch.get_num_threads()


def format_table(results: List[Result]) -> str:
    lines = ["| model | type | status | seconds | cause / to install |", "|---|---|---|---:|---|"]
    for r in results:
        cause = r.cause.replace("|", "/")
        lines.append(f"| {r.case.name} | {r.case.mtype} | {r.status} | {r.seconds:.1f} | {cause} |")
    n = {s: sum(r.status == s for r in results) for s in ("ok", "failed", "skipped")}
    lines.append("")
    lines.append(
        f"{len(results)} cases, {len({r.case.model for r in results})} models: "
        f"{n['ok']} ok, {n['failed']} failed, {n['skipped']} skipped"
    )
    return "\n".join(lines)


def versions() -> str:
    import pandas
    import recbole
    import scipy
    import torch

    return (
        f"Python {sys.version.split()[0]}, RecBole {recbole.__version__}, numpy {np.__version__}, "
        f"pandas {pandas.__version__}, scipy {scipy.__version__}, torch {torch.__version__}"
    )


def run_sweep(
    cases: List[Case], isolate: str = "process", timeout: float = 600.0, workdir: Optional[str] = None, progress=None
) -> List[Result]:
    """Write the data set to a temporary folder and run ``cases``; returns one result per case."""
    full = all_cases() if isolate == "process" else []
    with tempfile.TemporaryDirectory(prefix="recbole_ext_sweep_") as tmp:
        workdir = workdir or tmp
        data_root = write_sweep_dataset(os.path.join(tmp, "data"))
        results = []
        for n, case in enumerate(cases):
            case_dir = os.path.join(workdir, f"case{n:03d}")
            if isolate == "process":
                r = run_case_in_process(full.index(case), case, data_root, case_dir, timeout)
            else:
                r = run_case(case, data_root, case_dir)
            results.append(r)
            if progress:
                progress(n, len(cases), r)
        return results


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python tools/sweep.py", description=__doc__.splitlines()[0])
    parser.add_argument("--models", help="comma-separated model names (default: every case)")
    parser.add_argument("--out", help="also write the table (Markdown) to this file")
    parser.add_argument(
        "--isolate",
        choices=["process", "none"],
        default="process",
        help="run each case in its own process (default) or in this one",
    )
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per case (process isolation)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per case (default 1)")
    parser.add_argument("--list", action="store_true", help="list the cases and exit")
    parser.add_argument("--_one", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--_data", help=argparse.SUPPRESS)
    parser.add_argument("--_work", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(max(1, args.threads))
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, args.threads)))

    if args._one is not None:  # child process: one case, result as one JSON line
        case = all_cases()[args._one]
        r = run_case(case, args._data, args._work)
        print(
            "SWEEP_RESULT " + json.dumps({"status": r.status, "seconds": r.seconds, "cause": r.cause, "extra": r.extra})
        )
        return 0

    models = [m.strip() for m in args.models.split(",") if m.strip()] if args.models else None
    cases = all_cases(models)
    if args.list:
        for c in cases:
            print(f"{c.name}\t{c.mtype}\t{c.origin}")
        return 0
    if not cases:
        print(f"recbole_ext: error: no sweep case for models {args.models}", file=sys.stderr)
        return 2

    def progress(n, total, r):
        print(f"[{n + 1}/{total}] {r.case.name}: {r.status} ({r.seconds:.1f} s) {r.cause}", file=sys.stderr, flush=True)

    started = time.strftime("%Y-%m-%d %H:%M")
    t0 = time.perf_counter()
    results = run_sweep(cases, isolate=args.isolate, timeout=args.timeout, progress=progress)
    table = format_table(results)
    header = f"Sweep of {started}, {time.perf_counter() - t0:.0f} s wall; {versions()}\n\n"
    print(header + table)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            f.write(header + table + "\n")
    return 1 if any(r.status == "failed" for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
