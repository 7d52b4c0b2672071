"""Running the models of a comparison: shared splits, one log and one stored record per run
(see :mod:`recbole_ext.compare`)."""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import os
import traceback
from logging import getLogger
from typing import Callable, Dict, List, Optional, Tuple

import torch
import yaml

from recbole_ext.command import CompareRequest, option_key
from recbole_ext.compare.layout import ResultsLayout, default_results_dir
from recbole_ext.compare.memory import PeakMemory
from recbole_ext.errors import UserError, one_line
from recbole_ext.fileio import atomic_write_text
from recbole_ext.logger import close_logger
from recbole_ext.memory import release_memory
from recbole_ext.pipeline import Run, Splits, canonical_entry, model_of, plain_metrics, resolve_all
from recbole_ext.results.logparse import protocol_of
from recbole_ext.results.record import RunRecord, failed_record
from recbole_ext.results.render import write_outputs
from recbole_ext.trainer.checkpoint import to_plain


# ------------------------------------------------------------------ small helpers
def plain_config(config) -> dict:
    return to_plain(dict(config.final_config_dict))


def device_label(device) -> str:
    device = torch.device(device)
    if device.type == "cuda" and torch.cuda.is_available():
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return f"cpu (torch threads: {torch.get_num_threads()})"


def fingerprint(model: str, dataset: str, seed, config_files, config_dict, cmd_args) -> str:
    """Hash of what decides a run's result: model, data set, seed, config files (content), options."""
    files = []
    for path in config_files or []:
        try:
            with open(path, "rb") as f:
                files.append((path, hashlib.sha1(f.read()).hexdigest()))
        except OSError:
            files.append((path, None))
    blob = json.dumps(
        [model, dataset, seed, files, config_dict or {}, sorted(cmd_args or [])], sort_keys=True, default=str
    )
    return hashlib.sha1(blob.encode()).hexdigest()[:16]


# ------------------------------------------------------------------ data sharing
class SharedDataError(RuntimeError):
    """The data set this model would share failed to build for an earlier model."""


@dataclasses.dataclass(frozen=True)
class SharedSplit:
    """The data set and splits of one split key and seed, built for the model ``first`` and
    shared by the models after it, or why building them failed (``failure``)."""

    first: str
    splits: Optional[Splits] = None
    failure: Optional[str] = None


# ------------------------------------------------------------------ running
@dataclasses.dataclass
class RunSpec:
    """What every run of one comparison shares: the request, its results folder, and where
    progress lines go."""

    request: CompareRequest
    results_dir: str
    echo: Callable[[str], None] = print
    #: parameters for every model (between the config files and the options; tests and tools)
    config_dict: Optional[dict] = None
    #: command-line keys a model may not know (keys of another model of the comparison)
    lenient_keys: Tuple[str, ...] = ()

    @classmethod
    def of(
        cls, request: CompareRequest, echo: Callable[[str], None] = print, config_dict: Optional[dict] = None
    ) -> "RunSpec":
        """The spec of ``request``: its results folder (a new ``results/<dataset>-<time>`` when
        it names none) and the command line's keys a model may not know."""
        results_dir = request.results_dir or default_results_dir(request.dataset)
        return cls(request, results_dir, echo, config_dict, lenient_keys(request))

    @property
    def dataset(self) -> str:
        return self.request.dataset

    @property
    def cmd_args(self) -> List[str]:
        return list(self.request.config_args)

    @property
    def saved(self) -> bool:
        return self.request.saved

    def files_for(self, entry: str) -> Optional[List[str]]:
        """The config files, then the model's own file in ``model_configs`` if there is one; a
        variant ``Model@name`` then also reads ``Model@name.yaml`` there, which must exist."""
        folder = self.request.model_configs
        model = model_of(entry)
        own = [os.path.join(folder, f"{name}.yaml") for name in dict.fromkeys((model, entry))] if folder else []
        if entry != model and not (own and os.path.isfile(own[-1])):
            where = f"{folder}/{entry}.yaml" if folder else f"--model-configs=DIR with DIR/{entry}.yaml"
            raise UserError(f"variant {entry} needs its settings in {where}")
        files = list(self.request.config_files) + [path for path in own if os.path.isfile(path)]
        return files or None

    @property
    def layout(self) -> ResultsLayout:
        return ResultsLayout(self.results_dir)

    def stored(self, model: str, seed, fp: str) -> Optional[RunRecord]:
        """The stored finished run of ``model`` and ``seed`` with fingerprint ``fp``, unless
        ``force``; it says so through ``echo``."""
        if self.request.force or seed is None:
            return None
        rec = self.layout.load(model, seed)
        if rec is not None and rec.ok and rec.fingerprint == fp:
            self.echo(f"[compare] {model} seed {seed}: already in {self.results_dir}, skipped (--force reruns)")
            return rec
        return None


