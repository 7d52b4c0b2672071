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
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import torch
import yaml

from recbole_ext.compare.memory import PeakMemory, release_memory
from recbole_ext.config import Config
from recbole_ext.data.utils import build_split, make_loaders
from recbole_ext.errors import UserError
from recbole_ext.fileio import atomic_write_text
from recbole_ext.logger import close_logger, init_logger
from recbole_ext.quick_start import plain_metrics, train_and_test
from recbole_ext.registry import canonical_model_name, get_dataset_class
from recbole_ext.results.logparse import protocol_of
from recbole_ext.results.record import RunRecord, failed_record
from recbole_ext.results.render import write_outputs
from recbole_ext.trainer.checkpoint import to_plain

RUN_DIR = "runs"
CONFIG_DIR = "configs"
LOG_DIR = "log"


# ------------------------------------------------------------------ small helpers
def one_line(exc: BaseException, limit: int = 300) -> str:
    """``Type: first line of the message``, cut to ``limit`` characters."""
    msg = str(exc).strip().splitlines()
    text = f"{type(exc).__name__}: {msg[0]}" if msg and msg[0] else type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


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


def data_key(config, dataset_class) -> str:
    """Models with equal keys can share one built and split data set."""
    from recbole.utils.argument_list import dataset_arguments

    keys = sorted(set(dataset_arguments) | set(config.parameters.get("Dataset", [])))
    values = {k: config.final_config_dict.get(k) for k in keys}
    values.update(
        dataset=config["dataset"],
        data_path=config["data_path"],
        eval_args=config["eval_args"],
        seed=config["seed"],
        reproducibility=config["reproducibility"],
        dataset_class=f"{dataset_class.__module__}.{dataset_class.__qualname__}",
    )
    return json.dumps(values, sort_keys=True, default=str)


# ------------------------------------------------------------------ running
def run_path(results_dir: str, model: str, seed) -> str:
    return os.path.join(results_dir, RUN_DIR, f"{model}-seed{seed}.json")


def load_run(path: str) -> Optional[dict]:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def default_results_dir(dataset: str) -> str:
    return os.path.join("results", f"{dataset}-{datetime.datetime.now().strftime('%Y%m%d-%H%M%S')}")


@dataclasses.dataclass
class RunSpec:
    """What every run of one comparison shares."""

    dataset: str
    results_dir: str
    config_files: Optional[List[str]] = None
    config_dict: Optional[dict] = None
    cmd_args: List[str] = dataclasses.field(default_factory=list)
    saved: bool = True
    force: bool = False
    echo: Callable[[str], None] = print
    #: a folder of ``<Model>.yaml`` files (the tune command's best configs), each read after
    #: ``config_files`` for its model only
    model_config_dir: Optional[str] = None

    def files_for(self, model: str) -> Optional[List[str]]:
        """``config_files``, then the model's own file in ``model_config_dir`` if there is one."""
        own = os.path.join(self.model_config_dir, f"{model}.yaml") if self.model_config_dir else None
        files = list(self.config_files or []) + ([own] if own and os.path.isfile(own) else [])
        return files or None

    @property
    def log_dir(self) -> str:
        return os.path.join(self.results_dir, LOG_DIR)

    def stored(self, model: str, seed, fp: str) -> Optional[dict]:
        """The stored finished run of ``model`` and ``seed`` with fingerprint ``fp``, unless
        ``force``; it says so through ``echo``."""
        if self.force or seed is None:
            return None
        rec = load_run(run_path(self.results_dir, model, seed))
        if rec and rec.get("status") == "ok" and rec.get("fingerprint") == fp:
            self.echo(f"[compare] {model} seed {seed}: already in {self.results_dir}, skipped (--force reruns)")
            return rec
        return None


