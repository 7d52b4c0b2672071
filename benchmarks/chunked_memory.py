"""Memory that does not grow with the catalogue: ``loss_impl`` (dense against chunked CE) and the
full-ranking top-k in item chunks. Prints Markdown tables.

``loss``: one training step (zero_grad, ``calculate_loss``, backward, Adam) of a RecBole model
(through the registry's mended class) on generated batches of a given shape.

- step time: ONE process, the same model and batch, dense and chunked steps alternating
  (``--repeats`` rounds after ``--warmup`` rounds; medians and the median of the pairwise ratios).
  A setting whose step did not fit ``--cap-gb`` in its child is not timed.
- peak memory: each setting in its own child process (peak resident memory cannot be reset within
  a process), the children alternating dense, chunked, dense, ...; each child's peak resident
  set over its resident set after building the model and batch (one step's own memory, Adam's
  state created in it included), the median over
  ``--mem-repeats``. Every child runs under an address-space cap of ``--cap-gb``: a step that
  does not fit fails with an allocation error, reported as such.

``head``: the CE alone (``linear_softmax_ce`` forward and backward) of ``--batch`` rows of width
``--hidden`` against ``--items`` items: what ``loss_impl`` changes, without the encoder.

``topk``: the full-ranking top-k of one evaluation batch (``--rows`` sequences, hidden
``--hidden``) over ``--items`` items from a :class:`~recbole_ext.model.linear_head.LinearHead`:
item chunks under ``full_sort_memory_mb``, against the one-shot path (scores, then the top-k
under the same tie rule) where it fits the cap; time alternating in one process, peak in
children as above.

    python benchmarks/chunked_memory.py loss --model=SASRec --items=12101 --batch=2048
    python benchmarks/chunked_memory.py loss --model=BERT4Rec --items=12101 --batch=1024
    python benchmarks/chunked_memory.py loss --model=SASRec --items=1000000 --batch=2048
    python benchmarks/chunked_memory.py head --items=12101 --batch=2048 --repeats=10
    python benchmarks/chunked_memory.py topk --items=1000000 --rows=2048

Generated batches: item ids uniform over the catalogue; sequence lengths ``1 + Geometric``
with mean ``--mean-len`` (capped at ``--max-len``; RecBole's training rows are prefixes of the
users' histories, short on the Amazon data sets); BERT4Rec's rows masked as RecBole's
``mask_itemseq`` masks them (each real position with probability ``mask_ratio``, its masked
positions padded with 0 to ``int(mask_ratio * max_len)``).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import time
from typing import Dict, List, Optional

#: the GLINT-RU preset's SASRec and BERT4Rec (hidden 64, 2 layers, inner 256, 8 heads); the
#: attention is ``--attention-impl`` (sdpa by default: RecBole's manual attention holds
#: ``[batch, heads, len, len]`` probabilities per layer, several GB at batch 2048 and length 100,
#: which would hide the loss's share of the peak)
MODEL_KEYS = {"n_layers": 2, "n_heads": 8, "inner_size": 256, "hidden_dropout_prob": 0.5, "attn_dropout_prob": 0.5}


class Shape:
    """What a RecBole model reads from its data set: the number of items (padding included)."""

    def __init__(self, n_items: int) -> None:
        self.n_items = n_items

    def num(self, field: str) -> int:
        return self.n_items


def build(args):
    """``(model, batch, optimizer)`` of ``args.model`` on a generated batch."""
    import torch
    from recbole.data.interaction import Interaction
    from recbole.data.transform import construct_transform
    from recbole.utils import init_seed

    from recbole_ext.pipeline import Run
    from recbole_ext.registry import get_model

    keys = dict(
        MODEL_KEYS,
        n_heads=args.n_heads,
        state="ERROR",
        hidden_size=args.hidden,
        MAX_ITEM_LIST_LENGTH=args.max_len,
        attention_impl=args.attention_impl,
    )
    config = Run.resolve(args.model, "generated", config_dict=keys).config
    construct_transform(config)  # BERT4Rec's: names its fields in the config, as a run's data does
    init_seed(0, True)
    model = get_model(args.model)(config, Shape(args.items)).train()
    g = torch.Generator().manual_seed(1)
    batch, length = args.batch, args.max_len
    p = 1.0 / args.mean_len
    lengths = (1 + torch.distributions.Geometric(torch.tensor(p)).sample((batch,)).long()).clamp(max=length)
    real = torch.arange(length) < lengths[:, None]
    seq = torch.randint(1, args.items, (batch, length), generator=g) * real
    target = torch.randint(1, args.items, (batch,), generator=g)
    if args.model != "BERT4Rec":
        fields = {model.ITEM_SEQ: seq, model.ITEM_SEQ_LEN: lengths, model.POS_ITEM_ID: target}
    else:
        fields = bert4rec_fields(model, seq, real, config["mask_ratio"], g)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    return model, Interaction(fields), optimizer


def bert4rec_fields(model, seq, real, mask_ratio: float, g) -> Dict:
    """BERT4Rec's training fields as RecBole's ``mask_itemseq`` builds them."""
    import torch

    batch, length = seq.shape
    width = int(mask_ratio * length)
    masked = (torch.rand(batch, length, generator=g) < mask_ratio) & real
    index = torch.zeros(batch, width, dtype=torch.long)
    pos = torch.zeros(batch, width, dtype=torch.long)
    for row in range(batch):
        where = masked[row].nonzero().flatten()[:width]
        index[row, : len(where)] = where
        pos[row, : len(where)] = seq[row, where]
    masked_seq = torch.where(masked, torch.full_like(seq, model.mask_token), seq)
    return {model.MASK_ITEM_SEQ: masked_seq, model.POS_ITEMS: pos, model.NEG_ITEMS: pos, model.MASK_INDEX: index}


def step(model, batch, optimizer) -> float:
    """One training step; returns its seconds."""
    start = time.perf_counter()
    optimizer.zero_grad()
    model.calculate_loss(batch).backward()
    optimizer.step()
    return time.perf_counter() - start


def peak_mb() -> float:
    """This process's peak resident set so far."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def resident_mb() -> float:
    """This process's resident set now."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def child_loss(args) -> Dict:
    """One setting's step memory (run in a child under the cap)."""
    model, batch, optimizer = build(args)
    model.loss_impl = args.impl
    base = resident_mb()
    try:
        seconds = step(model, batch, optimizer)
    except (RuntimeError, MemoryError) as err:  # an allocation over the cap
        return failure(err)
    return {"peak_mb": peak_mb() - base, "step_s": seconds}


