"""Atomic file writes: a crash or an error never leaves a truncated or half-written file."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from typing import IO, Iterator, List, Optional, Tuple, Type, Union


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
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600: the file gets what open() would give it
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(path: str, text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    with atomic_open(path, "w") as f:
        f.write(text)


def missing_folders(path: str) -> List[str]:
    """``path`` and each folder above it that does not exist yet, the deepest first: what making
    ``path`` would create, for :func:`remove_empty_folders` to take back."""
    missing, folder = [], os.path.abspath(path)
    while not os.path.exists(folder):
        missing.append(folder)
        folder = os.path.dirname(folder)
    return missing


def remove_empty_folders(folders: List[str]) -> None:
    """Remove each of ``folders`` (deepest first, as :func:`missing_folders` lists them) that
    is an empty folder."""
    for folder in folders:
        if os.path.isdir(folder) and not os.listdir(folder):
            os.rmdir(folder)


@contextlib.contextmanager
def folder_taken_back_on(
    errors: Union[Type[BaseException], Tuple[Type[BaseException], ...]], path: str
) -> Iterator[None]:
    """Run the block; when it raises one of ``errors``, remove ``path`` with what the block wrote
    into it, and the empty folders above it, if ``path`` did not exist before the block."""
    made = missing_folders(path)
    try:
        yield
    except errors:
        if made:
            shutil.rmtree(path, ignore_errors=True)
            remove_empty_folders(made)
        raise


def write_failure(error: BaseException) -> str:
    """Why a write failed, in a few words: the ``strerror`` of the first :class:`OSError` in
    ``error``'s chain (torch's zip writer wraps a full disk's ``OSError`` in a
    ``RuntimeError``), else the first line of ``error``'s message."""
    seen = error
    while seen is not None:
        if isinstance(seen, OSError) and seen.strerror:
            return seen.strerror
        seen = seen.__cause__ or seen.__context__
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


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


def folder_problem(path: str) -> Optional[str]:
    """Why files cannot be written into the folder ``path`` (made later if it is missing), or
    ``None``: it is a file, or the nearest folder that exists on its way does not take a file
    (read-only, no permission). Nothing is left behind."""
    target = os.path.abspath(path)
    if os.path.exists(target) and not os.path.isdir(target):
        return f"{path} is a file, not a folder"
    existing = target
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        return f"{path} cannot be made: {existing} is a file"
    try:
        fd, probe = tempfile.mkstemp(prefix=".write-check-", dir=existing)
    except OSError as e:
        return f"{path} cannot be written ({e.strerror or e})"
    os.close(fd)
    os.unlink(probe)
    return None
