"""Evaluate a trained model again, under the same or other evaluation settings
(``recbole-ext evaluate --checkpoint=CKPT [--key=value ...]``).

The checkpoint's saved config rebuilds its run (model, data set, split, seed), the best weights
go into the model, and the run's own trainer evaluates the validation and test splits: the
numbers training reported, or the same model under another protocol
(``--eval_neg_exclude=history``, another ``mode`` of ``eval_args``, other metrics). Only
evaluation keys may change (:data:`recbole_ext.command.EVAL_KEYS`), and of ``eval_args`` only
``mode``: the model's keys, the data's and the split are the checkpoint's. The data set must be
on disk (``--data_path``, else the saved one; it is never downloaded) and hold the items the
checkpoint was trained on. With ``eval_candidates: shared`` the negatives are the run's own
(drawn from the seed); under ``per_epoch`` they are drawn anew.

Nothing is written: no checkpoint, TensorBoard, W&B or saved data set.
"""

from __future__ import annotations

import sys
from typing import Any, Dict, Iterable, Optional

import torch

from recbole_ext.pipeline import Run, plain_metrics
from recbole_ext.serving.restore import checkpoint_schema, differing_id_field
from recbole_ext.trainer.checkpoint import Checkpoint, CheckpointError, load_checkpoint
from recbole_ext.trainer.data_parallel import no_rank_folders

#: what an evaluation never takes from the saved config: it downloads and writes nothing
QUIET = dict(download="never", save_dataset=False, save_dataloaders=False, log_wandb=False)
#: the fields of ``eval_args`` that make the split (the checkpoint's own)
SPLIT_FIELDS = ("split", "order", "group_by")


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
    run = Run.from_saved_config(dict(ckpt.config, **QUIET), device or default_device(), cmd_args=config_args)
    cfg = run.config
    _check_same_split(cfg["eval_args"], ckpt.config.get("eval_args") or {})
    cfg["run_id"] = None  # the trainer opens no TensorBoard folder of its own
    splits = run.prepare_data()
    _check_same_tokens(ckpt, splits.dataset, checkpoint)
    loaders = run.build_loaders(splits)
    model = run.build_model(loaders.train_set)
    ckpt.load_weights(model)
    with no_rank_folders(True):  # RecBole's trainer would make a checkpoint and a TensorBoard folder
        trainer = run.build_trainer(model)
    show = bool(cfg["show_progress"]) and sys.stderr.isatty()
    return {
        "valid": plain_metrics(trainer.evaluate(loaders.valid, load_best_model=False, show_progress=show)),
        "test": plain_metrics(trainer.evaluate(loaders.test, load_best_model=False, show_progress=show)),
    }


def _check_same_split(asked: Dict[str, Any], saved: Dict[str, Any]) -> None:
    """``eval_args`` may change the evaluation ``mode`` only: another split would test on other
    users' or items' data than the checkpoint was selected on."""
    for field in SPLIT_FIELDS:
        if field in saved and asked.get(field) != saved[field]:
            raise CheckpointError(
                f"evaluate keeps the checkpoint's split: eval_args {field} is {saved[field]!r} there, "
                f"{asked.get(field)!r} here (only eval_args' mode may change)"
            )


def _check_same_tokens(ckpt: Checkpoint, dataset, path: str) -> None:
    """The rebuilt data set holds the item (and user) ids the checkpoint was trained on."""
    schema = checkpoint_schema(ckpt)
    field = differing_id_field(schema, dataset, ("iid_field", "uid_field")) if schema is not None else None
    if field is not None:
        raise CheckpointError(
            f"the data set at {dataset.config['data_path']} does not hold the {field}s {path} was trained "
            "on: pass --data_path=DIR of the data set it was trained on"
        )
