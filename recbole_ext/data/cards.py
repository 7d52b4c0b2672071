"""A data set's card for ``recbole-ext data stats``: the leakage of its splits, how sequential it
looks, and how concentrated its popularity is. Each figure is a function of the interactions
alone (``user_id``, ``item_id``, ``timestamp`` columns, in file order), so any reader of the
atomic files can feed it.

- :func:`leakage_card`: the leakage figure (:func:`recbole_ext.data.temporal_split.leakage`) of
  RecBole's leave-one-out split and of the global temporal split at the 0.8 / 0.9 quantiles, as
  a sequential model's run splits the data set (times as RecBole keeps them: float32).
- :func:`sequentiality_card`: two shuffle tests after Klenitskiy et al., "Does It Look
  Sequential?" (RecSys 2024): the count of 2-gram sequential rules before and after shuffling
  each user's order, and a first-order Markov model's HR@10 on the leave-one-out test item with
  the test input in time order and shuffled.
- :func:`popularity_card`: the Gini coefficient of the items' interaction counts and the share of
  interactions on the most popular 1% and 10% of the items.
"""

from __future__ import annotations

import dataclasses
from typing import Dict

import numpy as np
import pandas as pd

from recbole_ext.data.temporal_split import global_temporal_rows, leakage, resolve_cuts, run_times

__all__ = ["Sequences", "data_card", "leakage_card", "popularity_card", "sequentiality_card", "sequences"]

#: the seed of every shuffle of the card
SHUFFLE_SEED = 0
#: the 2-gram rules' thresholds of "Does It Look Sequential?": support (pair count) and confidence
RULE_SUPPORT, RULE_CONFIDENCE = 5, 0.1
#: the global temporal split the card reports
GT_CUTS = (0.8, 0.9)


@dataclasses.dataclass(frozen=True)
class Sequences:
    """Every user's interactions in time order (equal times in file order), users one after
    another. Shape: ``[n]`` arrays, ``starts`` ``[users + 1]`` offsets."""

    users: np.ndarray
    items: np.ndarray
    times: np.ndarray
    starts: np.ndarray
    n_items: int

    @property
    def n_users(self) -> int:
        return len(self.starts) - 1


def sequences(inter: pd.DataFrame) -> Sequences:
    """:class:`Sequences` of ``inter`` (``user_id``, ``item_id`` and, optional, ``timestamp``
    columns in file order; without a timestamp, file order is the time order). Times are
    float32, as RecBole keeps a float column, so ties and order are a run's."""
    users = pd.factorize(inter["user_id"])[0]
    items = pd.factorize(inter["item_id"])[0]
    if "timestamp" in inter.columns:
        times = run_times(inter["timestamp"])
    else:
        times = np.arange(len(inter), dtype=np.float64)
    order = np.lexsort((np.arange(len(users)), times, users))
    users, items, times = users[order], items[order], times[order]
    starts = np.r_[0, np.flatnonzero(users[1:] != users[:-1]) + 1, len(users)]
    return Sequences(users, items, times, starts, int(items.max()) + 1 if len(items) else 0)


def _loo_rows(seq: Sequences):
    """RecBole's leave-one-out of a sequential data set, as positions in ``seq``: each
    interaction after a user's first is a row; of a user's rows the last tests, the one before
    validates, the rest train (one row: it trains; two: train and test)."""
    lengths = np.diff(seq.starts)
    rows = lengths - 1
    last = seq.starts[1:] - 1
    test = last[rows >= 2]
    valid = (last - 1)[rows >= 3]
    held = np.zeros(len(seq.users), dtype=bool)
    held[test] = held[valid] = True
    is_first = np.zeros(len(seq.users), dtype=bool)
    is_first[seq.starts[:-1]] = True
    return np.flatnonzero(~held & ~is_first), valid, test


def leakage_card(seq: Sequences, cuts=GT_CUTS) -> Dict[str, object]:
    """The leakage figure of leave-one-out and of ``GT cuts`` (default ``[0.8, 0.9]``), with each
    split's validation and test users."""
    train, valid, test = _loo_rows(seq)
    loo = dict(leakage(seq.times[train], seq.times[test]), valid_users=len(valid))
    valid_time, test_time = resolve_cuts(seq.times, list(cuts))
    first_time = seq.times[seq.starts[:-1]]
    rows = np.setdiff1d(np.arange(len(seq.users)), seq.starts[:-1])
    parts = global_temporal_rows(seq.users[rows], seq.times[rows], first_time, valid_time, test_time)
    train, valid, test = (rows[p] for p in parts)
    gt = dict(leakage(seq.times[train], seq.times[test]), valid_users=len(valid))
    return {"leave-one-out": loo, f"GT {list(cuts)}": dict(gt, valid_time=valid_time, test_time=test_time)}


def _shuffled(seq: Sequences, rng: np.random.Generator, keep_last: bool) -> np.ndarray:
    """``seq.items`` with each user's order shuffled (all of it, or all but the last item)."""
    keys = seq.users + 0.5 * rng.random(len(seq.items))  # a random order inside each user's block
    if keep_last:
        keys[seq.starts[1:] - 1] = seq.users[seq.starts[1:] - 1] + 0.75  # stays last
    return seq.items[np.argsort(keys, kind="stable")]


