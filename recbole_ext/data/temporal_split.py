"""The global temporal split of sequential data sets (``eval_args: {split: {GT: [valid_cut,
test_cut]}, order: TO}``) and the leakage figure of any split.

A sequential data set holds one row per interaction after each user's first: the interaction
(the target, with its time) and the user's items before it (the history). The split selects
rows:

- training: every row whose target happened before ``valid_cut``;
- validation: for each user with an interaction before ``valid_cut``, the first row whose target
  lies in ``[valid_cut, test_cut)``;
- test: for each user with an interaction before ``test_cut``, the first row whose target lies at
  or after ``test_cut``.

A row's history is everything of the user's before its target (cut to ``MAX_ITEM_LIST_LENGTH``),
so a test row's history holds the user's validation-period items. Equal times keep file order,
as the data set's stable sort by user and time does. Times are the data set's time column as
RecBole keeps it (float32: near 1e9 seconds, times 64 s apart can be equal). Cut points below 1
are quantiles of the times of all interactions (linear interpolation, ``numpy.quantile``'s default); 1 and above are
times in the time column's unit. See docs/evaluation.md for the protocol and where it differs
from "Time to Split" (Gusak et al., RecSys 2025).
"""

from __future__ import annotations

from typing import Dict, Optional, Sequence, Tuple

import numpy as np
import pandas as pd

from recbole_ext.data.split_methods import GT, gt_cut_problem
from recbole_ext.errors import ConfigError

__all__ = ["GT", "GlobalTemporalSplitMixin", "gt_cut_problem", "global_temporal_rows", "leakage", "resolve_cuts"]

#: how a run's log carries the leakage figure (a JSON dict follows)
LEAKAGE_LOG_PREFIX = "split leakage: "


def run_times(values) -> np.ndarray:
    """Times as a run compares them: RecBole keeps a float column as float32 (near 1e9 seconds,
    times less than 64 s apart become equal), returned as float64 for arithmetic. ``values``:
    numbers, or text read from an atomic file (a blank or malformed cell becomes NaN)."""
    values = np.asarray(values)
    if values.dtype.kind not in "fiu":
        values = pd.to_numeric(pd.Series(values), errors="coerce").to_numpy()
    return values.astype(np.float32).astype(np.float64)


def resolve_cuts(times: np.ndarray, cuts: Sequence[float]) -> Tuple[float, float]:
    """The two cut times: quantiles of ``times`` when below 1, else the values themselves.

    Args:
        times: ``[n]`` the times of all interactions.
        cuts: ``[valid_cut, test_cut]`` (checked by :func:`gt_cut_problem`).

    Returns:
        ``(valid_time, test_time)``.
    """
    problem = gt_cut_problem(cuts)
    if problem:
        raise ConfigError(f"invalid configuration: eval_args split: {problem}")
    if cuts[1] < 1:
        low, high = np.quantile(np.asarray(times, dtype=np.float64), [float(cuts[0]), float(cuts[1])])
        return float(low), float(high)
    return float(cuts[0]), float(cuts[1])


def _first_per_user(rows: np.ndarray, users: np.ndarray) -> np.ndarray:
    """The first of ``rows`` (ordered by user, then time) of each user."""
    keep = np.r_[True, users[1:] != users[:-1]] if len(users) else np.zeros(0, dtype=bool)
    return rows[keep]


