"""``recbole-ext evaluate``: a checkpoint evaluated again gives the numbers its run reported,
another evaluation key changes only what it should, and mistakes are one line before any work."""

from __future__ import annotations

import os

import pytest

from recbole_ext.cli import main as cli
from recbole_ext.command import EvaluateRequest
from recbole_ext.errors import UserError
from recbole_ext.serving.evaluate import evaluate_checkpoint

from conftest import run_in_folder

#: one epoch of GLINTRU on ml-slice under the paper's protocol (pop100, shared candidates)
KEYS = dict(
    eval_args={"split": {"LS": "valid_and_test"}, "order": "TO", "group_by": "user", "mode": "pop100"},
    eval_candidates="shared",
    load_col={"inter": ["user_id", "item_id", "timestamp"]},
    epochs=1,
    train_neg_sample_args=None,
    hidden_size=16,
    n_heads=2,
    MAX_ITEM_LIST_LENGTH=20,
    metrics=["Recall", "NDCG"],
    topk=[10],
    valid_metric="NDCG@10",
)


@pytest.fixture(scope="module")
def trained(ml100k_slice, tmp_path_factory):
    """``(checkpoint, run result)`` of one short run, from a folder of its own."""
    result = run_in_folder(tmp_path_factory.mktemp("evaluate"), "GLINTRU", "ml-slice", data_path=ml100k_slice, **KEYS)
    return result["saved_model_file"], result


def test_same_keys_give_the_runs_numbers(trained, tmp_path, monkeypatch):
    """Shared candidates come from the seed: evaluating the best weights again gives exactly the
    run's validation and test results, and writes nothing."""
    checkpoint, result = trained
    monkeypatch.chdir(tmp_path)
    again = evaluate_checkpoint(checkpoint, device="cpu")
    assert again["test"] == pytest.approx(dict(result["test_result"]), abs=1e-12)
    assert again["valid"] == pytest.approx(dict(result["best_valid_result"]), abs=1e-12)
    assert os.listdir(tmp_path) == []


def test_other_evaluation_keys(trained, ml100k_slice, tmp_path, monkeypatch, capsys):
    """Another protocol on the same model: full ranking scores every item, so its recall can only
    be lower than over 101 candidates (the target's rank among all items is at least its rank
    among a subset); a new metric appears; the command line prints both splits."""
    checkpoint, result = trained
    monkeypatch.chdir(tmp_path)
    full = evaluate_checkpoint(
        checkpoint,
        ["--eval_args={'split': {'LS': 'valid_and_test'}, 'order': 'TO', 'group_by': 'user', 'mode': 'full'}"],
        device="cpu",
    )
    assert full["test"]["recall@10"] <= result["test_result"]["recall@10"]
    history = evaluate_checkpoint(
        checkpoint, ["--eval_neg_exclude=history", "--metrics=['Recall','MRR']", "--valid_metric=MRR@10"]
    )
    assert set(history["test"]) == {"recall@10", "mrr@10"}
    assert cli(["evaluate", f"--checkpoint={checkpoint}", "--device=cpu", "--topk=[5]", "--valid_metric=NDCG@5"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("valid: {'recall@5'") and out[1].startswith("test: {'recall@5'")
    assert os.listdir(tmp_path) == []


def test_nothing_is_written_beside_what_was_there(trained, tmp_path, monkeypatch):
    checkpoint, _ = trained
    monkeypatch.chdir(tmp_path)
    (tmp_path / "log_tensorboard" / "another-run").mkdir(parents=True)
    evaluate_checkpoint(checkpoint, device="cpu")
    assert os.listdir(tmp_path) == ["log_tensorboard"]
    assert os.listdir(tmp_path / "log_tensorboard") == ["another-run"]
    assert os.listdir(tmp_path / "log_tensorboard" / "another-run") == []


def test_data_that_is_not_the_checkpoints_is_one_line(trained, ml100k_slice, tmp_path):
    """The same data set's name with other items (one item's rows dropped) is refused."""
    checkpoint, _ = trained
    folder = tmp_path / "ml-slice"
    folder.mkdir()
    lines = open(os.path.join(ml100k_slice, "ml-slice", "ml-slice.inter")).read().splitlines()
    first_item = lines[1].split("\t")[1]
    kept = [lines[0]] + [line for line in lines[1:] if line.split("\t")[1] != first_item]
    (folder / "ml-slice.inter").write_text("\n".join(kept) + "\n")
    with pytest.raises(UserError, match="does not hold the item_ids"):
        evaluate_checkpoint(checkpoint, [f"--data_path={tmp_path}"], device="cpu")


def test_mistakes_are_one_line(trained, tmp_path, capsys):
    checkpoint, _ = trained
    with pytest.raises(UserError, match="evaluation keys only"):
        EvaluateRequest(checkpoint, ("--hidden_size=8",))
    with pytest.raises(UserError, match="needs|no checkpoint"):
        EvaluateRequest(None)
    for argv, message in (
        (["evaluate", f"--checkpoint={tmp_path / 'nope.pth'}"], "is not a file"),
        (["evaluate", f"--checkpoint={checkpoint}", "--learning_rate=0.1"], "evaluation keys only"),
        (["evaluate", f"--checkpoint={checkpoint}", "--eval_neg_exclude=everything"], "eval_neg_exclude"),
        (["evaluate", f"--checkpoint={checkpoint}", "--topk", "5"], "as --key=value"),
        (["evaluate", f"--checkpoint={checkpoint}", "--device=gpu"], "is not a device"),
        (["evaluate", f"--checkpoint={checkpoint}", "--device=cuda:99"], "CUDA device(s)"),
        (
            ["evaluate", f"--checkpoint={checkpoint}", "--eval_args={'split': {'RS': [0.8, 0.1, 0.1]}}"],
            "keeps the checkpoint's split",
        ),
    ):
        assert cli(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("recbole_ext: error:") and message in err[0], err
