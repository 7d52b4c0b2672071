"""Converters from raw files to RecBole atomic files, on small samples written here."""

from __future__ import annotations

import os

import pytest

from recbole_ext.cli import convert_main as main
from recbole_ext.data.convert import convert
from recbole_ext.errors import DataFormatError


def read(path):
    with open(path) as f:
        return [line.rstrip("\n").split("\t") for line in f]


def test_movielens_ratings_dat(tmp_path):
    src = tmp_path / "ratings.dat"
    src.write_text("1::1193::5::978300760\n1::661::3::978302109\n2::1357::5::978298709\n")
    path, n, _ = convert("movielens", str(src), "ml-tiny", str(tmp_path / "out"))
    rows = read(path)
    assert n == 3 and path.endswith(os.path.join("ml-tiny", "ml-tiny.inter"))
    assert rows[0] == ["user_id:token", "item_id:token", "rating:float", "timestamp:float"]
    assert rows[2] == ["1", "661", "3", "978302109"]


def test_sequence_file_uses_positions_as_time(tmp_path):
    src = tmp_path / "seq.txt"
    src.write_text("u1 a b c\nu2 c a\n")
    path, n, _ = convert("sequences", str(src), "seq", str(tmp_path))
    rows = read(path)
    assert n == 5 and rows[0] == ["user_id:token", "item_id:token", "timestamp:float"]
    assert rows[1:4] == [["u1", "a", "0"], ["u1", "b", "1"], ["u1", "c", "2"]]


def test_csv_with_header_and_without_time(tmp_path):
    src = tmp_path / "r.csv"
    src.write_text("user,item,rating,timestamp\n7,9,4.5,100\n7,3,2,50\n")
    rows = read(convert("csv", str(src), "c4", str(tmp_path))[0])
    assert rows[1] == ["7", "9", "4.5", "100"]
    src2 = tmp_path / "r2.csv"
    src2.write_text("7,9\n7,3\n8,9\n")
    rows = read(convert("csv", str(src2), "c2", str(tmp_path))[0])
    assert rows[1:] == [["7", "9", "0"], ["7", "3", "1"], ["8", "9", "0"]]


def test_converted_file_loads_in_recbole(tmp_path):
    from recbole_ext.pipeline import Run

    src = tmp_path / "seq.txt"
    src.write_text("".join(f"u{u} " + " ".join(f"i{(u + t) % 7}" for t in range(6)) + "\n" for u in range(10)))
    convert("sequences", str(src), "conv", str(tmp_path))
    ds = Run.resolve(
        "GRU4Rec",
        "conv",
        config_dict={"data_path": str(tmp_path), "load_col": {"inter": ["user_id", "item_id", "timestamp"]}},
    ).load_dataset()
    assert ds.user_num == 11 and ds.inter_num == 60


