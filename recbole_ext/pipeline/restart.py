"""A torchrun group that restarts (``--max_restarts``) after a rank failed continues its own run.

torchrun starts the same command again with ``TORCHELASTIC_RESTART_COUNT`` raised by one; left
alone, the new group would start from epoch 0 under a new run id and leave the checkpoint of the
finished epochs unused. At the first start rank 0 notes the run's checkpoint in
``<checkpoint_dir>/.torchrun-<host>-<agent pid>.json`` (the agent's process id is the one thing
that stays the same across its restarts); a restart finds that note and resumes the checkpoint
when an epoch had finished (else it starts over). The note is removed when the run ends well.
"""

from __future__ import annotations

import json
import os
import socket
from logging import getLogger
from typing import Optional

from recbole_ext.distributed import broadcast, is_distributed, rank
from recbole_ext.fileio import atomic_write_text


def note_path(checkpoint_dir: str, env=None) -> Optional[str]:
    """Where this torchrun agent's note lives (``None`` outside torchrun)."""
    env = os.environ if env is None else env
    if "TORCHELASTIC_RUN_ID" not in env:
        return None
    return os.path.join(checkpoint_dir, f".torchrun-{socket.gethostname()}-{os.getppid()}.json")


def _own_note(cfg, saved: bool) -> Optional[str]:
    """The note this process reads and writes: rank 0's, under torchrun, for a saved run."""
    return note_path(cfg["checkpoint_dir"]) if saved and rank() == 0 else None


def restarted_checkpoint(cfg, resume_file: Optional[str], saved: bool) -> Optional[str]:
    """The checkpoint to resume: ``resume_file`` as given, or, in a group torchrun restarted,
    the one its first start noted (when it holds a finished epoch). Rank 0 decides for all."""
    choice = resume_file
    path = _own_note(cfg, saved)
    restarts = int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0") or 0)
    if path and restarts > 0 and not resume_file:
        try:
            with open(path, encoding="utf-8") as f:
                noted = json.load(f)["checkpoint"]
            choice = noted if os.path.isfile(noted) else None
        except (OSError, ValueError, KeyError, TypeError):
            choice = None
    return broadcast(choice) if is_distributed(cfg) else choice


def note_checkpoint(cfg, checkpoint_file: str, saved: bool) -> None:
    """Rank 0 of a torchrun group notes the run's checkpoint for a restart."""
    path = _own_note(cfg, saved)
    if path:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        atomic_write_text(path, json.dumps({"checkpoint": os.path.abspath(checkpoint_file)}) + "\n")


def forget(cfg, saved: bool) -> None:
    """The run ended well: its note goes."""
    path = _own_note(cfg, saved)
    if path:
        try:
            os.remove(path)
        except FileNotFoundError:
            pass


def restart_point(cfg, resume_file: Optional[str], saved: bool) -> Optional[str]:
    """The checkpoint a run continues: ``resume_file``, or, in a group torchrun restarted, the
    run's own (:func:`restarted_checkpoint`); noted for a later restart (:func:`note_checkpoint`)."""
    chosen = restarted_checkpoint(cfg, resume_file, saved)
    if chosen and not resume_file:
        getLogger().info(f"torchrun restarted the group: continuing {chosen}")
    note_checkpoint(cfg, chosen or os.path.join(cfg["checkpoint_dir"], cfg["run_id"] + ".pth"), saved)
    return chosen