def run_comparison(
    models: Sequence[str],
    dataset: str,
    config_files: Optional[List[str]] = None,
    cmd_args: Optional[Iterable[str]] = None,
    seeds: Optional[Sequence[int]] = None,
    results_dir: Optional[str] = None,
    force: bool = False,
    saved: bool = True,
    config_dict: Optional[dict] = None,
    plot: bool = True,
    echo: Callable[[str], None] = print,
    model_config_dir: Optional[str] = None,
) -> Tuple[List[dict], str]:
    """Run every model (for every seed) on shared splits and write the table.

    Args:
        models: model names, ours or RecBole's.
        dataset: data-set name.
        config_files: YAML files for every model, later ones win.
        cmd_args: ``--key=value`` strings for every model.
        seeds: seeds to run (``None``: the configured ``seed``, one run).
        results_dir: output folder (default ``results/<dataset>-<timestamp>``).
        force: rerun models whose results are already stored.
        saved: keep the best checkpoint and test it (else test the last epoch).
        config_dict: parameters for every model (between files and ``cmd_args``).
        plot: draw ``comparison.png``.
        echo: where progress lines and the table go.
        model_config_dir: a folder of ``<Model>.yaml`` files, each read after ``config_files``
            for its model (``compare --model-configs``; the tune command's best configs).

    Returns:
        ``(records, results_dir)``: one record per model and seed, as stored in ``runs/``.
    """
    models = list(models)
    cmd_args = list(cmd_args or [])
    check_request(models, seeds, cmd_args)
    spec = RunSpec(dataset, results_dir or default_results_dir(dataset), config_files, config_dict,
                   cmd_args, saved, force, echo, model_config_dir)
    os.makedirs(os.path.join(spec.results_dir, RUN_DIR), exist_ok=True)
    records: List[dict] = []
    for seed in list(seeds) if seeds else [None]:
        shared: Dict[str, tuple] = {}  # data key -> ("ok", dataset, built, first model) | ("failed", reason)
        for name in models:
            records.append(_run_named(spec, name, seed, shared))
        shared.clear()
        release_memory()
    write_outputs(records, dataset, spec.results_dir, plot=plot, echo=echo,
                  title=table_title(models, dataset, seeds, cmd_args))
    return records, spec.results_dir


def check_request(models: List[str], seeds, cmd_args: List[str]) -> None:
    if not models:
        raise UserError("no model given: pass --model=A,B,...")
    if seeds and any(a.startswith("--seed=") for a in cmd_args):
        raise UserError("give either --seeds=... or --seed=..., not both")
    seen = set()
    for m in models:
        if m.lower() in seen:
            raise UserError(f"model '{m}' is listed twice in --model")
        seen.add(m.lower())


def _run_named(spec: RunSpec, name: str, seed, shared: Dict[str, tuple]) -> dict:
    """One model by the name the user gave: its stored run, or a new run, or a failed row."""
    try:
        model = canonical_model_name(name)
    except UserError as e:
        spec.echo(f"[compare] {name}: failed: {one_line(e)}")
        return failed_record(name, spec.dataset, seed, one_line(e))
    fp = fingerprint(model, spec.dataset, seed, spec.files_for(model), spec.config_dict, spec.cmd_args)
    return spec.stored(model, seed, fp) or _run_model(spec, model, seed, fp, shared)


def table_title(models, dataset, seeds, cmd_args) -> str:
    parts = [f"{', '.join(models)} on {dataset}"]
    if seeds:
        parts.append(f"seeds {', '.join(map(str, seeds))}")
    if cmd_args:
        parts.append("options " + " ".join(cmd_args))
    return "; ".join(parts)


def _run_model(spec: RunSpec, model: str, seed, fp: str, shared: Dict[str, tuple]) -> dict:
    """Config, shared data, train and test one model; always returns a record (ok or failed)."""
    seed_args = spec.cmd_args + ([f"--seed={seed}"] if seed is not None else [])
    try:
        # checkpoints and TensorBoard runs stay in the results folder (--checkpoint_dir / --tensorboard_dir win)
        inside = {"checkpoint_dir": os.path.join(spec.results_dir, "saved"),
                  "tensorboard_dir": os.path.join(spec.results_dir, "log_tensorboard")}
        config = Config(model, spec.dataset, spec.files_for(model), {**inside, **(spec.config_dict or {})}, seed_args)
    except Exception as e:  # noqa: BLE001 - any failure is a row of the table
        spec.echo(f"[compare] {model}: failed: {one_line(e)}")
        rec = failed_record(model, spec.dataset, seed, one_line(e), fingerprint=fp)
        _store(spec.results_dir, rec, seed)
        return rec
    seed = config["seed"] if seed is None else seed
    stored = spec.stored(model, seed, fp)
    if stored:
        return stored
    _write_config(spec.results_dir, model, config)
    rec = _logged_run(spec, config, seed, shared)
    rec.update(fingerprint=fp, finished_at=datetime.datetime.now().isoformat(timespec="seconds"))
    _store(spec.results_dir, rec, seed)
    release_memory()
    return rec


