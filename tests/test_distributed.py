"""Data-parallel training (DDP) on CPUs with gloo, as ``torchrun`` and RecBole's ``--nproc=N``
spawn form start it: results equal one process's, one checkpoint, resume continues exactly."""

from __future__ import annotations

import ast
import glob
import os
import subprocess
import sys

import pytest
import torch

from recbole_ext import distributed
from recbole_ext.distributed import launch_settings
from recbole_ext.evaluation.sharding import shard_bounds

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EVAL_ARGS = {
    "split": {"LS": "valid_and_test"},
    "order": "TO",
    "mode": {"valid": "full", "test": "pop100"},
    "group_by": "user",
}
KEYS = {
    "n_layers": 1,
    "n_heads": 2,
    "hidden_size": 16,
    "inner_size": 32,
    "MAX_ITEM_LIST_LENGTH": 20,
    "train_batch_size": 128,
    "eval_batch_size": 16,
    "metric_decimal_place": 8,
    "gpu_id": "",
    "show_progress": False,
    "eval_args": EVAL_ARGS,
}


def test_torchrun_environment_maps_onto_recbole_keys():
    env = {
        "LOCAL_RANK": "1",
        "RANK": "5",
        "WORLD_SIZE": "8",
        "LOCAL_WORLD_SIZE": "4",
        "MASTER_ADDR": "10.0.0.2",
        "MASTER_PORT": "29511",
    }
    assert launch_settings(env) == {
        "local_rank": 1,
        "offset": 4,
        "world_size": 8,
        "nproc": 4,
        "ip": "10.0.0.2",
        "port": 29511,
    }
    assert launch_settings({}) == {} and launch_settings({"LOCAL_RANK": "0", "WORLD_SIZE": "1"}) == {}


def test_a_rank_before_the_group_is_its_launch_keys():
    """Before the group exists a rank is ``local_rank + offset`` of its config (a dict or a
    ``Config``-like mapping with None for a missing key); with no config, 0."""
    assert distributed.rank() == 0
    assert distributed.rank({"local_rank": 1, "offset": 2}) == 3
    assert distributed.rank({"local_rank": 1}) == 1
    assert distributed.rank({"local_rank": 0, "offset": None}) == 0
    assert distributed.rank(launch_settings({"LOCAL_RANK": "1", "RANK": "5", "WORLD_SIZE": "8"})) == 5


@pytest.mark.parametrize("n,world", [(60, 2), (7, 3), (2, 4), (0, 2)])
def test_shards_cover_each_row_once(n, world):
    rows = [i for r in range(world) for i in shard_bounds(n, r, world)]
    assert rows == list(range(n))  # in order, none twice, none padded


def _launch(cwd, args, nproc_args):
    cmd = [sys.executable, *nproc_args, os.path.join(ROOT, "run_recbole_ext.py"), *args]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=ROOT)
    out = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    printed = [line for line in out.stdout.splitlines() if line.startswith(("best valid:", "test result:"))]
    lines = {line.split(":", 1)[0]: ast.literal_eval(line.split(":", 1)[1].strip()) for line in printed}
    assert len(printed) == 2 and set(lines) == {"best valid", "test result"}, out.stdout  # once, by rank 0
    return lines


def _torchrun(port, node=None):
    """torchrun on one machine (2 processes), or as machine ``node`` of 2 with one process each
    (through recbole-ext-torchrun, whose machine 1 waits for machine 0's rendezvous port)."""
    if node is None:
        return ["-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={port}"]
    return [
        "-m",
        "recbole_ext.cli.launch",
        "--nnodes=2",
        f"--node_rank={node}",
        "--nproc_per_node=1",
        "--master_addr=127.0.0.1",
        f"--master_port={port}",
    ]


def _args(data_root, epochs, *extra):
    keys = [f"--{k}={v!r}" if isinstance(v, (dict, str)) else f"--{k}={v}" for k, v in KEYS.items()]
    return [
        "--model=SASRec",
        "--dataset=ml-slice",
        f"--data_path={data_root}",
        f"--epochs={epochs}",
        "--checkpoint_dir=saved",
        *keys,
        *extra,
    ]