def global_temporal_rows(
    users: np.ndarray, times: np.ndarray, first_time: np.ndarray, valid_time: float, test_time: float
) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The rows of each part of the global temporal split.

    Args:
        users: ``[n]`` the user of each row (each row: one target after a non-empty history).
        times: ``[n]`` the target's time.
        first_time: ``[user_num]`` the time of each user's first interaction.
        valid_time: the validation cut (a time).
        test_time: the test cut (a time).

    Returns:
        ``(train, valid, test)``: row indices; training rows ordered by user then time, one
        validation and one test row per user at most. Ties keep the rows' order.
    """
    order = np.lexsort((np.arange(len(users)), times, users))
    u, t = users[order], times[order]
    train = order[t < valid_time]
    in_valid = (t >= valid_time) & (t < test_time) & (first_time[u] < valid_time)
    in_test = (t >= test_time) & (first_time[u] < test_time)
    valid = _first_per_user(order[in_valid], u[in_valid])
    test = _first_per_user(order[in_test], u[in_test])
    return train, valid, test


def leakage(
    train_times: np.ndarray, test_times: np.ndarray, test_users: Optional[np.ndarray] = None
) -> Dict[str, object]:
    """How many test targets are older than the newest training interaction (strictly: equal
    times do not count), and the share of test users with such a target.

    Args:
        train_times: ``[n]`` the times of the training interactions (the targets of the
            training rows; their histories are older).
        test_times: ``[m]`` the times of the test targets.
        test_users: ``[m]`` the user of each test target (``None``: one target per user, as in a
            sequential model's splits).

    Returns:
        ``test_targets``, ``older_than_newest_training`` (targets), ``test_users`` and
        ``share_of_test_users`` (the share with at least one such target).
    """
    test_times = np.asarray(test_times, dtype=np.float64)
    users = np.arange(len(test_times)) if test_users is None else np.asarray(test_users)
    newest = float(np.max(train_times)) if len(train_times) else -np.inf
    older = test_times < newest
    n_users = len(np.unique(users))
    share = len(np.unique(users[older])) / n_users if n_users else 0.0
    return {
        "test_targets": len(test_times),
        "older_than_newest_training": int(older.sum()),
        "test_users": n_users,
        "share_of_test_users": round(share, 4),
    }


def split_leakage(
    parts: Sequence, time_field: Optional[str], uid_field: Optional[str] = None
) -> Optional[Dict[str, object]]:
    """:func:`leakage` of a built split (RecBole's train, valid, test data sets; with
    ``uid_field``, the test part's users count once each); ``None`` when the data set has no
    time column or a part is missing."""
    if not time_field or any(p is None or time_field not in p.inter_feat for p in (parts[0], parts[2])):
        return None
    test = parts[2].inter_feat
    users = test[uid_field].numpy() if uid_field and uid_field in test else None
    return leakage(parts[0].inter_feat[time_field].numpy(), test[time_field].numpy(), users)


def split_label(split: object) -> str:
    """A split in words: ``leave-one-out``, ``GT [0.8, 0.9]``, else RecBole's dict as given."""
    if isinstance(split, dict) and len(split) == 1:
        ((method, value),) = split.items()
        if method == "LS":
            return "leave-one-out" if value == "valid_and_test" else f"leave-one-out ({value})"
        if method == GT:
            return f"GT {list(value) if isinstance(value, (list, tuple)) else value}"
    return str(split)


def leakage_text(figure: Dict[str, object]) -> str:
    """The leakage figure, short: ``leakage 25.0% of users (1/4 targets)``: the share of test
    users with a target older than the newest training interaction, and the targets' counts."""
    share = 100 * float(figure["share_of_test_users"])
    targets = figure.get("test_targets", figure["test_users"])
    return f"leakage {share:.1f}% of users ({figure['older_than_newest_training']}/{targets} targets)"


class GlobalTemporalSplitMixin:
    """A data set's ``build`` with the global temporal split (``split: {GT: [...]}``) in front of
    RecBole's splits. Only sequential data sets (one row per target, with its history) take it."""

    def build(self):
        """RecBole's ``build`` unless the split is ``GT``; then the cuts from every interaction's
        time, RecBole's augmentation (one row per target) and :func:`global_temporal_rows`.

        Returns:
            ``[train, valid, test]`` copies of the data set, as RecBole's splits return them.
        """
        split = (self.config["eval_args"] or {}).get("split") or {}
        if GT not in split:
            return super().build()
        if not hasattr(self, "item_list_length_field") or self.benchmark_filename_list is not None:
            raise ConfigError(
                "invalid configuration: eval_args split GT is for sequential models on one interaction file"
            )
        frame = self.inter_feat  # every interaction, after the data set's filters
        times = run_times(frame[self.time_field])
        first_time = np.full(self.user_num, np.inf)
        np.minimum.at(first_time, np.asarray(frame[self.uid_field], dtype=np.int64), times)
        valid_time, test_time = resolve_cuts(times, split[GT])
        self.logger.info(f"global temporal split: validation from time {valid_time}, test from time {test_time}")
        self._change_feat_format()  # one row per target (RecBole's augmentation)
        inter = self.inter_feat
        users, row_times = inter[self.uid_field].numpy(), inter[self.time_field].numpy().astype(np.float64)
        rows = global_temporal_rows(users, row_times, first_time, valid_time, test_time)
        self._drop_unused_col()
        return [self.copy(inter[part]) for part in rows]
