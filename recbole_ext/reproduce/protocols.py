"""The same trained models under other evaluation protocols, with no retraining.

Sampled metrics can order models differently from full ranking (Krichene & Rendle, KDD 2020).
After a reproduction has trained its rows, :func:`reevaluate_records` evaluates every run's best
checkpoint again (:func:`recbole_ext.serving.evaluate.evaluate_checkpoint`) under each protocol
of :data:`PROTOCOLS`: the paper's own (``pop100``, which gives back the run's test result when
the candidates are shared), full ranking and 100 uniform negatives. Only ``eval_args``' mode
changes; the split, the seed and, under ``eval_candidates: shared``, the negatives' draw are the
run's. Each run's figures are stored as ``<results>/protocols/<Model>-seed<S>.json`` (written
atomically) with the checkpoint's SHA-256, so a rerun skips the runs whose checkpoint has not
changed.

:func:`agreement` then measures how well the models' order under the paper's protocol agrees
with their order under each other one: Kendall's tau-b (:func:`scipy.stats.kendalltau`, which
counts ties) per metric over the models' mean test values; :func:`agreement_markdown` renders it.
"""

from __future__ import annotations

import json
import math
import os
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from scipy.stats import kendalltau

from recbole_ext.compare import RunRecord
from recbole_ext.data.fetch import file_sha256
from recbole_ext.fileio import atomic_write_text
from recbole_ext.serving.evaluate import evaluate_checkpoint
from recbole_ext.trainer.checkpoint import load_checkpoint

PROTOCOL_DIR = "protocols"
#: the paper's protocol: the order every other protocol is compared with
PAPER_PROTOCOL = "pop100"
#: protocol name -> the ``eval_args`` mode it evaluates under
PROTOCOLS: Dict[str, str] = {"pop100": "pop100", "full": "full", "uni100": "uni100"}

#: ``{protocol: {"valid": {metric: value}, "test": {metric: value}}}``
ProtocolResults = Dict[str, Dict[str, Dict[str, float]]]


def paper_protocol(protocol_keys: Mapping[str, Any]) -> str:
    """The protocol a preset's runs evaluate under (its ``eval_args``' test mode), named as in
    :data:`PROTOCOLS`; ``full`` when it names none."""
    mode = (protocol_keys.get("eval_args") or {}).get("mode", "full")
    if isinstance(mode, dict):
        mode = mode.get("test", "full")
    return str(mode)


def other_protocols(paper: str) -> Tuple[str, ...]:
    """The protocols of :data:`PROTOCOLS` a reproduction evaluates its checkpoints under again:
    every one but the runs' own."""
    return tuple(p for p in PROTOCOLS if p != paper)


def with_own_results(
    results: Mapping[Tuple[str, Any], ProtocolResults], records: Iterable["RunRecord"], paper: str
) -> Dict[Tuple[str, Any], ProtocolResults]:
    """``results`` with each finished run's own test result under its protocol ``paper``."""
    out = {key: dict(value) for key, value in results.items()}
    for rec in records:
        if rec.ok:
            key = (rec.model, rec.seed)
            out.setdefault(key, {})[paper] = {"test": dict(rec.test_result or {})}
    return out


