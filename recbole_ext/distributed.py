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
  per-batch metrics across ranks: :mod:`recbole_ext.evaluation.sharding` gives each rank a
  contiguous share of the rows and gathers the per-user results, so metrics equal one process's;
- every rank stamps its own checkpoint name: the run id is rank 0's (:func:`broadcast`).
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import datetime
import os
import signal
import socket
import sys
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Tuple

import torch
import torch.distributed as dist

from recbole_ext.errors import ConfigError, RunFailed, UserError


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
        device = ids[0]
    else:
        local, per_machine = int(cfg["local_rank"]), int(cfg.get("nproc") or 1)
        if per_machine > count:
            raise ConfigError(
                f"{per_machine} data-parallel processes on this machine and {count} visible GPU(s): two would share "
                f"one; start at most {count} per machine (torchrun --nproc_per_node, --nproc), or set --use_gpu=False"
            )
        spawned = not launch_settings() and len(ids) >= per_machine
        device = ids[local] if spawned and local < len(ids) else local
    if device >= count:
        raise ConfigError(f"gpu_id {device}: this machine has {count} GPU(s), ids 0 to {count - 1}")
    return torch.device("cuda", device)


@dataclasses.dataclass
class Group:
    """This rank's process group as :func:`init_group` left it: the rank's device, and whether
    :func:`init_group` created the group (a caller's or torchrun's group is only joined)."""

    device: torch.device
    created: bool

    def leave(self) -> None:
        """Destroy the group if :func:`init_group` created it (a caller's stays); once."""
        if self.created and dist.is_initialized():
            dist.destroy_process_group()
        self.created = False


def init_group(cfg: dict) -> Group:
    """Join or create the process group for ``cfg`` (a config dict with ``local_rank``, and the
    rank's ``device`` when the config has named it: else :func:`device_for`), making the rank's
    device the current one.

    A group that already exists is used as it is (its rank and size win over the config's).
    Otherwise one is created over TCP at ``ip:port``: NCCL on a CUDA device, else gloo.

    Returns:
        Group: the device, and whether the group was created here (:meth:`Group.leave`).
    """
    device = torch.device(cfg["device"]) if cfg.get("device") is not None else device_for(cfg)
    follow_launcher()
    created = not dist.is_initialized()
    if created:
        world = int(cfg.get("world_size") or -1)
        cfg["world_size"] = world if world > 0 else int(cfg.get("nproc") or 1)
        _create_group(cfg, device)
    else:
        cfg["world_size"] = dist.get_world_size()
        cfg["offset"] = dist.get_rank() - int(cfg["local_rank"])
    if device.type == "cuda":
        torch.cuda.set_device(device)
    return Group(device, created)


def follow_launcher(env: Optional[Dict[str, str]] = None) -> bool:
    """Under torchrun (Linux), have this rank receive SIGTERM when its torchrun agent dies (a
    killed launcher would otherwise leave its ranks training on as orphans): the rank then stops
    as on any SIGTERM, its last finished epoch kept. Returns whether it was set."""
    env = os.environ if env is None else env
    if "TORCHELASTIC_RUN_ID" not in env or not sys.platform.startswith("linux"):
        return False
    parent = os.getppid()
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(1, int(signal.SIGTERM), 0, 0, 0) != 0:  # PR_SET_PDEATHSIG
            return False
    except (OSError, AttributeError):
        return False
    if os.getppid() != parent:  # the agent died before the call: this rank was handed on
        os.kill(os.getpid(), signal.SIGTERM)
    return True


def _create_group(cfg: dict, device: torch.device) -> None:
    """The process group over TCP at ``ip:port``, waiting at most ``dist_timeout_s`` for every
    rank (and, later, for every collective); a group that does not form is one line."""
    timeout = float(cfg.get("dist_timeout_s") or 300)
    me, world = rank(cfg), int(cfg["world_size"])
    host, port = cfg.get("ip") or "localhost", int(cfg.get("port") or 29500)
    address, wait = f"{host}:{port}", datetime.timedelta(seconds=timeout)
    try:
        # torchrun's agent keeps its store across the restarts of a group (--max_restarts, static
        # rendezvous): each start's keys go under its own prefix, so a restarted group never
        # reads the addresses of the ranks that died
        agent = os.environ.get("TORCHELASTIC_USE_AGENT_STORE") == "True"
        store = dist.TCPStore(host, port, world_size=world, is_master=not agent and me == 0, timeout=wait)
        attempt = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")
        dist.init_process_group(
            backend="nccl" if device.type == "cuda" else "gloo",
            store=dist.PrefixStore(f"recbole_ext/start_{attempt}", store),
            rank=me,
            world_size=world,
            timeout=wait,
        )
    except (RuntimeError, dist.DistError) as e:
        raise RunFailed(
            f"rank {me} of {world}: the process group at {address} did not form within dist_timeout_s={timeout:g} s "
            f"({str(e).strip().splitlines()[0][:160]}); a rank that did not start or stopped first says why in its "
            "own output"
        ) from None


def agree(step: Callable[[], Any], what: str = "") -> Any:
    """``step()`` on every rank; when it raises a user error on any rank, every rank raises the
    lowest such rank's error, naming that rank, so all ranks stop with the same one line (a
    check that failed on one machine only would otherwise leave the others waiting)."""
    if not dist.is_initialized():
        return step()
    result, error = None, None
    try:
        result = step()
    except UserError as e:
        error = e
    failures = [(r, err) for r, err in enumerate(all_gather(error)) if err is not None]
    if failures:
        where, err = failures[0]
        raise type(err)(f"rank {where}{' (' + what + ')' if what else ''}: {err}") from None
    return result