def resolve_runs(request: CompareRequest, config_dict: Optional[dict] = None) -> Dict[str, Run]:
    """Every entry's configuration as its run resolves it (the config files, the entry's own
    files, ``config_dict``, the options), without looking for the data set
    (:func:`recbole_ext.pipeline.resolve_all`); a mistake is a UserError."""
    probe = RunSpec(request, "", config_dict=config_dict)
    return resolve_all(request.models, request.dataset, probe.files_for, config_dict, request.config_args)


def preflight(
    request: CompareRequest, config_dict: Optional[dict] = None, echo: Optional[Callable[[str], None]] = None
) -> Dict[str, Run]:
    """Before the first run: every model name, every model's configuration (:func:`resolve_runs`)
    and the data set; a mistake is a UserError, nothing has trained. A key of a file that no
    default knows (a misspelt key of a variant file) is a warning through ``echo``, here."""
    runs = resolve_runs(request, config_dict)
    for run in runs.values():
        run.locate_data()
    if echo is not None:
        for entry, run in runs.items():
            for msg in getattr(run.config, "file_key_warnings", []):
                echo(f"[compare] {entry}: warning: {msg}")
    return runs


def lenient_keys(request: CompareRequest) -> Tuple[str, ...]:
    """The command-line keys of a request (each must be a key of at least one of its models)."""
    return tuple(sorted({k for k in map(option_key, request.config_args) if k is not None}))


def run_comparison(
    request: CompareRequest,
    echo: Callable[[str], None] = print,
    config_dict: Optional[dict] = None,
    write_table: bool = True,
    checked: bool = False,
) -> Tuple[List[RunRecord], str]:
    """Run every model (for every seed) on shared splits and write the table.

    Args:
        request: what to compare (:class:`~recbole_ext.command.CompareRequest`).
        echo: where progress lines and the table go.
        config_dict: parameters for every model (between the config files and the options).
        write_table: write ``comparison.*`` (a job of the parallel grid leaves them to its parent).
        checked: :func:`preflight` has run already (the parallel grid's parent ran it).

    Returns:
        ``(records, results_dir)``: one record per model and seed, as stored in ``runs/``.
    """
    if not checked:
        preflight(request, config_dict, echo)
    spec = RunSpec.of(request, echo, config_dict)
    os.makedirs(spec.layout.runs_dir, exist_ok=True)
    records: List[RunRecord] = []
    for seed in list(request.seeds) if request.seeds else [None]:
        shared: Dict[str, SharedSplit] = {}  # split key -> its data set and splits
        for name in request.models:
            records.append(_run_named(spec, name, seed, shared))
        shared.clear()
        release_memory()
    if write_table:
        write_outputs(
            records, request.dataset, spec.results_dir, plot=request.plot, echo=echo, title=table_title(request)
        )
    return records, spec.results_dir


def _run_named(spec: RunSpec, name: str, seed, shared: Dict[str, SharedSplit]) -> RunRecord:
    """One model by the name the user gave: its stored run, or a new run, or a failed row."""
    try:
        model = canonical_entry(name)
    except UserError as e:
        spec.echo(f"[compare] {name}: failed: {one_line(e)}")
        return failed_record(name, spec.dataset, seed, one_line(e))
    fp = fingerprint(model, spec.dataset, seed, spec.files_for(model), spec.config_dict, spec.cmd_args)
    return spec.stored(model, seed, fp) or _run_model(spec, model, seed, fp, shared)


def table_title(request: CompareRequest) -> str:
    parts = [f"{', '.join(request.models)} on {request.dataset}"]
    if request.seeds:
        parts.append(f"seeds {', '.join(map(str, request.seeds))}")
    if request.config_args:
        parts.append("options " + " ".join(request.config_args))
    return "; ".join(parts)


def _run_model(spec: RunSpec, model: str, seed, fp: str, shared: Dict[str, SharedSplit]) -> RunRecord:
    """Config, shared data, train and test one model; always returns a record (ok or failed)."""
    seed_args = spec.cmd_args + ([f"--seed={seed}"] if seed is not None else [])
    try:
        run = Run.resolve(
            model_of(model),
            spec.dataset,
            spec.files_for(model),
            {**spec.layout.run_outputs(), **(spec.config_dict or {})},
            seed_args,
            lenient_keys=spec.lenient_keys,
        )
        run.locate_data()
    except Exception as e:  # noqa: BLE001 - any failure is a row of the table
        spec.echo(f"[compare] {model}: failed: {one_line(e)}")
        rec = failed_record(model, spec.dataset, seed, one_line(e), fingerprint=fp)
        spec.layout.store(rec)
        return rec
    config = run.config
    seed = config["seed"] if seed is None else seed
    stored = spec.stored(model, seed, fp)
    if stored:
        return stored
    _write_config(spec.layout.config_path(model), model, config)
    rec = _logged_run(spec, run, model, seed, shared)
    rec.fingerprint, rec.finished_at = fp, datetime.datetime.now().isoformat(timespec="seconds")
    spec.layout.store(rec)
    release_memory()
    return rec