def test_malformed_input_leaves_nothing(tmp_path, capsys):
    src = tmp_path / "ratings.dat"
    src.write_text("1::1193::5::978300760\n1::661::five::978302109\n")
    with pytest.raises(DataFormatError, match="line 2"):
        convert("movielens", str(src), "bad", str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()  # nor the folders made for it
    assert main(["movielens", str(src), "--name", "bad", "--out", str(tmp_path / "out")]) == 2
    assert "line 2" in capsys.readouterr().err


def _one_error_line(capsys):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("recbole_ext: error:"), err
    return err[0]


@pytest.mark.parametrize(
    "content,needle",
    [
        (b'user,item\n1,"a\tb"\n', "line 2: field 'a\\tb' holds a TAB"),
        (b'user,item\n1,"a\nb"\n', "holds a TAB or a line break"),
        (b"user,item\n1,2\n1,caf\xe9\n", "line 3: not utf-8 text"),
    ],
    ids=["tab-in-field", "newline-in-field", "latin-1"],
)
def test_input_an_atomic_file_cannot_hold(content, needle, tmp_path, capsys):
    src = tmp_path / "in.csv"
    src.write_bytes(content)
    assert main(["csv", str(src), "--name", "x", "--out", str(tmp_path / "out")]) == 2
    assert needle in _one_error_line(capsys)
    assert not (tmp_path / "out").exists()


def test_outputs_are_never_overwritten_without_force(tmp_path, capsys):
    src = tmp_path / "in.csv"
    src.write_text("user,item\n1,2\n1,3\n")
    out = str(tmp_path / "out")
    assert main(["csv", str(src), "--name", "x", "--out", out]) == 0
    before = (tmp_path / "out" / "x" / "x.inter").read_text()
    src.write_text("user,item\n7,8\n7,9\n")
    capsys.readouterr()
    assert main(["csv", str(src), "--name", "x", "--out", out]) == 2
    assert "exists; pass --force" in _one_error_line(capsys)
    assert (tmp_path / "out" / "x" / "x.inter").read_text() == before
    assert main(["csv", str(src), "--name", "x", "--out", out, "--force"]) == 0
    assert "7\t8" in (tmp_path / "out" / "x" / "x.inter").read_text()
    capsys.readouterr()
    assert main(["csv", str(src), "--name", "x", "--out", out, "--forc"]) == 2  # never abbreviated
    assert "--forc" in _one_error_line(capsys)


@pytest.mark.parametrize(
    "name,out,needle",
    [
        ("../../x", "out", "is not a data-set name"),
        ("a/b", "out", "is not a data-set name"),
        ("..", "out", "is not a data-set name"),
        ("x", "file.txt", "--out: file.txt is a file"),
    ],
)
def test_names_and_output_folders_are_checked(name, out, needle, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "in.csv").write_text("user,item\n1,2\n")
    (tmp_path / "file.txt").write_text("not a folder")
    assert main(["csv", "in.csv", "--name", name, "--out", out]) == 2
    assert needle in _one_error_line(capsys)
    assert sorted(os.listdir(tmp_path)) == ["file.txt", "in.csv"]


def test_report_and_recommend_check_their_paths(tmp_path, capsys, monkeypatch):
    from recbole_ext import cli

    monkeypatch.chdir(tmp_path)
    (tmp_path / "file.txt").write_text("x")
    assert cli.main(["report", "log", "--out", "file.txt"]) == 2
    assert "--out file.txt is a file" in _one_error_line(capsys)
    assert cli.main(["recommend", "--checkpoint=x.pth", "--items-file=file.txt", f"--output={tmp_path}"]) == 2
    assert "is a folder" in _one_error_line(capsys)
    assert sorted(os.listdir(tmp_path)) == ["file.txt"]


# ---------------------------------------------------------------- Amazon metadata -> .item
#: reviews (user, item, time) whose 2-core drops u4 and i5 (one review each)
AMAZON_REVIEWS = [("u1", "i1", 1), ("u1", "i2", 2), ("u2", "i1", 3), ("u2", "i2", 4), ("u3", "i2", 5)]
AMAZON_REVIEWS += [("u3", "i3", 6), ("u1", "i3", 7), ("u4", "i5", 8)]
#: metadata lines as the 2014 files write them (Python literals), one as JSON (null, double quotes)
AMAZON_META = [
    "{'asin': 'i3', 'title': 'Gel\\tPen  Set', 'price': 3.5, 'brand': 'Acme Co', "
    "'categories': [['Office', 'Pens & Pencils'], ['Office', 'Art Supplies']], 'salesRank': {'Office': 7}}",
    "{'asin': 'i5', 'title': 'outside the core', 'categories': [['Office']], 'brand': 'Nope'}",
    "{'asin': 'zz', 'title': 'not reviewed'}",
    "{'asin': 'i1', 'related': {'also_bought': ['i2']}, 'categories': [['Beauty', 'Skin Care']], 'imUrl': 'x'}",
    '{"asin": "i2", "title": "Face Cream", "brand": null, "price": 12, "categories": [["Beauty", "Skin Care"]]}',
    "{'asin': 'i1', 'title': 'a second record of i1 is ignored'}",
]


def write_amazon(folder, meta_lines=AMAZON_META, reviews=AMAZON_REVIEWS):
    """``reviews_Tiny_5.json.gz`` and ``meta_Tiny.json.gz`` in ``folder``; returns their paths."""
    import gzip
    import json

    os.makedirs(folder, exist_ok=True)
    paths = (os.path.join(folder, "reviews_Tiny_5.json.gz"), os.path.join(folder, "meta_Tiny.json.gz"))
    with gzip.open(paths[0], "wt", encoding="utf-8") as f:
        for u, i, t in reviews:
            f.write(json.dumps({"reviewerID": u, "asin": i, "overall": 4.0, "unixReviewTime": t}) + "\n")
    with gzip.open(paths[1], "wt", encoding="utf-8") as f:
        f.write("\n".join(meta_lines) + "\n")
    return paths


#: the .item rows of AMAZON_META for the 2-core of AMAZON_REVIEWS, in the .inter file's order
AMAZON_ITEM = [
    ["item_id:token", "title:token_seq", "categories:token_seq", "brand:token", "price:float"],
    ["i1", "", "Beauty Skin_Care", "", ""],
    ["i2", "Face Cream", "Beauty Skin_Care", "", "12"],
    ["i3", "Gel Pen Set", "Office Pens_&_Pencils Art_Supplies", "Acme Co", "3.5"],
]


def test_amazon_metadata_becomes_the_item_file(tmp_path, capsys):
    """By ``meta=``, and from a folder of both files (the ``convert`` command's way)."""
    reviews, meta = write_amazon(str(tmp_path / "raw"))
    done = convert("amazon-reviews", reviews, "az", str(tmp_path / "out"), k_core=2, meta=meta)
    assert done.counts == {"interactions": 7, "items_with_features": 3}
    assert read(tmp_path / "out" / "az" / "az.item") == AMAZON_ITEM
    assert main(["amazon-reviews", str(tmp_path / "raw"), "--name", "az5", "--out", str(tmp_path / "out")]) == 2
    assert "no record is of an item" in _one_error_line(capsys)  # the 5-core keeps no item of the metadata
    write_amazon(
        str(tmp_path / "raw"), reviews=[(f"u{u}", f"i{i}", u * 10 + i) for u in range(5) for i in (1, 2, 3, 5, 6)]
    )
    assert main(["amazon-reviews", str(tmp_path / "raw"), "--name", "az5", "--out", str(tmp_path / "out")]) == 0
    rows = read(tmp_path / "out" / "az5" / "az5.item")[1:]
    assert [r[0] for r in rows] == ["i1", "i2", "i3", "i5", "i6"] and rows[-1] == ["i6", "", "", "", ""]
    assert not os.path.exists(tmp_path / "out" / "az" / "az5.item")


@pytest.mark.parametrize(
    "line,needle",
    [
        ("{'asin': 'i2', 'title': 'cut short", "line 2: not a metadata record"),
        ("[1, 2]", "line 2: not a metadata record (a dict), got a list"),
        ("{'title': 'no asin'}", "line 2: the record has no 'asin'"),
        ("{'asin': 'i2', 'categories': ['Beauty']}", "line 2: 'categories' is not a list of lists"),
        ("{'asin': 'i2', 'price': 'cheap'}", "line 2: price 'cheap' is not a number"),
    ],
)
def test_a_malformed_metadata_line_is_one_line_naming_file_and_line(tmp_path, capsys, line, needle):
    reviews, meta = write_amazon(str(tmp_path / "raw"), meta_lines=[AMAZON_META[0], line, AMAZON_META[3]])
    with pytest.raises(DataFormatError) as err:
        convert("amazon-reviews", reviews, "az", str(tmp_path / "out"), k_core=2, meta=meta)
    assert str(err.value).startswith(f"{meta}, {needle}") and "\n" not in str(err.value)
    assert not (tmp_path / "out").exists()
    skipped = "{'asin': 'i5', 'title': 'outside the core, cut short"  # not parsed: i5 is not in the 2-core
    write_amazon(str(tmp_path / "raw"), meta_lines=[AMAZON_META[0], skipped])
    convert("amazon-reviews", reviews, "az", str(tmp_path / "out"), k_core=2, meta=meta)
    assert read(tmp_path / "out" / "az" / "az.item")[3] == AMAZON_ITEM[3]


def test_the_item_file_loads_with_selected_features(tmp_path):
    """RecBole reads the fields (a missing brand is [PAD], categories one token each), keeps the
    interactions of an item without metadata (i6), and a feature-aware sequential model (FDSA,
    ``selected_features``) computes its loss on them."""
    from conftest import build

    sequences = [(f"u{u}", f"i{i}", 10 * u + t) for u in range(6) for t, i in enumerate((1, 2, 3, 6, u % 3 + 1))]
    reviews, meta = write_amazon(str(tmp_path / "raw"), reviews=sequences)  # i6: reviewed, no metadata
    convert("amazon-reviews", reviews, "az", str(tmp_path), k_core=2, meta=meta)
    built = build(
        "FDSA",
        "az",
        str(tmp_path),
        load_col={"inter": ["user_id", "item_id", "timestamp"], "item": ["item_id", "categories", "brand", "price"]},
        selected_features=["categories", "brand"],
        pooling_mode="mean",
        topk=[2],
        valid_metric="MRR@2",
        eval_args={"split": {"LS": "valid_and_test"}, "order": "TO", "mode": "full", "group_by": "user"},
        MAX_ITEM_LIST_LENGTH=5,
        hidden_size=8,
        inner_size=16,
        n_layers=1,
        n_heads=1,
        train_batch_size=4,
        state="WARNING",
    )
    ds = built.train.dataset
    assert ds.item_num == 5  # i1, i2, i3, [PAD] and i6, whose interactions are kept
    tokens = ds.field2id_token
    item = {tokens["item_id"][i]: i for i in range(1, ds.item_num)}
    assert (
        tokens["brand"][ds.item_feat["brand"][item["i1"]]]
        == "[PAD]"
        == tokens["brand"][ds.item_feat["brand"][item["i6"]]]
    )
    assert tokens["brand"][ds.item_feat["brand"][item["i3"]]] == "Acme Co"
    cats = [tokens["categories"][c] for c in ds.item_feat["categories"][item["i3"]] if c]
    assert cats == ["Office", "Pens_&_Pencils", "Art_Supplies"]
    loss = built.model.calculate_loss(next(iter(built.train)))
    assert loss.ndim == 0 and bool(loss.isfinite())
