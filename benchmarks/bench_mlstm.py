#!/usr/bin/env python
"""mLSTM vs LSTM4Rec: speed of the recurrence (``speed``) and a small accuracy grid (``accuracy``).

    python benchmarks/bench_mlstm.py speed [--batch 256 --length 50 --dim 64 --threads 1 --repeats 5]
    python benchmarks/bench_mlstm.py speed --device cuda --batch 2048 --length 200 --dim 128 [--dtype bf16]
    python benchmarks/bench_mlstm.py accuracy --dataset ml-100k [--epochs 4 --max-len 20]

``speed`` times, on random input and in one process, alternating between the variants round
after round, forward+backward ("train") and forward under ``no_grad``
("inference") of one layer: ``torch.nn.LSTM``, the naive mLSTM (Python loop over steps with the
input projections inside the loop, like mlstm4reco), and the implementations of
:class:`recbole_ext.model.mlstm.MultiplicativeLSTMLayer` (``loop``, ``script``, ``fused``,
``native``: the C++ forward loop that the default ``auto`` uses on the CPU; on a GPU ``triton``
instead of ``native``), plus
``torch.compile`` of the ``loop`` layer when ``--compile`` is given. Then one training epoch and one
full-ranking evaluation of the two models on ml-100k through RecBole's trainer (``--epoch-data``).
``accuracy`` trains both models on a fixed grid and prints test MRR@10 / NDCG@10.
Each prints a Markdown table. Every timing runs with TF32 off (matrix products and cuDNN, so
``nn.LSTM``'s cuDNN kernel and the mLSTM matrix products are in the same precision: ``--dtype``,
float32 by default) and synchronises the device before reading the clock.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Callable, List

import torch
import torch.nn.functional as F


def cpu_model() -> str:
    """The processor's name from /proc/cpuinfo (ratios depend on it: nn.LSTM's kernels differ)."""
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        import platform

        return platform.processor() or "unknown CPU"


def where(device: torch.device) -> str:
    """The processor or GPU the timings ran on."""
    return torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_model()


def alternating(fns: List[Callable[[], None]], repeats: int, warmup: int = 2) -> List[List[float]]:
    """Milliseconds of each function, timed in turn (all of them once per round, ``repeats``
    rounds, after ``warmup`` rounds), so a change in the machine's speed hits all alike.
    Returns one list of ``repeats`` times per function."""
    for _ in range(warmup):  # TorchScript profiling runs, allocator, page faults
        for fn in fns:
            fn()
    times: List[List[float]] = [[] for _ in fns]
    for _ in range(repeats):
        for i, fn in enumerate(fns):
            t = time.perf_counter()
            fn()
            times[i].append(1000.0 * (time.perf_counter() - t))
    return times


def median(xs: List[float]) -> float:
    return sorted(xs)[len(xs) // 2]


def ratio_to_first(times: List[List[float]]) -> List[float]:
    """Median over rounds of each function's time divided by the first's in the same round."""
    return [median([t / b for t, b in zip(ts, times[0])]) for ts in times]


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


def synced(fn: Callable):
    """``fn`` followed by a device synchronisation (CUDA kernels run asynchronously)."""

    def run():
        out = fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        return out

    return run


def speed(args) -> None:
    from recbole_ext.model.mlstm import MultiplicativeLSTMLayer
    from recbole_ext.trainer.fast_path import set_tf32

    set_tf32(False)
    torch.manual_seed(0)
    device, dtype = torch.device(args.device), {"fp32": torch.float32, "bf16": torch.bfloat16}[args.dtype]
    b, n, d = args.batch, args.length, args.dim
    x = torch.randn(b, n, d, device=device, dtype=dtype, requires_grad=True)
    lstm = torch.nn.LSTM(d, d, batch_first=True).to(device, dtype)
    layer = MultiplicativeLSTMLayer(d, d).to(device, dtype)

    def with_impl(impl: str):
        def f():
            layer.impl = impl
            return layer(x)[0]

        return f

    variants = [("nn.LSTM", lambda: lstm(x)[0]), ("mLSTM naive loop", lambda: naive_mlstm_layer(layer, x))]
    impls = ("loop", "script", "fused", "triton") if device.type == "cuda" else ("loop", "script", "fused", "native")
    variants += [(f"mLSTM {impl}", with_impl(impl)) for impl in impls]
    if args.compile:
        compiled = torch.compile(lambda: with_impl("loop")(), dynamic=False)
        variants.append(("mLSTM loop + torch.compile", compiled))

    def train_step(fn):
        def step():
            fn().float().sum().backward()

        return step

    train = alternating([synced(train_step(fn)) for _, fn in variants], args.repeats)
    with torch.no_grad():
        infer = alternating([synced(fn) for _, fn in variants], args.repeats)
    train_ratio, infer_ratio = ratio_to_first(train), ratio_to_first(infer)
    print(
        f"\n{where(device)}; one layer, B={b}, L={n}, D=H={d}, {args.dtype}, TF32 off, torch {torch.__version__}, "
        f"threads={torch.get_num_threads()}; median of {args.repeats} alternating rounds "
        "(ratios: median of the per-round ratios)\n"
    )
    print("| variant | train fwd+bwd (ms) | vs nn.LSTM | inference fwd (ms) | vs nn.LSTM |")
    print("|---|---:|---:|---:|---:|")
    for (name, _), tt, rt, ti, ri in zip(variants, train, train_ratio, infer, infer_ratio):
        print(f"| {name} | {median(tt):.1f} | {rt:.2f}x | {median(ti):.1f} | {ri:.2f}x |")
    if args.epoch_data:
        epoch_timings(args)


def _run(model: str, dataset: str, extra: dict, data_path: str = None) -> dict:
    from recbole_ext.quick_start import run_recbole_ext

    cfg = {"show_progress": False, "state": "WARNING", "checkpoint_dir": "/tmp/bench_mlstm_saved"}
    if data_path:
        cfg["data_path"] = data_path
    cfg.update(extra)
    return run_recbole_ext(model, dataset, config_dict=cfg, log_dir="/tmp/bench_mlstm_log")


def build_for_epochs(model: str, args):
    """Trainer and loaders of ``model`` on ``args.epoch_data`` with the bench's sizes."""
    from recbole_ext.pipeline import Run

    run = Run.resolve(
        model,
        args.epoch_data,
        config_dict={
            "show_progress": False,
            "state": "ERROR",
            "train_batch_size": args.batch,
            "eval_batch_size": args.batch,
            "MAX_ITEM_LIST_LENGTH": args.length,
            "embedding_size": args.dim,
            "hidden_size": args.dim,
        },
    )
    loaders = run.build_loaders(run.prepare_data())
    return run.build_trainer(run.build_model(loaders.train_set)), loaders.train, loaders.valid


