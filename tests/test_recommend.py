"""recommend(): rebuilt models, raw tokens in and out, edge cases, batch files, the CLI."""

from __future__ import annotations

import glob
import warnings
from collections import Counter, defaultdict

import pytest
import torch
from recbole.data.interaction import Interaction

import recbole_ext
from recbole_ext.cli import main
from recbole_ext.errors import UserError
from recbole_ext.quick_start import run_recbole_ext
from recbole_ext.serving import (
    EmptyHistoryError,
    Recommender,
    UnknownTokenWarning,
    read_histories,
    recommend,
    recommend_file,
)

from conftest import build as build_model
from conftest import rule_sequences

SEQ = {
    "state": "WARNING",
    "show_progress": False,
    "load_col": {"inter": ["user_id", "item_id", "timestamp"]},
    "MAX_ITEM_LIST_LENGTH": 20,
}


@pytest.fixture(scope="module")
def rule_ckpt(rule_dataset, tmp_path_factory):
    """SASRec trained on the rule data set (next item = perm[current] 90% of the time)."""
    root = tmp_path_factory.mktemp("rec")
    cfg = dict(
        SEQ,
        data_path=rule_dataset,
        epochs=12,
        learning_rate=0.01,
        hidden_size=32,
        inner_size=64,
        n_layers=1,
        n_heads=1,
        train_batch_size=256,
        eval_batch_size=256,
        stopping_step=20,
        checkpoint_dir=str(root / "saved"),
    )
    result = run_recbole_ext("SASRec", "rule-seq", None, cfg, log_dir=str(root / "log"))
    return result["saved_model_file"]


@pytest.fixture(scope="module")
def rec(rule_ckpt):
    return Recommender(rule_ckpt)


def rule_next():
    """The rule's successor of each item, read off the generated sequences."""
    follow = defaultdict(Counter)
    rows = rule_sequences()
    for (u1, i1, _), (u2, i2, _) in zip(rows, rows[1:]):
        if u1 == u2:
            follow[str(i1)][str(i2)] += 1
    return {a: c.most_common(1)[0][0] for a, c in follow.items()}


def test_recommends_the_learned_next_item(rec):
    nxt = rule_next()
    hits = sum(recommend(rec, [a], k=1)[0][0] == b for a, b in nxt.items())
    assert hits / len(nxt) >= 0.6, hits  # chance is 1/40


def test_restored_and_reloaded_data_set_agree(rule_ckpt, rec):
    """The model rebuilt on its data-set class restored from the checkpoint's schema scores as
    the one rebuilt on the data set reloaded from its files."""
    full = Recommender(rule_ckpt, reload_dataset=True)
    assert rec.built_on == "checkpoint" and full.built_on == "data set"
    hist = [[1, 2, 3], [5], list(range(1, 30))]
    assert torch.allclose(rec.scores(hist), full.scores(hist), atol=1e-6)
    assert rec.item_tokens == full.item_tokens


def test_checkpoints_of_the_previous_format_still_serve(rule_ckpt, rec, tmp_path):
    """A ``recbole_ext/2`` file holds only the user and item token maps: the model is rebuilt
    on them, without the data files."""
    from recbole_ext.trainer.checkpoint import safe_load

    raw = safe_load(rule_ckpt)
    schema = raw["dataset"]
    items, users = schema["field2id_token"]["item_id"], schema["field2id_token"]["user_id"]
    raw.update(
        format="recbole_ext/2",
        dataset={
            "uid_field": "user_id",
            "iid_field": "item_id",
            "n_users": len(users),
            "n_items": len(items),
            "item_tokens": items,
            "user_tokens": users,
        },
    )
    raw["config"]["data_path"] = str(tmp_path / "gone")  # no data files to fall back on
    old = str(tmp_path / "old.pth")
    torch.save(raw, old)
    restored = Recommender(old, reload_dataset=False)
    assert restored.built_on == "checkpoint" and restored.item_tokens == rec.item_tokens
    assert torch.allclose(restored.scores([[1, 2, 3]]), rec.scores([[1, 2, 3]]), atol=1e-6)


def test_output_is_tokens_and_scores_sorted(rec):
    out = recbole_ext.recommend(rec.path, "3,7,9", k=5)
    assert len(out) == 5 and all(isinstance(t, str) and isinstance(s, float) for t, s in out)
    scores = [s for _, s in out]
    assert scores == sorted(scores, reverse=True)
    assert all(t in rec.item_token_id and t != "[PAD]" for t, _ in out)


