"""The real data the benchmarks use, in the folder ``$RECBOLE_EXT_TEST_DATA`` names (``.ci/run``
names the project's shared data folder when it has one). The product never looks there by
itself: the test passes the folder as ``data_path``, as a user would."""

from __future__ import annotations

import os

import pytest

from recbole_ext.pipeline import Run

SHARED = os.environ.get("RECBOLE_EXT_TEST_DATA")


@pytest.mark.slow
@pytest.mark.skipif(not SHARED, reason="$RECBOLE_EXT_TEST_DATA names no data folder")
def test_amazon_beauty_loads_with_the_papers_counts():
    """The GLINT-RU paper's Beauty (its Table 1: 22,363 users, 12,101 items, 198,502
    interactions) through the shipped data-set YAML and the paper's pop100 protocol."""
    run = Run.resolve(
        "GLINTRU",
        "amazon-beauty",
        ["protocol-pop100.yaml"],
        {"data_path": SHARED, "download": "never", "state": "ERROR"},
    )
    assert run.locate_data() == os.path.join(SHARED, "amazon-beauty")
    dataset = run.load_dataset()
    assert (dataset.user_num - 1, dataset.item_num - 1, dataset.inter_num) == (22363, 12101, 198502)
    assert run.config["MAX_ITEM_LIST_LENGTH"] == 100 and run.config["eval_args"]["mode"]["test"] == "pop100"