def protocol_args(saved_eval_args: Mapping[str, Any], protocol: str) -> List[str]:
    """The ``--key=value`` strings that evaluate a checkpoint under ``protocol``.

    Args:
        saved_eval_args: the checkpoint's own ``eval_args`` (its split is kept).
        protocol: a name of :data:`PROTOCOLS`.

    Returns:
        ``["--eval_args={...}"]``: the saved ``eval_args`` with ``mode`` replaced.
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}: one of {', '.join(PROTOCOLS)}")
    return [f"--eval_args={dict(saved_eval_args, mode=PROTOCOLS[protocol])!r}"]


def evaluate_protocols(
    checkpoint: str, protocols: Sequence[str] = tuple(PROTOCOLS), device: Optional[str] = None
) -> ProtocolResults:
    """The validation and test metrics of ``checkpoint``'s best weights under each protocol.

    Args:
        checkpoint: a checkpoint written by training (``saved_model_file``).
        protocols: names of :data:`PROTOCOLS`.
        device: where to evaluate (default: the GPU if there is one).

    Returns:
        ``{protocol: {"valid": {metric: value}, "test": {metric: value}}}``.
    """
    saved = load_checkpoint(checkpoint, map_location="cpu").config.get("eval_args") or {}
    return {p: evaluate_checkpoint(checkpoint, protocol_args(saved, p), device=device) for p in protocols}


def protocol_path(results_dir: str, entry: str, seed: Any) -> str:
    """``<results>/protocols/<entry>-seed<seed>.json``."""
    return os.path.join(results_dir, PROTOCOL_DIR, f"{entry}-seed{seed}.json")


def load_stored(path: str, digest: str) -> ProtocolResults:
    """The figures stored at ``path`` if they are of the checkpoint with SHA-256 ``digest``, else
    ``{}``."""
    try:
        with open(path, encoding="utf-8") as f:
            stored = json.load(f)
    except (OSError, ValueError):
        return {}
    if not isinstance(stored, dict) or stored.get("checkpoint_sha256") != digest:
        return {}
    results = stored.get("results")
    return results if isinstance(results, dict) else {}


def reevaluate_run(
    results_dir: str,
    entry: str,
    seed: Any,
    checkpoint: str,
    protocols: Sequence[str] = tuple(PROTOCOLS),
    device: Optional[str] = None,
) -> Tuple[ProtocolResults, bool]:
    """One run's figures under ``protocols``: those stored for this checkpoint (same SHA-256) are
    kept, the others evaluated now and stored with them atomically.

    Returns:
        ``(results, evaluated)``: ``results`` holds ``protocols`` only; ``evaluated`` is False
        when every one was stored already.
    """
    path = protocol_path(results_dir, entry, seed)
    digest = file_sha256(checkpoint)
    stored = load_stored(path, digest)
    missing = [p for p in protocols if p not in stored]
    if missing:
        stored = {**stored, **evaluate_protocols(checkpoint, missing, device)}
        record = {
            "model": entry,
            "seed": seed,
            "checkpoint": checkpoint,
            "checkpoint_sha256": digest,
            "results": stored,
        }
        atomic_write_text(path, json.dumps(record, indent=1))
    return {p: stored[p] for p in protocols}, bool(missing)


def _find_checkpoint(results_dir: str, checkpoint: Optional[str]) -> Optional[str]:
    """The record's checkpoint path, or the file of that name in ``<results>/saved/`` (a
    relative path written from another working folder)."""
    if not checkpoint or os.path.isfile(checkpoint):
        return checkpoint
    beside = os.path.join(results_dir, "saved", os.path.basename(checkpoint))
    return beside if os.path.isfile(beside) else checkpoint


def reevaluate_records(
    results_dir: str,
    records: Iterable["RunRecord"],
    protocols: Sequence[str] = tuple(PROTOCOLS),
    device: Optional[str] = None,
    echo: Callable[[str], None] = print,
) -> Dict[Tuple[str, Any], ProtocolResults]:
    """Every finished run's checkpoint under ``protocols`` (:func:`reevaluate_run`). A run with
    no checkpoint, or whose evaluation fails, is one line through ``echo`` and left out; the
    others go on.

    Returns:
        ``{(entry, seed): {protocol: {"valid": ..., "test": ...}}}``.
    """
    out: Dict[Tuple[str, Any], ProtocolResults] = {}
    for rec in records:
        entry, seed, checkpoint = rec.model, rec.seed, rec.checkpoint
        if not rec.ok:
            continue
        checkpoint = _find_checkpoint(results_dir, checkpoint)
        if not checkpoint or not os.path.isfile(checkpoint):
            echo(f"[protocols] {entry} seed {seed}: no checkpoint to evaluate again ({checkpoint or 'none saved'})")
            continue
        try:
            out[(entry, seed)], evaluated = reevaluate_run(results_dir, entry, seed, checkpoint, protocols, device)
        except KeyboardInterrupt:
            raise
        except Exception as e:  # noqa: BLE001 - one run's failure (e.g. memory under full ranking) is one line
            first = (str(e).strip().splitlines() or [""])[0]
            echo(f"[protocols] {entry} seed {seed}: failed: {type(e).__name__}: {first}")
            continue
        if not evaluated:
            echo(f"[protocols] {entry} seed {seed}: already evaluated under {', '.join(protocols)}, skipped")
    return out


def protocol_means(
    results: Mapping[Tuple[str, Any], ProtocolResults], split: str = "test"
) -> Dict[str, Dict[str, Dict[str, float]]]:
    """The mean over seeds of each entry's metrics under each protocol.

    Returns:
        ``{protocol: {entry: {metric: mean}}}`` (metric names as the evaluation wrote them).
    """
    sums: Dict[str, Dict[str, Dict[str, List[float]]]] = {}
    for (entry, _seed), by_protocol in results.items():
        for protocol, splits in by_protocol.items():
            for metric, value in (splits.get(split) or {}).items():
                sums.setdefault(protocol, {}).setdefault(entry, {}).setdefault(metric, []).append(float(value))
    return {p: {e: {m: sum(v) / len(v) for m, v in ms.items()} for e, ms in es.items()} for p, es in sums.items()}


def kendall_tau(a: Sequence[float], b: Sequence[float]) -> Optional[float]:
    """Kendall's tau-b between two scorings of the same models (ties counted as scipy counts
    them); ``None`` when it is undefined (fewer than two models, or a constant scoring)."""
    if len(a) != len(b):
        raise ValueError(f"two scorings of different lengths: {len(a)} and {len(b)}")
    if len(a) < 2 or len(set(a)) < 2 or len(set(b)) < 2:
        return None
    tau = float(kendalltau(a, b).statistic)
    return None if math.isnan(tau) else tau


def agreement(
    means: Mapping[str, Mapping[str, Mapping[str, float]]],
    metrics: Sequence[str],
    reference: str = PAPER_PROTOCOL,
) -> Dict[str, Dict[str, Optional[float]]]:
    """Kendall's tau per metric between the models' order under ``reference`` and under each
    other protocol, over the entries that have a value under both.

    Args:
        means: ``{protocol: {entry: {metric: value}}}`` (:func:`protocol_means`).
        metrics: the metrics to compare (``Recall@10``; matched case-insensitively).
        reference: the protocol every other one is compared with.

    Returns:
        ``{protocol: {metric: tau or None}}`` for every protocol but ``reference``.
    """
    base = means.get(reference, {})
    out: Dict[str, Dict[str, Optional[float]]] = {}
    for protocol, by_entry in means.items():
        if protocol == reference:
            continue
        out[protocol] = {}
        for metric in metrics:
            key = metric.lower()
            both = [e for e in base if key in base[e] and key in by_entry.get(e, {})]
            out[protocol][metric] = kendall_tau([base[e][key] for e in both], [by_entry[e][key] for e in both])
    return out


def agreement_markdown(taus: Mapping[str, Mapping[str, Optional[float]]], n_models: int, reference: str) -> str:
    """A short markdown table: one row per protocol, one column per metric, tau to 2 places
    (``-`` where it is undefined)."""
    if not taus:
        return ""
    metrics = list(next(iter(taus.values())))
    lines = [
        f"Agreement of the models' order with {reference} (Kendall's tau-b over {n_models} models, "
        "mean test value over seeds; 1: the same order, -1: reversed)",
        "",
        "| protocol | " + " | ".join(metrics) + " |",
        "|---|" + "---|" * len(metrics),
    ]
    for protocol, by_metric in taus.items():
        cells = ["-" if by_metric.get(m) is None else f"{by_metric[m]:.2f}" for m in metrics]
        lines.append(f"| {protocol} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
