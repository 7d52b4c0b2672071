"""RecBole, checked before anything of recbole_ext loads (a leaf: imports nothing of ours).

recbole_ext runs on RecBole 1.2.x, installed without its dependencies (RecBole 1.2.1 pins
``ray<=2.6.3``, which recbole_ext never imports and which has no wheel for Python 3.12+). When
RecBole is missing or of another version, :func:`check_recbole` raises
:class:`RecBoleRequirementError` with one line saying what to install; left uncaught (a command
line, a script), it prints ``recbole_ext: error: ...`` and exits with status 2, without a traceback.
"""

from __future__ import annotations

import os
import sys

INSTALL = "pip install --no-deps recbole==1.2.1"
SUPPORTED = "1.2."


class RecBoleRequirementError(ImportError):
    """RecBole is missing or of a version recbole_ext does not support."""

    exit_code = 2


def _one_line_hook(previous):
    def hook(kind, value, tb):
        if isinstance(value, RecBoleRequirementError):
            sys.stderr.write(f"recbole_ext: error: {value}\n")
            sys.stderr.flush()
            os._exit(value.exit_code)
        previous(kind, value, tb)

    return hook


def check_recbole() -> None:
    """Raise :class:`RecBoleRequirementError` unless RecBole 1.2.x can be imported."""
    try:
        import recbole  # noqa: PLC0415 - the check itself: whether RecBole imports
    except ImportError as e:
        problem = f"RecBole is not installed ({e})"
    else:
        version = str(getattr(recbole, "__version__", "unknown"))
        if version.startswith(SUPPORTED):
            return
        problem = f"RecBole {version} is installed, but recbole_ext needs RecBole {SUPPORTED}x"
    sys.excepthook = _one_line_hook(sys.excepthook)
    raise RecBoleRequirementError(f"{problem}; install it without its dependencies: {INSTALL}")
