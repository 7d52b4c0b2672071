"""Records from RecBole log files, for ``recbole-ext report LOGDIR...`` (:mod:`recbole_ext.report`).

Reads every ``*.log`` under the given folders (or the files themselves), ours or plain RecBole
1.2.1's (we log in RecBole's format), and prints the table :mod:`recbole_ext.compare` writes:

- model and data set from the file name ``<Model>-<dataset>-<Mon-DD-YYYY_HH-MM-SS>-<md5>.log``
  (RecBole's naming), else from the model's repr and the data-set summary in the log;
- seed, ``eval_args`` (the protocol), ``valid_metric`` and device from the config dump;
- ``Trainable parameters: N``, per-epoch ``epoch N training [time: Xs`` and ``epoch N evaluating
  [time: Xs, valid_score: S]``, ``valid result:``, ``best valid`` and ``test result`` lines;
- the ``compare summary: {...}`` line our side-by-side runner adds (timings per evaluation
  batch, peak memory). A plain RecBole log has no such line, so inference time per batch and
  peak memory stay empty for it;
- the ``split leakage: {...}`` line of every run of ours (the leakage figure of its split,
  :mod:`recbole_ext.data.temporal_split`), which the protocol then carries.

Several logs of the same (data set, model, seed) keep the latest finished one; several seeds of
one model are averaged as in :mod:`recbole_ext.compare`. A log without a ``test result`` line
is reported as failed (its last ERROR line, or "unfinished run").

Options: ``--out DIR`` writes ``comparison.md/.csv/.tex`` (and the plot, with matplotlib) there;
``--no-plot`` skips the plot.
"""

from __future__ import annotations

import ast
import json
import os
import re
from typing import Dict, Iterable, List, Optional, Tuple

from recbole_ext.data.temporal_split import LEAKAGE_LOG_PREFIX, leakage_text, split_label
from recbole_ext.errors import UserError
from recbole_ext.results.record import RunRecord

ANSI = re.compile(r"\x1b\[[0-9;]*m")
# RecBole's file format: "%(asctime)-15s %(levelname)s  %(message)s" with "%a %d %b %Y %H:%M:%S"
ENTRY_START = re.compile(r"^(?:\w{3} \d{2} \w{3} \d{4} \d{2}:\d{2}:\d{2}) (DEBUG|INFO|WARNING|ERROR|CRITICAL)  ?(.*)$")
FILE_NAME = re.compile(
    r"^(?P<model>[^-]+)-(?P<dataset>.+)-(?P<time>[A-Z][a-z]{2}-\d{2}-\d{4}_\d{2}-\d{2}-\d{2})"
    r"(?:-(?P<md5>[0-9a-f]+))?(?:-\d+)?\.log$"
)
NUMBER = r"[-+]?(?:\d+\.?\d*(?:[eE][-+]?\d+)?|\.\d+|nan|inf)"
TRAIN_LINE = re.compile(r"^epoch (\d+) training \[time: (" + NUMBER + r")s")
EVAL_LINE = re.compile(r"^epoch (\d+) evaluating \[time: (" + NUMBER + r")s, valid_score: (" + NUMBER + r")\]")
METRIC_PAIR = re.compile(r"([\w@]+) : (" + NUMBER + r")")
DICT_PAIR = re.compile(r"'([^']+)'\s*[,:]\s*(?:np\.\w+\()?(" + NUMBER + r")")
PARAMS = re.compile(r"Trainable parameters: (\d+)")
BEST_EPOCH = re.compile(r"Finished training, best eval result in epoch (\d+)")
DATA_SUMMARY = re.compile(r"^(\S+)\nThe number of users")
MODEL_REPR = re.compile(r"^([A-Za-z_]\w*)\(\n")


def strip_colors(text: str) -> str:
    return ANSI.sub("", text)


def read_entries(path: str) -> List[Tuple[str, str]]:
    """Split a log file into ``(level, message)`` entries (continuation lines are joined)."""
    entries: List[Tuple[str, List[str]]] = []
    with open(path, "r", encoding="utf-8", errors="replace") as f:
        for line in f:
            line = strip_colors(line.rstrip("\n"))
            m = ENTRY_START.match(line)
            if m:
                entries.append((m.group(1), [m.group(2)]))
            elif entries:
                entries[-1][1].append(line)
    return [(level, "\n".join(lines)) for level, lines in entries]


