"""The comparison grid in parallel: ``compare --jobs=N [--devices=0,1,...]``.

Each (model, seed) of the grid runs as its own process (``python -m recbole_ext.compare.job``,
:mod:`recbole_ext.compare.job`) with the same options, results folder, config files and seed, so
it writes the same record (``runs/<Model>-seed<S>.json``) a serial comparison writes and builds
the same split (a split is a function of the data, the settings and the seed). ``N`` processes
run at a time; with ``--devices`` each process sees one device (``CUDA_VISIBLE_DEVICES``) and one
device runs one process at a time. Each process gets its share of the CPU threads
(``OMP_NUM_THREADS``). A process's output goes to ``jobs/<Model>-seed<S>.txt`` in the results
folder. Runs already stored are skipped, so an interrupted grid resumes where it stopped; the
table is built from the records at the end.
"""

from __future__ import annotations

import dataclasses
import json
import os
import queue
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Dict, List, Optional, Tuple

from recbole_ext.command import CompareRequest
from recbole_ext.compare.runner import RunSpec, fingerprint, preflight, table_title
from recbole_ext.pipeline import Run
from recbole_ext.results.record import RunRecord, failed_record
from recbole_ext.results.render import write_outputs


def run_parallel(
    request: CompareRequest, echo: Callable[[str], None] = print, runs: Optional[Dict[str, Run]] = None
) -> Tuple[List[RunRecord], str]:
    """Run the grid ``jobs`` (or one per device) processes at a time; returns ``(records,
    results_dir)`` as :func:`~recbole_ext.compare.runner.run_comparison` does. Every model and
    setting is checked before the first job starts (:func:`~recbole_ext.compare.runner.preflight`;
    ``runs``: its result, when the caller ran it already); only this process writes the table."""
    runs = preflight(request, echo=echo) if runs is None else runs
    spec = RunSpec.of(request, echo)
    os.makedirs(spec.layout.jobs_dir, exist_ok=True)
    os.makedirs(spec.layout.runs_dir, exist_ok=True)
    grid, records, todo = _plan(spec, runs, request.seeds)
    slots: "queue.Queue[Optional[str]]" = queue.Queue()
    devices = list(request.devices)
    jobs = request.jobs or 1
    for device in devices or [None] * jobs:
        slots.put(device)
    workers = len(devices) if devices else jobs
    threads = worker_threads(workers)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        done = {job.key: rec for job, rec in zip(todo, pool.map(lambda job: _run_job(spec, job, slots, threads), todo))}
    records.update(done)
    ordered = [records[key] for key in grid]
    write_outputs(ordered, request.dataset, spec.results_dir, plot=request.plot, echo=echo, title=table_title(request))
    return ordered, spec.results_dir


def worker_threads(workers: int) -> int:
    """Threads for each of ``workers`` processes: the cores shared out, and never more than the
    user's own ``OMP_NUM_THREADS`` limit."""
    threads = max(1, (os.cpu_count() or 1) // workers)
    limit = os.environ.get("OMP_NUM_THREADS", "").strip()
    return min(threads, int(limit)) if limit.isdigit() and int(limit) >= 1 else threads


@dataclasses.dataclass(frozen=True)
class Job:
    """One run of the grid: the model, the seed asked for (``None``: the configured one), the
    seed it runs with (which names its record) and its fingerprint."""

    model: str
    seed: Optional[int]
    run_seed: int
    fingerprint: str

    @property
    def key(self) -> Tuple[str, Optional[int]]:
        return (self.model, self.seed)


def _plan(spec: RunSpec, runs: Dict[str, Run], seeds):
    """The grid's (model, seed) keys in table order, the records already stored, and the jobs
    still to do."""
    grid, records, todo = [], {}, []
    for seed in list(seeds) if seeds else [None]:
        for model, run in runs.items():
            grid.append((model, seed))
            fp = fingerprint(model, spec.dataset, seed, spec.files_for(model), None, spec.cmd_args)
            job = Job(model, seed, int(run.config["seed"]) if seed is None else seed, fp)
            stored = spec.stored(model, job.run_seed, fp)
            if stored:
                records[job.key] = stored
            else:
                todo.append(job)
    return grid, records, todo


def _run_job(spec: RunSpec, job: Job, slots: "queue.Queue", threads: int) -> RunRecord:
    """One job as its own process (:mod:`recbole_ext.compare.job`) on a free slot; its record,
    or a failed one."""
    device = slots.get()
    out_path = spec.layout.job_output(job.model, job.run_seed)
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    if device is not None:
        env["CUDA_VISIBLE_DEVICES"] = device
    where = f" on device {device}" if device is not None else f" ({threads} threads)"
    spec.echo(f"[compare] {job.model} seed {job.run_seed}: started{where}")
    start = time.perf_counter()
    one = dataclasses.replace(spec.request, models=(job.model,), seeds=None if job.seed is None else (job.seed,))
    command = [sys.executable, "-m", "recbole_ext.compare.job", json.dumps(dataclasses.asdict(one))]
    try:
        with open(out_path, "w", encoding="utf-8") as out:
            rc = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, env=env).returncode
    finally:
        slots.put(device)
    rec = spec.layout.load(job.model, job.run_seed)
    if rec is None or rec.fingerprint not in (None, job.fingerprint):
        rec = failed_record(job.model, spec.dataset, job.run_seed, f"process exited {rc}: {_last_line(out_path)}")
    spec.echo(
        f"[compare] {job.model} seed {job.run_seed}: {rec.status} after {time.perf_counter() - start:.0f} s"
        f" (output: {out_path})"
    )
    return rec


def _last_line(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            lines = [line.strip() for line in f if line.strip()]
    except OSError:
        return "no output"
    return (lines[-1] if lines else "no output")[:200]
