"""A representative part of the model sweep (``python tools/sweep.py`` runs all of it)."""

from __future__ import annotations

import os
import sys

import pytest

from recbole_ext.registry import own_model_names

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tools"))
import sweep  # noqa: E402  (tools/sweep.py)

from sweep_data import write_sweep_dataset  # noqa: E402

# one general, one graph (scipy fix), one context-aware, one sequential, one knowledge-based
# (KGTrainer set_mode path) model of RecBole's list
REPRESENTATIVE = ["BPR", "LightGCN", "FM", "GRU4Rec", "CKE"]


def test_case_list_is_recboles():
    recbole = [c for c in sweep.all_cases() if c.origin == "recbole"]
    assert len(recbole) == 137
    assert len({c.model for c in recbole}) == 90
    assert {c.model for c in sweep.all_cases() if c.origin == "recbole_ext"} == set(own_model_names())


@pytest.fixture(scope="module")
def small_data(tmp_path_factory):
    return write_sweep_dataset(str(tmp_path_factory.mktemp("sweep")), n_users=60, n_items=60, per_user=8)


def _first_case(model):
    return next(c for c in sweep.all_cases([model]))


@pytest.mark.parametrize("model", REPRESENTATIVE + own_model_names())
def test_model_runs_on_sweep_data(model, small_data, tmp_path):
    case = _first_case(model)
    result = sweep.run_case(case, small_data, str(tmp_path))
    if result.status == "skipped":
        assert result.cause.startswith("pip install ")
        pytest.skip(f"{model}: {result.cause}")
    assert result.status == "ok", result.cause
    assert result.extra["test_result"]


def test_failure_is_reported_and_sweep_goes_on(small_data, tmp_path):
    bad = sweep.Case("BPR", "general", {"model": "BPR", "embedding_size": -3}, "BPR (broken)")
    good = _first_case("Pop")
    results = [sweep.run_case(c, small_data, str(tmp_path / str(i))) for i, c in enumerate([bad, good])]
    assert results[0].status == "failed" and "\n" not in results[0].cause and results[0].cause
    assert results[1].status == "ok"
    table = sweep.format_table(results)
    assert "| BPR (broken) | general | failed |" in table and "1 ok, 1 failed, 0 skipped" in table


def test_missing_optional_package_is_a_skip(small_data, tmp_path, monkeypatch):
    monkeypatch.setitem(sweep.OPTIONAL_PACKAGES, "Pop", ["surely_not_installed_pkg"])
    monkeypatch.setitem(sweep.PIP_NAMES, "surely_not_installed_pkg", "surely-not-installed")
    r = sweep.run_case(_first_case("Pop"), small_data, str(tmp_path))
    assert r.status == "skipped" and r.cause == "pip install surely-not-installed"
