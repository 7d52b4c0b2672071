"""Side-by-side runs and comparison tables, the way papers report them.

``python run_recbole_ext.py --model=GLINTRU,SASRec,GRU4Rec --dataset=ml-100k [--seeds=1,2,3]
[--results-dir=DIR] [--force] [--no-plot] [--key=value ...]``

For each seed, the data set is built and split once per *data-set class and data settings*
(RecBole builds sequential and general data sets differently; models that differ in a data key
such as ``MAX_ITEM_LIST_LENGTH`` get their own build), and every model of that group trains on
the same splits, with its own data loaders (built from the model's config: batch size, negative
sampling, its own training loader) and its own log file. Each finished run is stored as
``<results>/runs/<Model>-seed<S>.json`` (written atomically); a rerun with the same results
folder skips the runs found there unless ``--force``. A model that fails (bad config, out of
memory, any exception) is a row marked failed with its one-line reason; the others still run and
the exit status is 1.

The results folder (default ``results/<dataset>-<YYYYmmdd-HHMMSS>/``) holds
``comparison.md`` (also printed), ``comparison.csv``, ``comparison.tex``, ``comparison.png``
(with matplotlib), ``configs/<Model>.yaml`` (resolved config, plain YAML), ``runs/*.json`` and
``log/<Model>/*.log``.

Columns: the test metrics RecBole reports, the best validation score, epochs run, the protocol
(``full`` ranking or ``sampled uni100``/``pop100``), trainable parameters, training seconds per
epoch, inference milliseconds per evaluation batch (mean over every valid and test evaluation),
peak memory (see :class:`PeakMemory`) and the device. With several seeds each cell is
``mean ± std`` (sample standard deviation) and the best model of every metric column is compared
with each other model by a paired t-test over seeds (:func:`scipy.stats.ttest_rel`); its value
gets ``*`` when it beats every other model with p < 0.05, and the p-values are listed below the
table. The best value of each column is bold (higher is better for metrics, lower for cost).
"""

from __future__ import annotations

import csv
import ctypes
import datetime
import gc
import hashlib
import io
import json
import logging
import math
import os
import threading
import traceback
from logging import getLogger
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import torch
import yaml

from recbole_ext.errors import UserError
from recbole_ext.fileio import atomic_write_text
from recbole_ext.report import parse_entries, protocol_of, record_from_facts, strip_colors

RUN_DIR = "runs"
CONFIG_DIR = "configs"
LOG_DIR = "log"
TABLE_NAME = "comparison"


# ------------------------------------------------------------------ small helpers
def parse_list(value: Optional[str]) -> List[str]:
    return [v.strip() for v in (value or "").split(",") if v.strip()]


def parse_seeds(value: Optional[str]) -> Optional[List[int]]:
    if not value:
        return None
    try:
        seeds = [int(s) for s in parse_list(value)]
    except ValueError:
        raise UserError(f"--seeds takes integers separated by commas, got '{value}'") from None
    if len(set(seeds)) != len(seeds):
        raise UserError(f"--seeds lists a seed twice: '{value}'")
    return seeds


def one_line(exc: BaseException, limit: int = 300) -> str:
    """``Type: first line of the message``, cut to ``limit`` characters."""
    msg = str(exc).strip().splitlines()
    text = f"{type(exc).__name__}: {msg[0]}" if msg and msg[0] else type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def plain_config(config) -> dict:
    from recbole_ext.trainer.checkpoint import to_plain

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


# ------------------------------------------------------------------ memory
def _proc_status_mb(key: str) -> Optional[float]:
    """A ``kB`` line of ``/proc/self/status`` (``VmRSS``, ``VmHWM``) in MB, or None."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return None


def _rss_mb() -> Optional[float]:
    rss = _proc_status_mb("VmRSS")
    if rss is not None:
        return rss
    try:
        import psutil

        return psutil.Process().memory_info().rss / 2**20
    except Exception:  # noqa: BLE001
        return None


def _hwm_mb() -> Optional[float]:
    return _proc_status_mb("VmHWM")


def _reset_hwm() -> bool:
    """Reset the kernel's peak-RSS mark of this process (Linux >= 4.0); False where refused."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _release_memory() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    try:  # give freed heap back to the OS so the next model's RSS starts low
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


