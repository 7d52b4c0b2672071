"""Small generated data for the tests and for ``benchmarks/gpu_suite.py --smoke`` (no pytest here,
so the suite can import it on a machine without pytest)."""

from __future__ import annotations

import os

import numpy as np


def write_inter(folder: str, name: str, rows, header=("user_id:token", "item_id:token", "timestamp:float")) -> str:
    """Write an atomic ``.inter`` file ``folder/name/name.inter``; returns ``folder``."""
    d = os.path.join(folder, name)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, f"{name}.inter"), "w") as f:
        f.write("\t".join(header) + "\n")
        for r in rows:
            f.write("\t".join(str(x) for x in r) + "\n")
    return folder


def rule_sequences(n_users: int = 200, n_items: int = 40, length: int = 20, seed: int = 0):
    """Sequences where the next item is ``perm[current]`` 90% of the time (else random)."""
    rng = np.random.default_rng(seed)
    perm = rng.permutation(np.arange(1, n_items + 1))
    rows = []
    for u in range(1, n_users + 1):
        item = int(rng.integers(1, n_items + 1))
        for t in range(length):
            rows.append((u, item, t))
            item = int(perm[item - 1]) if rng.random() < 0.9 else int(rng.integers(1, n_items + 1))
    return rows


def low_rank_ratings(
    n_users: int = 80, n_items: int = 60, rank: int = 2, noise: float = 0.25, density: float = 0.6, seed: int = 0
):
    """Rows ``(user, item, rating, time)``: ``rating = 3 + b_i + p_u . q_i + noise`` with item
    biases ``b_i ~ N(0, 0.7^2)``, factors ``~ N(0, 0.6^2)`` of size ``rank`` and Gaussian noise of
    standard deviation ``noise`` (the best possible RMSE); each user rates a random ``density``
    share of the items, in a random time order."""
    rng = np.random.default_rng(seed)
    bias = rng.normal(0, 0.7, n_items)
    p, q = rng.normal(0, 0.6, (n_users, rank)), rng.normal(0, 0.6, (n_items, rank))
    rows = []
    for u in range(n_users):
        items = rng.permutation(n_items)[: int(density * n_items)]
        for t, i in enumerate(items):
            r = 3 + bias[i] + p[u] @ q[i] + rng.normal(0, noise)
            rows.append((u + 1, i + 1, round(float(r), 4), t))
    return rows


def xor_clicks(folder: str, name: str, n_users: int = 100, n_items: int = 80, flip: float = 0.05, seed: int = 0) -> str:
    """A click data set ``folder/name`` whose label is ``a_u XOR b_i`` (a user feature and an item
    feature, each 0/1), flipped with probability ``flip``: no feature alone says anything about
    the label, only their interaction. Every user sees 40% of the items. Returns ``folder``."""
    rng = np.random.default_rng(seed)
    a, b = rng.integers(0, 2, n_users), rng.integers(0, 2, n_items)
    d = os.path.join(folder, name)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, f"{name}.inter"), "w") as f:
        f.write("user_id:token\titem_id:token\tlabel:float\ttimestamp:float\n")
        for u in range(n_users):
            for t, i in enumerate(rng.permutation(n_items)[: int(0.4 * n_items)]):
                label = int(a[u] != b[i]) ^ int(rng.random() < flip)
                f.write(f"{u + 1}\t{i + 1}\t{label}\t{t}\n")
    with open(os.path.join(d, f"{name}.user"), "w") as f:
        f.write("user_id:token\ta:token\n" + "".join(f"{u + 1}\ta{a[u]}\n" for u in range(n_users)))
    with open(os.path.join(d, f"{name}.item"), "w") as f:
        f.write("item_id:token\tb:token\n" + "".join(f"{i + 1}\tb{b[i]}\n" for i in range(n_items)))
    return folder


def fake_record(model, seed, ndcg, secs=1.0):
    """A finished comparison record (what ``runs/<Model>-seed<S>.json`` holds) with made-up figures."""
    from recbole_ext.results.record import RunRecord

    return RunRecord(
        model=model,
        dataset="d",
        seed=seed,
        status="ok",
        reason=None,
        test_result={"recall@10": ndcg * 2, "ndcg@10": ndcg},
        best_valid_score=ndcg,
        valid_metric="NDCG@10",
        valid_metric_bigger=True,
        epochs_run=3,
        protocol="full",
        n_params=1000,
        train_epoch_s=[secs, secs],
        eval_batch_ms=[5.0],
        peak_mem_mb=10.0,
        device="cpu",
        valid_curve=[[0, ndcg / 2], [1, ndcg]],
    )