def failure(err: BaseException) -> Dict:
    """An allocation over the cap, as one line (the size it asked for, when the message says)."""
    text = str(err)
    match = re.search(r"you tried to allocate (\d+) bytes", text)
    if match:
        return {"error": f"allocating {int(match.group(1)) / 2**30:.1f} GiB failed"}
    return {"error": text.splitlines()[0][:120]}


def head_step(args):
    """``(step, None)``: the CE head alone, one forward and backward per call of ``step(impl)``."""
    import torch

    from recbole_ext.model.linear_head import LinearHead, linear_softmax_ce

    g = torch.Generator().manual_seed(0)
    query = torch.randn(args.batch, args.hidden, generator=g).requires_grad_()
    table = (torch.randn(args.items, args.hidden, generator=g) * 0.1).requires_grad_()
    target = torch.randint(1, args.items, (args.batch,), generator=g)

    def run(impl: str) -> float:
        start = time.perf_counter()
        query.grad = table.grad = None
        linear_softmax_ce(LinearHead(query, table, None), target, impl == "chunked").backward()
        return time.perf_counter() - start

    return run


def child_head(args) -> Dict:
    """The CE head's memory (run in a child under the cap)."""
    run = head_step(args)
    base = resident_mb()
    try:
        seconds = run(args.impl)
    except (RuntimeError, MemoryError) as err:
        return failure(err)
    return {"peak_mb": peak_mb() - base, "step_s": seconds}


def child_topk(args) -> Dict:
    """One setting's top-k memory (run in a child under the cap)."""
    head, n_items = topk_head(args)
    base = resident_mb()
    try:
        run_topk(head, n_items, args.impl, args.memory_mb)
    except (RuntimeError, MemoryError) as err:
        return failure(err)
    return {"peak_mb": peak_mb() - base}


def topk_head(args):
    import torch

    from recbole_ext.model.linear_head import LinearHead

    g = torch.Generator().manual_seed(0)
    table = torch.randn(args.items, args.hidden, generator=g) * 0.1
    return LinearHead(torch.randn(args.rows, args.hidden, generator=g), table, None), args.items


def run_topk(head, n_items: int, impl: str, memory_mb: float):
    """The evaluation's top-k (k = 10) of one batch: item chunks, or one shot."""
    from recbole_ext.evaluation.full_sort import mask_excluded, topk_in_item_chunks
    from recbole_ext.evaluation.topk import topk_items

    if impl == "chunked":
        return topk_in_item_chunks(head, n_items, 10, memory_mb)
    scores = head.scores()
    mask_excluded(scores, 0, None)
    return topk_items(scores, 10)