def epoch_timings(args) -> None:
    """Training epochs and validation passes of LSTM4Rec and mLSTM through RecBole's trainer, in
    one process, alternating (one epoch of each per round, ``args.epochs`` rounds)."""
    models = ("LSTM4Rec", "mLSTM")
    built = [build_for_epochs(m, args) for m in models]
    epoch = [lambda t=t, d=d: t._train_epoch(d, 0) for t, d, _ in built]
    evals = [lambda t=t, v=v: t.evaluate(v, load_best_model=False) for t, _, v in built]
    train_ms = alternating(epoch, args.epochs, warmup=1)
    eval_ms = alternating(evals, args.epochs, warmup=1)
    print(
        f"\nWhole pipeline on {args.epoch_data} ({cpu_model()}, threads={torch.get_num_threads()}; "
        f"MAX_ITEM_LIST_LENGTH={args.length}, batch {args.batch}, d={args.dim}; median of {args.epochs} "
        "alternating rounds after one warm-up round)\n"
    )
    print("| model | train s/epoch | vs LSTM4Rec | valid pass s | vs LSTM4Rec |")
    print("|---|---:|---:|---:|---:|")
    for m, tt, rt, te, re in zip(models, train_ms, ratio_to_first(train_ms), eval_ms, ratio_to_first(eval_ms)):
        print(f"| {m} | {median(tt) / 1000:.1f} | {rt:.2f}x | {median(te) / 1000:.2f} | {re:.2f}x |")


GRID = [
    {"output_state": "h", "learn_initial_state": False},
    {"output_state": "c", "learn_initial_state": True},
]


def accuracy(args) -> None:
    rows: List[tuple] = []
    for model in args.models.split(","):
        for g in [GRID[int(k)] for k in args.grid.split(",")]:
            extra = dict(g)
            extra.update(
                {
                    "epochs": args.epochs,
                    "stopping_step": 2,
                    "train_batch_size": 512,
                    "eval_batch_size": 1024,
                    "MAX_ITEM_LIST_LENGTH": args.max_len,
                    "embedding_size": 64,
                    "hidden_size": 64,
                    "learning_rate": 0.002,
                    "dropout_prob": 0.2,
                    "seed": 2020,
                }
            )
            t = time.perf_counter()
            r = _run(model, args.dataset, extra, args.data_path)
            wall = time.perf_counter() - t
            tr = r["test_result"]
            rows.append(
                (
                    model,
                    g["output_state"],
                    g["learn_initial_state"],
                    float(tr["mrr@10"]),
                    float(tr["ndcg@10"]),
                    len(r["timings"]["train_epoch_s"]),
                    wall,
                )
            )
            print(f"done {rows[-1]}", file=sys.stderr, flush=True)
    print(
        f"\n{args.dataset}: full ranking, test split, up to {args.epochs} epochs (stopping_step 2), "
        f"MAX_ITEM_LIST_LENGTH={args.max_len}, d=64, lr=0.002, dropout 0.2, CE, seed 2020\n"
    )
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
    p.add_argument("--device", default="cpu", help="speed: cpu or cuda")
    p.add_argument("--dtype", default="fp32", choices=["fp32", "bf16"], help="speed: the layers' dtype")
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
