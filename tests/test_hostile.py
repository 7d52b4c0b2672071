"""More hostile inputs and faults (issue 38), each from an empty folder: one line
``recbole_ext: error: ...``, exit 2 for an input (1 for a run that failed midway), no traceback,
nothing left that was not there before."""

from __future__ import annotations

import errno

import pytest
import torch

from recbole_ext import cli
from test_hardening import SLICE, TINY, empty, files, one_line  # noqa: F401  (empty: a fixture)


def test_a_full_disk_inside_torchs_writer_is_one_line(empty, capsys, monkeypatch):
    """torch's zip writer turns the ``OSError`` of a full disk into a ``RuntimeError``; the run
    still ends in one line naming the disk, and the first epoch's checkpoint stays whole."""
    from recbole_ext.trainer import checkpoint as ckpt_module
    from recbole_ext.trainer.checkpoint import load_checkpoint

    work, data = empty
    real, written = torch.save, []

    def save(obj, f, *args, **kwargs):
        written.append(getattr(f, "name", f))
        if len(written) == 1:
            return real(obj, f, *args, **kwargs)
        f.write(b"PK\x03\x04 half a file")
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError:
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 64 vs 0")

    monkeypatch.setattr(ckpt_module.torch, "save", save)
    rc = cli.main(["--model=GRU4Rec", *SLICE, f"--data_path={data}", *TINY[1:], "--epochs=3"])
    line = one_line(capsys, rc, code=1, needle="No space left on device")
    assert "after epoch 1" in line and "the last good one is whole" in line
    (ckpt,) = [f for f in files(work) if f.endswith(".pth")]
    monkeypatch.undo()
    assert load_checkpoint(str(work / ckpt)).epoch == 0
