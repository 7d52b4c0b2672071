"""Checkpoints: plain contents, safe loading, legacy files, exact resume, reproducibility, kills."""

from __future__ import annotations

import glob
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import torch

from recbole_ext.cli import main
from recbole_ext.errors import UserError
from recbole_ext.quick_start import run_recbole_ext
from recbole_ext.trainer.checkpoint import FORMAT, UntrustedCheckpointError, load_checkpoint, safe_load
from recbole_ext.trainer.rng import rng_state, set_rng_state
from recbole_ext.trainer.trainer import CompatTrainerMixin

# SASRec with BPR and uniform negatives: dropout (torch RNG), shuffling (the loader's generator)
# and negative sampling (numpy RNG) all shape training, so resuming must restore all three.
CFG = {
    "state": "WARNING",
    "show_progress": False,
    "load_col": {"inter": ["user_id", "item_id", "timestamp"]},
    "MAX_ITEM_LIST_LENGTH": 20,
    "hidden_size": 16,
    "inner_size": 32,
    "n_layers": 1,
    "n_heads": 1,
    "train_batch_size": 256,
    "eval_batch_size": 256,
    "loss_type": "BPR",
    "train_neg_sample_args": {"distribution": "uniform", "sample_num": 1},
    "stopping_step": 10,
    "seed": 11,
}


def train(data_root, folder, epochs, resume=None, **extra) -> dict:
    cfg = dict(CFG, data_path=data_root, epochs=epochs, checkpoint_dir=os.path.join(folder, "saved"), **extra)
    return run_recbole_ext("SASRec", "ml-slice", None, cfg, log_dir=os.path.join(folder, "log"), resume_file=resume)


@pytest.fixture(scope="module")
def runs(ml100k_slice, tmp_path_factory):
    """Three epochs straight (twice), and two epochs then a resume to three."""
    root = tmp_path_factory.mktemp("ckpt")
    out = {
        "straight": train(ml100k_slice, str(root / "a"), 3),
        "again": train(ml100k_slice, str(root / "b"), 3),
        "first2": train(ml100k_slice, str(root / "c"), 2),
    }
    two = out["first2"]["saved_model_file"]
    out["two_epoch_copy"] = str(root / "two.pth")
    with open(two, "rb") as src, open(out["two_epoch_copy"], "wb") as dst:
        dst.write(src.read())
    out["resumed"] = train(ml100k_slice, str(root / "c"), 3, resume=two)
    out["root"] = root
    return out


def final_weights(path):
    ckpt = safe_load(path)
    return ckpt["last_state_dict"] or ckpt["state_dict"], ckpt


def test_checkpoint_holds_only_plain_data(runs):
    path = runs["straight"]["saved_model_file"]
    ckpt = torch.load(path, weights_only=True)  # refuses anything but tensors and plain data
    assert ckpt["format"] == FORMAT
    assert ckpt["epoch"] == 2 and 0 <= ckpt["best_epoch"] <= 2
    assert ckpt["config"]["model"] == "SASRec" and ckpt["config"]["MODEL_TYPE"] == "SEQUENTIAL"
    assert ckpt["config"]["device"] == "cpu"
    assert {"python", "numpy", "torch", "cuda", "train_loader"} <= set(ckpt["rng"])
    assert ckpt["rng"]["numpy"]["keys"].shape == (624,)
    schema = ckpt["dataset"]  # the data set's schema, without its interactions
    items, users = schema["field2id_token"]["item_id"], schema["field2id_token"]["user_id"]
    assert schema["iid_field"] == "item_id" and schema["field2type"]["item_id"] == "TOKEN"
    assert items[0] == "[PAD]" and all(type(t) is str for t in items) and len(users) == 61
    assert all(v.shape[0] == 0 for v in schema["inter_fields"].values())
    assert ckpt["optimizer"]["state"], "optimizer moments are saved"
    assert isinstance(ckpt["best_valid_result"], dict) and ckpt["best_valid_result"]
    assert all(type(v) is float for v in ckpt["best_valid_result"].values())
    assert sorted(ckpt["train_loss"]) == [0, 1, 2]
    assert not glob.glob(os.path.join(os.path.dirname(path), ".tmp-*")), "no temporary file left"


