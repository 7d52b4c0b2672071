"""Everything GPU in one command: correctness on the device, speed at the paper's ML-1M shape,
and the GLINT-RU paper's Beauty rows. See ``benchmarks/gpu_suite.md`` for how to run it.

    python benchmarks/gpu_suite.py --out results/gpu          # on the GPU machine (about 8 min)
    python benchmarks/gpu_suite.py --smoke --out /tmp/smoke   # everything on CPU, tiny, seconds

Parts (``--parts``, default ``abc``), in the order they run:

- (b) speed: training seconds per epoch, inference ms per 2048-batch and peak GPU memory of
  GLINTRU, SASRec, GRU4Rec, BERT4Rec, mLSTM and LSTM4Rec at L=200, d=128 (fp32, bf16; compiled
  GLINTRU and SASRec), on an otherwise idle device; ratios to SASRec from the same run; a
  torch.profiler table of SASRec's and GLINTRU's fp32 training steps;
- (c) Beauty: GLINTRU and SASRec on amazon-beauty under the paper's pop100 protocol, a grid of
  embedding dropout x max length, all runs at once, each trained to early stopping (patience 10)
  or the time budget; while they run,
- (a) correctness: see :mod:`gpu_suite_checks`.

The report (``report.md``, ``report.csv`` in ``--out``) is written row by row, so a run cut
short still leaves what it did. A failing check is a row with its error, not the end of the run.
"""

from __future__ import annotations

import argparse
import atexit
import datetime
import json
import os
import shutil
import sys
import tempfile
import time
import traceback
from typing import Dict, List

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import gpu_suite_beauty as beauty  # noqa: E402

from gpu_suite_common import Report, device_name, rule_sequences, write_inter  # noqa: E402

GPU_SHAPE = {
    "users": 800,
    "items": 3706,
    "max_len": 200,
    "hidden": 128,
    "batch": 2048,
    "batches": 8,
    "warmup": 3,
    "steps": 10,
    "eval_reps": 5,
}
SMOKE_SHAPE = {
    "users": 60,
    "items": 300,
    "max_len": 20,
    "hidden": 16,
    "batch": 64,
    "batches": 3,
    "warmup": 1,
    "steps": 2,
    "eval_reps": 1,
    "compile_backend": "eager",
}
#: part (b)'s models by default, in order
SPEED_ORDER = (
    "SASRec",
    "SASRec-sdpa",
    "GLINTRU",
    "GLINTRU-full",
    "GRU4Rec",
    "BERT4Rec",
    "BERT4Rec-sdpa",
    "LSTM4Rec",
    "mLSTM",
)
#: models whose fp32 training steps part (b) profiles (why GLINTRU is slower than SASRec on a GPU)
PROFILED = ("SASRec", "GLINTRU")


# ---------------------------------------------------------------- part (a)
def part_a(report: Report, data: Dict, workdir: str, device: str) -> None:
    import gpu_suite_checks as checks

    report.text("## (a) Correctness on the device")
    report.table(["check", "item", "ok", "seconds", "detail"])
    steps = [("one epoch", lambda m=m: checks.check_models(data, workdir, [m])) for m in checks.SMOKE_MODELS]
    steps += [
        ("resume + recommend", lambda: [("GLINTRU",) + checks.check_resume(data, workdir)]),
        ("pop100 ours == RecBole", lambda: checks.check_sampled_eval(data)),
        ("DDP rank == one process", lambda: [("SASRec",) + checks.check_data_parallel(data, workdir)]),
        ("mLSTM == reference", lambda: checks.check_mlstm(device)),
    ]
    for check, fn in steps:
        start = time.perf_counter()
        try:
            rows = fn()
        except Exception as e:  # noqa: BLE001 - a failing check is a row of the report
            rows = [("-", False, error_text(e), {})]
        spent = time.perf_counter() - start
        for item, ok, detail, values in rows:
            report.row(
                "a",
                f"{check}: {item}",
                "ok" if ok else "FAIL",
                spent,
                values,
                [check, item, "yes" if ok else "**no**", f"{spent:.1f}", detail],
            )


