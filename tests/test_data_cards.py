"""The data-set card of ``recbole-ext data stats``: leakage (equal to what a run's split logs),
the shuffle tests of sequentiality against naive references and on data with a known rule,
popularity concentration by hand, and the card through the command line."""

from __future__ import annotations

import json
import os

import numpy as np
import pandas as pd
import pytest
from test_temporal_split import ROWS

from recbole_ext.data.cards import (
    _markov_hits,
    _rule_count,
    leakage_card,
    popularity_card,
    sequences,
    sequentiality_card,
)
from recbole_ext.data.temporal_split import split_leakage
from recbole_ext.pipeline import Run

from conftest import ML100K, rule_sequences, write_inter

SHARED = os.environ.get("RECBOLE_EXT_TEST_DATA")


def _frame(rows) -> pd.DataFrame:
    return pd.DataFrame([tuple(map(str, r)) for r in rows], columns=["user_id", "item_id", "timestamp"])


def test_leakage_card_equals_the_runs_split_figures(tmp_path):
    """The card's leave-one-out and GT figures are the ones a sequential model's run logs for the
    same data set (RecBole's leave-one-out of rows, GT at times 100 and 200)."""
    card = leakage_card(sequences(_frame(ROWS)), cuts=(100, 200))
    write_inter(str(tmp_path), "toy", ROWS)
    for split, key in (({"LS": "valid_and_test"}, "leave-one-out"), ({"GT": [100, 200]}, "GT [100, 200]")):
        run = Run.resolve(
            "GRU4Rec",
            "toy",
            config_dict={
                "data_path": str(tmp_path),
                "eval_args": {"split": split, "order": "TO", "mode": "full", "group_by": "user"},
                "topk": [1],
                "valid_metric": "MRR@1",
                "state": "ERROR",
            },
        )
        splits = run.prepare_data()
        figure = split_leakage(splits.parts, splits.dataset.time_field, splits.dataset.uid_field)
        assert {k: card[key][k] for k in figure} == figure
        assert card[key]["valid_users"] == len(splits.parts[1])
    assert card["leave-one-out"]["older_than_newest_training"] == 1  # d's target at 90 (see test_temporal_split)


def naive_markov_hr(rows, inputs_of, k: int = 10) -> float:
    """HR@k of the first-order Markov model, by its definition, one user at a time."""
    frame = _frame(rows).assign(t=lambda f: f["timestamp"].astype(float))
    seqs = {u: g.sort_values("t", kind="stable")["item_id"].tolist() for u, g in frame.groupby("user_id", sort=False)}
    counts: dict = {}
    pop: dict = {}
    for s in seqs.values():
        for a, b in zip(s[:-2], s[1:-1]):
            counts[(a, b)] = counts.get((a, b), 0) + 1
        for x in s[:-1]:
            pop[x] = pop.get(x, 0) + 1
    items = list(dict.fromkeys(frame.sort_values(["user_id", "t"], kind="stable")["item_id"]))
    first_seen = {x: i for i, x in enumerate(pd.unique(frame["item_id"]))}
    hits = users = 0
    for u, s in seqs.items():
        if len(s) < 3:
            continue
        users += 1
        prev = inputs_of(u, s)
        ranked = sorted(items, key=lambda x: (-counts.get((prev, x), 0), -pop.get(x, 0), first_seen[x]))
        hits += s[-1] in ranked[:k]
    return hits / users


def test_markov_hr_equals_the_naive_reference():
    """Random data with many ties: the vectorised HR@10 equals the per-user definition."""
    rng = np.random.default_rng(3)
    rows = [(f"u{rng.integers(30)}", f"i{rng.integers(25)}", int(rng.integers(50))) for _ in range(600)]
    seq = sequences(_frame(rows))
    last = seq.starts[1:] - 1
    ordered = np.where(np.diff(seq.starts) >= 2, seq.items[np.maximum(last - 1, 0)], 0)
    assert _markov_hits(seq, ordered) == pytest.approx(naive_markov_hr(rows, lambda u, s: s[-2]))