def test_rng_state_round_trip():
    import random

    import numpy as np

    state = rng_state()
    a = (random.random(), np.random.rand(), torch.rand(1).item())
    set_rng_state(state)
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == a


def test_same_seed_gives_identical_results(runs):
    assert dict(runs["straight"]["test_result"]) == dict(runs["again"]["test_result"])
    wa, _ = final_weights(runs["straight"]["saved_model_file"])
    wb, _ = final_weights(runs["again"]["saved_model_file"])
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_resume_matches_uninterrupted_run(runs):
    assert runs["resumed"]["saved_model_file"] == runs["first2"]["saved_model_file"], "resume writes in place"
    assert dict(runs["resumed"]["test_result"]) == dict(runs["straight"]["test_result"])
    assert runs["resumed"]["best_valid_result"] == runs["straight"]["best_valid_result"]
    wa, ca = final_weights(runs["straight"]["saved_model_file"])
    wc, cc = final_weights(runs["resumed"]["saved_model_file"])
    assert cc["epoch"] == 2 and cc["best_epoch"] == ca["best_epoch"]
    assert all(torch.equal(wa[k], wc[k]) for k in wa)
    assert all(torch.equal(ca["state_dict"][k], cc["state_dict"][k]) for k in wa)


def test_resume_without_restoring_rng_diverges(runs, ml100k_slice, monkeypatch):
    """The check above has teeth: without the RNG/data-order restore the weights differ."""
    monkeypatch.setattr(CompatTrainerMixin, "_restore_pending_rng", lambda self, train_data: None)
    copy = runs["two_epoch_copy"]
    train(ml100k_slice, str(runs["root"] / "norng"), 3, resume=copy)
    wa, _ = final_weights(runs["straight"]["saved_model_file"])
    wn, _ = final_weights(copy)
    assert not all(torch.equal(wa[k], wn[k]) for k in wa)


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):  # unpickling this opens (creates) the marker file
        return (open, (self.marker, "w"))


def test_crafted_checkpoint_is_refused_and_runs_nothing(tmp_path, capsys):
    marker = tmp_path / "pwned"
    path = str(tmp_path / "evil.pth")
    torch.save({"config": {"model": "SASRec"}, "state_dict": {"w": _Payload(str(marker))}}, path)
    with pytest.raises(UntrustedCheckpointError, match="--trust-checkpoint"):
        load_checkpoint(path)
    assert main(["--recommend", f"--checkpoint={path}", "--items=1"]) == 2
    assert "refusing to load" in capsys.readouterr().err
    assert not marker.exists()
    # the marker mechanism works: trusting the file runs its code
    with pytest.warns(UserWarning, match="can run code"):
        load_checkpoint(path, trust_checkpoint=True)
    assert marker.exists()


def test_legacy_recbole_checkpoint_needs_trust(runs, ml100k_slice, tmp_path, capsys):
    from recbole_ext.config import Config
    from recbole_ext.serving import Recommender

    ours = safe_load(runs["straight"]["saved_model_file"])
    config = Config("SASRec", "ml-slice", config_dict=dict(CFG, data_path=ml100k_slice))
    legacy = str(tmp_path / "recbole.pth")
    torch.save(
        {  # RecBole 1.2.1's layout: the whole Config object is pickled
            "config": config,
            "epoch": 2,
            "cur_step": 0,
            "best_valid_score": 0.1,
            "state_dict": ours["state_dict"],
            "other_parameter": {},
            "optimizer": ours["optimizer"],
        },
        legacy,
    )
    with pytest.raises(UntrustedCheckpointError) as err:
        load_checkpoint(legacy)
    assert "pickled" in str(err.value) and "--trust-checkpoint" in str(err.value)
    assert isinstance(err.value, UserError)
    assert main(["--recommend", f"--checkpoint={legacy}", "--items=1"]) == 2
    assert "--trust-checkpoint" in capsys.readouterr().err
    with pytest.warns(UserWarning):
        ckpt = load_checkpoint(legacy, trust_checkpoint=True)
    assert ckpt.legacy and ckpt.config["model"] == "SASRec" and ckpt.config["MODEL_TYPE"] == "SEQUENTIAL"
    with pytest.warns(UserWarning):
        rec = Recommender(legacy, trust_checkpoint=True)  # no token maps: the data set is reloaded
    assert rec.built_on == "data set"
    ref = Recommender(runs["straight"]["saved_model_file"])
    assert torch.allclose(rec.scores([[1, 2, 3]]), ref.scores([[1, 2, 3]]))