def _rule_count(seq: Sequences, items: np.ndarray) -> int:
    """2-gram rules ``a -> b`` (b right after a in a user's sequence) with support and
    confidence at least :data:`RULE_SUPPORT` and :data:`RULE_CONFIDENCE`."""
    same_user = seq.users[1:] == seq.users[:-1]
    a, b = items[:-1][same_user], items[1:][same_user]
    pairs, counts = np.unique(a.astype(np.int64) * seq.n_items + b, return_counts=True)
    out_of = np.bincount(a, minlength=seq.n_items)[pairs // seq.n_items]
    return int(np.sum((counts >= RULE_SUPPORT) & (counts / out_of >= RULE_CONFIDENCE)))


def _markov_hits(seq: Sequences, inputs: np.ndarray, k: int = 10) -> float:
    """HR@k of a first-order Markov model on the leave-one-out test item of every user with 3+
    interactions: trained on the counts of ``a -> b`` in the users' sequences without their last
    item, it ranks the items by their count after the input's last item (``inputs``: the
    item before each test item), ties by training popularity, then by id."""
    n = seq.n_items
    last = seq.starts[1:] - 1
    train = np.ones(len(seq.items), dtype=bool)
    train[last] = False
    pair_ok = (seq.users[1:] == seq.users[:-1]) & train[1:]
    a, b = seq.items[:-1][pair_ok], seq.items[1:][pair_ok]
    pairs, counts = np.unique(a.astype(np.int64) * n + b, return_counts=True)
    pop = np.bincount(seq.items[train], minlength=n)
    src, dst = pairs // n, pairs % n
    order = np.lexsort((dst, -pop[dst], -counts, src))
    src, dst = src[order], dst[order]
    begin = np.searchsorted(src, np.arange(n + 1))
    popular = np.lexsort((np.arange(n), -pop))
    users = np.flatnonzero(np.diff(seq.starts) >= 3)
    hits = 0
    for u in users:
        prev, target = inputs[u], seq.items[last[u]]
        top = dst[begin[prev] : begin[prev + 1]][:k]
        if target in top:
            hits += 1
        elif len(top) < k:
            fill = popular[: k + len(top)]
            hits += int(target in fill[~np.isin(fill, top)][: k - len(top)])
    return hits / max(len(users), 1)


def sequentiality_card(seq: Sequences) -> Dict[str, object]:
    """The two shuffle tests (:mod:`this module's docstring <recbole_ext.data.cards>`), seed
    :data:`SHUFFLE_SEED`."""
    rng = np.random.default_rng(SHUFFLE_SEED)
    rules, rules_shuffled = _rule_count(seq, seq.items), _rule_count(seq, _shuffled(seq, rng, keep_last=False))
    last = seq.starts[1:] - 1
    ordered_input = np.where(np.diff(seq.starts) >= 2, seq.items[np.maximum(last - 1, 0)], 0)
    # the test input shuffled: its last item is a random one of the user's earlier items
    shuffled_input = _shuffled(seq, rng, keep_last=True)[np.maximum(last - 1, 0)]
    hr, hr_shuffled = _markov_hits(seq, ordered_input), _markov_hits(seq, shuffled_input)
    return {
        "method": "shuffle tests after Klenitskiy et al., Does It Look Sequential? (RecSys 2024)",
        "rules_2gram": rules,
        "rules_2gram_shuffled": rules_shuffled,
        "rules_change": round((rules_shuffled - rules) / rules, 4) if rules else None,
        "markov_hr@10": round(hr, 4),
        "markov_hr@10_shuffled_input": round(hr_shuffled, 4),
        "markov_hr_change": round((hr_shuffled - hr) / hr, 4) if hr else None,
    }


def popularity_card(seq: Sequences) -> Dict[str, object]:
    """Gini of the items' interaction counts (0: equal, towards 1: a few items take all) and the
    share of interactions on the top 1% and top 10% of items (at least one item each)."""
    counts = np.sort(np.bincount(seq.items, minlength=seq.n_items))[::-1].astype(np.float64)
    n, total = len(counts), counts.sum()
    if not n or not total:
        return {"gini": None, "top1pct_share": None, "top10pct_share": None}
    ascending = counts[::-1]
    gini = (2 * np.sum(np.arange(1, n + 1) * ascending) / (n * total)) - (n + 1) / n
    share = {p: float(counts[: max(1, int(np.ceil(n * p / 100)))].sum() / total) for p in (1, 10)}
    return {"gini": round(float(gini), 4), "top1pct_share": round(share[1], 4), "top10pct_share": round(share[10], 4)}


def data_card(inter: pd.DataFrame) -> Dict[str, object]:
    """Leakage (with a timestamp column), sequentiality and popularity of ``inter``."""
    seq = sequences(inter)
    card: Dict[str, object] = {}
    if "timestamp" in inter.columns:
        card["leakage"] = leakage_card(seq)
    card["sequentiality"] = sequentiality_card(seq)
    card["popularity"] = popularity_card(seq)
    return card