def in_child(args, impl: str) -> Dict:
    """Run this script for one setting in a child process under the address-space cap."""
    cmd = [sys.executable, __file__, args.case, "--child", f"--impl={impl}"] + [
        f"--{k.replace('_', '-')}={v}" for k, v in vars(args).items() if k not in ("case", "child", "impl")
    ]
    cap = int(args.cap_gb * 2**30)

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
        os.nice(10)

    proc = subprocess.run(cmd, capture_output=True, text=True, preexec_fn=limit)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return {"error": f"exit {proc.returncode}: {tail[:120]}"}
    return json.loads(lines[-1])


def timed(args, impls: List[str]) -> Dict[str, List[float]]:
    """Seconds per step (or per top-k), the settings alternating in this process."""
    out: Dict[str, List[float]] = {impl: [] for impl in impls}
    if args.case == "loss":
        model, batch, optimizer = build(args)
    elif args.case == "head":
        run_head = head_step(args)
    else:
        head, n_items = topk_head(args)
    for rep in range(args.repeats + args.warmup):  # the first --warmup rounds are not counted
        for impl in impls:
            if args.case == "loss":
                model.loss_impl = impl
                seconds = step(model, batch, optimizer)
            elif args.case == "head":
                seconds = run_head(impl)
            else:
                start = time.perf_counter()
                run_topk(head, n_items, impl, args.memory_mb)
                seconds = time.perf_counter() - start
            if rep >= args.warmup:
                out[impl].append(seconds)
    return out


def report(args) -> None:
    impls = ["dense", "chunked"]
    memory: Dict[str, List[Dict]] = {impl: [] for impl in impls}
    for _ in range(args.mem_repeats):
        for impl in impls:
            memory[impl].append(in_child(args, impl))
    cap = int(args.cap_gb * 2**30)
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))  # this process too
    times = timed(args, [impl for impl in impls if all("peak_mb" in m for m in memory[impl])])
    what = (
        f"CE head alone: {args.batch} rows, hidden {args.hidden}, {args.items:,} items"
        if args.case == "head"
        else f"{args.model}, {args.items:,} items, batch {args.batch}, hidden {args.hidden}, max len {args.max_len}, "
        f"mean len {args.mean_len}, {args.n_heads} heads, attention_impl {args.attention_impl}"
        if args.case == "loss"
        else f"top-10 of {args.rows} rows over {args.items:,} items, hidden {args.hidden}, "
        f"full_sort_memory_mb {args.memory_mb}"
    )
    import torch

    print(f"\n{what}; torch {torch.__version__}, {torch.get_num_threads()} threads, cap {args.cap_gb} GiB\n")
    print("| setting | peak MB (median) | seconds (median) | runs |")
    print("|---|---:|---:|---|")
    for impl in impls:
        peaks = [m["peak_mb"] for m in memory[impl] if "peak_mb" in m]
        errors = [m["error"] for m in memory[impl] if "error" in m]
        peak = f"{statistics.median(peaks):,.0f}" if peaks else f"does not fit: {errors[0]}"
        secs = times.get(impl)
        sec = f"{statistics.median(secs):.3f}" if secs else "not run (does not fit)"
        print(f"| {impl} | {peak} | {sec} | {len(peaks)} peak, {len(secs or [])} timed |")
    if all(times.get(impl) for impl in impls):
        ratios = [c / d for c, d in zip(times["chunked"], times["dense"])]
        print(f"\nchunked / dense time, median of {len(ratios)} pairs: {statistics.median(ratios):.2f}")


def parse(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("case", choices=["loss", "head", "topk"])
    parser.add_argument("--model", default="SASRec")
    parser.add_argument("--items", type=int, default=12101)
    parser.add_argument("--batch", type=int, default=2048)
    parser.add_argument("--rows", type=int, default=2048, help="topk: sequences per evaluation batch")
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--max-len", type=int, default=100)
    parser.add_argument("--n-heads", type=int, default=8, help="attention heads (the preset's 8; RecBole's default 2)")
    parser.add_argument("--attention-impl", default="sdpa", help="the models' attention_impl")
    parser.add_argument("--mean-len", type=float, default=5.0)
    parser.add_argument("--memory-mb", type=float, default=1024.0, help="topk: full_sort_memory_mb")
    parser.add_argument("--repeats", type=int, default=3, help="timed rounds (one step per setting each)")
    parser.add_argument("--warmup", type=int, default=1, help="rounds before them, not counted")
    parser.add_argument("--mem-repeats", type=int, default=2, help="children per setting for the peak")
    parser.add_argument("--cap-gb", type=float, default=8.0, help="address-space cap of each child")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--impl", default="dense", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


if __name__ == "__main__":
    arguments = parse()
    if arguments.child:
        child = {"loss": child_loss, "head": child_head, "topk": child_topk}[arguments.case]
        print(json.dumps(child(arguments)))
    else:
        report(arguments)
