"""``reproduce ... --plan`` and ``--paper-dataset`` (:mod:`recbole_ext.reproduce.resolved`): every
row resolved as its run would be, written as config files and ``plan.json``, nothing run; a copy
of a data set under another name at the preset's section; the mistakes, one line each."""

from __future__ import annotations

import json
import os
import shutil

import pytest
from test_reproduce import small_preset

from recbole_ext.cli import main as cli
from recbole_ext.cli.parse import parse_reproduce
from recbole_ext.command import ReproduceRequest
from recbole_ext.errors import UserError
from recbole_ext.reproduce.resolved import copy_sentence, paper_section, run_plan


def _request(preset: str, data_path: str, out: str, **fields) -> ReproduceRequest:
    args = (f"--data_path={data_path}", "--hidden_size=8", "--state=WARNING")
    return ReproduceRequest(paper=preset, results_dir=out, **{"dataset": "ml-slice", "config_args": args, **fields})


def test_plan_resolves_every_row_and_runs_nothing(tmp_path, ml100k_slice):
    out = str(tmp_path / "out")
    lines = []
    assert run_plan(_request(small_preset(tmp_path), ml100k_slice, out, plan=True), echo=lines.append) == 0
    assert sorted(os.listdir(out)) == ["plan.json", "preset"]  # no runs/, no log/, no checkpoint
    assert sorted(os.listdir(os.path.join(out, "preset", "models"))) == [
        "GLINTRU.yaml",
        "GLINTRU@light.yaml",
        "GRU4Rec.yaml",
    ]
    plan = json.load(open(os.path.join(out, "plan.json")))
    assert list(plan) == ["GLINTRU", "GRU4Rec", "GLINTRU@light"]
    glint, light, gru = plan["GLINTRU"], plan["GLINTRU@light"], plan["GRU4Rec"]
    assert glint["kernel_size"] == 3 and glint["gated_mlp"] is True  # the model's own file
    assert light["kernel_size"] == 3 and light["gated_mlp"] is False  # then the variant's file
    assert gru["num_layers"] == 1 and gru["model"] == "GRU4Rec"
    for row in plan.values():
        assert row["hidden_size"] == 8  # the user's option wins
        assert row["epochs"] == 1  # the data set's section
        assert row["seed"] == 1  # the preset's first seed
        assert (
            row["eval_args"]["mode"] == {"valid": "pop100", "test": "pop100"} and row["valid_metric"] == "NDCG@10"
        )  # the protocol
        assert row["checkpoint_dir"] == os.path.join(out, "saved")
    text = "\n".join(lines)
    assert "3 rows on ml-slice; nothing was run" in text and "GRU4Rec: hidden_size=8" in text
    assert "plan.json" in text and "no .item file" in text


def test_reproduce_with_plan_runs_nothing(tmp_path, ml100k_slice, capsys):
    out = tmp_path / "out"
    args = [f"--data_path={ml100k_slice}", "--state=WARNING", f"--results-dir={out}", "--model=GRU4Rec"]
    assert cli(["reproduce", small_preset(tmp_path), "--dataset=ml-slice", "--plan", *args]) == 0
    assert sorted(os.listdir(out)) == ["plan.json", "preset"]
    assert "1 rows on ml-slice; nothing was run" in capsys.readouterr().out


def test_plan_option_on_the_command_line():
    request = parse_reproduce(["glint-ru", "--dataset=ml-1m-item5", "--paper-dataset=ml-1m", "--plan"])
    assert request.plan and request.paper_dataset == "ml-1m" and request.section == "ml-1m"
    assert not parse_reproduce(["glint-ru", "--dataset=ml-1m"]).plan


def test_a_copy_under_another_name_runs_at_the_named_section(tmp_path, ml100k_slice):
    root = tmp_path / "data"
    (root / "ml-copy").mkdir(parents=True)
    shutil.copy(os.path.join(ml100k_slice, "ml-slice", "ml-slice.inter"), root / "ml-copy" / "ml-copy.inter")
    preset = small_preset(tmp_path)
    out = str(tmp_path / "out")
    lines = []
    request = _request(preset, str(root), out, dataset="ml-copy", paper_dataset="ml-slice", models=("GRU4Rec",))
    assert run_plan(request, echo=lines.append) == 0
    plan = json.load(open(os.path.join(out, "plan.json")))
    assert list(plan) == ["GRU4Rec"]
    assert plan["GRU4Rec"]["dataset"] == "ml-copy" and plan["GRU4Rec"]["epochs"] == 1
    assert "on ml-copy (at the preset's ml-slice settings)" in lines[0]
    assert "ml-slice" in open(os.path.join(out, "preset", "common.yaml")).readline()


