"""GPU suite, part (b): training and inference speed at the GLINT-RU paper's ML-1M shape.

A generated data set with ML-1M's shape (6,040 users, 3,706 items, about 1M interactions, mean
length about 165; :func:`gpu_suite_common.ml1m_shape_lengths`) is the reference for the epoch
size. Only its first ``n_users`` users are built into a RecBole data set: a training step costs
the same whatever the data set's size (every batch is ``[2048, 200]`` and every score row has
3,706 items), so seconds per epoch are the mean step time times the full data set's number of
batches. The RecBole loader (batch assembly on the CPU and the copy to the device) is timed
apart from the model step, over the same batches.

Every row states what was in force (:func:`flags_in_force`): the precision of float32 matrix
products and of cuDNN's convolutions and RNNs (one PyTorch switch for both; its default lets
cuDNN use TF32 while matrix products stay fp32, so ``fp32`` rows switch it off), bf16 autocast,
cuDNN's deterministic and benchmark switches (RecBole's ``reproducibility: True`` sets them to
on and off), and for compiled rows the number of graphs Dynamo made.
"""

from __future__ import annotations

import gc
import math
import time
from typing import Dict, List, Tuple

import torch

from recbole_ext.trainer.fast_path import autocast, compile_forward, set_tf32

from gpu_suite_common import ml1m_shape_lengths, ml1m_shape_rows, suite_run, sync, train_samples, write_inter

_SASREC = {"n_layers": 2, "n_heads": 2, "inner_size": 256}
#: each row's model and keys at the paper's ML-1M shape (hidden 128; GLINT-RU's run script: 8
#: heads); "-sdpa" is RecBole's attention through SDPA, "-full" GLINTRU without its fast path
SPEED_MODELS: Dict[str, Tuple[str, Dict]] = {
    "SASRec": ("SASRec", _SASREC),
    "SASRec-sdpa": ("SASRec", {**_SASREC, "attention_impl": "sdpa"}),
    "GLINTRU": ("GLINTRU", {"n_heads": 8}),
    "GLINTRU-full": ("GLINTRU", {"n_heads": 8, "last_position_only": False}),
    "GRU4Rec": ("GRU4Rec", {"num_layers": 1}),
    "BERT4Rec": ("BERT4Rec", {"n_layers": 2, "n_heads": 2, "inner_size": 256}),
    "BERT4Rec-sdpa": ("BERT4Rec", {"n_layers": 2, "n_heads": 2, "inner_size": 256, "attention_impl": "sdpa"}),
    "mLSTM": ("mLSTM", {}),
    "LSTM4Rec": ("LSTM4Rec", {}),
}
COMPILED = ("SASRec", "SASRec-sdpa", "GLINTRU", "GLINTRU-full")
#: the eager rows' precisions, and the compiled rows'
EAGER_PRECISIONS = ("fp32", "tf32", "bf16")
COMPILED_PRECISIONS = ("bf16", "fp32")
#: models with an ``embedding_size`` apart from ``hidden_size`` (both set to the shape's width)
EMBEDDING_KEY = ("GRU4Rec", "mLSTM", "LSTM4Rec")


def speed_keys(shape: Dict, model: str) -> Dict:
    keys = {"embedding_size": shape["hidden"]} if model in EMBEDDING_KEY else {}
    return keys | {
        "MAX_ITEM_LIST_LENGTH": shape["max_len"],
        "hidden_size": shape["hidden"],
        "train_batch_size": shape["batch"],
        "eval_batch_size": shape["batch"],
        "load_col": {"inter": ["user_id", "item_id", "timestamp"]},
        "eval_args": {"split": {"LS": "valid_and_test"}, "order": "TO", "mode": "full", "group_by": "user"},
        "metrics": ["Recall", "NDCG"],
        "topk": [10],
        "valid_metric": "NDCG@10",
    }


def write_shape_data(root: str, shape: Dict) -> Tuple[str, int]:
    """Write the first ``shape['users']`` users of the ML-1M-shaped set as ``ml1m-shape``.

    Returns:
        ``(data_root, full_train_samples)``: training sequences of the whole 6,040-user set.
    """
    lengths = ml1m_shape_lengths()
    write_inter(root, "ml1m-shape", ml1m_shape_rows(lengths[: shape["users"]], shape["items"]))
    return root, train_samples(lengths)


def build_data(name: str, root: str, shape: Dict, **extra):
    """The run and the training loader of row ``name`` (:data:`SPEED_MODELS`) on the sample."""
    model, model_keys = SPEED_MODELS.get(name, (name, {}))
    keys = {**speed_keys(shape, model), **model_keys, **extra}
    run = suite_run(model, "ml1m-shape", root, keys)
    run.attach_device()
    return run, run.build_loaders(run.prepare_data()).train


def build_model(run, train_data):
    """A freshly initialised model on its device and its trainer (for the optimiser)."""
    net = run.build_model(train_data._dataset)
    return net, run.build_trainer(net)


def load_batches(train_data, device, n: int) -> Tuple[List, float]:
    """The first ``n`` training batches on ``device``, and the loader's ms per batch for them."""
    batches = []
    sync()
    start = time.perf_counter()
    for batch in train_data:
        batches.append(batch.to(device))
        if len(batches) == n:
            break
    sync()
    return batches, 1000 * (time.perf_counter() - start) / len(batches)


def time_steps(net, optimizer, batches, precision: str, warmup: int, steps: int) -> Tuple[float, float]:
    """Training steps (forward, loss, backward, Adam) as the trainer does them, without a host
    read per step. Returns ``(seconds per step, seconds of the warm-up steps)``."""
    device = next(net.parameters()).device
    net.train()
    sync()
    start = time.perf_counter()
    warm_s = 0.0
    for i in range(warmup + steps):
        if i == warmup:
            sync()
            warm_s = time.perf_counter() - start
            start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        with autocast(precision, device):
            loss = net.calculate_loss(batches[i % len(batches)])
        loss.backward()
        optimizer.step()
    sync()
    return (time.perf_counter() - start) / steps, warm_s


