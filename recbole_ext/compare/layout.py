"""A results folder's layout: where a comparison (or a tuning's trials) keeps each run's record,
resolved config, log, checkpoints and TensorBoard runs, and the default folder's name."""

from __future__ import annotations

import dataclasses
import datetime
import os
from typing import Dict, Optional

from recbole_ext.fileio import atomic_write_text
from recbole_ext.results.record import RunRecord

RUN_DIR = "runs"
CONFIG_DIR = "configs"
LOG_DIR = "log"
CHECKPOINT_DIR = "saved"
TENSORBOARD_DIR = "log_tensorboard"
JOB_DIR = "jobs"


def default_results_dir(*names: str) -> str:
    """``results/<names joined by ->-<YYYYmmdd-HHMMSS>``: a new folder per command run."""
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    return os.path.join("results", "-".join([*names, stamp]))


@dataclasses.dataclass(frozen=True)
class ResultsLayout:
    """The folders and files under ``root``: ``runs/<Model>-seed<S>.json``,
    ``configs/<Model>.yaml``, ``log/<Model>/*.log``, ``saved/``, ``log_tensorboard/`` and
    ``jobs/<Model>-seed<S>.txt`` (a parallel grid's process output)."""

    root: str

    @property
    def log_dir(self) -> str:
        return os.path.join(self.root, LOG_DIR)

    @property
    def runs_dir(self) -> str:
        return os.path.join(self.root, RUN_DIR)

    @property
    def jobs_dir(self) -> str:
        return os.path.join(self.root, JOB_DIR)

    def run_path(self, model: str, seed: Optional[int]) -> str:
        return os.path.join(self.runs_dir, f"{model}-seed{seed}.json")

    def config_path(self, model: str) -> str:
        return os.path.join(self.root, CONFIG_DIR, f"{model}.yaml")

    def job_output(self, model: str, seed: Optional[int]) -> str:
        return os.path.join(self.jobs_dir, f"{model}-seed{seed}.txt")

    def run_outputs(self) -> Dict[str, str]:
        """The config keys that keep a run's checkpoints and TensorBoard runs in this folder
        (a user's own ``checkpoint_dir`` / ``tensorboard_dir`` win over them)."""
        return {
            "checkpoint_dir": os.path.join(self.root, CHECKPOINT_DIR),
            "tensorboard_dir": os.path.join(self.root, TENSORBOARD_DIR),
        }

    def load(self, model: str, seed: Optional[int]) -> Optional[RunRecord]:
        """The stored record of ``model`` and ``seed``; ``None`` when there is none or it cannot
        be read as one (it is run again)."""
        try:
            with open(self.run_path(model, seed), encoding="utf-8") as f:
                return RunRecord.from_json(f.read())
        except (OSError, UnicodeDecodeError):
            return None

    def store(self, record: RunRecord) -> None:
        """Write ``record`` as ``runs/<Model>-seed<S>.json``, atomically."""
        atomic_write_text(self.run_path(record.model, record.seed), record.to_json())
