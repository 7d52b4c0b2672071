"""Evaluate a trained model again, under the same or other evaluation settings
(``recbole-ext evaluate --checkpoint=CKPT [--key=value ...]``).

The checkpoint's saved config rebuilds its run (model, data set, split, seed), the best weights
go into the model, and the run's own trainer evaluates the validation and test splits: the
numbers training reported, or the same model under another protocol
(``--eval_neg_exclude=history``, another ``mode`` of ``eval_args``, other metrics). Only
evaluation keys may change (:data:`recbole_ext.command.EVAL_KEYS`): the model's and the data's
keys are the checkpoint's. The data set must be on disk (``--data_path``, else the saved one).
With ``eval_candidates: shared`` the negatives are the run's own (drawn from the seed); under
``per_epoch`` they are drawn anew.

Nothing is written: the trainer's checkpoint and TensorBoard folders are a temporary folder,
removed afterwards.
"""

from __future__ import annotations

import os
import tempfile
from typing import Dict, Iterable, Optional

import torch

from recbole_ext.pipeline import Run, plain_metrics
from recbole_ext.trainer.checkpoint import load_checkpoint


def default_device() -> str:
    """``cuda`` where a GPU is visible, else ``cpu``."""
    return "cuda" if torch.cuda.is_available() else "cpu"


def evaluate_checkpoint(
    checkpoint: str,
    config_args: Iterable[str] = (),
    trust_checkpoint: bool = False,
    device: Optional[str] = None,
) -> Dict[str, Dict[str, float]]:
    """The validation and test metrics of ``checkpoint``'s best weights.

    Args:
        checkpoint: a checkpoint written by training (ours, or RecBole's with ``trust_checkpoint``).
        config_args: ``--key=value`` strings of :data:`recbole_ext.command.EVAL_KEYS` over the saved config.
        trust_checkpoint: allow a legacy RecBole checkpoint (a pickle).
        device: where to evaluate (default :func:`default_device`).

    Returns:
        ``{"valid": {metric: value}, "test": {metric: value}}``.
    """
    ckpt = load_checkpoint(checkpoint, trust_checkpoint, map_location="cpu")
    run = Run.from_saved_config(ckpt.config, device or default_device(), cmd_args=config_args)
    cfg = run.config
    loaders = run.build_loaders(run.prepare_data())
    model = run.build_model(loaders.train_set)
    ckpt.load_weights(model)
    with tempfile.TemporaryDirectory(prefix="recbole_ext-evaluate-") as scratch:
        cfg["checkpoint_dir"] = os.path.join(scratch, "saved")
        cfg["tensorboard_dir"] = os.path.join(scratch, "tensorboard")
        cfg["run_id"] = "evaluate"
        before = set(os.listdir("log_tensorboard")) if os.path.isdir("log_tensorboard") else None
        trainer = run.build_trainer(model.to(cfg["device"]))
        try:
            return {
                "valid": plain_metrics(trainer.evaluate(loaders.valid, load_best_model=False)),
                "test": plain_metrics(trainer.evaluate(loaders.test, load_best_model=False)),
            }
        finally:
            trainer.tensorboard.close()
            _drop_new_tensorboard_folder(before)


def _drop_new_tensorboard_folder(before: Optional[set]) -> None:
    """RecBole's trainer opens a writer under ``log_tensorboard/`` before ours moves it: remove
    what this evaluation added there (and the folder itself when it made it)."""
    if not os.path.isdir("log_tensorboard"):
        return
    import shutil

    for name in set(os.listdir("log_tensorboard")) - (before or set()):
        shutil.rmtree(os.path.join("log_tensorboard", name), ignore_errors=True)
    if before is None and not os.listdir("log_tensorboard"):
        os.rmdir("log_tensorboard")