KILL_SCRIPT = textwrap.dedent(
    """
    import sys
    from recbole_ext.quick_start import run_recbole_ext
    cfg = eval(sys.argv[1])
    run_recbole_ext("SASRec", "ml-slice", None, cfg, log_dir=sys.argv[2])
    """
)


@pytest.mark.slow
def test_sigkill_mid_training_leaves_a_loadable_checkpoint(ml100k_slice, tmp_path):
    saved = tmp_path / "saved"
    cfg = dict(CFG, data_path=ml100k_slice, epochs=200, checkpoint_dir=str(saved), stopping_step=1000)
    proc = subprocess.Popen(
        [sys.executable, "-c", KILL_SCRIPT, repr(cfg), str(tmp_path / "log")],
        cwd=str(tmp_path),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.time() + 150
        while time.time() < deadline and not glob.glob(str(saved / "SASRec-*.pth")):
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
            time.sleep(0.2)
        files = glob.glob(str(saved / "SASRec-*.pth"))
        assert files, "no checkpoint appeared"
        time.sleep(0.7)  # into a later epoch (or a later save)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    ckpt = safe_load(files[0])
    assert ckpt["epoch"] >= 0
    result = train(ml100k_slice, str(tmp_path / "resume"), ckpt["epoch"] + 2, resume=files[0])
    assert safe_load(files[0])["epoch"] == ckpt["epoch"] + 1
    assert result["test_result"]


def test_missing_resume_file_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="not found"):
        load_checkpoint(str(tmp_path / "nope.pth"))


def test_runs_started_in_the_same_second_get_their_own_checkpoint(ml100k_slice, tmp_path, monkeypatch):
    """RecBole names checkpoints by the second: two trainers made at once (a frozen clock here)
    must still write, and test, different files."""
    import recbole.trainer.trainer as recbole_trainer

    from recbole_ext.pipeline import Run

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(recbole_trainer, "get_local_time", lambda: "Nov-27-2026_16-00-00")
    run = Run.resolve(
        "GLINTRU",
        "ml-slice",
        config_dict={
            "data_path": ml100k_slice,
            "state": "WARNING",
            "checkpoint_dir": str(tmp_path / "saved"),
            "load_col": {"inter": ["user_id", "item_id", "timestamp"]},
        },
    )
    loaders = run.build_loaders(run.prepare_data())
    names = {run.build_trainer(run.build_model(loaders.train_set)).saved_model_file for _ in range(2)}
    assert len(names) == 2
    assert all(os.path.basename(n).startswith("GLINTRU-Nov-27-2026_16-00-00-") for n in names)


def test_submodules_named_as_other_parameters_survive_the_checkpoint():
    """RecBole's DIN lists its ``embedding_layer`` (a submodule) in ``other_parameter_name``: it is
    not stored as plain data (it would come back as text and fail ``setattr`` on the module), and
    an older checkpoint that holds it as text is loaded without it."""
    from recbole.model.abstract_recommender import AbstractRecommender

    from recbole_ext.trainer.checkpoint import plain_other_parameter, restore_other_parameter

    class Net(AbstractRecommender):
        def __init__(self):
            super().__init__()
            self.embedding_layer = torch.nn.Linear(2, 2)
            self.table = np.arange(3)
            self.other_parameter_name = ["embedding_layer", "table"]

    net = Net()
    saved = plain_other_parameter(net.other_parameter())
    assert set(saved) == {"table"}
    other = Net()
    other.table = None
    restore_other_parameter(other, saved)
    assert isinstance(other.embedding_layer, torch.nn.Linear) and other.table.tolist() == [0, 1, 2]
    restore_other_parameter(other, {"embedding_layer": "Linear(in_features=2, out_features=2)"})
    assert isinstance(other.embedding_layer, torch.nn.Linear)
