"""Data-parallel training on ``torch.distributed`` (DDP): launch settings and collectives.

Two launchers are supported. ``torchrun --nproc_per_node=N run_recbole_ext.py ...`` (and
``--nnodes/--node_rank/--master_addr`` across machines) sets ``LOCAL_RANK``, ``RANK``,
``WORLD_SIZE``, ``LOCAL_WORLD_SIZE``, ``MASTER_ADDR`` and ``MASTER_PORT``; :func:`launch_settings`
maps them onto RecBole's keys (``local_rank``, ``offset``, ``world_size``, ``nproc``, ``ip``,
``port``). RecBole's own spawn form (``--nproc=N``) passes the same keys itself
(:func:`recbole_ext.quick_start.spawn_ranks`). The configuration only reads them
(:func:`launch_settings`, :func:`device_for`); the run pipeline then calls :func:`init_group`,
which joins a process group that already exists (torchrun's, or a caller's) or creates one:
NCCL on GPUs, gloo on CPUs.

What RecBole 1.2.1's own DDP path gets wrong and where it is fixed:

- it always asks for NCCL and ``cuda:<local rank>`` (no CPU run), pins ``CUDA_VISIBLE_DEVICES``
  to ``gpu_id`` (``'0'`` by default: ranks 1.. then see no GPU), and creates a second process
  group when one exists (RecBole issues #2149, #1866): :func:`init_group`;
- evaluation through a padding ``DistributedSampler`` evaluates some users twice, and averages
  per-batch metrics across ranks: evaluation here gives each rank a contiguous share of the
  rows with no padding (:func:`shard_loader`) and computes the metrics from the gathered
  per-user results (:func:`gather_struct`), so they equal a single process's;
- every rank stamps its own checkpoint name: the run id is rank 0's (:func:`broadcast`).
"""

from __future__ import annotations

import contextlib
import os
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

import torch
import torch.distributed as dist

_created_group = False

#: the evaluation collector's keys that hold one row per evaluated user or row
PER_ROW_KEYS = ("rec.items", "rec.topk", "rec.meanrank", "rec.score", "data.label")


def launch_settings(env: Optional[Dict[str, str]] = None) -> Dict[str, Any]:
    """RecBole's distributed keys from torchrun's environment, or ``{}`` outside torchrun (or
    with one process)."""
    env = os.environ if env is None else env
    if "LOCAL_RANK" not in env or int(env.get("WORLD_SIZE", "1")) <= 1:
        return {}
    local_rank, rank = int(env["LOCAL_RANK"]), int(env.get("RANK", env["LOCAL_RANK"]))
    return {
        "local_rank": local_rank,
        "offset": rank - local_rank,
        "world_size": int(env["WORLD_SIZE"]),
        "nproc": int(env.get("LOCAL_WORLD_SIZE", env["WORLD_SIZE"])),
        "ip": env.get("MASTER_ADDR", "localhost"),
        "port": int(env.get("MASTER_PORT", "29500")),
    }


def _gpu_ids(cfg: dict) -> List[int]:
    """``gpu_id`` (``'0'``, ``'0,1'``, a tuple) as device indices."""
    gpu_id = cfg.get("gpu_id")
    text = (
        ",".join(map(str, gpu_id)) if isinstance(gpu_id, (tuple, list)) else str(gpu_id if gpu_id is not None else "")
    )
    return [int(g) for g in text.split(",") if g.strip().isdigit()]


def device_for(cfg: dict) -> torch.device:
    """The device ``cfg`` asks for, without touching it: ``cuda:<id>`` for the first of
    ``gpu_id`` in one process (RecBole pins ``CUDA_VISIBLE_DEVICES`` to ``gpu_id`` instead), for a
    data-parallel rank its own GPU (``gpu_id``'s ``local_rank``-th entry in RecBole's spawn form,
    ``cuda:<local rank>`` under torchrun); ``cpu`` when CUDA is not usable, ``use_gpu`` is off or
    ``gpu_id`` is empty."""
    ids = _gpu_ids(cfg)
    if not ids or not bool(cfg.get("use_gpu", True)) or not torch.cuda.is_available():
        return torch.device("cpu")
    count = torch.cuda.device_count()
    if "local_rank" not in cfg:
        if ids[0] >= count:
            raise ValueError(f"gpu_id {ids[0]}: this machine has {count} GPU(s), ids 0 to {count - 1}")
        return torch.device("cuda", ids[0])
    local = int(cfg["local_rank"])
    spawned = not launch_settings() and len(ids) >= int(cfg.get("nproc") or 1)
    return torch.device("cuda", (ids[local] if spawned and local < len(ids) else local) % count)