def _single_process_metrics(data_root, checkpoint):
    """Valid and test metrics of ``checkpoint``'s weights, evaluated in this one process."""
    from conftest import build

    keys = dict(KEYS, epochs=1)
    b = build("SASRec", "ml-slice", data_root, trainer=True, **keys)
    valid = b.trainer.evaluate(b.valid, load_best_model=True, model_file=checkpoint)
    test = b.trainer.evaluate(b.test, load_best_model=True, model_file=checkpoint)
    return {k: float(v) for k, v in valid.items()}, {k: float(v) for k, v in test.items()}


@pytest.mark.slow
def test_two_process_gloo_training_equals_one_process_evaluation_and_resumes(ml100k_slice, tmp_path):
    """torchrun, 2 ranks on gloo: one log, one checkpoint, metrics (full-ranking valid, shared
    pop100 test) equal a one-process evaluation of the checkpoint; a run stopped after epoch 0
    continued with the spawn form (--nproc=2) ends with the weights of an uninterrupted
    2-epoch run, started as two one-process machines (--nnodes=2: ranks 0 and 1 from
    node_rank/offset; only rank 0 reports)."""
    port = distributed.free_port()
    stopped, whole = tmp_path / "stopped", tmp_path / "whole"
    stopped.mkdir(), whole.mkdir()
    got = _launch(stopped, _args(ml100k_slice, 1), _torchrun(port))
    checkpoints = glob.glob(str(stopped / "saved" / "*.pth"))
    assert len(checkpoints) == 1 and len(glob.glob(str(stopped / "log" / "SASRec" / "*.log"))) == 1
    assert len(os.listdir(stopped / "log_tensorboard")) == 1
    valid, test = _single_process_metrics(ml100k_slice, checkpoints[0])
    assert got["best valid"] == valid and got["test result"] == test
    assert 0 < valid["recall@10"] < 1  # 60 users, each counted once

    _launch(stopped, _args(ml100k_slice, 2, f"--resume={checkpoints[0]}", "--nproc=2"), [])
    port = distributed.free_port()
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=ROOT)
    second = subprocess.Popen(
        [sys.executable, *_torchrun(port, node=1), os.path.join(ROOT, "run_recbole_ext.py"), *_args(ml100k_slice, 2)],
        cwd=whole,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    _launch(whole, _args(ml100k_slice, 2), _torchrun(port, node=0))
    out, err = second.communicate(timeout=120)
    assert second.returncode == 0 and "test result" not in out, err[-2000:]
    resumed = torch.load(checkpoints[0], weights_only=True)
    (uninterrupted,) = [torch.load(p, weights_only=True) for p in glob.glob(str(whole / "saved" / "*.pth"))]
    assert resumed["epoch"] == uninterrupted["epoch"] == 1
    for key in ("state_dict", "last_state_dict"):
        a, b = resumed[key], uninterrupted[key]
        assert (a is None) == (b is None)
        for name in a or {}:
            assert torch.equal(a[name], b[name]), f"{key}: {name}"
    assert len(resumed["rng"]["ranks"]) == 2


def test_an_existing_process_group_is_joined_not_created():
    """A caller's process group (here gloo, one rank) is used as it is: no second group, its
    size and rank win over the config's, and it is left to its owner afterwards."""
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"tcp://localhost:{distributed.free_port()}", rank=0, world_size=1)
    try:
        cfg = {"local_rank": 0, "world_size": 4, "nproc": 4, "gpu_id": "", "port": 1}
        group = distributed.init_group(cfg)
        assert group.device == torch.device("cpu") and not group.created
        assert cfg["world_size"] == 1 and cfg["offset"] == 0
        group.leave()
        assert dist.is_initialized()  # not ours to destroy
        assert distributed.broadcast({"a": 1}) == {"a": 1} and distributed.all_gather(3) == [3]
    finally:
        dist.destroy_process_group()