def _logged_run(spec: RunSpec, run: Run, model: str, seed, shared: Dict[str, SharedSplit]) -> RunRecord:
    """Train and test entry ``model`` under its own log file; a failure is a failed record."""
    config = run.config
    logger, log_file = getLogger(), None
    try:
        run.attach_device()
        log_file = run.open_log(spec.layout.log_dir)
        rec = _train_and_test(spec, run, model, seed, shared)
    except KeyboardInterrupt:
        raise
    except Exception as e:  # noqa: BLE001 - bad config, OOM, anything: report and go on
        reason = str(e) if isinstance(e, SharedDataError) else one_line(e)
        logger.error("compare failed: " + reason + "\n" + traceback.format_exc())
        spec.echo(f"[compare] {model} seed {seed}: failed: {reason}")
        rec = failed_record(
            model,
            spec.dataset,
            seed,
            reason,
            protocol=protocol_of(config["eval_args"], config["eval_candidates"]),
            device=device_label(config["device"]),
        )
    finally:
        close_logger()
    rec.log_file = log_file
    return rec


def _shared_split(run: Run, model: str, seed, shared: Dict[str, SharedSplit]) -> Splits:
    """The data set and splits for ``run``, built once per split key and seed."""
    key = run.split_key()
    if key not in shared:
        try:
            shared[key] = SharedSplit(model, splits=run.prepare_data())
        except Exception as e:  # noqa: BLE001
            shared[key] = SharedSplit(model, failure=f"data set: {one_line(e)}")
            raise
    entry = shared[key]
    if entry.failure is not None:
        raise SharedDataError(entry.failure)
    if entry.first != model:
        getLogger().info(entry.splits.dataset)
        getLogger().info(f"data set and splits shared with {entry.first} (built once for seed {seed})")
        entry.splits.log_leakage()
    return entry.splits


def _train_and_test(spec: RunSpec, run: Run, model: str, seed, shared: Dict[str, SharedSplit]) -> RunRecord:
    """Train and test on the shared split; the record takes everything from the result."""
    config = run.config
    splits = _shared_split(run, model, seed, shared)
    loaders = run.build_loaders(splits)
    meter = PeakMemory(config["device"])
    with meter:
        result = run.train_and_test(loaders, saved=spec.saved)
    timings = result.timings
    rec = RunRecord(
        model=model,
        dataset=spec.dataset,
        seed=seed,
        test_result=plain_metrics(result.test_result),
        best_valid_result=plain_metrics(result.best_valid_result),
        best_valid_score=float(result.best_valid_score),
        valid_metric=config["valid_metric"],
        valid_metric_bigger=bool(config["valid_metric_bigger"]),
        epochs_run=len(timings["train_epoch_s"]),
        protocol=protocol_of(config["eval_args"], config["eval_candidates"], splits.leakage),
        n_params=int(result.n_params),
        train_epoch_s=[float(x) for x in timings["train_epoch_s"]],
        eval_batch_ms=[float(x) for x in timings["eval_batch_ms"]],
        eval_recbole_batch_ms=[float(x) for x in timings["eval_recbole_batch_ms"]],
        eval_ms_per_2048_users=[None if x is None else float(x) for x in timings["eval_ms_per_2048_users"]],
        train_batches=[list(map(int, x)) for x in timings["train_batches"]],
        peak_mem_mb=meter.peak_mb,
        peak_rss_mb=meter.peak_rss_mb,
        peak_reserved_gib=meter.peak_reserved_gib,
        mem_method=meter.method,
        device=device_label(config["device"]),
        valid_curve=[list(p) for p in timings["valid_curve"]],
        per_user=result.per_user,
        checkpoint=result.saved_model_file,
    )
    # the log keeps what `recbole-ext report` cannot read elsewhere (per-batch timing, memory)
    summary = {
        k: getattr(rec, k)
        for k in (
            "n_params",
            "best_valid_score",
            "train_epoch_s",
            "eval_batch_ms",
            "eval_recbole_batch_ms",
            "eval_ms_per_2048_users",
            "peak_mem_mb",
            "peak_reserved_gib",
            "peak_rss_mb",
            "mem_method",
            "device",
        )
    }
    getLogger().info("compare summary: " + json.dumps(summary))
    return rec


def _write_config(path: str, model: str, config) -> None:
    """The resolved config, one file per model: seeds differ only in ``seed``."""
    text = (
        f"# resolved config of {model} (seed {config['seed']}; other seeds differ only in `seed`)\n"
        + yaml.safe_dump(plain_config(config), sort_keys=False, default_flow_style=None)
    )
    atomic_write_text(path, text)
