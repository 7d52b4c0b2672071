"""Each interaction's recent items: the history a session-style tower encodes (DLRM's
``sequence_tower``)."""

from __future__ import annotations

from typing import Optional, Tuple

import numpy as np
import torch


def recent_items(
    users: np.ndarray, items: np.ndarray, times: Optional[np.ndarray], length: int
) -> Tuple[torch.Tensor, torch.Tensor]:
    """For each row, the same user's ``length`` most recent items before it.

    Rows are ordered per user by ``times`` (ties, or no times: by row order).

    Args:
        users, items: ids per interaction row.
        times: time per row, or None.
        length: longest history kept.

    Returns:
        ``(history, lengths)``: ``history[r]`` the items, oldest first, right-padded with 0;
        ``lengths[r]`` how many.

    Shape:
        - users, items, times: ``[N]``
        - history: ``[N, length]`` (int64); lengths: ``[N]`` (int64)
    """
    n = len(users)
    keys = (np.arange(n), users) if times is None else (np.arange(n), times, users)
    order = np.lexsort(keys)  # by user, then time, then row
    sorted_users, sorted_items = users[order], items[order]
    position = np.arange(n)
    starts = np.r_[0, np.flatnonzero(sorted_users[1:] != sorted_users[:-1]) + 1]
    group_start = np.repeat(starts, np.diff(np.r_[starts, n]))
    counts = np.minimum(position - group_start, length)
    history = np.zeros((n, length), dtype=np.int64)
    for k in range(length):
        source = position - counts + k
        valid = k < counts
        history[valid, k] = sorted_items[source[valid]]
    out = np.zeros_like(history)
    out[order] = history
    lengths = np.zeros(n, dtype=np.int64)
    lengths[order] = counts
    return torch.from_numpy(out), torch.from_numpy(lengths)