def test_section_mistakes_are_one_line_and_leave_no_folder(tmp_path, ml100k_slice):
    preset = small_preset(tmp_path)
    out = tmp_path / "out"
    with pytest.raises(UserError, match=r"has no data set 'ml-copy': choose from ml-slice, .*--paper-dataset=NAME"):
        run_plan(_request(preset, ml100k_slice, str(out), dataset="ml-copy", plan=True))
    with pytest.raises(UserError, match=r"--paper-dataset=nope is not a data set of preset paper: ml-slice"):
        run_plan(_request(preset, ml100k_slice, str(out), dataset="ml-copy", paper_dataset="nope"))
    with pytest.raises(UserError, match="kernel_size"):
        run_plan(
            _request(preset, ml100k_slice, str(out), config_args=(f"--data_path={ml100k_slice}", "--kernel_size=0"))
        )
    assert not out.exists()
    from recbole_ext.reproduce.preset import load_preset

    assert paper_section(load_preset(preset), _request(preset, ml100k_slice, str(out))).name == "ml-slice"


def test_empty_paper_dataset_is_one_line(tmp_path, capsys):
    assert cli(["reproduce", "glint-ru", "--dataset=ml-1m", "--paper-dataset=", f"--results-dir={tmp_path / 'o'}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("recbole_ext: error: --paper-dataset is empty")
    assert not (tmp_path / "o").exists()


def test_copy_sentence():
    assert copy_sentence("ml-1m", "ml-1m") == ""
    assert copy_sentence("ml-1m", "ml-1m", {"interactions": 5}, {"interactions": 5}) == ""
    same_counts = copy_sentence("ml-copy", "ml-1m", {"interactions": 5}, {"interactions": 5})
    assert same_counts == "data set ml-copy run at the preset's ml-1m settings"
    assert copy_sentence("ml-copy", "ml-1m") == (
        "data set ml-copy run at the preset's ml-1m settings; a copy that may differ from the paper's ml-1m"
    )
    assert copy_sentence(
        "ml-1m-item5",
        "ml-1m",
        {"users": 6040, "items": 3416, "interactions": 999611},
        {"users": 6040, "items": 3706, "interactions": 1000209},
    ) == (
        "data set ml-1m-item5 run at the preset's ml-1m settings; it differs from the paper's ml-1m: "
        "3,416 items (paper 3,706), 999,611 interactions (paper 1,000,209)"
    )


@pytest.mark.slow
@pytest.mark.parametrize("dataset", ["ml-1m", "amazon-beauty", "amazon-video-games"])
def test_plan_agrees_with_the_presets_keys(tmp_path, dataset):
    """Every key the shipped preset gives a row (:func:`recbole_ext.reproduce.plan.resolve_rows`,
    which the Table 5 test reads) is the value ``--plan`` resolves for it through the run's own
    config files, but for the two RecBole writes in its own form (the mode per split, no
    negative sampling)."""
    from recbole_ext.reproduce.plan import resolve_rows, select_entries
    from recbole_ext.reproduce.preset import load_preset
    from recbole_ext.reproduce.resolved import resolve_plan

    preset = load_preset("glint-ru")
    out = str(tmp_path / "out")
    request = ReproduceRequest(paper="glint-ru", dataset=dataset, results_dir=out, config_args=("--state=WARNING",))
    entries = select_entries(preset, (), dataset=dataset)
    plan = resolve_plan(request, preset, out, entries)
    assert list(plan.rows) == entries
    for entry, keys in resolve_rows(preset, preset.dataset(dataset), entries, bool(plan.has_item_file)).items():
        resolved = plan.rows[entry]
        for key, value in keys.items():
            if key == "eval_args":
                mode = value["mode"]
                value = {**value, "mode": {"valid": mode, "test": mode}}
            if key == "train_neg_sample_args" and value is None:
                assert resolved[key]["distribution"] == "none"
                continue
            assert resolved[key] == value, (entry, key)