def test_unknown_tokens_are_warned_and_skipped(rec):
    with pytest.warns(UnknownTokenWarning, match="nope"):
        out = recommend(rec, ["3", "nope", "7"], k=5)
    assert out == recommend(rec, ["3", "7"], k=5)


@pytest.mark.parametrize("items", [[], ["nope", "nada"], "", " , "])
def test_empty_or_all_unknown_history_is_a_clear_error(rec, items):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnknownTokenWarning)
        with pytest.raises(EmptyHistoryError) as err:
            recommend(rec, items)
    assert isinstance(err.value, UserError)


def test_duplicates_and_exclude_seen(rec):
    out = recommend(rec, ["3", "3", "7", "3"], k=10, exclude_seen=True)
    tokens = [t for t, _ in out]
    assert "3" not in tokens and "7" not in tokens and len(set(tokens)) == len(tokens) == 10


def test_long_history_keeps_the_most_recent(rec):
    hist = [str(i) for i in list(range(1, 41)) + list(range(1, 11))]  # 50 > MAX_ITEM_LIST_LENGTH 20
    assert recommend(rec, hist, k=5) == recommend(rec, hist[-20:], k=5)
    assert recommend(rec, hist, k=5) != recommend(rec, hist[:20], k=5)


def test_k_larger_than_catalogue(rec):
    n = rec.n_items - 1  # without [PAD]
    out = recommend(rec, ["3"], k=10_000)
    assert len(out) == n and len({t for t, _ in out}) == n
    out = recommend(rec, ["3", "7"], k=10_000, exclude_seen=True)
    assert len(out) == n - 2
    with pytest.raises(UserError):
        recommend(rec, ["3"], k=0)


def test_batch_file(rec, tmp_path):
    src = tmp_path / "in.tsv"
    src.write_text("# user<TAB>items\nu1\t3 7 9\nu2\t12\nbad\tnope\nu3\t1,2\n")
    out = tmp_path / "out" / "recs.tsv"
    with pytest.warns(UnknownTokenWarning, match="bad"):
        recs = recommend_file(rec, str(src), str(out), k=4, exclude_seen=True)
    lines = out.read_text().splitlines()
    assert lines[0] == "user\trank\titem\tscore" and len(lines) == 1 + 3 * 4
    assert set(recs) == {"u1", "u2", "u3"}
    rows = [line.split("\t") for line in lines[1:]]
    assert [r[1] for r in rows[:4]] == ["1", "2", "3", "4"]
    single = recommend(rec, ["3", "7", "9"], k=4, exclude_seen=True)
    assert [r[2] for r in rows if r[0] == "u1"] == [t for t, _ in single]
    for (_, s1), r in zip(single, [r for r in rows if r[0] == "u1"]):
        assert abs(s1 - float(r[3])) < 1e-4
    assert not glob.glob(str(out.parent / ".tmp-*"))
    assert read_histories(str(src))["u3"] == ["1", "2"]


