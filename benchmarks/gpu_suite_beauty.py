"""GPU suite, part (c): GLINTRU and SASRec on amazon-beauty under the GLINT-RU paper's pop100
protocol, a grid of embedding dropout x max length, every run its own process, all at once,
each trained to early stopping (patience 10) or its time budget, then tested.

``python benchmarks/gpu_suite_beauty.py SPEC`` runs one grid point (the suite starts these)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from typing import Dict, List

from gpu_suite_common import Report

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

#: the Beauty grid: (model, embedding dropout, max length); every run gets the paper's settings
BEAUTY_GRID = [(m, p, n) for m in ("GLINTRU", "SASRec") for p in (0.2, 0.5) for n in (50, 100)]


def beauty_keys(model: str, dropout: float, max_len: int) -> Dict:
    """The paper's Beauty settings (pop100, hidden 64, dropout 0.5, batch 2048, Adam 1e-3,
    NDCG@10 early stopping with patience 10) with the grid's embedding dropout and length."""
    keys = {
        "hidden_size": 64,
        "MAX_ITEM_LIST_LENGTH": max_len,
        "train_batch_size": 2048,
        "eval_batch_size": 2048,
        "learning_rate": 0.001,
        "stopping_step": 10,
        "epochs": 200,
    }
    if model == "GLINTRU":
        keys.update(dropout_prob=dropout, hidden_dropout_prob=0.5, n_heads=4)
    else:
        keys.update(hidden_dropout_prob=dropout, attn_dropout_prob=0.5, n_layers=2, n_heads=2, inner_size=256)
    return keys


def beauty_data(data_root) -> Dict:
    """amazon-beauty under the paper's protocol (``protocol-pop100.yaml``)."""
    import yaml

    with open(os.path.join(ROOT, "recbole_ext", "properties", "quick_start_config", "protocol-pop100.yaml")) as f:
        keys = yaml.safe_load(f)
    return {"dataset": "amazon-beauty", "data_path": data_root, "keys": keys}


def beauty_job(spec: Dict) -> Dict:
    """One grid run (in its own process): train to early stopping or the budget, test."""
    import torch

    from gpu_suite_checks import run_one

    torch.set_num_threads(spec.get("threads", 2))
    keys = dict(spec["keys"], train_time_budget_s=spec["budget_s"])
    start = time.perf_counter()
    res = run_one(spec["model"], spec["data"], spec["workdir"], **keys)
    epochs = res["timings"]["train_epoch_s"]
    return {
        "test": {k: float(v) for k, v in res["test_result"].items()},
        "valid": {k: float(v) for k, v in (res["best_valid_result"] or {}).items()},
        "epochs": len(epochs),
        "epoch_s": sum(epochs) / max(len(epochs), 1),
        "seconds": time.perf_counter() - start,
    }


def start_beauty(data: Dict, workdir: str, budget_s: float, grid) -> List:
    """Start every grid run as a process; returns ``[(spec, Popen, log path)]``."""
    jobs = []
    threads = max(1, (os.cpu_count() or 2) // max(len(grid), 1))
    for model, dropout, max_len in grid:
        spec = {
            "model": model,
            "dropout": dropout,
            "max_len": max_len,
            "budget_s": budget_s,
            "threads": threads,
            "data": data,
            "keys": {**data.get("keys", {}), **beauty_keys(model, dropout, max_len)},
            "workdir": os.path.join(workdir, f"beauty-{model}-{dropout}-{max_len}"),
        }
        os.makedirs(spec["workdir"], exist_ok=True)
        log = os.path.join(spec["workdir"], "job.log")
        cmd = [sys.executable, os.path.abspath(__file__), json.dumps(spec)]
        jobs.append((spec, subprocess.Popen(cmd, stdout=open(log, "w"), stderr=subprocess.STDOUT), log))
    return jobs


def finish_beauty(report: Report, jobs: List, deadline: float) -> None:
    report.text(
        "## (c) Beauty, pop100 (paper: GLINT-RU R@10 0.4472 / MRR@10 0.2498 / NDCG@10 0.2964; "
        "SASRec 0.4332 / 0.2325 / 0.2798)\n\nAll runs at once on one device; each trains to "
        "early stopping (NDCG@10, patience 10) or its time budget, then tests its best epoch."
    )
    report.table(
        [
            "model",
            "emb. dropout",
            "max len",
            "epochs",
            "s/epoch",
            "valid NDCG@10",
            "test R@10",
            "test MRR@10",
            "test NDCG@10",
            "status",
        ]
    )
    for spec, proc, log in jobs:
        try:
            proc.wait(timeout=max(1.0, deadline - time.time()))
        except subprocess.TimeoutExpired:
            proc.kill()
        with open(log) as f:
            out = f.read()
        found = [line for line in out.splitlines() if line.startswith("RESULT ")]
        cells = [spec["model"], spec["dropout"], spec["max_len"]]
        if not found:
            print(f"--- {log} (last lines)\n" + "\n".join(out.splitlines()[-30:]), flush=True)
            why = (out.strip().splitlines() or ["no output"])[-1][:200].replace("|", "/")
            report.row("c", cells_name(spec), "FAIL", 0.0, {}, cells + ["-"] * 6 + [f"**failed**: {why}"])
            continue
        r = json.loads(found[-1][7:])
        t = r["test"]
        status = "budget" if r["epochs"] < 200 and r["seconds"] >= spec["budget_s"] else "early stop"
        report.row(
            "c",
            cells_name(spec),
            "ok",
            r["seconds"],
            r,
            cells
            + [
                r["epochs"],
                f"{r['epoch_s']:.1f}",
                f"{r['valid'].get('ndcg@10', float('nan')):.4f}",
                f"{t['recall@10']:.4f}",
                f"{t['mrr@10']:.4f}",
                f"{t['ndcg@10']:.4f}",
                status,
            ],
        )


def cells_name(spec: Dict) -> str:
    return f"{spec['model']} dropout {spec['dropout']} len {spec['max_len']}"


if __name__ == "__main__":
    print("RESULT " + json.dumps(beauty_job(json.loads(sys.argv[1]))), flush=True)
