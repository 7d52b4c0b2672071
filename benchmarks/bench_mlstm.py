#!/usr/bin/env python
"""mLSTM vs LSTM4Rec: speed of the recurrence (``speed``) and a small accuracy grid (``accuracy``).

    python benchmarks/bench_mlstm.py speed [--batch 256 --length 50 --dim 64 --threads 1 --repeats 5]
    python benchmarks/bench_mlstm.py accuracy --dataset ml-100k [--epochs 4 --max-len 20]

``speed`` times, on random input, forward+backward ("train") and forward under ``no_grad``
("inference") of one layer: ``torch.nn.LSTM``, the naive mLSTM (Python loop over steps with the
input projections inside the loop, like mlstm4reco), and the implementations of
:class:`recbole_ext.model.layers.MultiplicativeLSTMLayer` (``loop``, ``script``, ``fused``,
``native``: the C++ forward loop that the default ``auto`` uses on the CPU), plus
``torch.compile`` of the ``loop`` layer when ``--compile`` is given. Then one training epoch and one
full-ranking evaluation of the two models on ml-100k through RecBole's trainer (``--epoch-data``).
``accuracy`` trains both models on a fixed grid and prints test MRR@10 / NDCG@10.
Each prints a Markdown table.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Callable, List

import torch
import torch.nn.functional as F


def timed(fn: Callable[[], None], repeats: int) -> float:
    fn()  # warm-up (TorchScript profiling runs, allocator)
    fn()
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best * 1000.0


def naive_mlstm_layer(layer, x: torch.Tensor) -> torch.Tensor:
    """mlstm4reco-style loop: per-step input projections, autograd through every op."""
    b, n, _ = x.shape
    h = x.new_zeros(b, layer.hidden_size)
    c = x.new_zeros(b, layer.hidden_size)
    outs = []
    for t in range(n):
        xt = x[:, t]
        m = F.linear(xt, layer.weight_im, layer.bias_im) * F.linear(h, layer.weight_hm, layer.bias_hm)
        z = F.linear(xt, layer.weight_ih, layer.bias) + F.linear(m, layer.weight_mh)
        zi, zf, zg, zo = z.chunk(4, 1)
        c = torch.sigmoid(zf) * c + torch.sigmoid(zi) * torch.tanh(zg)
        h = torch.sigmoid(zo) * torch.tanh(c)
        outs.append(h)
    return torch.stack(outs, 1)


def speed(args) -> None:
    from recbole_ext.model.layers import MultiplicativeLSTMLayer

    torch.manual_seed(0)
    b, n, d = args.batch, args.length, args.dim
    x = torch.randn(b, n, d, requires_grad=True)
    lstm = torch.nn.LSTM(d, d, batch_first=True)
    layer = MultiplicativeLSTMLayer(d, d)

    def with_impl(impl: str):
        def f():
            layer.impl = impl
            return layer(x)[0]
        return f

    variants = [("nn.LSTM", lambda: lstm(x)[0]), ("mLSTM naive loop", lambda: naive_mlstm_layer(layer, x))]
    variants += [(f"mLSTM {impl}", with_impl(impl)) for impl in ("loop", "script", "fused", "native")]
    if args.compile:
        compiled = torch.compile(lambda: with_impl("loop")(), dynamic=False)
        variants.append(("mLSTM loop + torch.compile", compiled))

    rows = []
    base_train = base_inf = None
    for name, fn in variants:
        def train_step():
            out = fn()
            out.sum().backward()
        t_train = timed(train_step, args.repeats)
        with torch.no_grad():
            t_inf = timed(fn, args.repeats)
        if base_train is None:
            base_train, base_inf = t_train, t_inf
        rows.append((name, t_train, t_train / base_train, t_inf, t_inf / base_inf))
    print(f"\nOne layer, B={b}, L={n}, D=H={d}, torch threads={torch.get_num_threads()}, best of {args.repeats}\n")
    print("| variant | train fwd+bwd (ms) | vs nn.LSTM | inference fwd (ms) | vs nn.LSTM |")
    print("|---|---:|---:|---:|---:|")
    for name, tt, rt, ti, ri in rows:
        print(f"| {name} | {tt:.1f} | {rt:.2f}x | {ti:.1f} | {ri:.2f}x |")
    if args.epoch_data:
        epoch_timings(args)


def _run(model: str, dataset: str, extra: dict, data_path: str = None) -> dict:
    from recbole_ext.quick_start import run_recbole_ext

    cfg = {"show_progress": False, "state": "WARNING", "checkpoint_dir": "/tmp/bench_mlstm_saved"}
    if data_path:
        cfg["data_path"] = data_path
    cfg.update(extra)
    return run_recbole_ext(model, dataset, config_dict=cfg, log_dir="/tmp/bench_mlstm_log")


def epoch_timings(args) -> None:
    """Per-epoch training time and evaluation time per batch through the full pipeline."""
    extra = {"epochs": args.epochs, "train_batch_size": args.batch, "eval_batch_size": args.batch,
             "MAX_ITEM_LIST_LENGTH": args.length, "embedding_size": args.dim, "hidden_size": args.dim,
             "stopping_step": 100}
    res = {}
    for model in ("LSTM4Rec", "mLSTM"):
        r = _run(model, args.epoch_data, extra)
        res[model] = (min(r["timings"]["train_epoch_s"]), min(r["timings"]["eval_batch_ms"]))
    lt, le = res["LSTM4Rec"]
    print(f"\nWhole pipeline on {args.epoch_data} (MAX_ITEM_LIST_LENGTH={args.length}, batch {args.batch}, "
          f"d={args.dim}, best of {args.epochs} epochs)\n")
    print("| model | train s/epoch | vs LSTM4Rec | eval ms/batch | vs LSTM4Rec |")
    print("|---|---:|---:|---:|---:|")
    for model, (t, e) in res.items():
        print(f"| {model} | {t:.1f} | {t / lt:.2f}x | {e:.1f} | {e / le:.2f}x |")


GRID = [
    {"output_state": "h", "learn_initial_state": False},
    {"output_state": "c", "learn_initial_state": True},
]


def accuracy(args) -> None:
    rows: List[tuple] = []
    for model in args.models.split(","):
        for g in [GRID[int(k)] for k in args.grid.split(",")]:
            extra = dict(g)
            extra.update({"epochs": args.epochs, "stopping_step": 2, "train_batch_size": 512, "eval_batch_size": 1024,
                          "MAX_ITEM_LIST_LENGTH": args.max_len, "embedding_size": 64, "hidden_size": 64,
                          "learning_rate": 0.002, "dropout_prob": 0.2, "seed": 2020})
            t = time.perf_counter()
            r = _run(model, args.dataset, extra, args.data_path)
            wall = time.perf_counter() - t
            tr = r["test_result"]
            rows.append((model, g["output_state"], g["learn_initial_state"], float(tr["mrr@10"]), float(tr["ndcg@10"]),
                         len(r["timings"]["train_epoch_s"]), wall))
            print(f"done {rows[-1]}", file=sys.stderr, flush=True)
    print(f"\n{args.dataset}: full ranking, test split, up to {args.epochs} epochs (stopping_step 2), "
          f"MAX_ITEM_LIST_LENGTH={args.max_len}, d=64, lr=0.002, dropout 0.2, CE, seed 2020\n")
    print("| model | output_state | learn_initial_state | MRR@10 | NDCG@10 | epochs run | wall s |")
    print("|---|---|---|---:|---:|---:|---:|")
    for m, s, li, mrr, ndcg, ep, w in rows:
        print(f"| {m} | {s} | {li} | {mrr:.4f} | {ndcg:.4f} | {ep} | {w:.0f} |")


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("mode", choices=["speed", "accuracy"])
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--length", type=int, default=50)
    p.add_argument("--dim", type=int, default=64)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--compile", action="store_true")
    p.add_argument("--epoch-data", default=None, help="also time whole epochs on this data set, e.g. ml-100k")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--dataset", default="ml-100k")
    p.add_argument("--data-path", default=None)
    p.add_argument("--max-len", type=int, default=20)
    p.add_argument("--models", default="LSTM4Rec,mLSTM", help="accuracy: comma-separated models")
    p.add_argument("--grid", default="0,1", help="accuracy: comma-separated indices into GRID")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    (speed if args.mode == "speed" else accuracy)(args)


if __name__ == "__main__":
    main()