def test_shuffle_tests_see_a_known_rule_and_no_rule():
    """Next item = perm[current] 90% of the time: every item has its 2-gram rule, the Markov model
    finds the test item almost always, and shuffling destroys both; items in random order: no
    rule either way, and the shuffled input changes HR@10 little."""
    ruled = sequentiality_card(sequences(_frame(rule_sequences(n_users=200, n_items=40))))
    assert ruled["rules_2gram"] == 40 and ruled["rules_change"] < -0.5
    assert ruled["markov_hr@10"] > 0.85 and ruled["markov_hr_change"] < -0.5
    rng = np.random.default_rng(1)
    rows = [(u, int(rng.integers(1, 200)), t) for u in range(300) for t in range(20)]
    plain = sequentiality_card(sequences(_frame(rows)))
    assert plain["rules_2gram"] == 0
    assert abs(plain["markov_hr@10"] - plain["markov_hr@10_shuffled_input"]) < 0.05


def test_rule_count_by_hand():
    """a->b five times (confidence 5/6), a->c once (1/6 >= 0.1, support 1 < 5): one rule."""
    rows = [(u, x, t) for u in range(5) for t, x in enumerate(["a", "b"])] + [(9, "a", 0), (9, "c", 1)]
    seq = sequences(_frame(rows))
    assert _rule_count(seq, seq.items) == 1


def test_popularity_by_hand():
    """Counts 4, 3, 2, 1 (and 10 items for the top shares): Gini from its mean-difference form."""
    rows = [(u, "x", 0) for u in range(4)] + [(u, "y", 1) for u in range(3)] + [(u, "z", 2) for u in range(2)]
    card = popularity_card(sequences(_frame(rows + [(0, "w", 3)])))
    x = np.array([4, 3, 2, 1], dtype=float)
    gini = np.abs(x[:, None] - x[None, :]).sum() / (2 * len(x) ** 2 * x.mean())
    assert card["gini"] == pytest.approx(gini, abs=1e-4)
    assert card["top1pct_share"] == 0.4 and card["top10pct_share"] == 0.4  # one item each: x, 4 of 10
    rows = [(u, f"i{j}", 0) for j in range(20) for u in range(j + 1)]  # item j has j + 1 interactions
    card = popularity_card(sequences(_frame(rows)))
    assert card["top10pct_share"] == pytest.approx((20 + 19) / sum(range(1, 21)), abs=1e-4)


def test_data_stats_prints_the_card(tmp_path, capsys):
    """``data stats`` on ml-100k (the copy in RecBole's wheel, by its folder)."""
    from recbole_ext.cli import main as cli

    folder = tmp_path / "ml-100k"
    folder.mkdir()
    os.symlink(ML100K, folder / "ml-100k.inter")
    assert cli(["data", "stats", "ml-100k", f"--data_path={tmp_path}"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["leakage"]["leave-one-out"]["test_users"] == 943
    assert out["leakage"]["GT [0.8, 0.9]"]["older_than_newest_training"] == 0
    assert 0 < out["popularity"]["gini"] < 1 and "Does It Look Sequential" in out["sequentiality"]["method"]


@pytest.mark.slow
@pytest.mark.skipif(not SHARED, reason="$RECBOLE_EXT_TEST_DATA names no data folder")
@pytest.mark.parametrize("name", ["amazon-beauty-time", "ml-1m-item5"])
def test_cards_of_the_shared_data_sets_with_real_times(name):
    """Leave-one-out leaks on both (some test targets are older than other users' training);
    GT never does."""
    from recbole_ext.data.stats import dataset_stats

    figures = dataset_stats(os.path.join(SHARED, name), name)
    assert figures["leakage"]["leave-one-out"]["share_of_test_users"] > 0
    assert figures["leakage"]["GT [0.8, 0.9]"]["older_than_newest_training"] == 0
