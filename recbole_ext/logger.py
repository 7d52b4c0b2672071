"""Logging set-up: RecBole's format, one log file per run.

RecBole's ``init_logger`` calls ``logging.basicConfig``, which does nothing once the root logger
has handlers, so in one process every model after the first logs into the first model's file.
:func:`init_logger` replaces the handlers it installed on each call instead.
"""

from __future__ import annotations

import hashlib
import logging
import os
from typing import Optional

import colorlog
from colorama import init as colorama_init
from recbole.utils.logger import RemoveColorFilter, log_colors_config
from recbole.utils import get_local_time

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


def init_logger(config, log_dir: str = "./log", console: bool = True) -> str:
    """Log to ``<log_dir>/<model>/<model>-<dataset>-<time>-<md5>.log`` and to the console.

    Returns:
        The path of the log file.
    """
    colorama_init(autoreset=True)
    close_logger()
    model_dir = os.path.join(log_dir, config["model"])
    os.makedirs(model_dir, exist_ok=True)
    config_str = "".join(str(v) for v in config.final_config_dict.values())
    md5 = hashlib.md5(config_str.encode("utf-8")).hexdigest()[:6]
    stem = os.path.join(model_dir, f'{config["model"]}-{config["dataset"]}-{get_local_time()}-{md5}')
    path, n = f"{stem}.log", 1
    while os.path.exists(path):  # two runs within one second: never share (append to) a file
        path, n = f"{stem}-{n}.log", n + 1
    level = _level(config["state"])

    fh = logging.FileHandler(path)
    fh.setLevel(level)
    fh.setFormatter(logging.Formatter("%(asctime)-15s %(levelname)s  %(message)s", "%a %d %b %Y %H:%M:%S"))
    fh.addFilter(RemoveColorFilter())
    handlers = [fh]
    if console:
        sh = logging.StreamHandler()
        sh.setLevel(level)
        sh.setFormatter(
            colorlog.ColoredFormatter(
                "%(log_color)s%(asctime)-15s %(levelname)s  %(message)s", "%d %b %H:%M",
                log_colors=log_colors_config,
            )
        )
        handlers.append(sh)
    root = logging.getLogger()
    root.setLevel(level)
    for h in handlers:
        setattr(h, _OUR_HANDLERS, True)
        root.addHandler(h)
    return path
