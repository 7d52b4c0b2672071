"""Data-parallel runs under faults, on CPUs with gloo: two "machines" are two processes on
127.0.0.1 with torchrun's environment (each its own working folder), so each fault is bounded
in time: a group that does not form, a check that fails on one machine only, a resume under
another number of processes, the resume command a torchrun rank prints, GPUs shared by ranks,
checkpoints broadcast as tensors, per-rank logs and no empty folders on other machines."""

from __future__ import annotations

import glob
import os
import subprocess
import sys
import time

import pytest
import torch

from recbole_ext import distributed

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUNNER = os.path.join(ROOT, "run_recbole_ext.py")
TINY = [
    "--model=SASRec",
    "--dataset=ml-slice",
    "--epochs=1",
    "--MAX_ITEM_LIST_LENGTH=10",
    "--hidden_size=8",
    "--inner_size=16",
    "--n_layers=1",
    "--n_heads=1",
    "--train_batch_size=128",
    "--eval_batch_size=64",
    "--show_progress=False",
    "--gpu_id=",
]

#: a run that goes on until stopped
LONG = [a for a in TINY if not a.startswith("--epochs=")] + ["--epochs=500", "--stopping_step=500"]


def _machine_env(rank: int, port: int, world: int = 2) -> dict:
    """torchrun's environment for the only process of machine ``rank`` of ``world``."""
    return dict(
        os.environ,
        PYTHONPATH=ROOT,
        OMP_NUM_THREADS="1",
        LOCAL_RANK="0",
        RANK=str(rank),
        GROUP_RANK=str(rank),
        WORLD_SIZE=str(world),
        LOCAL_WORLD_SIZE="1",
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        TORCHELASTIC_RUN_ID="test",
    )


def _two_machines(tmp_path, args_for, timeout=240):
    """Machines 0 and 1 (folders ``m0``, ``m1``) each run ``args_for(rank)``; returns
    ``[(returncode, stdout, stderr, seconds)]``."""
    port = distributed.free_port()
    procs = []
    for r in (0, 1):
        cwd = tmp_path / f"m{r}"
        cwd.mkdir(exist_ok=True)
        start = time.time()
        procs.append(
            (
                subprocess.Popen(
                    [sys.executable, RUNNER, *args_for(r)],
                    cwd=cwd,
                    env=_machine_env(r, port),
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                ),
                start,
            )
        )
    out = []
    for p, start in procs:
        try:
            o, e = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            for q, _ in procs:
                q.kill()
            raise
        out.append((p.returncode, o, e, time.time() - start))
    return out


def _error_lines(stderr: str):
    return [line for line in stderr.splitlines() if line.startswith("recbole_ext:")]


# ---------------------------------------------------------------- launch forms and devices
def test_the_resume_command_of_a_torchrun_rank_is_a_torchrun_command(monkeypatch):
    from recbole_ext.cli import interrupted_line
    from recbole_ext.cli.parse import parse
    from recbole_ext.cli.relaunch import relaunch_prefix
    from recbole_ext.errors import Interrupted

    one = {"LOCAL_RANK": "1", "RANK": "1", "WORLD_SIZE": "2", "LOCAL_WORLD_SIZE": "2", "TORCHELASTIC_RUN_ID": "x"}
    assert relaunch_prefix(one, "run_recbole_ext.py") == ["torchrun", "--nproc_per_node=2", "run_recbole_ext.py"]
    two = dict(one, WORLD_SIZE="4", GROUP_RANK="1", MASTER_ADDR="10.0.0.2", MASTER_PORT="29511")
    assert relaunch_prefix(two, "/x/recbole_ext/__main__.py") == [
        "torchrun",
        "--nnodes=2",
        "--node_rank=1",
        "--master_addr=10.0.0.2",
        "--master_port=29511",
        "--nproc_per_node=2",
        "-m",
        "recbole_ext",
    ]
    assert relaunch_prefix({}, "run_recbole_ext.py") == []  # one process, or the spawn form's --nproc

    for key, value in one.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(sys, "argv", ["run_recbole_ext.py"])
    stop = Interrupted("SIGTERM", 143)
    stop.checkpoint = "saved/SASRec-x.pth"
    argv = ["--model=SASRec", "--dataset=d"]
    line = interrupted_line(stop, parse(argv), argv)
    assert line.endswith(
        "continue with: torchrun --nproc_per_node=2 run_recbole_ext.py --model=SASRec --dataset=d "
        "--resume=saved/SASRec-x.pth"
    )