def stalled(error: BaseException) -> Optional[str]:
    """Why a collective failed, when ``error`` is a peer that stopped answering or went away
    (gloo's and NCCL's timeouts, a closed connection), else None."""
    text = str(error)
    signs = ("Timed out", "timed out", "Connection closed by peer", "Connection reset", "NCCL communicator was aborted")
    if not dist.is_initialized() or not any(s in text for s in signs):
        return None
    return text.strip().splitlines()[0][:160]


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


def rank(cfg: Optional[Mapping[str, Any]] = None) -> int:
    """This process's global rank: the process group's once there is one; before, the one the
    launch keys of ``cfg`` give (``local_rank + offset``: :func:`launch_settings`); else 0.

    Args:
        cfg: a config (a dict or a ``Config``) with the launch keys, or None.

    Returns:
        int: the rank, 0 in one process.
    """
    if dist.is_initialized():
        return dist.get_rank()
    if cfg is None:
        return 0
    local = cfg["local_rank"] if "local_rank" in cfg else None
    offset = cfg["offset"] if "offset" in cfg else None
    return int(local or 0) + int(offset or 0)


def broadcast(obj: Any, src: int = 0) -> Any:
    """``obj`` of rank ``src`` on every rank (itself outside a process group)."""
    if not dist.is_initialized():
        return obj
    box = [obj if dist.get_rank() == src else None]
    dist.broadcast_object_list(box, src=src)
    return box[0]


@dataclasses.dataclass(frozen=True)
class _TensorSlot:
    """Where a tensor sits in a structure sent by :func:`broadcast_tensors`."""

    index: int
    shape: Tuple[int, ...]
    dtype: torch.dtype


def _map_tensors(obj: Any, fn: Callable[[Any], Any], is_leaf: Callable[[Any], bool]) -> Any:
    """``obj`` with every leaf (``is_leaf``) inside dicts, lists, tuples and dataclasses replaced
    by ``fn(leaf)``, in a fixed order."""
    if is_leaf(obj):
        return fn(obj)
    if isinstance(obj, dict):
        return {k: _map_tensors(v, fn, is_leaf) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_map_tensors(v, fn, is_leaf) for v in obj)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        fields = {f.name: _map_tensors(getattr(obj, f.name), fn, is_leaf) for f in dataclasses.fields(obj)}
        return dataclasses.replace(obj, **fields)
    return obj


def broadcast_tensors(obj: Any, src: int = 0) -> Any:
    """``obj`` of rank ``src`` (dicts, lists, tuples and dataclasses of tensors and plain values:
    a checkpoint) on every rank. Only the structure is pickled; each tensor goes as a tensor
    (``dist.broadcast``: on the GPU under NCCL), so a checkpoint with its optimizer state is
    never one pickle in memory on every rank. Tensors arrive on the group's device."""
    if not dist.is_initialized():
        return obj
    mine = dist.get_rank() == src
    tensors: List[torch.Tensor] = []

    def strip(t: torch.Tensor) -> _TensorSlot:
        tensors.append(t)
        return _TensorSlot(len(tensors) - 1, tuple(t.shape), t.dtype)

    skeleton = broadcast(_map_tensors(obj, strip, torch.is_tensor) if mine else None, src)
    slots: List[_TensorSlot] = []
    _map_tensors(skeleton, slots.append, lambda x: isinstance(x, _TensorSlot))
    device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")
    received: List[torch.Tensor] = []
    for slot in sorted(slots, key=lambda s: s.index):
        wire = torch.uint8 if slot.dtype == torch.bool else slot.dtype  # gloo has no bool
        if mine:
            buffer = tensors[slot.index].detach().to(device=device, dtype=wire).contiguous()
        else:
            buffer = torch.empty(slot.shape, dtype=wire, device=device)
        dist.broadcast(buffer, src)
        received.append(buffer.to(slot.dtype) if wire != slot.dtype else buffer)
    if mine:
        return obj
    return _map_tensors(skeleton, lambda slot: received[slot.index], lambda x: isinstance(x, _TensorSlot))


def all_gather(obj: Any) -> List[Any]:
    """Every rank's ``obj``, in rank order (``[obj]`` outside a process group)."""
    if not dist.is_initialized():
        return [obj]
    out: List[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def rank0_first(step: Callable[[], Any]) -> Any:
    """``step()`` on rank 0, then on the other ranks once rank 0 is done (a download made once,
    on one rank); when it fails on rank 0, every rank raises rank 0's exception, and when it
    then fails on another rank (its machine lacks the data), every rank raises that one
    (:func:`agree`)."""
    outcome: Tuple[str, Any] = ("wait", None)
    if rank() == 0:
        try:
            outcome = ("ok", step())
        except Exception as e:  # noqa: BLE001 - re-raised on every rank below
            outcome = ("error", e)
    first = broadcast(outcome)
    if first[0] == "error":
        raise first[1]
    # every rank has its result before any goes on; one failing on another rank stops them all
    return agree(step if rank() != 0 else (lambda: outcome[1]))


def free_port() -> int:
    """A TCP port free on this machine now (for the spawn form's rendezvous)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("localhost", 0))
        return int(s.getsockname()[1])
