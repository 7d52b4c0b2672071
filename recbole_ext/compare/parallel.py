"""The comparison grid in parallel: ``compare --jobs=N [--devices=0,1,...]``.

Each (model, seed) of the grid runs as its own ``recbole-ext compare`` process with the same
options, results folder, config files and seed, so it writes the same record (``runs/<Model>-
seed<S>.json``) a serial comparison writes and builds the same split (a split is a function of the
data, the settings and the seed). ``N`` processes run at a time; with ``--devices`` each process
sees one device (``CUDA_VISIBLE_DEVICES``) and one device runs one process at a time. Each process
gets its share of the CPU threads (``OMP_NUM_THREADS``). A process's output goes to
``jobs/<Model>-seed<S>.txt`` in the results folder. Runs already stored are skipped, so an
interrupted grid resumes where it stopped; the table is built from the records at the end.
"""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, List, Optional, Tuple

from recbole_ext.command import CompareRequest
from recbole_ext.compare.runner import (
    RUN_DIR,
    RunSpec,
    default_results_dir,
    fingerprint,
    load_run,
    run_path,
    table_title,
)
from recbole_ext.errors import UserError
from recbole_ext.registry import canonical_model_name
from recbole_ext.results.record import failed_record
from recbole_ext.results.render import write_outputs

JOB_DIR = "jobs"


def run_parallel(request: CompareRequest, echo: Callable[[str], None] = print) -> Tuple[List[dict], str]:
    """Run the grid ``jobs`` (or one per device) processes at a time; returns ``(records,
    results_dir)`` as :func:`~recbole_ext.compare.runner.run_comparison` does."""
    spec = RunSpec(request, request.results_dir or default_results_dir(request.dataset), echo)
    os.makedirs(os.path.join(spec.results_dir, JOB_DIR), exist_ok=True)
    os.makedirs(os.path.join(spec.results_dir, RUN_DIR), exist_ok=True)
    grid, records, todo = _plan(spec, list(request.models), request.seeds)
    slots: "queue.Queue[Optional[str]]" = queue.Queue()
    devices = list(request.devices)
    jobs = request.jobs or 1
    for device in devices or [None] * jobs:
        slots.put(device)
    workers = len(devices) if devices else jobs
    threads = max(1, (os.cpu_count() or 1) // workers)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        done = {job[:2]: rec for job, rec in zip(todo, pool.map(lambda job: _run_job(spec, job, slots, threads), todo))}
    records.update(done)
    ordered = [records[key] for key in grid]
    write_outputs(ordered, request.dataset, spec.results_dir, plot=request.plot, echo=echo, title=table_title(request))
    return ordered, spec.results_dir


def _plan(spec: RunSpec, models: List[str], seeds):
    """The grid's (model, seed) keys in table order, the records already known (stored runs,
    unknown model names), and the (model, seed, fingerprint) of each run still to do."""
    grid, records, todo = [], {}, []
    for seed in list(seeds) if seeds else [None]:
        for name in models:
            try:
                model = canonical_model_name(name)
            except UserError as e:
                grid.append((name, seed))
                records[(name, seed)] = failed_record(name, spec.dataset, seed, str(e))
                continue
            key = (model, seed)
            grid.append(key)
            fp = fingerprint(model, spec.dataset, seed, spec.files_for(model), None, spec.cmd_args)
            stored = spec.stored(model, seed, fp)
            if stored:
                records[key] = stored
            else:
                todo.append((model, seed, fp))
    return grid, records, todo


def _run_job(spec: RunSpec, job: Tuple[str, Optional[int], str], slots: "queue.Queue", threads: int) -> dict:
    """One (model, seed, fingerprint) as a ``compare`` process on a free slot; its record, or a
    failed one."""
    model, seed, fp = job
    device = slots.get()
    out_path = os.path.join(spec.results_dir, JOB_DIR, f"{model}-seed{seed}.txt")
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    if device is not None:
        env["CUDA_VISIBLE_DEVICES"] = device
    where = f" on device {device}" if device is not None else f" ({threads} threads)"
    spec.echo(f"[compare] {model} seed {seed}: started{where}")
    start = time.perf_counter()
    try:
        with open(out_path, "w", encoding="utf-8") as out:
            rc = subprocess.run(
                _job_command(spec, model, seed), stdout=out, stderr=subprocess.STDOUT, env=env
            ).returncode
    finally:
        slots.put(device)
    rec = load_run(run_path(spec.results_dir, model, seed))
    if rec is None or rec.get("fingerprint") not in (None, fp):
        rec = failed_record(model, spec.dataset, seed, f"process exited {rc}: {_last_line(out_path)}")
    spec.echo(
        f"[compare] {model} seed {seed}: {rec.get('status')} after {time.perf_counter() - start:.0f} s"
        f" (output: {out_path})"
    )
    return rec


def _job_command(spec: RunSpec, model: str, seed) -> List[str]:
    cmd = [
        sys.executable,
        "-m",
        "recbole_ext",
        "compare",
        f"--model={model}",
        f"--dataset={spec.dataset}",
        f"--results-dir={spec.results_dir}",
        "--no-plot",
    ]
    if seed is not None:
        cmd.append(f"--seeds={seed}")
    files = spec.files_for(model)
    if files:
        cmd.append("--config_files=" + " ".join(files))
    cmd += ["--force"] if spec.request.force else []
    cmd += [] if spec.saved else ["--no-save"]
    return cmd + list(spec.cmd_args)


def _last_line(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            lines = [line.strip() for line in f if line.strip()]
    except OSError:
        return "no output"
    return (lines[-1] if lines else "no output")[:200]