def error_text(e: BaseException) -> str:
    tb = traceback.extract_tb(e.__traceback__)
    where = f" at {os.path.basename(tb[-1].filename)}:{tb[-1].lineno}" if tb else ""
    traceback.print_exc()
    return f"{type(e).__name__}: {str(e)[:300]}{where}".replace("|", "/").replace("\n", " ")


# ---------------------------------------------------------------- part (b)
COLUMNS = [
    "row",
    "precision",
    "matmul",
    "cuDNN conv+RNN",
    "det./bench.",
    "compiled (graphs)",
    "train s/epoch",
    "x SASRec",
    "x SASRec-sdpa",
    "loader s/epoch",
    "infer ms/batch",
    "x SASRec",
    "peak MB",
    "warm-up s",
    "mLSTM impl",
]


def part_b(report: Report, shape: Dict, workdir: str, budget_s: float, models: List[str]) -> None:
    import gpu_suite_speed as speed

    root, full_samples = speed.write_shape_data(os.path.join(workdir, "shape"), shape)
    report.text(
        f"## (b) Speed at the ML-1M shape (L={shape['max_len']}, d={shape['hidden']}, "
        f"batch {shape['batch']})\n\nEpoch = mean of {shape['steps']} timed steps (after "
        f"{shape['warmup']} warm-up steps) x {-(-full_samples // shape['batch'])} batches "
        f"({full_samples:,} training sequences of the 6,040-user ML-1M-shaped set); loader = "
        "RecBole's batch assembly and copy to the device for the same batches; inference = "
        f"full_sort_predict over {shape['items']:,} items for one {shape['batch']}-row batch. "
        "fp32: TF32 off for matrix products and cuDNN; tf32: on for both; bf16: autocast, TF32 off. "
        "Ratios compare rows of the same precision, both compiled or both eager."
    )
    report.table(COLUMNS)
    base: Dict = {}
    profiled: Dict[str, str] = {}
    start = time.perf_counter()
    loader_line(report, speed, root, shape)
    for name, rows in speed.plan(models):
        if time.perf_counter() - start > budget_s:
            report.line([name, "-", f"skipped: part (b) budget of {budget_s:.0f} s spent"] + [""] * 12)
            continue
        try:
            run, train_data = speed.build_data(name, root, shape)
        except Exception as e:  # noqa: BLE001
            report.row("b", name, "FAIL", 0.0, {}, [name, "-", error_text(e)] + [""] * 12)
            continue
        for precision, compiled in rows:
            if time.perf_counter() - start > budget_s:
                break
            speed_row(report, speed, (name, run, train_data), shape, full_samples, (precision, compiled), base)
        if name in PROFILED and not profiled.get(name):
            profiled[name] = profile_text(speed, run, train_data, shape)
    for name, text in profiled.items():
        report.text(
            f"Where {name}'s fp32 training steps spend their time (torch.profiler, 3 eager steps, TF32 off):"
            f"\n\n```\n{text}\n```"
        )


def profile_text(speed, run, train_data, shape: Dict) -> str:
    try:
        speed.flags_in_force("fp32")
        return speed.profile_table(run, train_data, shape)
    except Exception as e:  # noqa: BLE001 - a failed profile is text in the report
        return f"profile failed: {error_text(e)}"


def loader_line(report: Report, speed, root: str, shape: Dict) -> None:
    """One row: RecBole's loader against the device-resident one (SASRec's batches)."""
    t0 = time.perf_counter()
    try:
        r = speed.loader_compare(root, shape)
    except Exception as e:  # noqa: BLE001
        report.row("b", "loader", "FAIL", time.perf_counter() - t0, {}, ["loader", "-", error_text(e)] + [""] * 12)
        return
    cell = (
        f"RecBole's CPU batches {r['recbole_ms']:.1f} ms/batch; device-resident "
        f"({r['device_ms_loader']}) {r['device_ms']:.1f} ms/batch"
    )
    report.row("b", "loader", "ok", time.perf_counter() - t0, r, ["loader (SASRec)", "-", cell] + [""] * 12)