@torch.no_grad()
def time_inference(net, batch, precision: str, reps: int) -> float:
    """Milliseconds of ``full_sort_predict`` on one training-shaped batch (all items scored)."""
    device = next(net.parameters()).device
    net.eval()
    with autocast(precision, device):
        net.full_sort_predict(batch)
        sync()
        start = time.perf_counter()
        for _ in range(reps):
            net.full_sort_predict(batch)
        sync()
    return 1000 * (time.perf_counter() - start) / reps


def loader_compare(root: str, shape: Dict, model: str = "SASRec") -> Dict[str, float]:
    """ms per training batch: RecBole's CPU batches copied over, and the device-resident table
    (``train_data_on_device``), over the same batches, each timed on a second pass (the first
    pays for CUDA's start and the table's copy to the device)."""
    out = {}
    for name, setting in (("recbole_ms", False), ("device_ms", True)):
        run, train_data = build_data(model, root, shape, train_data_on_device=setting)
        load_batches(train_data, run.config["device"], shape["batches"])
        out[name] = load_batches(train_data, run.config["device"], shape["batches"])[1]
        out[name + "_loader"] = type(train_data).__name__
    return out


def flags_in_force(precision: str) -> Dict[str, str]:
    """Set the TF32 switches for ``precision`` (on only for ``tf32``) and return what is in
    force: matmul and cuDNN precision, autocast, cuDNN deterministic and benchmark."""
    set_tf32(precision == "tf32")

    def name(tf32: bool) -> str:
        fp32 = "tf32" if tf32 else "fp32"
        return f"autocast bf16, else {fp32}" if precision == "bf16" else fp32

    cudnn = torch.backends.cudnn
    return {
        "matmul": name(torch.backends.cuda.matmul.allow_tf32),
        "cudnn": name(cudnn.allow_tf32),
        "deterministic": "on" if cudnn.deterministic else "off",
        "benchmark": "on" if cudnn.benchmark else "off",
    }


def graphs_made() -> int:
    """Graphs Dynamo has compiled in this process so far."""
    from torch._dynamo.utils import counters

    return int(counters["stats"]["unique_graphs"])


def measure(name: str, run, train_data, shape: Dict, full_samples: int, precision: str, compiled: bool) -> Dict:
    """Row ``name`` of part (b) (the model of ``run``): see the module docstring."""
    net, trainer = build_model(run, train_data)
    device = run.config["device"]
    flags = flags_in_force(precision)
    graphs_before = graphs_made() if compiled else 0
    if compiled:  # what the `compile` key does (the smoke run names a cheap backend)
        compile_forward(net, shape.get("compile_backend", True))
    batches, loader_ms = load_batches(train_data, device, shape["batches"])
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    step_s, warm_s = time_steps(net, trainer.optimizer, batches, precision, shape["warmup"], shape["steps"])
    peak = torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda" else float("nan")
    graphs = graphs_made() - graphs_before if compiled else 0  # the training forward's
    eval_ms = time_inference(net, batches[0], precision, shape["eval_reps"])
    n_batches = math.ceil(full_samples / shape["batch"])
    impl = mlstm_impl(net)
    del net, trainer, batches
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return {
        "model": name,
        "precision": precision,
        "compiled": compiled,
        "graphs": graphs,
        **flags,
        "impl": impl,
        "step_ms": 1000 * step_s,
        "epoch_s": step_s * n_batches,
        "loader_epoch_s": loader_ms * n_batches / 1000,
        "eval_ms": eval_ms,
        "peak_mb": peak,
        "warmup_s": warm_s,
        "batches_per_epoch": n_batches,
    }


def profile_table(run, train_data, shape: Dict, rows: int = 12) -> str:
    """The ops that take the most device (or, without CUDA, CPU) time in three fp32 training
    steps of the model of ``run``, as torch.profiler's table."""
    from torch.profiler import ProfilerActivity, profile

    net, trainer = build_model(run, train_data)
    device = run.config["device"]
    batches, _ = load_batches(train_data, device, 3)
    time_steps(net, trainer.optimizer, batches, "fp32", warmup=2, steps=1)
    cuda = device.type == "cuda"
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with profile(activities=activities) as prof:
        time_steps(net, trainer.optimizer, batches, "fp32", warmup=0, steps=3)
    del net, trainer, batches
    sort = "self_device_time_total" if cuda else "self_cpu_time_total"
    return prof.key_averages().table(sort_by=sort, row_limit=rows, max_name_column_width=60)


def mlstm_impl(net) -> str:
    """Which mLSTM recurrence ran in the last forward pass ("-" for other models)."""
    layers = getattr(getattr(net, "recurrent", None), "layers", None)
    if type(net).__name__ != "mLSTM" or not layers:
        return "-"
    return str(getattr(layers[0], "last_impl", "-"))


def plan(models: List[str]) -> List[Tuple[str, List[Tuple[str, bool]]]]:
    """The rows in the order they run, grouped by data build: the compiled rows of
    :data:`COMPILED` first, bf16 before fp32 (the like-with-like comparison the paper's claim
    needs), then every model's eager rows; a budget that runs out cuts the least important."""
    rows = [(m, [(p, True)]) for p in COMPILED_PRECISIONS for m in models if m in COMPILED]
    rows += [(m, [(p, False) for p in EAGER_PRECISIONS]) for m in models]
    return rows