def test_cli(rec, tmp_path, capsys):
    assert main(["--recommend", f"--checkpoint={rec.path}", "--items=3,7", "--k=3", "--exclude-seen"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0] == "rank\titem\tscore" and len(lines) == 4
    assert [line.split("\t")[1] for line in lines[1:]] == [t for t, _ in recommend(rec, ["3", "7"], 3, True)]
    assert main(["--recommend", f"--checkpoint={rec.path}", "--items=zzz"]) == 2
    assert "none of the 1 item token(s)" in capsys.readouterr().err
    assert main(["--recommend", f"--checkpoint={tmp_path / 'missing.pth'}", "--items=1"]) == 2
    src, dst = tmp_path / "in.tsv", tmp_path / "out.tsv"
    src.write_text("a\t3 7\nb\t9\n")
    assert main(["--recommend", f"--checkpoint={rec.path}", f"--items-file={src}", f"--output={dst}", "--k=2"]) == 0
    assert len(dst.read_text().splitlines()) == 5
    assert main(["--recommend", f"--checkpoint={rec.path}", f"--items-file={src}"]) == 2


def checkpoint_without_training(model: str, data_root: str, dataset: str, folder, **cfg) -> str:
    """A checkpoint of a freshly initialised model (the trainer writes it as after an epoch)."""
    b = build_model(model, dataset, data_root, trainer=True, **dict(SEQ, checkpoint_dir=str(folder), **cfg))
    trainer = b.trainer
    trainer._train_data = b.train
    trainer._save_checkpoint(0, verbose=False)
    return trainer.saved_model_file, b.model, b.train._dataset


#: RecBole's sequential models (ours: the model contract, tests/test_model_contract.py)
SEQUENTIAL_MODELS = [
    ("GRU4Rec", {}),
    ("SASRec", {}),
    ("NARM", {}),
    ("Caser", {}),
    ("BERT4Rec", {}),
    ("STAMP", {}),
]


@pytest.mark.parametrize("model,cfg", SEQUENTIAL_MODELS, ids=[m for m, _ in SEQUENTIAL_MODELS])
def test_sequential_models_rebuild_from_checkpoint_alone(model, cfg, ml100k_slice, tmp_path):
    path, net, _ = checkpoint_without_training(model, ml100k_slice, "ml-slice", tmp_path, **cfg)
    rec = Recommender(path)
    assert rec.built_on == "checkpoint"
    net.eval()
    hist = [[1, 2, 3, 4], [9]]
    seq = torch.zeros(2, net.max_seq_length, dtype=torch.long)
    seq[0, :4] = torch.tensor([1, 2, 3, 4])
    seq[1, 0] = 9
    inter = Interaction(
        {net.ITEM_SEQ: seq, net.ITEM_SEQ_LEN: torch.tensor([4, 1]), net.USER_ID: torch.zeros(2, dtype=torch.long)}
    )
    with torch.no_grad():
        expected = net.full_sort_predict(inter).reshape(2, -1)
    assert torch.allclose(rec.scores(hist), expected, atol=1e-5)
    assert len(recommend(rec, ["50", "172"], k=7)) == 7


GENERAL = {"eval_args": {"split": {"RS": [0.8, 0.1, 0.1]}, "order": "RO", "group_by": "user", "mode": "full"}}


@pytest.mark.parametrize(
    "model,cfg",
    [
        ("MultVAE", {"mlp_hidden_size": [32], "latent_dim": 8}),
        ("MultiVAE", {"mlp_hidden_size": [32], "latent_dimension": 8}),
    ],
)
def test_general_models_score_the_history_row(model, cfg, ml100k_slice, tmp_path):
    path, net, train_set = checkpoint_without_training(model, ml100k_slice, "ml-slice", tmp_path, **GENERAL, **cfg)
    rec = Recommender(path)
    assert rec.kind == "history"
    net.eval()
    user = 5
    history = [int(i) for i in net.history_item_id[user] if int(i) > 0]
    with torch.no_grad():
        expected = net.full_sort_predict(Interaction({net.USER_ID: torch.tensor([user])})).reshape(1, -1)
    assert torch.allclose(rec.scores([history]), expected, atol=1e-5)
    # the row is a set: order and repeats do not change it
    assert torch.allclose(rec.scores([history[::-1] + history[:3]]), expected, atol=1e-5)
    tokens = [rec.item_tokens[i] for i in history]
    out = recommend(rec, tokens, k=5, exclude_seen=True)
    assert len(out) == 5 and not set(t for t, _ in out) & set(tokens)


@pytest.mark.parametrize(
    "model,cfg",
    [
        ("MF", {"config_files": ["protocol-rating.yaml"]}),
        ("DLRM", {"config_files": ["protocol-ctr.yaml"]}),
        ("BPR", {"eval_args": GENERAL["eval_args"]}),
    ],
    ids=["rating", "click", "general"],
)
def test_every_model_family_recommends_or_says_why_in_one_line(model, cfg, ml100k_slice, tmp_path, capsys):
    """Rating, click and general models without a history row cannot score a free history: the
    command says so in one line (exit 2); the checkpoint itself rebuilds from its schema."""
    from recbole_ext.config_sources import protocol_settings
    from recbole_ext.serving import restore_model

    keys = dict(cfg)
    for name in keys.pop("config_files", []):
        keys.update(protocol_settings(name))
    if model == "DLRM":
        keys["load_col"] = {"inter": ["user_id", "item_id", "rating", "timestamp"]}
    elif model == "MF":
        keys["load_col"] = {"inter": ["user_id", "item_id", "rating", "timestamp"]}
    path, net, _ = checkpoint_without_training(model, ml100k_slice, "ml-slice", tmp_path, **keys)
    rebuilt, _, info = restore_model(path)
    assert info["built_on"] in ("checkpoint", "data set") and type(rebuilt).__name__ == model
    assert main(["recommend", f"--checkpoint={path}", "--items=1,2"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot recommend for a free item history" in err[0], err
