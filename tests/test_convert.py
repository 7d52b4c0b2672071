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
