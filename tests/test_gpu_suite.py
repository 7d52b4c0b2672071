"""``benchmarks/gpu_suite.py --smoke``: the whole GPU suite (all three parts, one test each) on CPU,
tiny sizes, so it is known to run before a GPU is lent. Every check must pass and every row must be
there."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SUITE = os.path.join(ROOT, "benchmarks", "gpu_suite.py")


def _smoke(tmp_path, parts: str):
    """``gpu_suite.py --smoke --parts=PARTS`` in ``tmp_path``: its rows (every one ok) and report."""
    out, scratch = tmp_path / "report", tmp_path / "tmp"
    scratch.mkdir()
    proc = subprocess.run(
        [sys.executable, SUITE, "--smoke", f"--parts={parts}", "--out", str(out)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env=dict(os.environ, TMPDIR=str(scratch)),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert not [p for p in os.listdir(scratch) if p.startswith("gpu_suite.")]  # its run folders are gone
    with open(out / "report.csv") as f:
        rows = list(csv.DictReader(f))
    failed = [(r["name"], r["values"]) for r in rows if r["status"] != "ok"]
    assert not failed, failed
    assert {r["part"] for r in rows} == set(parts)
    return rows, (out / "report.md").read_text()


# The three parts run as three tests (a parallel test run spreads them); together they are the
# whole suite's smoke run.
@pytest.mark.slow
def test_gpu_suite_smoke_part_a_one_epoch_resume_and_references(tmp_path):
    rows, report = _smoke(tmp_path, "a")
    names = {r["name"] for r in rows}
    # one epoch of each model, resume + recommend, sampled evaluation, mLSTM reference
    for model in ("GLINTRU", "mLSTM", "LSTM4Rec", "SVAE", "MultVAE", "SASRec", "GRU4Rec", "BERT4Rec"):
        assert f"one epoch: {model}" in names
    assert "resume + recommend: GLINTRU" in names
    assert {"pop100 ours == RecBole: GLINTRU", "pop100 ours == RecBole: SASRec"} <= names
    assert {"mLSTM == reference: fused", "mLSTM == reference: loop"} <= names
    resume = next(json.loads(r["values"]) for r in rows if r["name"] == "resume + recommend: GLINTRU")
    assert resume["resume_equal"] is True  # exact resumption on the CPU
    assert "## (a)" in report and "## (b)" not in report and "## (c)" not in report


@pytest.mark.slow
def test_gpu_suite_smoke_part_b_speed_rows_and_profiles(tmp_path):
    rows, report = _smoke(tmp_path, "b")
    names = {r["name"] for r in rows}
    # every model in fp32, tf32 and bf16, the compiled rows
    for model in ("SASRec", "SASRec-sdpa", "GLINTRU", "GLINTRU-full", "GRU4Rec", "BERT4Rec", "LSTM4Rec", "mLSTM"):
        assert {f"{model} fp32", f"{model} tf32", f"{model} bf16"} <= names
    for model in ("SASRec", "SASRec-sdpa", "GLINTRU", "GLINTRU-full"):
        assert {f"{model} fp32 compiled", f"{model} bf16 compiled"} <= names
    speed = [json.loads(r["values"]) for r in rows if r["name"] != "loader"]
    for values in speed:  # every row says what was in force
        expected = {"fp32": "fp32", "tf32": "tf32", "bf16": "autocast bf16, else fp32"}[values["precision"]]
        assert values["matmul"] == values["cudnn"] == expected, values
        assert values["deterministic"] in ("on", "off") and values["benchmark"] in ("on", "off")
        assert (values["graphs"] >= 1) == values["compiled"], values
    loader = next(json.loads(r["values"]) for r in rows if r["name"] == "loader")
    assert loader["device_ms_loader"] == "DeviceTrainDataLoader" and loader["recbole_ms_loader"] == "TrainDataLoader"
    assert "## (b)" in report and "## (a)" not in report and "## (c)" not in report
    for model in ("SASRec", "GLINTRU"):  # the profile of part (b)
        assert f"Where {model}'s fp32 training steps spend their time" in report
    assert "profile failed" not in report


@pytest.mark.slow
def test_gpu_suite_smoke_part_c_beauty_grid(tmp_path):
    rows, report = _smoke(tmp_path, "c")
    assert len(rows) == 2  # one row per grid run
    for r in rows:
        values = json.loads(r["values"])
        assert values["epochs"] >= 1 and 0.0 <= values["test"]["ndcg@10"] <= 1.0
    assert "## (c)" in report and "## (a)" not in report and "## (b)" not in report