def init_group(cfg: dict) -> torch.device:
    """Join or create the process group for ``cfg`` (a config dict with ``local_rank``, and the
    rank's ``device`` when the config has named it: else :func:`device_for`) and return this
    rank's device, made the current one.

    A group that already exists is used as it is (its rank and size win over the config's).
    Otherwise one is created over TCP at ``ip:port``: NCCL on a CUDA device, else gloo.
    """
    device = torch.device(cfg["device"]) if cfg.get("device") is not None else device_for(cfg)
    if dist.is_initialized():
        cfg["world_size"] = dist.get_world_size()
        cfg["offset"] = dist.get_rank() - int(cfg["local_rank"])
    else:
        world = int(cfg.get("world_size") or -1)
        cfg["world_size"] = world if world > 0 else int(cfg.get("nproc") or 1)
        global _created_group
        _created_group = True
        dist.init_process_group(
            backend="nccl" if device.type == "cuda" else "gloo",
            init_method=f"tcp://{cfg.get('ip') or 'localhost'}:{cfg.get('port') or 29500}",
            rank=int(cfg["local_rank"]) + int(cfg.get("offset") or 0),
            world_size=cfg["world_size"],
        )
    if device.type == "cuda":
        torch.cuda.set_device(device)
    return device


@contextlib.contextmanager
def as_one_process(config) -> Iterator[None]:
    """Within the block ``config`` says "one process" (``single_spec``), so RecBole builds its
    objects without its own data-parallel parts (its CUDA-only DDP wrapper, its padding
    ``DistributedSampler``); ours are added after."""
    was = config["single_spec"]
    config["single_spec"] = True
    try:
        yield
    finally:
        config["single_spec"] = was


def is_distributed(config) -> bool:
    """Whether ``config`` describes one rank of a data-parallel run."""
    return config["single_spec"] is False and dist.is_initialized()


def rank() -> int:
    """This process's global rank (0 outside a process group)."""
    return dist.get_rank() if dist.is_initialized() else 0


def broadcast(obj: Any, src: int = 0) -> Any:
    """``obj`` of rank ``src`` on every rank (itself outside a process group)."""
    if not dist.is_initialized():
        return obj
    box = [obj if dist.get_rank() == src else None]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def all_gather(obj: Any) -> List[Any]:
    """Every rank's ``obj``, in rank order (``[obj]`` outside a process group)."""
    if not dist.is_initialized():
        return [obj]
    out: List[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def rank0_first(step: Callable[[], Any]) -> Any:
    """``step()`` on rank 0, then on the other ranks once rank 0 is done (a download made once,
    on one rank); when it fails on rank 0, every rank raises rank 0's exception."""
    outcome: Tuple[str, Any] = ("wait", None)
    if rank() == 0:
        try:
            outcome = ("ok", step())
        except Exception as e:  # noqa: BLE001 - re-raised on every rank below
            outcome = ("error", e)
    first = broadcast(outcome)
    if first[0] == "error":
        raise first[1]
    mine = outcome[1] if rank() == 0 else step()
    all_gather(None)  # every rank has its result before any goes on
    return mine


def shard_bounds(n: int, rank_: int, world: int) -> range:
    """The contiguous share of ``n`` rows that rank ``rank_`` of ``world`` evaluates (shares
    differ in size by at most one; none is padded)."""
    return range(n * rank_ // world, n * (rank_ + 1) // world)


def shard_loader(loader, rank_: int, world: int) -> None:
    """Make an evaluation loader built as for one process iterate only this rank's share.

    A RecBole loader is a ``torch.utils.data.DataLoader`` over the list ``range(sample_size)``
    of row (or user) indices, read in order; the list is cut in place to this rank's share, so
    batches, the loader's length and its ``collate_fn`` all follow.
    """
    indices = loader.__dict__["dataset"]  # RecBole maps the attribute `dataset` to its data set
    share = shard_bounds(len(indices), rank_, world)
    indices[:] = [indices[i] for i in share]


def gather_struct(struct) -> None:
    """Replace the per-row entries of an evaluation ``DataStruct`` (RecBole's collector, this
    rank's share) by all ranks' rows in rank order: the full evaluation, as one process has it."""
    local = {k: struct._data_dict[k] for k in PER_ROW_KEYS if k in struct._data_dict}
    parts = all_gather(local)
    for key in sorted({k for part in parts for k in part}):
        pieces = [part[key] for part in parts if key in part and part[key].numel() > 0]
        if pieces:
            struct._data_dict[key] = torch.cat(pieces, dim=0)


def shutdown() -> None:
    """Destroy the process group if :func:`init_group` created it (a caller's stays)."""
    global _created_group
    if _created_group and dist.is_initialized():
        dist.destroy_process_group()
    _created_group = False


def free_port() -> int:
    """A TCP port free on this machine now (for the spawn form's rendezvous)."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("localhost", 0))
        return int(s.getsockname()[1])
