"""Speed of sequential models on CPU with the same data, batch size and width.

For each model (GLINTRU, SASRec with 2 layers, GRU4Rec, BERT4Rec), in a fresh subprocess so that
peak RSS is its own: training seconds per epoch (measured on ``--train-batches`` batches and
scaled to the full epoch), inference ms per full-ranking evaluation batch (``--eval-batches``),
peak RSS. With ``--sampled``, a second table: one pass over the validation set in full ranking,
in pop100 through our fast sampled path, and in pop100 through RecBole's path.

    python benchmarks/bench_seq_speed.py --dataset=ml-100k --max-len=50 --batch=256 --hidden=64

``--reference-glintru=PATH`` adds a row for the reference code's model (``GLINT-RU.py`` from a
checkout of github.com/szhang-cityu/GLINT-RU, which is not part of this repository), same data,
batches and width, run as the file is. The harness sets the keys the model reads that the
repository sets nowhere, and patches only a file from before the repository's July 2024 fix,
whose ``forward`` raised ``TypeError`` (it assigned ``F.softmax(self.weights)`` to the
``nn.Parameter`` attribute); the current head runs unchanged.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

MODELS = ["GLINTRU", "SASRec", "GRU4Rec", "BERT4Rec"]
REFERENCE = "GLINTRU-reference"
# a reference file from before July 2024: its crashing lines, and the local-variable form the
# current head has (applied only where the old line is present)
REFERENCE_FIX = [
    ("        self.weights = F.softmax(self.weights, dim=0)\n", "        weights = F.softmax(self.weights, dim=0)\n"),
    (
        "self.weights[0] * gru_output + self.weights[1] * attention_output",
        "weights[0] * gru_output + weights[1] * attention_output",
    ),
]
MODEL_KEYS = {
    "SASRec": {"n_layers": 2, "n_heads": 2, "inner_size": 256},
    "BERT4Rec": {"n_layers": 2, "n_heads": 2, "inner_size": 256},
    "GLINTRU": {"n_heads": 4},
    "GRU4Rec": {"num_layers": 1},
    # keys the reference model reads that its repository sets nowhere (ours: GLINTRU.yaml)
    REFERENCE: {"n_heads": 4, "num_layers": 1, "dropout_prob": 0.2, "loss_type": "CE", "attn_dropout_prob": 0.2},
}


def reference_glintru_class(path: str):
    """The reference ``GLINTRU`` class from ``path`` (with :data:`REFERENCE_FIX` where needed)."""
    import types

    from recbole_ext.compat.numpy import restore_numpy_aliases

    restore_numpy_aliases()
    with open(path) as f:
        source = f.read()
    if "class GLINTRU" not in source:
        raise SystemExit(f"{path}: expected the reference GLINT-RU.py (no class GLINTRU in it)")
    for old, new in REFERENCE_FIX:
        if old in source:
            print(f"[reference] patched a pre-July-2024 line: {old.strip()}", file=sys.stderr)
            source = source.replace(old, new)
    module = types.ModuleType("glintru_reference")
    exec(compile(source, path, "exec"), module.__dict__)
    return module.GLINTRU


def config_for(args, model: str, mode: str):
    """The pipeline's run of ``model`` (the reference GLINT-RU runs as GLINTRU) in ``mode``."""
    from recbole_ext.pipeline import Run

    cfg = {
        "state": "ERROR",
        "show_progress": False,
        "MAX_ITEM_LIST_LENGTH": args.max_len,
        "train_batch_size": args.batch,
        # users per evaluation batch: full ranking and our candidate loader count users;
        # RecBole's sampled loader counts candidate rows (101 per user under pop100)
        "eval_batch_size": args.batch,
        "hidden_size": args.hidden,
        "embedding_size": args.hidden,
        "load_col": {"inter": ["user_id", "item_id", "timestamp"]},
        "eval_args": {"split": {"LS": "valid_and_test"}, "order": "TO", "mode": mode, "group_by": "user"},
        "metrics": ["Recall", "NDCG"],
        "topk": [10],
        "valid_metric": "NDCG@10",
    }
    cfg.update(MODEL_KEYS.get(model, {}))
    built = reference_glintru_class(args.reference_glintru) if model == REFERENCE else model
    return Run.resolve(built, args.dataset, config_dict=cfg)


