"""Logging set-up: RecBole's format, one log file per run.

RecBole's ``init_logger`` calls ``logging.basicConfig``, which does nothing once the root logger
has handlers, so in one process every model after the first logs into the first model's file.
:func:`init_logger` replaces the handlers it installed on each call instead.
"""

from __future__ import annotations

import logging
import os
import secrets
from typing import Optional

import colorlog
from colorama import init as colorama_init
from recbole.utils import get_local_time
from recbole.utils.logger import RemoveColorFilter, log_colors_config

_OUR_HANDLERS = "_recbole_ext_handler"


def _level(state: Optional[str]) -> int:
    return {
        "debug": logging.DEBUG,
        "info": logging.INFO,
        "warning": logging.WARNING,
        "error": logging.ERROR,
        "critical": logging.CRITICAL,
    }.get(str(state or "info").lower(), logging.INFO)


def close_logger() -> None:
    """Remove and close the handlers :func:`init_logger` installed."""
    root = logging.getLogger()
    for h in list(root.handlers):
        if getattr(h, _OUR_HANDLERS, False):
            root.removeHandler(h)
            h.close()


def new_run_id(config) -> str:
    """``<model>-<dataset>-<time to the second>-<8 random hex digits>``: unique even for runs
    started in the same second, and free of dots (RecBole names the TensorBoard folder after the
    log file's name up to its first dot)."""
    dataset = str(config["dataset"]).replace(".", "_")
    return f"{config['model']}-{dataset}-{get_local_time()}-{secrets.token_hex(4)}"


class _ConsoleFilter(logging.Filter):
    """Keeps records logged with ``extra={"file_only": True}`` (the config dump) off the console."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not getattr(record, "file_only", False)


def init_logger(
    config,
    log_dir: str = "./log",
    console: bool = True,
    run_id: Optional[str] = None,
    main: bool = True,
    rank_log: Optional[int] = None,
) -> str:
    """Log to ``<log_dir>/<model>/<run id>.log`` (see :func:`new_run_id`) and to the console,
    and set ``config["run_id"]``: the trainer names the checkpoint after it, and RecBole's
    ``get_tensorboard`` the TensorBoard folder after the log file, so a run's log, TensorBoard
    folder and checkpoint share one name.

    Args:
        run_id: the run's id (one chosen by rank 0 of a data-parallel run); a new one if None.
        main: False on ranks other than 0 of a data-parallel run: no log file, and only errors
            on the console.
        rank_log: on such a rank, its number to log everything to
            ``<log_dir>/<model>/<run id>/rank<k>.log`` (the ``rank_log`` key; for debugging).

    Returns:
        The path of the log file.
    """
    colorama_init(autoreset=True)
    close_logger()
    model_dir = os.path.join(log_dir, config["model"])
    run_id = run_id or new_run_id(config)
    config["run_id"] = run_id
    path = os.path.join(model_dir, run_id + ".log")
    level = _level(config["state"]) if main else logging.ERROR
    handlers = []
    fh = None
    if main:
        fh = _file_handler(path, level)
        handlers.append(fh)
    if console:
        handlers.append(_console_handler(level))
    if not main and rank_log is not None:  # after the console: not the file RecBole names TensorBoard after
        handlers.append(_file_handler(os.path.join(model_dir, run_id, f"rank{rank_log}.log"), logging.INFO))
    root = logging.getLogger()
    root.setLevel(min(h.level for h in handlers) if handlers else level)
    for h in handlers:
        setattr(h, _OUR_HANDLERS, True)
        root.addHandler(h)
    # RecBole names the TensorBoard folder after the first root handler with a file: ours, not a
    # handler someone else installed before (pytest's logs to /dev/null, which would give "null")
    if fh is not None:
        root.handlers.remove(fh)
        root.handlers.insert(0, fh)
    return path


def _file_handler(path: str, level: int) -> logging.FileHandler:
    """A log file at ``path`` (its folder made), without colour codes."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fh = logging.FileHandler(path)
    fh.setLevel(level)
    fh.setFormatter(logging.Formatter("%(asctime)-15s %(levelname)s  %(message)s", "%a %d %b %Y %H:%M:%S"))
    fh.addFilter(RemoveColorFilter())
    return fh


def _console_handler(level: int) -> logging.StreamHandler:
    """The console's handler: coloured, without the records meant for the file only."""
    sh = logging.StreamHandler()
    sh.setLevel(level)
    sh.addFilter(_ConsoleFilter())
    sh.setFormatter(
        colorlog.ColoredFormatter(
            "%(log_color)s%(asctime)-15s %(levelname)s  %(message)s", "%d %b %H:%M", log_colors=log_colors_config
        )
    )
    return sh
