"""The journal file a tuning run keeps its Optuna studies in, and the lock its writers share.

Optuna's default journal lock is a symbolic link that a killed writer leaves behind; the next
writer then waits for Optuna's grace period (30 s of an unchanged lock) or, where the link is
relative, for good. The lock here is an ``flock`` on ``<journal>.lock``: the kernel releases it
when its process ends however it ends, so a killed run never leaves a lock to wait on. A
symbolic-link lock that such a run left (Optuna's own, from another program on the journal) is
removed with one line when it is found; a live writer holds it for milliseconds only, so one
found at start-up and older than a few seconds is a killed writer's.
"""

from __future__ import annotations

import fcntl
import os
import sys
import time

from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend

#: how old a symbolic-link lock must be before it is taken for a killed writer's (seconds)
STALE_LINK_S = 5.0


class FlockLock:
    """An exclusive ``flock`` on ``path`` (a file of its own beside the journal), freed by the
    kernel when its process ends. It has the two methods Optuna's journal backend calls on its
    lock (Optuna's base class for them is private)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._fd = None

    def acquire(self) -> bool:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        return True

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)


def clear_stale_link(lock_path: str, echo=None) -> bool:
    """Remove a symbolic-link lock at ``lock_path`` left by a killed writer (one line on
    ``echo``, stderr by default); returns whether one was removed."""
    if not os.path.islink(lock_path):
        return False
    try:
        age = time.time() - os.lstat(lock_path).st_mtime
    except OSError:
        return False
    if age < STALE_LINK_S:
        return False
    try:
        os.unlink(lock_path)
    except FileNotFoundError:
        return False
    line = f"recbole_ext: released the lock {lock_path}, left {age:.0f} s ago by a writer that is gone"
    (echo or (lambda text: print(text, file=sys.stderr)))(line)
    return True


def journal_storage(path: str) -> JournalStorage:
    """Optuna's journal storage at ``path`` (made absolute) under :class:`FlockLock`."""
    path = os.path.abspath(path)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    lock_path = path + ".lock"
    clear_stale_link(lock_path)
    return JournalStorage(JournalFileBackend(path, lock_obj=FlockLock(lock_path)))
