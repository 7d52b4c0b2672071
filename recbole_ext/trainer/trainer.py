"""Trainer fixes for RecBole 1.2.1 on today's stack, as a mixin over any RecBole trainer.

:func:`recbole_ext.utils.get_trainer` puts :class:`CompatTrainerMixin` in front of the trainer
RecBole would choose, so every model (ours and RecBole's) gets:

- checkpoints of plain data written atomically and loaded with ``weights_only=True``
  (:mod:`recbole_ext.trainer.checkpoint`), so ``evaluate(load_best_model=True)`` and
  ``resume_checkpoint`` work under torch >= 2.6;
- ``torch.amp.GradScaler("cuda", ...)`` instead of the deprecated ``torch.cuda.amp.GradScaler``;
- per-epoch training time and evaluation time per batch, kept in ``self.timings``.
"""

from __future__ import annotations

import time
from typing import Dict, List

import torch
from torch.nn.utils.clip_grad import clip_grad_norm_
from tqdm import tqdm
from recbole.trainer import Trainer as RecBoleTrainer
from recbole.utils import get_gpu_usage, set_color

from recbole_ext.trainer.checkpoint import atomic_torch_save, safe_load, to_plain


class CompatTrainerMixin:
    """Put first in the bases of a RecBole trainer (see the module docstring)."""

    def __init__(self, config, model):
        super().__init__(config, model)
        self.timings: Dict[str, List[float]] = {"train_epoch_s": [], "eval_batch_ms": []}

    # ------------------------------------------------------------ training
    def _train_epoch(self, train_data, epoch_idx, loss_func=None, show_progress=False):
        """One epoch (RecBole's loop, with ``torch.amp.GradScaler``); returns the summed loss."""
        start = time.perf_counter()
        self.model.train()
        loss_func = loss_func or self.model.calculate_loss
        total_loss = None
        iter_data = (
            tqdm(train_data, total=len(train_data), ncols=100,
                 desc=set_color(f"Train {epoch_idx:>5}", "pink"))
            if show_progress
            else train_data
        )
        if not self.config["single_spec"] and train_data.shuffle:
            train_data.sampler.set_epoch(epoch_idx)

        scaler = torch.amp.GradScaler("cuda", enabled=self.enable_scaler)
        for interaction in iter_data:
            interaction = interaction.to(self.device)
            self.optimizer.zero_grad()
            sync_loss = 0
            if not self.config["single_spec"]:
                self.set_reduce_hook()
                sync_loss = self.sync_grad_loss()
            with torch.autocast(device_type=self.device.type, enabled=self.enable_amp):
                losses = loss_func(interaction)
            if isinstance(losses, tuple):
                loss = sum(losses)
                loss_tuple = tuple(per_loss.item() for per_loss in losses)
                total_loss = (
                    loss_tuple if total_loss is None else tuple(map(sum, zip(total_loss, loss_tuple)))
                )
            else:
                loss = losses
                total_loss = losses.item() if total_loss is None else total_loss + losses.item()
            self._check_nan(loss)
            scaler.scale(loss + sync_loss).backward()
            if self.clip_grad_norm:
                clip_grad_norm_(self.model.parameters(), **self.clip_grad_norm)
            scaler.step(self.optimizer)
            scaler.update()
            self._after_optimizer_step()
            if self.gpu_available and show_progress:
                iter_data.set_postfix_str(set_color("GPU RAM: " + get_gpu_usage(self.device), "yellow"))
        self.timings["train_epoch_s"].append(time.perf_counter() - start)
        return total_loss

    def _after_optimizer_step(self) -> None:
        """Hook after each optimiser update (models with step counters use ``on_optimizer_step``)."""
        hook = getattr(self.model, "on_optimizer_step", None)
        if hook is not None:
            hook()

    # ------------------------------------------------------------ checkpoints
    def _checkpoint_state(self, epoch: int) -> dict:
        return {
            "format": "recbole_ext/1",
            "config": to_plain(self.config.final_config_dict),
            "epoch": int(epoch),
            "cur_step": int(self.cur_step),
            "best_valid_score": float(self.best_valid_score),
            "state_dict": self.model.state_dict(),
            "other_parameter": to_plain(self.model.other_parameter()),
            "optimizer": self.optimizer.state_dict(),
        }

    def _save_checkpoint(self, epoch, verbose=True, **kwargs):
        if not self.config["single_spec"] and self.config["local_rank"] != 0:
            return
        saved_model_file = kwargs.pop("saved_model_file", self.saved_model_file)
        atomic_torch_save(self._checkpoint_state(epoch), saved_model_file)
        if verbose:
            self.logger.info(set_color("Saving current", "blue") + f": {saved_model_file}")

    def _load_model_from(self, checkpoint_file: str) -> dict:
        checkpoint = safe_load(checkpoint_file, map_location=self.device)
        self.model.load_state_dict(checkpoint["state_dict"])
        self.model.load_other_parameter(checkpoint.get("other_parameter"))
        return checkpoint

    def resume_checkpoint(self, resume_file):
        resume_file = str(resume_file)
        self.saved_model_file = resume_file
        checkpoint = self._load_model_from(resume_file)
        self.start_epoch = checkpoint["epoch"] + 1
        self.cur_step = checkpoint["cur_step"]
        self.best_valid_score = checkpoint["best_valid_score"]
        if str(checkpoint["config"]["model"]).lower() != self.config["model"].lower():
            self.logger.warning(
                "The checkpoint was written by a different model; loading its state dict may fail."
            )
        self.optimizer.load_state_dict(checkpoint["optimizer"])
        self.logger.info(f"Checkpoint loaded. Resume training from epoch {self.start_epoch}")

    # ------------------------------------------------------------ evaluation
    @torch.no_grad()
    def evaluate(self, eval_data, load_best_model=True, model_file=None, show_progress=False):
        if not eval_data:
            return
        if load_best_model:
            checkpoint_file = model_file or self.saved_model_file
            self._load_model_from(checkpoint_file)
            self.logger.info(f"Loading model structure and parameters from {checkpoint_file}")
        start = time.perf_counter()
        result = super().evaluate(eval_data, load_best_model=False, show_progress=show_progress)
        n_batches = max(len(eval_data), 1)
        self.timings["eval_batch_ms"].append(1000.0 * (time.perf_counter() - start) / n_batches)
        return result


class Trainer(CompatTrainerMixin, RecBoleTrainer):
    """RecBole's ``Trainer`` with the fixes of :class:`CompatTrainerMixin`."""
