"""One identity per run, clean interrupts, quiet console: a run's log, TensorBoard folder and
checkpoint share one unique name; SIGTERM and SIGINT keep the last finished epoch and say how to
continue; the console shows no config dump unless asked, the parameter count once, and no GPU
on a CPU machine."""

from __future__ import annotations

import glob
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUNNER = os.path.join(ROOT, "run_recbole_ext.py")


def tiny_args(data, *extra):
    return [
        "--model=GRU4Rec",
        "--dataset=ml-slice",
        f"--data_path={data}",
        "--embedding_size=16",
        "--hidden_size=16",
        "--MAX_ITEM_LIST_LENGTH=20",
        "--show_progress=False",
        "--load_col={'inter': ['user_id', 'item_id', 'timestamp']}",
        *extra,
    ]


def test_runs_started_in_the_same_second_keep_their_own_files(run_tiny, ml100k_slice, tmp_path, monkeypatch):
    """Two runs in one second with different learning rates: each has its own log, TensorBoard
    folder and checkpoint, and each tests its own weights."""
    import recbole.utils

    import recbole_ext.logger

    frozen = "Nov-27-2026_16-00-00"
    monkeypatch.setattr(recbole_ext.logger, "get_local_time", lambda: frozen)
    monkeypatch.setattr(recbole.utils, "get_local_time", lambda: frozen)
    a = run_tiny("GRU4Rec", "ml-slice", ml100k_slice, learning_rate=0.001)
    b = run_tiny("GRU4Rec", "ml-slice", ml100k_slice, learning_rate=0.05)
    ids = [os.path.splitext(os.path.basename(r["log_file"]))[0] for r in (a, b)]
    assert ids[0] != ids[1] and all(frozen in i for i in ids)
    for run, run_id in zip((a, b), ids):
        assert os.path.basename(run["saved_model_file"]) == run_id + ".pth"
        assert os.path.isdir(os.path.join("log_tensorboard", run_id))
    weights = [torch.load(r["saved_model_file"], weights_only=True)["state_dict"] for r in (a, b)]
    assert any(not torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
    assert a["test_result"] != b["test_result"]  # each tested its own weights


@pytest.mark.slow
@pytest.mark.parametrize("sig,code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_interrupt_keeps_the_last_epoch_and_says_how_to_resume(ml100k_slice, tmp_path, sig, code):
    args = tiny_args(ml100k_slice, "--epochs=200", "--stopping_step=200", "--eval_step=1")
    # SIGINT back to its default in the child: a test run started in the background (`cmd &` without
    # job control) hands its children SIGINT ignored, and Python then never raises KeyboardInterrupt
    proc = subprocess.Popen(
        [sys.executable, RUNNER, *args],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ, PYTHONWARNINGS="ignore"),
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.time() + 300
    while not glob.glob(str(tmp_path / "saved" / "*.pth")) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    time.sleep(0.5)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == code, err[-3000:]
    assert "Traceback" not in err
    (line,) = [l for l in err.splitlines() if l.startswith("recbole_ext: interrupted by")]
    assert signal.Signals(sig).name in line and "continue with: recbole-ext " in line
    (checkpoint,) = glob.glob(str(tmp_path / "saved" / "*.pth"))
    assert f"--resume={os.path.relpath(checkpoint, tmp_path)}" in line  # as the run named it, from its folder
    ckpt = torch.load(checkpoint, weights_only=True)  # whole, loadable
    assert ckpt["epoch"] >= 0
    (log,) = glob.glob(str(tmp_path / "log" / "GRU4Rec" / "*.log"))
    assert f"Run interrupted by {signal.Signals(sig).name}" in open(log).read()
    resumed = subprocess.run(
        [sys.executable, RUNNER, *tiny_args(ml100k_slice, f"--epochs={ckpt['epoch'] + 2}", f"--resume={checkpoint}")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]


@pytest.mark.slow
def test_console_is_quiet_and_no_save_leaves_no_folder(ml100k_slice, tmp_path):
    proc = subprocess.run(
        [sys.executable, RUNNER, *tiny_args(ml100k_slice, "--epochs=1", "--no-save", "--state=INFO")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
        env=dict(os.environ, PYTHONWARNINGS="ignore"),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    console = proc.stdout + proc.stderr
    assert "Hyper Parameters" not in console  # the config dump stays in the log file
    assert console.count("Trainable parameters") == 1
    assert "GPU" not in console and "device: cpu" in console
    assert not (tmp_path / "saved").exists()
    (log,) = glob.glob(str(tmp_path / "log" / "GRU4Rec" / "*.log"))
    assert "Hyper Parameters" in open(log).read()
    verbose = subprocess.run(
        [sys.executable, RUNNER, *tiny_args(ml100k_slice, "--epochs=1", "--no-save", "--verbose")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert verbose.returncode == 0 and "Hyper Parameters" in verbose.stdout + verbose.stderr


def test_interrupted_comparison_says_to_rerun_the_same_command():
    from recbole_ext.cli import interrupted_line
    from recbole_ext.cli.parse import parse
    from recbole_ext.errors import Interrupted

    stop = Interrupted("SIGTERM", 143)
    stop.checkpoint = "saved/GRU4Rec-x.pth"
    for argv in (
        ["compare", "--model=A,B", "--dataset=d"],
        ["--model=A,B", "--dataset=d"],
        ["--model=A", "--dataset=d", "--seeds=1,2"],
        ["tune", "--model=A", "--dataset=d", "--trials=2"],
    ):
        line = interrupted_line(stop, parse(argv), argv)
        assert line.endswith("run the same command again: finished runs are skipped"), argv
    argv = ["--model=A", "--dataset=d", "--resume=old.pth"]
    single = interrupted_line(stop, parse(argv), argv)
    assert single.endswith("continue with: recbole-ext --model=A --dataset=d --resume=saved/GRU4Rec-x.pth")


@pytest.mark.slow
def test_resume_with_another_models_or_data_sets_checkpoint_is_one_line(ml100k_slice, tmp_path):
    first = subprocess.run(
        [sys.executable, RUNNER, *tiny_args(ml100k_slice, "--epochs=1")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert first.returncode == 0, first.stderr[-3000:]
    (checkpoint,) = glob.glob(str(tmp_path / "saved" / "*.pth"))
    other = tmp_path / "other"
    other.mkdir()
    resume = tiny_args(ml100k_slice, "--epochs=2")
    sas = [a.replace("GRU4Rec", "SASRec") for a in resume if not a.startswith("--embedding_size")]
    sas += [f"--resume={checkpoint}"]
    data = [a.replace("ml-slice", "ml-100k").replace(f"--data_path={ml100k_slice}", "--download=never") for a in resume]
    data += [f"--resume={checkpoint}"]
    for args, needle in (
        (sas, "was written for model GRU4Rec, not SASRec"),
        (data, "was written for dataset ml-slice, not ml-100k"),
    ):
        proc = subprocess.run([sys.executable, RUNNER, *args], cwd=other, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
        errors = [line for line in proc.stderr.splitlines() if line.startswith("recbole_ext: error: ")]
        assert len(errors) == 1 and needle in errors[0], proc.stderr
        assert not os.listdir(other), os.listdir(other)  # nothing written, not even a log


@pytest.mark.slow
def test_unknown_key_of_a_recbole_model_is_an_error_on_the_command_line_and_a_warning_in_a_file(ml100k_slice, tmp_path):
    """``--epoch=3`` would train the default epochs in silence: it is one line, exit 2, with the
    close match; the same typo in a YAML file is warned about once and the run goes on."""
    typo = subprocess.run(
        [sys.executable, RUNNER, *tiny_args(ml100k_slice, "--epochs=1", "--no-save", "--epoch=3")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    errors = [line for line in typo.stderr.splitlines() if line.startswith("recbole_ext: error:")]
    assert typo.returncode == 2 and len(errors) == 1 and "did you mean 'epochs'" in errors[0], typo.stderr[-2000:]
    (tmp_path / "typo.yaml").write_text("epoch: 3\n")
    proc = subprocess.run(
        [sys.executable, RUNNER, *tiny_args(ml100k_slice, "--epochs=1", "--no-save", "--config_files=typo.yaml")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = [line for line in (proc.stdout + proc.stderr).splitlines() if "is not a key" in line]
    assert len(lines) == 1 and "'epoch'" in lines[0] and "did you mean 'epochs'" in lines[0]


def test_the_model_is_the_class_its_config_resolved(ml100k_slice):
    """The name becomes a class once, in the Config (``config.model_class``); the model is built
    from that class, which may also be given directly (a reference implementation)."""
    import recbole_ext.registry
    from recbole_ext.pipeline import Run

    settings = {
        "data_path": ml100k_slice,
        "hidden_size": 8,
        "inner_size": 16,
        "state": "ERROR",
        "load_col": {"inter": ["user_id", "item_id", "timestamp"]},
    }
    reference = type("SASRec", (recbole_ext.registry.get_model("SASRec"),), {})
    run = Run.resolve(reference, "ml-slice", config_dict=settings)
    assert run.config.model_class is reference and run.config["model"] == "SASRec"
    assert type(run.build_model(run.load_dataset(log=False))) is reference  # not the registry's SASRec