def parse_result_dict(text: str) -> Dict[str, float]:
    """``OrderedDict([('recall@10', 0.05), ...])`` (any Python/numpy repr) -> ``{name: float}``."""
    pairs = DICT_PAIR.findall(text)
    if not pairs:
        pairs = METRIC_PAIR.findall(text)
    return {k: float(v) for k, v in pairs}


def _literal(value: str):
    try:
        return ast.literal_eval(value)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return value


#: log lines that carry a JSON dict after their prefix, and the fact each one becomes
JSON_LINES = ((LEAKAGE_LOG_PREFIX, "leakage"), ("compare summary:", "summary"))


def parse_entries(entries: Iterable[Tuple[str, str]]) -> dict:
    """Read what a training run logged into a dict of raw facts (see the module docstring)."""
    out: dict = {
        "config": {},
        "train_epoch_s": [],
        "valid_curve": [],
        "valid_results": [],
        "errors": [],
    }
    for level, message in entries:
        msg = strip_colors(message).strip("\n") if message else ""
        first = msg.lstrip("\n")
        if "Hyper Parameters:" in msg and " = " in msg:
            for line in msg.splitlines():
                if " = " in line:
                    k, v = line.split(" = ", 1)
                    out["config"].setdefault(k.strip(), v.strip())
            continue
        m = TRAIN_LINE.match(first)
        if m:
            out["train_epoch_s"].append(float(m.group(2)))
            continue
        m = EVAL_LINE.match(first)
        if m:
            out["valid_curve"].append([int(m.group(1)), float(m.group(3))])
            continue
        if first.startswith("valid result"):
            out["valid_results"].append({k: float(v) for k, v in METRIC_PAIR.findall(first)})
            continue
        if first.startswith("best valid"):
            out["best_valid_result"] = parse_result_dict(first.split(":", 1)[1])
            continue
        if first.startswith("test result"):
            out["test_result"] = parse_result_dict(first.split(":", 1)[1])
            continue
        json_key = next((k for prefix, k in JSON_LINES if first.startswith(prefix)), None)
        if json_key:
            try:
                out[json_key] = json.loads(first.split(":", 1)[1])
            except ValueError:
                pass
            continue
        if first.startswith("compare failed:"):
            out["failure"] = first.split(":", 1)[1].strip()
            continue
        m = BEST_EPOCH.search(first)
        if m:
            out["best_epoch"] = int(m.group(1))
        for m in PARAMS.finditer(first):
            out["n_params"] = int(m.group(1))
        m = DATA_SUMMARY.match(first)
        if m:
            out.setdefault("dataset", m.group(1))
        m = MODEL_REPR.match(first)
        if m:
            out.setdefault("model", m.group(1))
        if level in ("ERROR", "CRITICAL"):
            out["errors"].append(first.splitlines()[0] if first else level)
    return out


def protocol_of(eval_args, candidates: Optional[str] = None, leakage: Optional[dict] = None) -> str:
    """``eval_args`` (dict or its repr) and ``eval_candidates`` -> "full", or "sampled pop100"
    with ", shared negatives" (one draw per split and seed for every model) or ", per-epoch
    negatives" (RecBole's draw at each evaluation; logs without the key); with the split's
    ``leakage`` figure (:func:`recbole_ext.data.temporal_split.leakage`), the split and the
    figure follow: "full; leave-one-out, leakage 25.0% (1/4)"."""
    if isinstance(eval_args, str):
        eval_args = _literal(eval_args)
    mode = _mode_text(eval_args, candidates)
    if leakage is None:
        return mode
    split = eval_args.get("split") if isinstance(eval_args, dict) else None
    return f"{mode}; {split_label(split)}, {leakage_text(leakage)}"


def _mode_text(eval_args, candidates: Optional[str]) -> str:
    mode = eval_args.get("mode", "full") if isinstance(eval_args, dict) else "full"
    if isinstance(mode, dict):
        mode = mode.get("test", mode.get("valid", "full"))
    mode = str(mode)
    if mode == "full":
        return "full"
    if mode.startswith(("uni", "pop")):
        draw = "shared" if str(candidates) == "shared" else "per-epoch"
        return f"sampled {mode}, {draw} negatives"
    return mode


