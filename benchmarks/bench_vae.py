"""Training speed of SVAE (batched vs batch size 1) and MultVAE (vs RecBole's MultiVAE) on ml-100k.

Usage::

    python benchmarks/bench_vae.py [--threads 1] [--b1-users 100] [--repeats 2]

- SVAE: one epoch over every user's training sequence (``SVAEDataset``, ml-100k leave-one-out,
  943 users, sequences of at most ``MAX_ITEM_LIST_LENGTH + 1 = 51`` items), with the same model
  (same initial weights), the same data and the same loop (Adam step + annealing step per
  batch), at ``train_batch_size`` users per batch and at 1 user per batch as the reference
  trains. The batch-1 epoch is timed on the first ``--b1-users`` users and extrapolated to all
  users (``time * n_users / b1_users``).
- MultVAE vs MultiVAE: one training epoch through the trainer (``_train_epoch``) on ml-100k with
  RecBole's general protocol (``protocol-general-ml100k.yaml``), at the same batch sizes.

Prints a Markdown table; the best of ``--repeats`` runs is reported.
"""

from __future__ import annotations

import argparse
import copy
import os
import sys
import time
from logging import getLogger

import torch

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from recbole_ext.pipeline import Run  # noqa: E402

getLogger().setLevel("WARNING")


def build(model: str, config_files=None, **overrides):
    cfg = {"state": "WARNING", "show_progress": False}
    cfg.update(overrides)
    run = Run.resolve(model, "ml-100k", config_files, cfg)
    loaders = run.build_loaders(run.prepare_data())
    return run, run.build_model(loaders.train_set), loaders.train


def train_steps(net, batches) -> float:
    """Seconds for one pass of Adam updates over ``batches`` (what the trainer does per batch)."""
    net = copy.deepcopy(net)
    net.train()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    start = time.perf_counter()
    for batch in batches:
        opt.zero_grad()
        loss = net.calculate_loss(batch)
        loss.backward()
        opt.step()
        net.on_optimizer_step()
    return time.perf_counter() - start


def bench_svae(b1_users: int, repeats: int):
    run, net, train = build("SVAE")
    config = run.config
    inter = train._dataset.inter_feat
    n_users, bs = len(inter), config["train_batch_size"]
    batched = [inter[torch.arange(i, min(i + bs, n_users))] for i in range(0, n_users, bs)]
    singles = []
    for i in range(min(b1_users, n_users)):
        one = inter[torch.tensor([i])]
        n = int(one["item_length"][0])
        one.interaction["item_id_list"] = one["item_id_list"][:, :n]  # no padding at all
        singles.append(one)
    t_batched = min(train_steps(net, batched) for _ in range(repeats))
    t_b1 = min(train_steps(net, singles) for _ in range(repeats))
    t_b1_epoch = t_b1 * n_users / len(singles)
    return [
        ("SVAE", f"batched ({bs} users/batch)", f"{n_users} users", f"{t_batched:.2f}", "1.0x"),
        (
            "SVAE",
            "batch size 1 (reference)",
            f"{len(singles)} users timed, x{n_users / len(singles):.2f}",
            f"{t_b1_epoch:.2f}",
            f"{t_b1_epoch / t_batched:.1f}x slower",
        ),
    ]


def bench_multvae(batch_sizes, repeats: int):
    rows = []
    protocol = [os.path.join(REPO, "recbole_ext", "properties", "quick_start_config", "protocol-general-ml100k.yaml")]
    for bs in batch_sizes:
        times = {}
        for model in ("MultiVAE", "MultVAE"):
            run, net, train = build(model, protocol, train_batch_size=bs)
            trainer = run.build_trainer(net)
            best = float("inf")
            for _ in range(repeats):
                trainer._train_epoch(train, 0)
                best = min(best, trainer.timings["train_epoch_s"][-1])
            times[model] = best
        for model in ("MultiVAE", "MultVAE"):
            ratio = times[model] / times["MultiVAE"]
            rows.append(
                (model, f"{bs} users/batch", f"{len(train)} batches", f"{times[model]:.2f}", f"{ratio:.2f}x MultiVAE")
            )
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: the machine is shared)")
    parser.add_argument("--b1-users", type=int, default=100, help="users timed at batch size 1")
    parser.add_argument("--repeats", type=int, default=2, help="runs per measurement (best kept)")
    parser.add_argument("--multvae-batch-sizes", default="2048,128", help="comma-separated")
    parser.add_argument("--skip", default="", help="comma-separated parts to skip: svae, multvae")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    skip = set(filter(None, args.skip.split(",")))
    rows = []
    if "svae" not in skip:
        rows += bench_svae(args.b1_users, args.repeats)
    if "multvae" not in skip:
        rows += bench_multvae([int(x) for x in args.multvae_batch_sizes.split(",")], args.repeats)
    print(f"torch {torch.__version__}, {args.threads} thread(s), ml-100k, one training epoch, best of {args.repeats}\n")
    print("| model | batching | work | epoch (s) | relative |")
    print("|---|---|---|---|---|")
    for r in rows:
        print("| " + " | ".join(r) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