def _logged_run(spec: RunSpec, config, seed, shared: Dict[str, tuple]) -> dict:
    """Train and test under the model's own log file; a failure is a failed record."""
    model, logger, log_file = config["model"], getLogger(), None
    try:
        log_file = init_logger(config, log_dir=spec.log_dir)
        for msg in getattr(config, "unknown_key_warnings", []):
            logger.warning(msg)
        logger.info(config, extra={"file_only": not config["verbose"]})
        rec = _train_and_test(spec, config, seed, shared)
    except KeyboardInterrupt:
        raise
    except Exception as e:  # noqa: BLE001 - bad config, OOM, anything: report and go on
        reason = str(e) if isinstance(e, SharedDataError) else one_line(e)
        logger.error("compare failed: " + reason + "\n" + traceback.format_exc())
        spec.echo(f"[compare] {model} seed {seed}: failed: {reason}")
        rec = failed_record(model, spec.dataset, seed, reason, protocol=protocol_of(config["eval_args"], config["eval_candidates"]),
                      device=device_label(config["device"]))
    finally:
        close_logger()
    rec["log_file"] = log_file
    return rec


def _shared_split(config, seed, shared: Dict[str, tuple]):
    """The data set and splits for ``config``, built once per data key and seed."""
    key = data_key(config, get_dataset_class(config))
    if key not in shared:
        try:
            data, built = build_split(config)
            shared[key] = ("ok", data, built, config["model"])
        except Exception as e:  # noqa: BLE001
            shared[key] = ("failed", f"data set: {one_line(e)}")
            raise
    entry = shared[key]
    if entry[0] == "failed":
        raise SharedDataError(entry[1])
    _, data, built, first = entry
    if first != config["model"]:
        getLogger().info(data)
        getLogger().info(f"data set and splits shared with {first} (built once for seed {seed})")
    return data, built


def _train_and_test(spec: RunSpec, config, seed, shared: Dict[str, tuple]) -> dict:
    """Train and test on the shared split; the record takes everything from the trainer."""
    data, built = _shared_split(config, seed, shared)
    train, valid, test = make_loaders(config, data, built)
    meter = PeakMemory(config["device"])
    with meter:
        result, trainer = train_and_test(config, train, valid, test, saved=spec.saved)
    timings = trainer.timings
    rec = RunRecord(
        model=config["model"], dataset=spec.dataset, seed=seed,
        test_result=plain_metrics(result["test_result"]),
        best_valid_result=plain_metrics(result["best_valid_result"]),
        best_valid_score=float(result["best_valid_score"]), valid_metric=config["valid_metric"],
        valid_metric_bigger=bool(config["valid_metric_bigger"]), epochs_run=len(timings["train_epoch_s"]),
        protocol=protocol_of(config["eval_args"], config["eval_candidates"]), n_params=int(result["n_params"]),
        train_epoch_s=[float(x) for x in timings["train_epoch_s"]],
        eval_batch_ms=[float(x) for x in timings["eval_batch_ms"]],
        peak_mem_mb=meter.peak_mb, peak_rss_mb=meter.peak_rss_mb, mem_method=meter.method,
        device=device_label(config["device"]), valid_curve=[list(p) for p in timings["valid_curve"]],
        per_user={k: [round(float(x), 6) for x in v] for k, v in trainer.per_user_result().items()},
    ).to_dict()
    # the log keeps what `recbole-ext report` cannot read elsewhere (per-batch timing, memory)
    summary = {k: rec[k] for k in ("n_params", "best_valid_score", "train_epoch_s", "eval_batch_ms",
                                   "peak_mem_mb", "peak_rss_mb", "mem_method", "device")}
    getLogger().info("compare summary: " + json.dumps(summary))
    return rec


def _store(results_dir: str, rec: dict, seed) -> None:
    atomic_write_text(run_path(results_dir, rec["model"], seed), json.dumps(rec, indent=1, default=str))


def _write_config(results_dir: str, model: str, config) -> None:
    path = os.path.join(results_dir, CONFIG_DIR, f"{model}.yaml")  # one per model: seeds differ only in `seed`
    text = (
        f"# resolved config of {model} (seed {config['seed']}; other seeds differ only in `seed`)\n"
        + yaml.safe_dump(plain_config(config), sort_keys=False, default_flow_style=None)
    )
    atomic_write_text(path, text)