class PeakMemory:
    """Peak memory of one model's training and test, in MiB.

    - GPU: ``torch.cuda.max_memory_allocated`` after ``reset_peak_memory_stats`` (tensors only,
      not the CUDA context or the allocator's cache).
    - CPU: peak resident memory of the process while the model ran: the kernel's ``VmHWM`` after
      resetting it through ``/proc/self/clear_refs``; where that is refused, ``psutil``/``VmRSS``
      sampled every 20 ms by a thread. ``peak_mb`` is the growth over the resident memory at the
      start (Python, torch and the shared data set are already resident then and are not counted);
      ``peak_rss_mb`` is the whole process. Memory freed by an earlier model and kept by the
      allocator can hide part of the growth, so we collect garbage and ``malloc_trim`` first.
    """

    def __init__(self, device):
        self.device = torch.device(device)
        self.peak_mb: Optional[float] = None
        self.peak_rss_mb: Optional[float] = None
        self.method = ""
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._sampled = 0.0

    def __enter__(self) -> "PeakMemory":
        _release_memory()
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self.method = "torch.cuda.max_memory_allocated"
            return self
        self.start_mb = _rss_mb() or 0.0
        if _reset_hwm() and _hwm_mb() is not None:
            self.method = "CPU peak RSS growth (VmHWM, reset per model)"
        else:
            self.method = "CPU peak RSS growth (sampled every 20 ms)"
            self._sampled = self.start_mb
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.02):
            self._sampled = max(self._sampled, _rss_mb() or 0.0)

    def __exit__(self, *exc) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.peak_mb = torch.cuda.max_memory_allocated(self.device) / 2**20
            return
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            peak = max(self._sampled, _rss_mb() or 0.0)
        else:
            peak = _hwm_mb() or 0.0
        self.peak_rss_mb = peak
        self.peak_mb = max(0.0, peak - self.start_mb)


