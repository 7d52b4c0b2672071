#!/usr/bin/env python
"""GLINTRU with and without its fast path (``last_position_only``), in one process, alternating.

    python benchmarks/glintru_fast_path.py [--batch 256 --length 50 --hidden 64 --repeats 7 --device cpu]

Both models have the same weights (one is the other's copy with the key switched); each round
times one training step (forward, CE loss over all items, backward, Adam) and one
``full_sort_predict`` of each, on the same random batch of right-padded sequences with lengths
drawn from 1 to ``--length``. Eager, float32, TF32 off; the device is synchronised before
every clock read. Prints the processor, versions and a Markdown table of medians and of the
median per-round ratio.
"""

from __future__ import annotations

import argparse
import copy
import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from bench_mlstm import alternating, median, ratio_to_first, synced, where  # noqa: E402

from gpu_suite_common import suite_run  # noqa: E402


def build(args):
    """The two GLINTRU models (fast path on, off) on ml-100k's item set, and a batch."""
    from recbole_ext.trainer.fast_path import set_tf32

    set_tf32(False)
    keys = {"hidden_size": args.hidden, "MAX_ITEM_LIST_LENGTH": args.length, "n_heads": 4}
    keys["load_col"] = {"inter": ["user_id", "item_id", "timestamp"]}
    run = suite_run("GLINTRU", "ml-100k", None, keys)
    run.config["device"] = torch.device(args.device)
    fast = run.build_model(run.load_dataset()).to(args.device)
    full = copy.deepcopy(fast)
    fast.last_position_only, full.last_position_only = True, False
    g = torch.Generator().manual_seed(0)
    lengths = torch.randint(1, args.length + 1, (args.batch,), generator=g)
    seq = torch.randint(1, fast.n_items, (args.batch, args.length), generator=g)
    seq[torch.arange(args.length)[None, :] >= lengths[:, None]] = 0
    batch = {
        fast.ITEM_SEQ: seq,
        fast.ITEM_SEQ_LEN: lengths,
        fast.POS_ITEM_ID: torch.randint(1, fast.n_items, (args.batch,)),
    }
    return fast, full, {k: v.to(args.device) for k, v in batch.items()}


def train_step(net, batch):
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)

    def step():
        net.train()
        optimizer.zero_grad(set_to_none=True)
        net.calculate_loss(batch).backward()
        optimizer.step()

    return step


def infer(net, batch):
    def f():
        net.eval()
        with torch.no_grad():
            net.full_sort_predict(batch)

    return f


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--length", type=int, default=50)
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--device", default="cpu")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    fast, full, batch = build(args)
    train = alternating([synced(train_step(n, batch)) for n in (full, fast)], args.repeats)
    inference = alternating([synced(infer(n, batch)) for n in (full, fast)], args.repeats)
    print(
        f"\n{where(torch.device(args.device))}; GLINTRU B={args.batch}, L={args.length}, d={args.hidden}, "
        f"{fast.n_items} items, fp32 eager, TF32 off, torch {torch.__version__}, threads={torch.get_num_threads()}; "
        f"median of {args.repeats} alternating rounds (ratio: median of per-round ratios)\n"
    )
    print("| last_position_only | train step (ms) | vs False | full_sort_predict (ms) | vs False |")
    print("|---|---:|---:|---:|---:|")
    rows = zip(
        ("False (every position)", "True (default)"), train, ratio_to_first(train), inference, ratio_to_first(inference)
    )
    for name, tt, rt, ti, ri in rows:
        print(f"| {name} | {median(tt):.1f} | {rt:.2f}x | {median(ti):.1f} | {ri:.2f}x |")


if __name__ == "__main__":
    main()
