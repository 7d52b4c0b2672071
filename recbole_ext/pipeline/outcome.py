"""What a run gives back (:class:`RunResult`) and the small facts the pipeline logs about it."""

from __future__ import annotations

import dataclasses
import os
from logging import getLogger
from typing import Any, Dict, List, Optional

import psutil
import torch

from recbole_ext.errors import Interrupted


@dataclasses.dataclass
class Fitted:
    """A model fitted with early stopping (:meth:`recbole_ext.pipeline.Run.fit`), not tested.

    Attributes:
        trainer: its trainer (``trainer.model`` is the model).
        best_valid_score: the best validation score (``valid_metric``).
        best_valid_result: every validation metric at the best epoch.
        saved: whether the best epoch's checkpoint was written (the test loads it).
    """

    trainer: Any
    best_valid_score: float
    best_valid_result: Optional[Dict[str, float]]
    saved: bool


@dataclasses.dataclass
class RunResult:
    """One trained (and tested) model.

    Attributes:
        best_valid_score: the best validation score (``valid_metric``).
        valid_score_bigger: whether a bigger ``best_valid_score`` is better.
        best_valid_result: every validation metric at the best epoch.
        test_result: the test metrics of the best epoch.
        model, dataset: the names the run resolved.
        saved_model_file: the run's checkpoint (``None`` without one).
        n_params: trainable parameters.
        timings: ``train_epoch_s``, ``train_batches``, ``eval_batch_ms``, ``valid_curve`` (the trainer's).
        per_user: the test's top-k metrics per user (significance tests), as lists.
        log_file: the run's log file (set by :meth:`recbole_ext.pipeline.Run.execute`).
        rank: this process's global rank (0 in one process).
    """

    best_valid_score: float
    valid_score_bigger: bool
    best_valid_result: Optional[Dict[str, float]]
    test_result: Optional[Dict[str, float]]
    model: str
    dataset: str
    saved_model_file: Optional[str]
    n_params: int
    timings: Dict[str, List]
    per_user: Dict[str, List[float]] = dataclasses.field(default_factory=dict)
    log_file: Optional[str] = None
    rank: int = 0

    def as_dict(self) -> Dict[str, Any]:
        """RecBole's ``run_recbole`` dict plus ``model``, ``dataset``, ``log_file``,
        ``saved_model_file``, ``n_params``, ``timings`` and ``rank`` (not ``per_user``)."""
        out = dataclasses.asdict(self)
        out.pop("per_user")
        return out


def count_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def plain_metrics(result) -> Dict[str, float]:
    """Metrics as plain floats (RecBole's are numpy scalars, printed ``np.float64(...)``)."""
    return {k: float(v) for k, v in (result or {}).items()}


def environment(config) -> str:
    """The device the run used and the process's memory (RecBole's table waits a second to
    sample the CPU load and shows a GPU line on machines without one)."""
    device = torch.device(config["device"])
    if device.type == "cuda":
        used = f"{torch.cuda.max_memory_allocated(device) / 2**30:.2f} G peak allocated"
        where = f"{device} ({torch.cuda.get_device_name(device)}), {used}"
    else:
        where = f"cpu ({torch.get_num_threads()} torch threads)"
    rss, total = psutil.Process().memory_info().rss / 2**30, psutil.virtual_memory().total / 2**30
    return f"device: {where}; process memory: {rss:.2f} G of {total:.2f} G"


def interrupted(stop: KeyboardInterrupt, checkpoint: str, saved: bool) -> Interrupted:
    """The interrupt, with the last finished epoch's checkpoint (written atomically after every
    epoch, so it is whole) attached and logged."""
    if not isinstance(stop, Interrupted):
        stop = Interrupted("SIGINT", 130)
    stop.checkpoint = checkpoint if saved and os.path.isfile(checkpoint) else None
    where = f"the last finished epoch's checkpoint is {checkpoint}" if stop.checkpoint else "no epoch had finished"
    getLogger().warning(f"Run interrupted by {stop.signal_name}; {where}")
    return stop


def remove_empty(files: List[str], folders: List[str]) -> None:
    """Delete ``files``, then each of ``folders`` that is left empty."""
    for path in files:
        if os.path.exists(path):
            os.unlink(path)
    for folder in folders:
        if os.path.isdir(folder) and not os.listdir(folder):
            os.rmdir(folder)