def one(args, model: str) -> dict:
    import torch

    torch.set_num_threads(args.threads)
    run = config_for(args, model, "full")
    splits = run.prepare_data()
    dataset = splits.dataset
    loaders = run.build_loaders(splits)
    train_data, valid_data = loaders.train, loaders.valid
    net = run.build_model(loaders.train_set)
    trainer = run.build_trainer(net)
    n_params = sum(p.numel() for p in net.parameters())

    # training: the first --train-batches batches of one epoch (after one warm-up batch)
    net.train()
    batches = iter(train_data)
    timed, spent = 0, 0.0
    for i, inter in enumerate(batches):
        start = time.perf_counter()
        trainer.optimizer.zero_grad()
        loss = net.calculate_loss(inter)
        loss.backward()
        trainer.optimizer.step()
        if i > 0:
            spent += time.perf_counter() - start
            timed += 1
        if timed >= args.train_batches:
            break
    epoch_s = spent / timed * len(train_data)

    # inference: full-ranking scores of --eval-batches validation batches (cycling through the
    # validation set when it has fewer batches), after one warm-up batch
    net.eval()
    eval_batches = list(valid_data)
    eval_ms = 0.0
    with torch.no_grad():
        for i in range(args.eval_batches + 1):
            batch = eval_batches[i % len(eval_batches)]
            start = time.perf_counter()
            net.full_sort_predict(batch[0])
            if i > 0:
                eval_ms += 1000 * (time.perf_counter() - start)
    n_eval = args.eval_batches
    out = {
        "model": model,
        "params": n_params,
        "train_batches_per_epoch": len(train_data),
        "epoch_s": epoch_s,
        "eval_ms": eval_ms / max(n_eval, 1),
    }
    if args.sampled:
        out.update(sampled_passes(args, model, trainer, valid_data, dataset))
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def sampled_passes(args, model, trainer, full_valid, dataset) -> dict:
    """Seconds for one validation pass: full ranking; pop100 through our candidate loader and
    encode-once scoring; pop100 through RecBole's loader with encode-once scoring; pop100 the
    way RecBole does it (its loader, ``predict`` per candidate). Same users per batch in all."""
    from recbole.utils import init_seed

    run = config_for(args, model, "pop100")
    config = run.config
    pop_valid = run.build_loaders(run.prepare_data()).valid
    config["eval_batch_size"] = args.batch * 101
    recbole_valid = run.recbole_eval_loader(pop_valid)
    trainer.config["eval_type"] = config["eval_type"]
    passes = [
        ("full_pass_s", full_valid, True),
        ("pop100_fast_s", pop_valid, True),
        ("pop100_recbole_loader_s", recbole_valid, True),
    ]
    if not args.skip_recbole_path:
        passes.append(("pop100_recbole_s", recbole_valid, False))
    res = {}
    for name, data, fast in passes:
        trainer.fast_sampled_eval = fast
        init_seed(1, True)
        start = time.perf_counter()
        trainer.evaluate(data, load_best_model=False)
        res[name] = time.perf_counter() - start
    return res


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="ml-100k")
    p.add_argument("--max-len", type=int, default=50)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--train-batches", type=int, default=10)
    p.add_argument("--eval-batches", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--models", default=",".join(MODELS))
    p.add_argument("--sampled", action="store_true", help="also time pop100 vs full validation passes")
    p.add_argument(
        "--skip-recbole-path",
        action="store_true",
        help="with --sampled: skip RecBole's own per-candidate pop100 pass (slow on big data)",
    )
    p.add_argument(
        "--reference-glintru", metavar="PATH", help="GLINT-RU.py of the reference code: adds a row for its model"
    )
    p.add_argument("--one", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.one:
        print("RESULT " + json.dumps(one(args, args.one)))
        return

    rows = []
    models = args.models.split(",")
    if args.reference_glintru and REFERENCE not in models:
        models.insert(1, REFERENCE)
    for model in models:
        cmd = [sys.executable, os.path.abspath(__file__), "--one", model] + [
            a for a in sys.argv[1:] if not a.startswith("--models")
        ]
        out = subprocess.run(cmd, capture_output=True, text=True)
        line = [l for l in out.stdout.splitlines() if l.startswith("RESULT ")]
        if not line:
            print(f"{model}: failed\n{out.stderr[-2000:]}", file=sys.stderr)
            continue
        rows.append(json.loads(line[-1][7:]))
    print_tables(args, rows)


def print_tables(args, rows) -> None:
    """The Markdown tables of the measured ``rows`` (training and inference; sampled passes)."""
    base = next((r["epoch_s"] for r in rows if r["model"] == "SASRec"), None)
    print(
        f"\n{args.dataset}, max length {args.max_len}, batch {args.batch}, hidden {args.hidden}, "
        f"{args.threads} threads; train time from {args.train_batches} batches scaled to one epoch\n"
    )
    print("| model | params | train s/epoch | x SASRec | eval ms/batch (full) | peak RSS MB |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in rows:
        rel = f"{r['epoch_s'] / base:.2f}" if base else "-"
        print(
            f"| {r['model']} | {r['params']:,} | {r['epoch_s']:.2f} | {rel} | {r['eval_ms']:.1f} "
            f"| {r['peak_rss_mb']:.0f} |"
        )
    if args.sampled:
        print(
            "\n| model | valid pass full (s) | pop100 ours (s) | pop100 RecBole loader, encode once (s) "
            "| pop100 RecBole's path (s) | ours / full |"
        )
        print("|---|---:|---:|---:|---:|---:|")
        for r in rows:
            recbole = f"{r['pop100_recbole_s']:.2f}" if "pop100_recbole_s" in r else "-"
            print(
                f"| {r['model']} | {r['full_pass_s']:.2f} | {r['pop100_fast_s']:.2f} | "
                f"{r['pop100_recbole_loader_s']:.2f} | {recbole} | {r['pop100_fast_s'] / r['full_pass_s']:.2f} |"
            )


if __name__ == "__main__":
    main()