def row_name(name: str, precision: str, compiled: bool) -> str:
    return f"{name} {precision}{' compiled' if compiled else ''}"


def ratio(r: Dict, ref: Dict, key: str) -> str:
    """``r[key] / ref[key]`` for a reference row of the same precision and compilation."""
    return f"{r[key] / ref[key]:.2f}" if ref else "-"


def speed_row(report, speed, built, shape, full_samples, setting, base) -> None:
    (name, run, train_data), (precision, compiled) = built, setting
    t0 = time.perf_counter()
    try:
        r = speed.measure(name, run, train_data, shape, full_samples, precision, compiled)
    except Exception as e:  # noqa: BLE001
        cells = [name, precision, "", "", "", "yes" if compiled else "no", error_text(e)] + [""] * 8
        report.row("b", row_name(name, precision, compiled), "FAIL", time.perf_counter() - t0, {}, cells)
        return
    if name in ("SASRec", "SASRec-sdpa"):
        base[(name, precision, compiled)] = r
    sasrec, sdpa = base.get(("SASRec", precision, compiled)), base.get(("SASRec-sdpa", precision, compiled))
    cells = [name, precision, r["matmul"], r["cudnn"], f"{r['deterministic']}/{r['benchmark']}"]
    cells += [f"yes ({r['graphs']})" if compiled else "no", f"{r['epoch_s']:.2f}"]
    cells += [ratio(r, sasrec, "epoch_s"), ratio(r, sdpa, "epoch_s"), f"{r['loader_epoch_s']:.2f}"]
    cells += [f"{r['eval_ms']:.2f}", ratio(r, sasrec, "eval_ms"), f"{r['peak_mb']:.0f}", f"{r['warmup_s']:.1f}"]
    report.row("b", row_name(name, precision, compiled), "ok", time.perf_counter() - t0, r, cells + [r["impl"]])


def speed_summary(report: Report) -> None:
    """Goal lines from the rows of part (b) (read back from the CSV, so they match the table),
    each between rows of the same precision and compilation."""
    import csv

    with open(report.csv_path) as f:
        rows = {
            r["name"]: json.loads(r["values"]) for r in csv.DictReader(f) if r["part"] == "b" and r["status"] == "ok"
        }
    lines = []
    for prec, compiled in (("bf16", True), ("fp32", True), ("bf16", False), ("fp32", False)):
        how = f"{prec} {'compiled' if compiled else 'eager'}"
        g, s, q = (rows.get(row_name(m, prec, compiled)) for m in ("GLINTRU", "SASRec", "SASRec-sdpa"))
        if g and s:
            lines.append(
                f"- {how}: GLINTRU/SASRec training {g['epoch_s'] / s['epoch_s']:.2f}x (goal <= 0.5), "
                f"inference {g['eval_ms'] / s['eval_ms']:.2f}x (goal <= 0.6); GLINTRU epoch {g['epoch_s']:.1f} s"
            )
        if g and q:
            lines.append(f"- {how}: GLINTRU/SASRec-sdpa training {g['epoch_s'] / q['epoch_s']:.2f}x (goal <= 1.0)")
        m, lstm = rows.get(row_name("mLSTM", prec, compiled)), rows.get(row_name("LSTM4Rec", prec, compiled))
        if m and lstm:
            lines.append(f"- {how}: mLSTM/LSTM4Rec training {m['epoch_s'] / lstm['epoch_s']:.2f}x (goal <= 1.5)")
    if lines:
        report.text("Goals, from the rows above:\n\n" + "\n".join(lines))