# ------------------------------------------------------------------ log capture
class _Capture(logging.Handler):
    """Keeps ``(level, message)`` of every record while one model runs (whatever ``state`` says)."""

    def __init__(self):
        super().__init__(logging.INFO)
        self.entries: List[Tuple[str, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.entries.append((record.levelname, strip_colors(record.getMessage())))
        except Exception:  # noqa: BLE001
            pass


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


def build_split(config):
    """Build the data set for ``config`` and split it: ``(dataset, (train, valid, test))``."""
    from recbole.utils import init_seed

    from recbole_ext.data.utils import create_dataset

    init_seed(config["seed"], config["reproducibility"])
    dataset = create_dataset(config)
    getLogger().info(dataset)
    return dataset, tuple(dataset.build())


def make_loaders(config, dataset, built):
    """Train/valid/test loaders for one model over already split data (RecBole's logic)."""
    from recbole.data import utils as recbole_data_utils
    from recbole.sampler import KGSampler
    from recbole.utils import ModelType

    from recbole_ext.data.utils import get_dataloader

    train_ds, valid_ds, test_ds = built
    train_sampler, valid_sampler, test_sampler = recbole_data_utils.create_samplers(config, dataset, list(built))
    if config["MODEL_TYPE"] != ModelType.KNOWLEDGE:
        train = get_dataloader(config, "train")(config, train_ds, train_sampler, shuffle=config["shuffle"])
    else:
        neg = config["train_neg_sample_args"]
        kg_sampler = KGSampler(dataset, neg["distribution"], neg["alpha"])
        train = get_dataloader(config, "train")(config, train_ds, train_sampler, kg_sampler, shuffle=True)
    valid = get_dataloader(config, "valid")(config, valid_ds, valid_sampler, shuffle=False)
    test = get_dataloader(config, "test")(config, test_ds, test_sampler, shuffle=False)
    getLogger().info(
        f"[Training]: train_batch_size = [{config['train_batch_size']}] "
        f"train_neg_sample_args: [{config['train_neg_sample_args']}]"
    )
    getLogger().info(
        f"[Evaluation]: eval_batch_size = [{config['eval_batch_size']}] eval_args: [{config['eval_args']}]"
    )
    return train, valid, test


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
        plot: draw ``comparison.png`` when matplotlib is installed.
        echo: where progress lines and the table go.

    Returns:
        ``(records, results_dir)``: one record per model and seed, as stored in ``runs/``.
    """
    from recbole_ext.utils import canonical_model_name

    models = list(models)
    if not models:
        raise UserError("no model given: pass --model=A,B,...")
    cmd_args = list(cmd_args or [])
    if seeds and any(a.startswith("--seed=") for a in cmd_args):
        raise UserError("give either --seeds=... or --seed=..., not both")
    seen = set()
    for m in models:
        if m.lower() in seen:
            raise UserError(f"model '{m}' is listed twice in --model")
        seen.add(m.lower())
    results_dir = results_dir or default_results_dir(dataset)
    os.makedirs(os.path.join(results_dir, RUN_DIR), exist_ok=True)
    log_dir = os.path.join(results_dir, LOG_DIR)

    records: List[dict] = []
    for seed in list(seeds) if seeds else [None]:
        seed_args = cmd_args + ([f"--seed={seed}"] if seed is not None else [])
        shared: Dict[str, tuple] = {}  # data key -> ("ok", dataset, built, first model) | ("failed", reason)
        for name in models:
            try:
                model = canonical_model_name(name)
            except UserError as e:
                records.append(_failed(name, dataset, seed, one_line(e)))
                echo(f"[compare] {name}: failed: {one_line(e)}")
                continue
            fp = fingerprint(model, dataset, seed, config_files, config_dict, cmd_args)
            if seed is not None:
                stored = load_run(run_path(results_dir, model, seed))
                if not force and stored and stored.get("status") == "ok" and stored.get("fingerprint") == fp:
                    echo(f"[compare] {model} seed {seed}: already in {results_dir}, skipped (--force reruns)")
                    records.append(stored)
                    continue
            record = _run_model(model, dataset, seed, config_files, config_dict, seed_args, shared,
                                results_dir, log_dir, saved, force, fp, echo)
            records.append(record)
        shared.clear()
        _release_memory()

    write_outputs(records, dataset, results_dir, plot=plot, echo=echo, title=_title(models, dataset, seeds, cmd_args))
    return records, results_dir


def _title(models, dataset, seeds, cmd_args) -> str:
    parts = [f"{', '.join(models)} on {dataset}"]
    if seeds:
        parts.append(f"seeds {', '.join(map(str, seeds))}")
    if cmd_args:
        parts.append("options " + " ".join(cmd_args))
    return "; ".join(parts)


def _failed(model: str, dataset: str, seed, reason: str, **extra) -> dict:
    rec = {"model": model, "dataset": dataset, "seed": seed, "status": "failed", "reason": reason,
           "test_result": {}, "best_valid_result": {}, "valid_curve": [], "train_epoch_s": [], "eval_batch_ms": []}
    rec.update(extra)
    return rec


def _run_model(model, dataset, seed, config_files, config_dict, seed_args, shared, results_dir, log_dir,
               saved, force, fp, echo) -> dict:
    """Config, shared data, train and test one model; always returns a record (ok or failed)."""
    from recbole_ext.config import Config
    from recbole_ext.data.utils import get_dataset_class
    from recbole_ext.logger import close_logger, init_logger
    from recbole_ext.quick_start import train_and_test

    logger = getLogger()
    capture = _Capture()
    log_file = None
    root = logging.getLogger()
    try:
        config = Config(model, dataset, config_files, config_dict, seed_args)
    except Exception as e:  # noqa: BLE001 - any failure is a row of the table
        reason = one_line(e)
        echo(f"[compare] {model}: failed: {reason}")
        rec = _failed(model, dataset, seed, reason, fingerprint=fp)
        _store(results_dir, rec, seed)
        return rec
    seed = config["seed"] if seed is None else seed
    stored = load_run(run_path(results_dir, model, seed))
    if not force and stored and stored.get("status") == "ok" and stored.get("fingerprint") == fp:
        echo(f"[compare] {model} seed {seed}: already in {results_dir}, skipped (--force reruns)")
        return stored
    _write_config(results_dir, model, config)
    try:
        log_file = init_logger(config, log_dir=log_dir)
        root.addHandler(capture)
        if root.level > logging.INFO:
            root.setLevel(logging.INFO)  # the file/console handlers keep the configured level
        for msg in getattr(config, "unknown_key_warnings", []):
            logger.warning(msg)
        logger.info(config)
        key = data_key(config, get_dataset_class(config))
        if key not in shared:
            try:
                data, built = build_split(config)
                shared[key] = ("ok", data, built, model)
            except Exception as e:  # noqa: BLE001
                shared[key] = ("failed", f"data set: {one_line(e)}")
                raise
        entry = shared[key]
        if entry[0] == "failed":
            raise SharedDataError(entry[1])
        _, data, built, first = entry
        if first != model:
            logger.info(data)
            logger.info(f"data set and splits shared with {first} (built once for seed {seed})")
        train, valid, test = make_loaders(config, data, built)
        meter = PeakMemory(config["device"])
        with meter:
            result, trainer = train_and_test(config, train, valid, test, saved=saved)
        summary = {
            "n_params": int(result["n_params"]),
            "best_valid_score": float(result["best_valid_score"]),
            "train_epoch_s": [float(x) for x in trainer.timings["train_epoch_s"]],
            "eval_batch_ms": [float(x) for x in trainer.timings["eval_batch_ms"]],
            "peak_mem_mb": meter.peak_mb,
            "peak_rss_mb": meter.peak_rss_mb,
            "mem_method": meter.method,
            "device": device_label(config["device"]),
        }
        logger.info("compare summary: " + json.dumps(summary))
        del trainer, train, valid, test
        facts = parse_entries(capture.entries)
        rec = record_from_facts(facts, model, dataset, source="compare")
        rec.update(
            seed=seed,
            test_result={k: float(v) for k, v in (result["test_result"] or {}).items()},
            best_valid_result={k: float(v) for k, v in (result["best_valid_result"] or {}).items()},
            valid_metric=config["valid_metric"],
            valid_metric_bigger=bool(config["valid_metric_bigger"]),
            protocol=protocol_of(config["eval_args"]),
        )
        rec.update(summary)
    except KeyboardInterrupt:
        raise
    except Exception as e:  # noqa: BLE001 - bad config, OOM, anything: report and go on
        reason = str(e) if isinstance(e, SharedDataError) else one_line(e)
        logger.error("compare failed: " + reason + "\n" + traceback.format_exc())
        echo(f"[compare] {model} seed {seed}: failed: {reason}")
        rec = _failed(model, dataset, seed, reason, protocol=protocol_of(config["eval_args"]),
                      device=device_label(config["device"]))
    finally:
        root.removeHandler(capture)
        close_logger()
    rec["fingerprint"] = fp
    rec["log_file"] = log_file
    rec["finished_at"] = datetime.datetime.now().isoformat(timespec="seconds")
    _store(results_dir, rec, seed)
    _release_memory()
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


# ------------------------------------------------------------------ table
class Column:
    def __init__(self, key: str, header: str, better: Optional[str], digits: int, metric: bool = False):
        self.key, self.header, self.better, self.digits, self.metric = key, header, better, digits, metric


def _mean(xs: List[float]) -> Optional[float]:
    xs = [x for x in xs if x is not None and not (isinstance(x, float) and math.isnan(x))]
    return sum(xs) / len(xs) if xs else None


def _std(xs: List[float]) -> Optional[float]:
    xs = [x for x in xs if x is not None and not (isinstance(x, float) and math.isnan(x))]
    if len(xs) < 2:
        return None
    m = sum(xs) / len(xs)
    return math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1))


def _value(rec: dict, key: str):
    if key.startswith("test:"):
        return rec.get("test_result", {}).get(key[5:])
    if key == "train_s_epoch":
        return _mean(rec.get("train_epoch_s") or [])
    if key == "eval_ms_batch":
        return _mean(rec.get("eval_batch_ms") or [])
    return rec.get(key)


def build_table(records: List[dict]) -> dict:
    """Aggregate run records into rows (one per model, in first-seen order) and columns."""
    models: List[str] = []
    by_model: Dict[str, List[dict]] = {}
    for rec in records:
        if rec["model"] not in by_model:
            models.append(rec["model"])
            by_model[rec["model"]] = []
        by_model[rec["model"]].append(rec)
    metric_names: List[str] = []
    for rec in records:
        for k in rec.get("test_result") or {}:
            if k not in metric_names:
                metric_names.append(k)
    ok = [r for r in records if r.get("status") == "ok"]
    valid_metric = next((r.get("valid_metric") for r in ok if r.get("valid_metric")), "")
    bigger = next((r.get("valid_metric_bigger") for r in ok if r.get("valid_metric_bigger") is not None), True)
    columns = [Column(f"test:{m}", _metric_header(m), "max", 4, metric=True) for m in metric_names]
    columns += [
        Column("best_valid_score", f"Best valid {_metric_header(valid_metric)}".strip(), "max" if bigger else "min", 4),
        Column("epochs_run", "Epochs", None, 0),
        Column("n_params", "Params", "min", 0),
        Column("train_s_epoch", "Train s/epoch", "min", 2),
        Column("eval_ms_batch", "Infer ms/batch", "min", 1),
        Column("peak_mem_mb", "Peak mem MB", "min", 1),
    ]
    rows = []
    for model in models:
        recs = by_model[model]
        good = sorted([r for r in recs if r.get("status") == "ok"], key=lambda r: (r.get("seed") is None, r.get("seed")))
        bad = [r for r in recs if r.get("status") != "ok"]
        cells = {}
        for col in columns:
            vals = [_value(r, col.key) for r in good]
            cells[col.key] = {
                "mean": _mean(vals), "std": _std(vals), "n": len([v for v in vals if v is not None]),
                "by_seed": {r.get("seed"): _value(r, col.key) for r in good},
            }
        status = "ok"
        if bad:
            seeds = ", ".join(str(r.get("seed")) for r in bad if r.get("seed") is not None)
            status = "failed" + (f" (seed {seeds})" if seeds and good else "") + ": " + (bad[0].get("reason") or "")
        first = (good or recs)[0]
        rows.append({
            "model": model,
            "cells": cells,
            "protocol": first.get("protocol") or "",
            "device": first.get("device") or "",
            "status": status,
            "n_seeds": len(good),
            "seeds": [r.get("seed") for r in good],
            "mark": {},
            "p_values": {},
        })
    _mark_best(rows, columns)
    _significance(rows, columns)
    return {"columns": columns, "rows": rows, "valid_metric": valid_metric,
            "mem_method": next((r.get("mem_method") for r in ok if r.get("mem_method")), "")}


def _metric_header(name: str) -> str:
    if not name:
        return ""
    base, _, k = name.partition("@")
    pretty = {"recall": "Recall", "mrr": "MRR", "ndcg": "NDCG", "hit": "Hit", "precision": "Precision",
              "map": "MAP", "auc": "AUC", "gauc": "GAUC", "logloss": "LogLoss", "rmse": "RMSE", "mae": "MAE",
              "itemcoverage": "ItemCoverage", "averagepopularity": "AveragePopularity"}.get(base.lower(), base)
    return f"{pretty}@{k}" if k else pretty


def _mark_best(rows: List[dict], columns: List[Column]) -> None:
    for col in columns:
        if col.better is None:
            continue
        vals = [(r["cells"][col.key]["mean"], r) for r in rows if r["cells"][col.key]["mean"] is not None]
        if len(vals) < 2:
            continue
        best = max(v for v, _ in vals) if col.better == "max" else min(v for v, _ in vals)
        for v, r in vals:
            if v == best:
                r["mark"][col.key] = "best"


def _significance(rows: List[dict], columns: List[Column]) -> None:
    """Paired t-test over seeds: the best model of each metric column against each other model."""
    try:
        from scipy.stats import ttest_rel
    except ImportError:  # pragma: no cover - scipy is a dependency
        return
    for col in columns:
        if not col.metric:
            continue
        best_rows = [r for r in rows if r["mark"].get(col.key) == "best"]
        if len(best_rows) != 1:
            continue
        best = best_rows[0]
        b = best["cells"][col.key]["by_seed"]
        all_sig, tested = True, 0
        for r in rows:
            if r is best or r["cells"][col.key]["mean"] is None:
                continue
            o = r["cells"][col.key]["by_seed"]
            common = [s for s in b if s is not None and s in o and b[s] is not None and o[s] is not None]
            if len(common) < 2:
                all_sig = False
                continue
            x, y = [b[s] for s in common], [o[s] for s in common]
            if all(abs(p - q) < 1e-15 for p, q in zip(x, y)):
                p = 1.0
            else:
                p = float(ttest_rel(x, y).pvalue)
                if math.isnan(p):  # constant non-zero difference: the paired test is degenerate
                    p = 0.0 if all(p_ > q_ for p_, q_ in zip(x, y)) else 1.0
            r["p_values"][col.key] = p
            tested += 1
            all_sig &= p < 0.05
        if tested and all_sig:
            best["mark"][col.key] = "best*"


def _fmt(x: Optional[float], digits: int) -> str:
    if x is None:
        return ""
    if digits == 0:
        return f"{int(round(x)):,}".replace(",", " ") if abs(x) >= 10000 else str(int(round(x)))
    return f"{x:.{digits}f}"


def _cell_text(cell: dict, col: Column, latex: bool = False) -> str:
    if cell["mean"] is None:
        return "–" if not latex else "--"
    text = _fmt(cell["mean"], col.digits)
    if cell["std"] is not None and col.key != "n_params":
        pm = r" $\pm$ " if latex else " ± "
        text += pm + _fmt(cell["std"], col.digits if col.digits else 1)
    return text


def _status_text(row: dict) -> str:
    return row["status"].replace("|", "/")


def to_markdown(table: dict) -> str:
    cols = table["columns"]
    header = ["Model"] + [c.header for c in cols] + ["Protocol", "Device", "Status"]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * len(cols) + ["---"] * 3) + "|"]
    for row in table["rows"]:
        cells = []
        for c in cols:
            text = _cell_text(row["cells"][c.key], c)
            mark = row["mark"].get(c.key)
            if mark:
                text = f"**{text}**" + ("\\*" if mark == "best*" else "")
            cells.append(text)
        lines.append("| " + " | ".join([row["model"]] + cells + [row["protocol"], row["device"], _status_text(row)]) + " |")
    return "\n".join(lines)


def significance_markdown(table: dict) -> str:
    """p-values of the paired t-tests (best model of each metric against each other model)."""
    cols = [c for c in table["columns"] if c.metric and any(c.key in r["p_values"] for r in table["rows"])]
    if not cols:
        return ""
    best = {c.key: next((r["model"] for r in table["rows"] if r["mark"].get(c.key, "").startswith("best")), "")
            for c in cols}
    lines = ["| Model | " + " | ".join(f"{c.header} (vs {best[c.key]})" for c in cols) + " |",
             "|---|" + "|".join("---:" for _ in cols) + "|"]
    for row in table["rows"]:
        vals = []
        for c in cols:
            p = row["p_values"].get(c.key)
            vals.append("" if p is None else (f"{p:.3g}" + (" *" if p < 0.05 else "")))
        if any(vals):
            lines.append("| " + row["model"] + " | " + " | ".join(vals) + " |")
    return "\n".join(lines)


def to_csv(table: dict) -> str:
    buf = io.StringIO()
    w = csv.writer(buf)
    cols = table["columns"]
    head = ["model", "n_seeds", "status", "protocol", "device"]
    for c in cols:
        head += [c.key, f"{c.key}_std"] + ([f"{c.key}_p_vs_best"] if c.metric else [])
    w.writerow(head)
    for row in table["rows"]:
        line = [row["model"], row["n_seeds"], row["status"], row["protocol"], row["device"]]
        for c in cols:
            cell = row["cells"][c.key]
            line += ["" if cell["mean"] is None else repr(float(cell["mean"])),
                     "" if cell["std"] is None else repr(float(cell["std"]))]
            if c.metric:
                p = row["p_values"].get(c.key)
                line.append("" if p is None else repr(p))
        w.writerow(line)
    return buf.getvalue()


_TEX = {"&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{", "}": r"\}",
        "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "\\": r"\textbackslash{}"}


def tex_escape(text: str) -> str:
    return "".join(_TEX.get(ch, ch) for ch in str(text))


def to_latex(table: dict, caption: str = "") -> str:
    cols = table["columns"]
    spec = "l" + "r" * len(cols) + "lll"
    lines = [r"\begin{table}[t]", r"\centering", r"\small"]
    if caption:
        lines.append(r"\caption{" + tex_escape(caption) + "}")
    lines += [r"\begin{tabular}{" + spec + "}", r"\toprule"]
    lines.append(" & ".join(["Model"] + [tex_escape(c.header) for c in cols] + ["Protocol", "Device", "Status"]) + r" \\")
    lines.append(r"\midrule")
    for row in table["rows"]:
        cells = []
        for c in cols:
            text = _cell_text(row["cells"][c.key], c, latex=True)
            text = text if "$" in text else tex_escape(text)
            mark = row["mark"].get(c.key)
            if mark:
                text = r"\textbf{" + text + "}" + ("$^{*}$" if mark == "best*" else "")
            cells.append(text)
        lines.append(" & ".join([tex_escape(row["model"])] + cells + [tex_escape(row["protocol"]),
                                 tex_escape(row["device"]), tex_escape(row["status"])]) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    return "\n".join(lines) + "\n"


def notes(table: dict, records: List[dict]) -> str:
    seeds = sorted({r.get("seed") for r in records if r.get("seed") is not None})
    out = []
    if len(seeds) > 1:
        out.append(f"Mean ± sample std over seeds {', '.join(map(str, seeds))}; * after a bold value: paired "
                   "t-test (scipy.stats.ttest_rel over seeds) of the best model against every other, p < 0.05.")
    out.append("Bold: best in the column (higher metrics, lower cost). Train s/epoch: mean wall time of a "
               "training epoch. Infer ms/batch: mean wall time per evaluation batch over all valid and test "
               "evaluations. Peak mem: " + (table.get("mem_method") or "not measured (log without it)") + ".")
    return "\n".join(out)


def write_outputs(records: List[dict], dataset: str, out_dir: Optional[str], plot: bool = True,
                  echo: Callable[[str], None] = print, title: str = "") -> dict:
    """Print the Markdown table; with ``out_dir``, write ``comparison.md/.csv/.tex`` (and ``.png``)."""
    table = build_table(records)
    md = to_markdown(table)
    sig = significance_markdown(table)
    doc = [f"## Comparison on {dataset}", ""]
    if title:
        doc += [title, ""]
    doc += [md, "", notes(table, records)]
    if sig:
        doc += ["", "Paired t-test p-values (best model of each metric against each other model):", "", sig]
    text = "\n".join(doc) + "\n"
    echo(text)
    if out_dir:
        os.makedirs(out_dir, exist_ok=True)
        base = os.path.join(out_dir, TABLE_NAME)
        atomic_write_text(base + ".md", text)
        atomic_write_text(base + ".csv", to_csv(table))
        atomic_write_text(base + ".tex", to_latex(table, caption=f"Comparison on {dataset}"))
        written = [base + ".md", base + ".csv", base + ".tex"]
        if plot:
            from recbole_ext.plot import plot_comparison

            png = plot_comparison(records, base + ".png", echo=echo)
            if png:
                written.append(png)
        echo("[compare] wrote " + ", ".join(written))
    table["markdown"] = text
    return table


# ------------------------------------------------------------------ command line
def run_from_args(args, config_args: List[str]) -> int:
    """Entry from :mod:`recbole_ext.cli`; returns 1 when a model failed, else 0."""
    if not args.dataset:
        raise UserError("no data set given: pass --dataset=NAME (ml-100k is bundled)")
    models = parse_list(args.model)
    seeds = parse_seeds(getattr(args, "seeds", None))
    config_files = args.config_files.split() if args.config_files else None
    records, results_dir = run_comparison(
        models, args.dataset, config_files, config_args, seeds=seeds,
        results_dir=getattr(args, "results_dir", None), force=bool(getattr(args, "force", False)),
        saved=not getattr(args, "no_save", False), plot=not getattr(args, "no_plot", False),
    )
    if not getattr(args, "results_dir", None):
        print(f"[compare] to resume or extend this comparison, add --results-dir={results_dir}")
    return 1 if any(r.get("status") != "ok" for r in records) else 0
