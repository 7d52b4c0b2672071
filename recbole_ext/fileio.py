"""Atomic file writes: a crash or an error never leaves a truncated or half-written file."""

from __future__ import annotations

import contextlib
import os
import tempfile
from typing import IO, Iterator


@contextlib.contextmanager
def atomic_open(path: str, mode: str = "w", suffix: str = "") -> Iterator[IO]:
    """Open a temporary file beside ``path`` for writing; on success fsync it and rename it over
    ``path``, on any exception remove it and re-raise.

    Args:
        path: the final file.
        mode: ``"w"`` (text, UTF-8) or ``"wb"``.
        suffix: suffix of the temporary file's name.
    """
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=suffix, dir=folder)
    try:
        with os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str, text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    with atomic_open(path, "w") as f:
        f.write(text)


def line_of_bad_byte(path: str, encoding: str) -> int:
    """The 1-based number of the first line of ``path`` that does not decode as ``encoding``
    (1 when every line does)."""
    with open(path, "rb") as f:
        for number, raw in enumerate(f, start=1):
            try:
                raw.decode(encoding)
            except (UnicodeDecodeError, LookupError):
                return number
    return 1