@pytest.mark.parametrize(
    "env,cfg",
    [
        ({"LOCAL_RANK": "1", "WORLD_SIZE": "2", "LOCAL_WORLD_SIZE": "2"}, {"local_rank": 1, "nproc": 2}),
        ({}, {"local_rank": 1, "nproc": 2, "gpu_id": "0"}),  # the spawn form, default gpu_id
    ],
)
def test_more_ranks_on_a_machine_than_its_gpus_is_refused(monkeypatch, env, cfg):
    from recbole_ext.errors import ConfigError

    for key in ("LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(ConfigError, match="2 data-parallel processes on this machine and 1 visible GPU"):
        distributed.device_for({"gpu_id": "0", "use_gpu": True, **cfg})
    assert distributed.device_for({"gpu_id": "0", "use_gpu": True, "local_rank": 0, "nproc": 1}).index == 0


# ---------------------------------------------------------------- collectives
BROADCAST = """\
import os, pickle, sys, io
sys.path.insert(0, {root!r})
import torch, torch.distributed as dist
from recbole_ext.trainer.checkpoint import Checkpoint
from recbole_ext.trainer.resume import CheckpointMixin

rank = int(sys.argv[1])
dist.init_process_group("gloo", init_method="tcp://127.0.0.1:{port}", rank=rank, world_size=2)
pickled = []
original = dist.broadcast_object_list
def spy(objects, src=0, **kw):
    for obj in objects:
        if obj is not None:
            class P(pickle.Pickler):
                def persistent_id(self, o):
                    if torch.is_tensor(o):
                        pickled.append(tuple(o.shape))
                    return None
            P(io.BytesIO()).dump(obj)
    return original(objects, src=src, **kw)
dist.broadcast_object_list = spy

class Model(torch.nn.Linear):
    def other_parameter(self): return None
    def load_other_parameter(self, para): pass

class Trainer(CheckpointMixin):
    def __init__(self):
        self.distributed_model, self.device = object(), torch.device("cpu")
        torch.manual_seed(rank)  # the ranks' weights differ until the checkpoint is loaded
        self.model = Model(4, 3)
    def _is_main(self): return dist.get_rank() == 0

path = {path!r}
if rank == 0:
    torch.manual_seed(7)
    src = Model(4, 3)
    opt = torch.optim.Adam(src.parameters())
    src(torch.ones(2, 4)).sum().backward(); opt.step()
    Checkpoint(config={{"model": "M"}}, state_dict=src.state_dict(), optimizer=opt.state_dict(),
               rng={{"flags": torch.tensor([True, False])}}).save(path)
trainer = Trainer()
ck = trainer._load_model_from(path)
weights = [p.detach().clone() for p in trainer.model.parameters()]
moments = ck.optimizer["state"][0]["exp_avg"]
gathered = [None, None]
dist.all_gather_object(gathered, ([w.tolist() for w in weights], moments.tolist(), ck.rng["flags"].tolist()))
assert gathered[0] == gathered[1], gathered
assert ck.rng["flags"].dtype == torch.bool
print("pickled tensors:", pickled)
dist.destroy_process_group()
"""


def test_a_checkpoint_reaches_the_other_ranks_as_tensors_not_as_a_pickle(tmp_path):
    """Loading the best weights or resuming on a data-parallel rank: rank 0 reads the file, the
    others get the same weights, optimizer state and RNG flags, and no tensor is pickled."""
    code = BROADCAST.format(root=ROOT, port=distributed.free_port(), path=str(tmp_path / "ck.pth"))
    env = dict(os.environ, OMP_NUM_THREADS="1")
    procs = [
        subprocess.Popen([sys.executable, "-c", code, str(r)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for r in (0, 1)
    ]
    outs = [p.communicate(timeout=120) for p in procs]
    for p, (o, e) in zip(procs, outs):
        assert p.returncode == 0, e.decode()[-2000:]
        assert b"pickled tensors: []" in o, o


# ---------------------------------------------------------------- faults
def test_a_group_that_does_not_form_ends_in_one_line_within_dist_timeout_s(ml100k_slice, tmp_path):
    """Machine 1 never starts (its config file is missing there, say): machine 0 stops with one
    line after dist_timeout_s, not after gloo's 30 minutes."""
    cwd = tmp_path / "m0"
    cwd.mkdir()
    start = time.time()
    out = subprocess.run(
        [sys.executable, RUNNER, *TINY, f"--data_path={ml100k_slice}", "--dist_timeout_s=3"],
        cwd=cwd,
        env=_machine_env(0, distributed.free_port()),
        capture_output=True,
        text=True,
        timeout=60,
    )
    took = time.time() - start
    assert out.returncode == 1, out.stderr[-2000:]
    (line,) = _error_lines(out.stderr)
    assert "rank 0 of 2: the process group at 127.0.0.1:" in line and "dist_timeout_s=3 s" in line
    assert "Traceback" not in out.stderr and took < 3 + 30


@pytest.mark.slow
@pytest.mark.parametrize("node", [0, 1])
def test_a_machine_that_never_starts_is_one_line_on_the_other_within_dist_timeout_s(ml100k_slice, tmp_path, node):
    """recbole-ext-torchrun as machine ``node`` of two whose other machine never starts: its
    rendezvous waits dist_timeout_s (from the run's own settings), not torchrun's 600 s, and
    ends in one line (machine 1: no client-socket log), exit 1, with no rank started."""
    start = time.time()
    out = subprocess.run(
        [sys.executable, "-m", "recbole_ext.cli.launch", "--nnodes=2", f"--node_rank={node}", "--nproc_per_node=1"]
        + ["--master_addr=127.0.0.1", f"--master_port={distributed.free_port()}", RUNNER, *TINY]
        + [f"--data_path={ml100k_slice}", "--dist_timeout_s=3"],
        cwd=tmp_path,
        env=dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS="1"),
        capture_output=True,
        text=True,
        timeout=90,
    )
    took = time.time() - start
    assert out.returncode == 1, out.stderr[-2000:]
    assert out.stderr.strip().splitlines() == _error_lines(out.stderr), out.stderr[-2000:]
    (line,) = _error_lines(out.stderr)
    assert "not every machine's launcher joined at 127.0.0.1:" in line and f"(node rank {node} of 2) within 3 s" in line
    assert took < 3 + 30 and not (tmp_path / "log").exists()


def test_a_mistake_in_the_run_settings_stops_the_launcher_before_any_agent_starts(capsys):
    """recbole-ext-torchrun reads the run's settings first: a bad value is one line, exit 2,
    without a rendezvous (no other machine needed)."""
    from recbole_ext.cli import launch

    port = distributed.free_port()
    code = launch.main(["--nnodes=2", "--node_rank=0", f"--master_port={port}", RUNNER, *TINY, "--dist_timeout_s=soon"])
    (line,) = capsys.readouterr().err.splitlines()
    assert code == 2 and line.startswith("recbole_ext: error: invalid configuration: dist_timeout_s='soon'")


def test_the_launcher_sets_the_rendezvous_timeout_unless_given():
    from recbole_ext.cli.launch import with_rendezvous_timeout

    assert with_rendezvous_timeout("", 300) == "timeout=300,join_timeout=300"
    assert with_rendezvous_timeout("read_timeout=60", 2.4) == "read_timeout=60,timeout=2,join_timeout=2"
    assert with_rendezvous_timeout("join_timeout=900", 300) == "join_timeout=900"


@pytest.mark.slow
def test_a_check_that_fails_on_one_machine_stops_every_rank_with_its_line(ml100k_slice, tmp_path):
    """The data set on machine 0 only: both ranks stop at once with machine 1's line. A checkpoint
    is read by rank 0 and sent to the others, so machine 0 alone needs it; a one-process
    checkpoint resumed by two processes is refused on both in rank 0's line."""
    import shutil

    shutil.copytree(ml100k_slice, tmp_path / "m0" / "data")
    data_on_m0 = [*TINY, "--data_path=data", "--dist_timeout_s=60"]
    for rc, _, err, took in _two_machines(tmp_path, lambda r: data_on_m0):
        (line,) = _error_lines(err)
        assert rc == 2 and took < 60 and line.startswith("recbole_ext: error: rank 1: "), err[-2000:]
        assert "ml-slice" in line and "Traceback" not in err

    single = tmp_path / "single"
    single.mkdir()
    trained = subprocess.run(
        [sys.executable, RUNNER, *TINY, f"--data_path={ml100k_slice}", "--checkpoint_dir=saved"],
        cwd=single,
        env=dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS="1"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert trained.returncode == 0, trained.stderr[-2000:]
    (checkpoint,) = glob.glob(str(single / "saved" / "*.pth"))
    from recbole_ext.trainer.checkpoint import load_checkpoint

    as_if_two = load_checkpoint(checkpoint)
    as_if_two.world_size = 2  # as if two processes had trained it
    (tmp_path / "m0" / "saved").mkdir()
    as_if_two.save(str(tmp_path / "m0" / "saved" / "two.pth"))
    shutil.copy(checkpoint, tmp_path / "m0" / "saved" / "one.pth")

    def resume(name, epochs):
        keys = [a for a in TINY if not a.startswith("--epochs=")] + [f"--epochs={epochs}", "--dist_timeout_s=60"]
        return lambda r: [*keys, f"--data_path={ml100k_slice}", f"--resume=saved/{name}"]

    for rc, _out, err, _ in _two_machines(tmp_path, resume("two.pth", 2)):  # not on machine 1: fine
        assert rc == 0 and not _error_lines(err), err[-2000:]
    assert torch.load(tmp_path / "m0" / "saved" / "two.pth", weights_only=True)["epoch"] == 1
    for rc, _, err, _ in _two_machines(tmp_path, resume("one.pth", 2)):
        (line,) = _error_lines(err)
        assert rc == 2 and line.startswith("recbole_ext: error: rank 0: saved/one.pth was trained by 1 process(es)")
        assert "this run has 2" in line and "resume with one process (no torchrun, no --nproc)" in line


@pytest.mark.slow
def test_other_machines_keep_only_the_rank_log_they_are_asked_for(ml100k_slice, tmp_path):
    """Two machines train one run: machine 0 has the log, checkpoint and TensorBoard folder;
    machine 1 has no empty saved/ or log_tensorboard/, and with rank_log its own log file."""
    runs = _two_machines(tmp_path, lambda r: [*TINY, f"--data_path={ml100k_slice}", "--rank_log=True"])
    for rc, _, err, _ in runs:
        assert rc == 0, err[-2000:]
    m0, m1 = tmp_path / "m0", tmp_path / "m1"
    (log,) = glob.glob(str(m0 / "log" / "SASRec" / "*.log"))
    assert len(glob.glob(str(m0 / "saved" / "*.pth"))) == 1 and len(os.listdir(m0 / "log_tensorboard")) == 1
    assert sorted(os.listdir(m1)) == ["log"]
    run_id = os.path.basename(log)[: -len(".log")]
    (rank_log,) = glob.glob(str(m1 / "log" / "SASRec" / "*" / "*.log"))
    assert rank_log == str(m1 / "log" / "SASRec" / run_id / "rank1.log")
    assert "epoch 0 training" in open(rank_log).read()


def _wait_for(predicate, seconds: float) -> bool:
    deadline = time.time() + seconds
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return False


def _gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"  # a zombie is gone too
    except OSError:
        return True


@pytest.mark.slow
def test_a_stopped_rank_ends_the_others_within_dist_timeout_s(ml100k_slice, tmp_path):
    """SIGSTOP of machine 1 mid-training: machine 0 stops within dist_timeout_s (plus a few
    seconds) with one line, its last finished epoch kept."""
    port = distributed.free_port()
    args = [*LONG, f"--data_path={ml100k_slice}", "--dist_timeout_s=5", "--checkpoint_dir=saved"]
    procs = []
    for r in (0, 1):
        (tmp_path / f"m{r}").mkdir()
        procs.append(
            subprocess.Popen(
                [sys.executable, RUNNER, *args],
                cwd=tmp_path / f"m{r}",
                env=_machine_env(r, port),
                stdout=subprocess.DEVNULL,
                stderr=open(tmp_path / f"err{r}", "w"),
            )
        )
    zero, one = procs
    try:
        assert _wait_for(lambda: glob.glob(str(tmp_path / "m0" / "saved" / "*.pth")), 180), "no epoch finished"
        os.kill(one.pid, 19)  # SIGSTOP
        stopped = time.time()
        zero.wait(timeout=60)
        took = time.time() - stopped
    finally:
        for p in procs:
            p.kill()
            p.wait()
    err = (tmp_path / "err0").read_text()
    assert zero.returncode == 1 and took < 5 + 15, (took, err[-2000:])
    (line,) = _error_lines(err)
    assert line.startswith("recbole_ext: error: rank 0: another rank stopped answering")
    assert "Traceback" not in err


def _children(pid: int):
    """The processes ``pid`` started (a torchrun agent's ranks)."""
    tasks = os.listdir(f"/proc/{pid}/task")
    return [int(c) for t in tasks for c in open(f"/proc/{pid}/task/{t}/children").read().split()]


def _torchrun_after_an_epoch(tmp_path, args, *options):
    """torchrun with 2 ranks on ``args`` (stderr to ``tmp_path/err``), once its first epoch has
    finished; returns the launcher's process."""
    launcher = subprocess.Popen(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", *options]
        + [f"--master_port={distributed.free_port()}", RUNNER, *args, "--checkpoint_dir=saved"],
        cwd=tmp_path,
        env=dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS="1"),
        stdout=subprocess.DEVNULL,
        stderr=open(tmp_path / "err", "w"),
    )
    if not _wait_for(lambda: glob.glob(str(tmp_path / "saved" / "*.pth")), 180):
        launcher.kill()
        raise AssertionError("no epoch finished")
    return launcher


@pytest.mark.slow
def test_the_ranks_of_a_killed_torchrun_stop_instead_of_training_on(ml100k_slice, tmp_path):
    """SIGKILL of the torchrun launcher: its ranks get SIGTERM and end (no orphans), each with
    the interrupted line and its torchrun resume command."""
    launcher = _torchrun_after_an_epoch(tmp_path, [*LONG, f"--data_path={ml100k_slice}"])
    ranks = _children(launcher.pid)
    try:
        assert len(ranks) == 2
        launcher.kill()
        launcher.wait()
        assert _wait_for(lambda: all(_gone(pid) for pid in ranks), 30), "the ranks train on as orphans"
        lines = _error_lines((tmp_path / "err").read_text())
        assert len(lines) == 2 and all("interrupted by SIGTERM" in line for line in lines), lines
        assert all("continue with: torchrun --nproc_per_node=2 " in line and "--resume=" in line for line in lines)
    finally:
        launcher.kill()
        for pid in ranks:
            try:
                os.kill(pid, 9)
            except OSError:
                pass


@pytest.mark.slow
def test_a_group_torchrun_restarts_resumes_its_own_run(ml100k_slice, tmp_path):
    """torchrun --max_restarts=1, a rank killed after an epoch finished: the restarted group
    continues the same checkpoint from its last finished epoch (not epoch 0 under a new run id)
    and ends the run; the launcher exits 0."""
    epochs = 8
    args = [a for a in LONG if not a.startswith("--epochs=")] + [f"--epochs={epochs}", f"--data_path={ml100k_slice}"]
    launcher = _torchrun_after_an_epoch(tmp_path, args, "--max_restarts=1")
    try:
        os.kill(max(_children(launcher.pid)), 9)  # one rank dies
        assert launcher.wait(timeout=300) == 0, (tmp_path / "err").read_text()[-3000:]
    finally:
        launcher.kill()
    (checkpoint,) = glob.glob(str(tmp_path / "saved" / "*.pth"))  # the one run's
    assert torch.load(checkpoint, weights_only=True)["epoch"] == epochs - 1
    logs = sorted(glob.glob(str(tmp_path / "log" / "SASRec" / "*.log")), key=os.path.getmtime)
    assert len(logs) == 2
    restarted = open(logs[-1]).read()
    assert f"torchrun restarted the group: continuing {checkpoint}" in restarted
    assert "Resume training from epoch" in restarted and "Resume training from epoch 0" not in restarted
    assert not glob.glob(str(tmp_path / "saved" / ".torchrun-*"))  # the note went with the run's end


def _launch_and_signal(tmp_path, ml100k_slice, launcher_cmd, sig):
    """Start ``launcher_cmd`` (2 ranks, a long run) in its own session, wait for a finished
    epoch, send ``sig`` to the whole session (as Ctrl-C in a terminal does); returns
    ``(exit code, stderr)``."""
    args = [*LONG, f"--data_path={ml100k_slice}", "--checkpoint_dir=saved"]
    proc = subprocess.Popen(
        [*launcher_cmd, "--nproc_per_node=2", f"--master_port={distributed.free_port()}", RUNNER, *args],
        cwd=tmp_path,
        env=dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS="1"),
        stdout=subprocess.DEVNULL,
        stderr=open(tmp_path / "err", "w"),
        start_new_session=True,
    )
    try:
        assert _wait_for(lambda: glob.glob(str(tmp_path / "saved" / "*.pth")), 180), "no epoch finished"
        os.killpg(proc.pid, sig)
        code = proc.wait(timeout=90)
    finally:
        try:
            os.killpg(proc.pid, 9)
        except OSError:
            pass
    return code, (tmp_path / "err").read_text()


@pytest.mark.slow
def test_ctrl_c_to_the_launcher_exits_130_with_the_ranks_lines_only(ml100k_slice, tmp_path):
    """recbole-ext-torchrun: SIGINT to the launcher's session ends it with 130 (torchrun: 1 and
    its failure block), no traceback; each rank's line names the launcher to continue with."""
    code, err = _launch_and_signal(tmp_path, ml100k_slice, [sys.executable, "-m", "recbole_ext.cli.launch"], 2)
    assert code == 130, err[-3000:]
    assert "Traceback" not in err and "ChildFailedError" not in err, err[-3000:]
    lines = _error_lines(err)
    assert lines and all("interrupted by SIGINT" in line or "stopped answering" in line for line in lines), lines
    assert any("continue with: recbole-ext-torchrun --nproc_per_node=2 " in line for line in lines), lines


def test_the_epoch_benchmark_leaves_no_temporary_folder(tmp_path, monkeypatch):
    """``benchmarks/ddp_epoch.py``'s runs work in a temporary folder that goes with the run
    (the training itself replaced by one that writes its log)."""
    import tempfile

    sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
    import ddp_epoch

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))

    def fake_run(cmd, cwd, **kwargs):
        os.makedirs(os.path.join(cwd, "log", "SASRec"))
        with open(os.path.join(cwd, "log", "SASRec", "x.log"), "w") as f:
            f.write("epoch 0 training [time: 3.0s\nepoch 1 training [time: 2.0s\n")
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(ddp_epoch.subprocess, "run", fake_run)
    args = type("A", (), {"model": "SASRec", "dataset": "d", "epochs": 2, "batch": 8, "extra": []})()
    assert ddp_epoch.run_once(args, 1, 1, False) == 2.0
    assert os.listdir(tmp_path) == []
