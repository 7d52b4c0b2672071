"""Time recommend() for many users in one batch, from a checkpoint (CPU).

Usage: ``python benchmarks/recommend_speed.py --checkpoint=saved/SASRec-....pth [--users=1000] [--k=10]``

Histories are the users' items from the checkpoint's own data set (``data_path`` in its saved
config), most recent last, cycled up to ``--users`` users. Prints a Markdown table: building the
model from the checkpoint alone (its data-set class restored from the saved schema) and with the
data set reloaded, then one batched ``recommend_many`` call (best of ``--repeat``).
"""

from __future__ import annotations

import argparse
import os
import time

import torch

from recbole_ext.serving import Recommender
from recbole_ext.trainer.checkpoint import safe_load


def histories(path: str, n_users: int):
    cfg = safe_load(path)["config"]
    name = cfg["dataset"]
    inter = os.path.join(cfg["data_path"], f"{name}.inter")
    with open(inter, encoding="utf-8") as f:
        header = [h.split(":")[0] for h in f.readline().rstrip("\n").split("\t")]
        u, i, t = (
            header.index(cfg["USER_ID_FIELD"]),
            header.index(cfg["ITEM_ID_FIELD"]),
            header.index(cfg["TIME_FIELD"]),
        )
        rows = [line.rstrip("\n").split("\t") for line in f]
    by_user = {}
    for r in sorted(rows, key=lambda r: float(r[t])):
        by_user.setdefault(r[u], []).append(r[i])
    users = list(by_user)
    return {f"{users[j % len(users)]}#{j}": by_user[users[j % len(users)]] for j in range(n_users)}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--users", type=int, default=1000)
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    hist = histories(a.checkpoint, a.users)
    t0 = time.perf_counter()
    rec = Recommender(a.checkpoint)
    t_restored = time.perf_counter() - t0
    t0 = time.perf_counter()
    Recommender(a.checkpoint, reload_dataset=True)
    t_reload = time.perf_counter() - t0
    best = float("inf")
    for _ in range(a.repeat):
        t0 = time.perf_counter()
        out = rec.recommend_many(hist, k=a.k, exclude_seen=True)
        best = min(best, time.perf_counter() - t0)
    assert len(out) == a.users
    mean_len = sum(
        min(len(h), rec.model.max_seq_length if rec.kind == "sequential" else len(h)) for h in hist.values()
    ) / len(hist)
    print(
        f"model {rec.model_name}, {rec.n_items - 1} items, {a.users} users, k={a.k}, "
        f"mean history used {mean_len:.1f}, torch threads {a.threads}\n"
    )
    print("| step | seconds | per user (ms) |")
    print("| --- | ---: | ---: |")
    print(f"| build model from the checkpoint alone (schema restored) | {t_restored:.2f} | |")
    print(f"| build model with the data set reloaded | {t_reload:.2f} | |")
    print(
        f"| recommend_many, {a.users} users, one batch (best of {a.repeat}) | {best:.3f} "
        f"| {1000 * best / a.users:.3f} |"
    )


if __name__ == "__main__":
    main()