# ---------------------------------------------------------------- main
def smoke_data(workdir: str) -> Dict:
    root = write_inter(os.path.join(workdir, "data"), "suite-tiny", rule_sequences(80, 30, 15))
    keys = {
        "MAX_ITEM_LIST_LENGTH": 10,
        "hidden_size": 16,
        "embedding_size": 16,
        "train_batch_size": 256,
        "eval_batch_size": 256,
        "load_col": {"inter": ["user_id", "item_id", "timestamp"]},
        "eval_args": {"split": {"LS": "valid_and_test"}, "order": "TO", "mode": "full", "group_by": "user"},
    }
    return {"dataset": "suite-tiny", "data_path": root, "keys": keys}


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter, allow_abbrev=False
    )
    p.add_argument("--out", default="results/gpu_suite", help="folder for report.md and report.csv")
    p.add_argument("--smoke", action="store_true", help="all parts on CPU with tiny sizes (seconds)")
    p.add_argument("--parts", default="abc", help="which parts to run: any of a, b, c")
    p.add_argument(
        "--speed-budget-s", type=float, default=120.0, help="part (b) starts no row after this (not in --smoke)"
    )
    p.add_argument(
        "--speed-models",
        default=",".join(SPEED_ORDER),
        metavar="MODEL,...",
        help="part (b)'s models, in order (ratios are to SASRec, so keep it first)",
    )
    p.add_argument("--beauty-budget-s", type=float, default=200.0, help="training time of each Beauty run")
    p.add_argument("--beauty-data", default=None, help="folder holding amazon-beauty/ (default: found as usual)")
    p.add_argument(
        "--beauty-grid",
        default=None,
        metavar="MODEL:DROPOUT:LEN,...",
        help="Beauty runs instead of the default grid, e.g. GLINTRU:0.5:50,SASRec:0.5:50",
    )
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda":
        # mLSTM's C++ loop is CPU-only; skip its build (about 30 s) when every model runs on the GPU
        os.environ.setdefault("RECBOLE_EXT_NO_NATIVE", "1")
    workdir = tempfile.mkdtemp(prefix="gpu_suite.")
    atexit.register(shutil.rmtree, workdir, True)  # the runs' folders go; the report stays in --out
    report = Report(args.out, "recbole_ext GPU suite" + (" (smoke run on CPU, tiny sizes)" if args.smoke else ""))
    argv_text = " ".join(sys.argv[1:] if argv is None else argv)
    report.text(
        f"Device: {device_name()}. Date: {datetime.date.today()}. "
        f"Command: `python benchmarks/gpu_suite.py {argv_text}`."
    )
    data = smoke_data(workdir) if args.smoke else {"dataset": "ml-100k", "keys": {}}
    if "b" in args.parts:
        models = args.speed_models.split(",")
        budget = float("inf") if args.smoke else args.speed_budget_s  # the smoke run checks every row
        part_b(report, SMOKE_SHAPE if args.smoke else GPU_SHAPE, workdir, budget, models)
        speed_summary(report)
    jobs, deadline = [], time.time()
    if "c" in args.parts:
        grid = [(m, 0.5, 10) for m in ("GLINTRU", "SASRec")] if args.smoke else beauty.BEAUTY_GRID
        if args.beauty_grid:
            grid = [(m, float(p), int(n)) for m, p, n in (g.split(":") for g in args.beauty_grid.split(","))]
        budget = min(args.beauty_budget_s, 5.0) if args.smoke else args.beauty_budget_s
        jobs = beauty.start_beauty(data if args.smoke else beauty.beauty_data(args.beauty_data), workdir, budget, grid)
        deadline = time.time() + budget + (60 if args.smoke else 120)
    if "a" in args.parts:
        part_a(report, data, workdir, device)
    if jobs:
        beauty.finish_beauty(report, jobs, deadline)
    report.text(f"Suite finished in {report.elapsed():.0f} s.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