def record_from_facts(facts: dict, model: str, dataset: str, source: str) -> RunRecord:
    """A run record (the JSON :mod:`recbole_ext.compare` writes) from parsed log facts."""
    cfg = facts.get("config", {})
    summary = facts.get("summary", {})
    seed = _literal(cfg.get("seed", "None"))
    bigger = _literal(cfg.get("valid_metric_bigger", "True"))
    valid_metric = cfg.get("valid_metric", "")
    ok = "test_result" in facts and not facts.get("failure")
    reason = None
    if not ok:
        reason = facts.get("failure") or (facts["errors"][-1] if facts["errors"] else "unfinished run (no test result)")
    best_valid = facts.get("best_valid_result") or {}
    best_score = summary.get("best_valid_score")
    if best_score is None and valid_metric:
        best_score = best_valid.get(valid_metric.lower())
    if best_score is None and facts["valid_curve"]:
        scores = [s for _, s in facts["valid_curve"]]
        best_score = max(scores) if bigger else min(scores)
    return RunRecord(
        model=model,
        dataset=dataset,
        seed=seed if isinstance(seed, int) else None,
        status="ok" if ok else "failed",
        reason=reason,
        test_result=facts.get("test_result", {}),
        best_valid_result=best_valid,
        best_valid_score=best_score,
        valid_metric=valid_metric,
        valid_metric_bigger=bool(bigger) if isinstance(bigger, bool) else True,
        epochs_run=len(facts["train_epoch_s"]),
        protocol=protocol_of(cfg.get("eval_args", "{}"), cfg.get("eval_candidates"), facts.get("leakage")),
        n_params=summary.get("n_params", facts.get("n_params")),
        train_epoch_s=summary.get("train_epoch_s", facts["train_epoch_s"]),
        eval_batch_ms=summary.get("eval_batch_ms", []),
        eval_recbole_batch_ms=summary.get("eval_recbole_batch_ms", []),
        eval_ms_per_2048_users=summary.get("eval_ms_per_2048_users", []),
        peak_mem_mb=summary.get("peak_mem_mb"),
        peak_rss_mb=summary.get("peak_rss_mb"),
        peak_reserved_gib=summary.get("peak_reserved_gib"),
        mem_method=summary.get("mem_method"),
        device=summary.get("device") or cfg.get("device"),
        valid_curve=facts["valid_curve"],
        source=source,
    )


def parse_log_file(path: str) -> RunRecord:
    """One log file -> a run record (model/data set from the file name when it follows RecBole's)."""
    facts = parse_entries(read_entries(path))
    m = FILE_NAME.match(os.path.basename(path))
    model = (m.group("model") if m else None) or facts.get("model")
    dataset = (m.group("dataset") if m else None) or facts.get("dataset")
    if m and facts.get("dataset") and facts["dataset"] != dataset:
        dataset = facts["dataset"]  # the summary names the data set exactly
    if not model:
        parent = os.path.basename(os.path.dirname(os.path.abspath(path)))
        model = parent or "unknown"
    record = record_from_facts(facts, model, dataset or "unknown", source=path)
    record.log_file = path
    record.log_time = m.group("time") if m else None
    return record


def find_logs(paths: Iterable[str]) -> List[str]:
    found = []
    for p in paths:
        if os.path.isfile(p):
            found.append(p)
        elif os.path.isdir(p):
            for root, _, files in os.walk(p):
                found += [os.path.join(root, f) for f in files if f.endswith(".log")]
        else:
            raise UserError(f"no such log file or folder: {p}")
    return sorted(found)


def records_from_logs(paths: Iterable[str]) -> List[RunRecord]:
    """Parse every log; keep the latest finished log per (data set, model, seed)."""
    logs = find_logs(paths)
    if not logs:
        raise UserError(f"no .log files under {', '.join(paths)}")
    chosen: Dict[tuple, tuple] = {}
    for path in logs:
        rec = parse_log_file(path)
        key = (rec.dataset, rec.model, rec.seed)
        rank = (rec.ok, os.path.getmtime(path), path)
        if key not in chosen or rank > chosen[key][0]:
            chosen[key] = (rank, rec)
    return [rec for _, rec in sorted(chosen.values(), key=lambda x: x[0][1])]
