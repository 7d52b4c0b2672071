"""Trainer fixes for RecBole 1.2.1 on today's stack, as a mixin over any RecBole trainer.

:func:`recbole_ext.registry.get_trainer` combines :class:`CompatTrainerMixin` with the trainer
RecBole would choose (for RecBole's specialised trainers, such as ``KGTrainer``, the order is
``<specialised> -> CompatTrainerMixin -> Trainer``, so their own schedules still run on top of
our loop), so every model (ours and RecBole's) gets:

- checkpoints of plain data (:class:`recbole_ext.trainer.checkpoint.Checkpoint`) written
  atomically after every epoch and loaded with ``weights_only=True``, so
  ``evaluate(load_best_model=True)`` works under torch >= 2.6, and ``resume_checkpoint`` restores
  weights, optimizer, early stopping and every RNG state (a resumed run ends where an
  uninterrupted one does);
- ``torch.amp.GradScaler("cuda", ...)`` instead of the deprecated ``torch.cuda.amp.GradScaler``;
- fast sampled evaluation (``pop100``/``uni100``) for sequential models: each sequence is encoded
  once instead of once per candidate (:mod:`recbole_ext.evaluation.sampled`);
- full-ranking evaluation whose memory does not grow with the catalogue: the top-k in item
  chunks above ``full_sort_memory_mb``, one tie rule for every top-k, scores in float32 for the
  metrics (:mod:`recbole_ext.evaluation.full_sort`);
- per-epoch training time, evaluation time (per batch, per batch of RecBole's own loader and
  per 2048 users) and the validation score of each evaluated epoch (``valid_curve``), kept in
  ``self.timings``.
"""

from __future__ import annotations

import contextlib
import math
import os
import secrets
import shutil
import time
from typing import Dict, List

import numpy as np
import torch
from recbole.trainer import Trainer as RecBoleTrainer
from recbole.trainer.trainer import dict2str, early_stopping
from recbole.utils import get_gpu_usage, set_color
from torch.nn.utils.clip_grad import clip_grad_norm_
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

from recbole_ext.distributed import as_one_process, rank
from recbole_ext.errors import TrainingDiverged
from recbole_ext.evaluation.full_sort import ChunkedFullSortMixin
from recbole_ext.evaluation.per_user import CapturingEvaluator, per_user_metrics, users_evaluated
from recbole_ext.evaluation.sampled import SampledEvalMixin, fast_path_on
from recbole_ext.trainer.data_parallel import DataParallelMixin, no_rank_folders
from recbole_ext.trainer.fast_path import LossTotal, autocast, check_precision, compile_forward, set_tf32
from recbole_ext.trainer.resume import CheckpointMixin


class CompatTrainerMixin(CheckpointMixin, DataParallelMixin, SampledEvalMixin, ChunkedFullSortMixin):
    """Put first in the bases of a RecBole trainer (see the module docstring)."""

    def __init__(self, config, model):
        data_parallel = config["single_spec"] is False
        other_rank = data_parallel and rank() != 0
        if data_parallel and not other_rank:  # RecBole's exists-then-makedirs races between ranks
            os.makedirs(config["checkpoint_dir"], exist_ok=True)
        with as_one_process(config), no_rank_folders(other_rank):  # RecBole's CUDA-only DDP wrapper: ours follows
            super().__init__(config, model)
        self._wrap_data_parallel()
        # RecBole names the checkpoint <model>-<time to the second>.pth: two runs started in the
        # same second would write, and test, one file. The run id the run's log was opened with
        # (recbole_ext.logger.init_logger) makes each run's its own; without one, a random suffix.
        run_id = config["run_id"]
        stem, ext = os.path.splitext(self.saved_model_file)
        self.saved_model_file = (
            os.path.join(os.path.dirname(stem), run_id + ext) if run_id else f"{stem}-{secrets.token_hex(4)}{ext}"
        )
        self._move_tensorboard(run_id, config["tensorboard_dir"])
        timing_keys = (
            "train_epoch_s",
            "train_batches",
            "eval_batch_ms",
            "eval_recbole_batch_ms",
            "eval_ms_per_2048_users",
            "valid_curve",
        )
        self.timings: Dict[str, List] = {k: [] for k in timing_keys}
        self.evaluator = CapturingEvaluator(config)  # keeps the last evaluation's per-user data
        self.fast_sampled_eval = fast_path_on(config)
        self.time_budget_s = config["train_time_budget_s"]
        self.batches_per_epoch = config["train_batches_per_epoch"]
        self.precision = check_precision(config["precision"])
        set_tf32(self.precision == "tf32")  # fp32 and bf16: also cuDNN's convolutions and RNNs in fp32
        compile_forward(model, config["compile"])

    def _move_tensorboard(self, run_id, folder) -> None:
        """RecBole opens its TensorBoard writer in ``log_tensorboard/<run id>``; with another
        ``tensorboard_dir`` (the comparison runner's results folder), reopen it there."""
        if not run_id or not folder or os.path.normpath(folder) == "log_tensorboard" or not self._is_main():
            return

        old = self.tensorboard.log_dir
        self.tensorboard.close()
        if os.path.basename(os.path.normpath(old)) == run_id:  # only this run's own, new folder
            shutil.rmtree(old, ignore_errors=True)
            with contextlib.suppress(OSError):
                os.rmdir(os.path.dirname(old))  # log_tensorboard/, when nothing else is in it
        self.tensorboard = SummaryWriter(os.path.join(folder, run_id))

    def _autocast(self):
        """The ``precision`` setting's autocast context for forward passes."""
        return autocast(self.precision, self.device)

    # ------------------------------------------------------------ training
    def _train_epoch(self, train_data, epoch_idx, loss_func=None, show_progress=False):
        """One epoch (RecBole's loop, with ``torch.amp.GradScaler``, the ``precision`` setting
        and the losses summed on the device); returns the summed loss, as RecBole's does."""
        start = time.perf_counter()
        self.model.train()
        loss_func = loss_func or self.model.calculate_loss
        iter_data = (
            tqdm(train_data, total=len(train_data), ncols=100, desc=set_color(f"Train {epoch_idx:>5}", "pink"))
            if show_progress
            else train_data
        )
        if not self.config["single_spec"] and train_data.shuffle:
            train_data.sampler.set_epoch(epoch_idx)

        scaler = torch.amp.GradScaler("cuda", enabled=self.enable_scaler)
        total = LossTotal()  # summed on the device: no host read per step
        done = 0
        for interaction in iter_data:
            if self.batches_per_epoch is not None and done >= self.batches_per_epoch:
                break  # a budget run (every rank stops at the same count)
            done += 1
            interaction = interaction.to(self.device)
            self.optimizer.zero_grad()
            with torch.autocast(device_type=self.device.type, enabled=self.enable_amp), self._autocast():
                losses = self._losses(loss_func, interaction)
            loss = total.add(losses)
            scaler.scale(loss).backward()
            if self.clip_grad_norm:
                clip_grad_norm_(self.model.parameters(), **self.clip_grad_norm)
            scaler.step(self.optimizer)
            scaler.update()
            self._after_optimizer_step()
            if self.gpu_available and show_progress:
                iter_data.set_postfix_str(set_color("GPU RAM: " + get_gpu_usage(self.device), "yellow"))
        total_loss = total.value()
        if total_loss is not None:  # a NaN step makes the total NaN: checked once per epoch
            self._check_finite(sum(total_loss) if isinstance(total_loss, tuple) else total_loss, epoch_idx)
        self.timings["train_epoch_s"].append(time.perf_counter() - start)
        self.timings["train_batches"].append((done, len(train_data)))
        return total_loss

    def _check_nan(self, loss):
        """RecBole's per-step check (its own trainers' loops), as :meth:`_check_finite`."""
        self._check_finite(float(loss), getattr(self, "_epoch", -1))

    def _check_finite(self, total: float, epoch: int) -> None:
        """A NaN or infinite loss ends the run with one line (:class:`TrainingDiverged`); the
        checkpoint of the last finished epoch, written before this one began, stays."""
        if math.isfinite(total):
            return
        kept = (
            f"the last finished epoch's checkpoint is {self.saved_model_file}"
            if os.path.isfile(self.saved_model_file)
            else "no epoch had finished"
        )
        raise TrainingDiverged(
            f"training diverged in epoch {epoch}: the loss is {total}; lower learning_rate (it is "
            f"{self.config['learning_rate']}) or check the data; {kept}"
        )

    def _after_optimizer_step(self) -> None:
        """Hook after each optimiser update (models with step counters use ``on_optimizer_step``)."""
        hook = getattr(self.model, "on_optimizer_step", None)
        if hook is not None:
            hook()

    # ------------------------------------------------------------ fit
    def fit(self, train_data, valid_data=None, verbose=True, saved=True, show_progress=False, callback_fn=None):
        """RecBole's ``Trainer.fit`` with a checkpoint after every epoch (best weights plus the
        resumable state) and exact resumption (see :meth:`resume_checkpoint`).

        Trainers whose ``fit`` is their own (e.g. RecBole's pre-training trainers) keep it.
        """
        self._train_data = train_data
        if getattr(super().fit, "__func__", None) is not RecBoleTrainer.fit:
            self._restore_pending_rng(train_data)
            return super().fit(train_data, valid_data, verbose, saved, show_progress, callback_fn)
        self._prepare_fit(train_data, saved, verbose)
        fit_start = time.time()
        for epoch_idx in range(self.start_epoch, self.epochs):
            self._fit_epoch(train_data, epoch_idx, verbose, show_progress)
            stop_flag = False
            if self.eval_step <= 0 or not valid_data:
                # no validation: the last epoch is the best (RecBole's rule)
                self._best_state, self._best_epoch = None, epoch_idx
            elif (epoch_idx + 1) % self.eval_step == 0:
                stop_flag = self._validate(valid_data, epoch_idx, verbose, show_progress, callback_fn)
            if saved:
                self._save_checkpoint(epoch_idx, verbose=verbose)
            if stop_flag:
                break
            if self.time_budget_s is not None and self._agreed(time.time() - fit_start >= self.time_budget_s):
                self.logger.info(f"Training time budget of {self.time_budget_s} s reached after epoch {epoch_idx}")
                break
        self._add_hparam_to_tensorboard(self.best_valid_score)
        return self.best_valid_score, self.best_valid_result

    def _prepare_fit(self, train_data, saved: bool, verbose: bool) -> None:
        self.eval_collector.data_collect(train_data)
        if self.config["train_neg_sample_args"].get("dynamic", False):
            train_data.get_model(self.model)
        self._restore_pending_rng(train_data)
        if self._stopped_early and self.start_epoch < self.epochs:
            self.logger.info("The checkpoint's run had already stopped early; nothing to train.")
            self.start_epoch = self.epochs
        if saved and self.start_epoch >= self.epochs and not self._agreed(os.path.exists(self.saved_model_file)):
            self._save_checkpoint(self.start_epoch - 1, verbose=verbose)

    def _fit_epoch(self, train_data, epoch_idx: int, verbose: bool, show_progress: bool) -> None:
        """One training epoch with RecBole's logging."""
        training_start_time = time.time()
        train_loss = self._train_epoch(train_data, epoch_idx, show_progress=show_progress)
        self.train_loss_dict[epoch_idx] = sum(train_loss) if isinstance(train_loss, tuple) else train_loss
        training_end_time = time.time()
        if verbose:
            self.logger.info(
                self._generate_train_loss_output(epoch_idx, training_start_time, training_end_time, train_loss)
            )
        self._add_train_loss_to_tensorboard(epoch_idx, train_loss)
        self.wandblogger.log_metrics(
            {"epoch": epoch_idx, "train_loss": train_loss, "train_step": epoch_idx}, head="train"
        )

    def _validate(self, valid_data, epoch_idx: int, verbose: bool, show_progress: bool, callback_fn) -> bool:
        """Evaluate on the validation set, keep the best weights; returns whether to stop early."""
        valid_start_time = time.time()
        valid_score, valid_result = self._valid_epoch(valid_data, show_progress=show_progress)
        self.best_valid_score, self.cur_step, stop_flag, update_flag = early_stopping(
            valid_score,
            self.best_valid_score,
            self.cur_step,
            max_step=self.stopping_step,
            bigger=self.valid_metric_bigger,
        )
        if verbose:
            self.logger.info(
                (
                    set_color("epoch %d evaluating", "green")
                    + " ["
                    + set_color("time", "blue")
                    + ": %.2fs, "
                    + set_color("valid_score", "blue")
                    + ": %f]"
                )
                % (epoch_idx, time.time() - valid_start_time, valid_score)
            )
            self.logger.info(set_color("valid result", "blue") + ": \n" + dict2str(valid_result))
        self.timings["valid_curve"].append([epoch_idx, float(valid_score)])
        self.tensorboard.add_scalar("Vaild_score", valid_score, epoch_idx)
        self.wandblogger.log_metrics({**valid_result, "valid_step": epoch_idx}, head="valid")
        if update_flag:
            self._best_state = {k: v.detach().cpu().clone() for k, v in self.model.state_dict().items()}
            self._best_epoch = epoch_idx
            self.best_valid_result = valid_result
        if callback_fn:
            callback_fn(epoch_idx, valid_score)
        if stop_flag:
            self._stopped_early = True
            if verbose:
                self.logger.info(
                    "Finished training, best eval result in epoch %d" % (epoch_idx - self.cur_step * self.eval_step)
                )
        return stop_flag

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
        with self._autocast():
            result = super().evaluate(eval_data, load_best_model=False, show_progress=show_progress)
        self._time_evaluation(eval_data, 1000.0 * (time.perf_counter() - start))
        return result

    def _time_evaluation(self, eval_data, elapsed_ms: float) -> None:
        """One evaluation's time three ways: per batch of the loader that ran, per batch of
        RecBole's own loader over the same users (``eval_batch_size`` candidate rows under sampled
        evaluation), and per 2048 users (``None`` without a top-k ranking to count users by)."""
        self.timings["eval_batch_ms"].append(elapsed_ms / max(len(eval_data), 1))
        recbole_batches = getattr(eval_data, "recbole_batches", None) or len(eval_data)
        self.timings["eval_recbole_batch_ms"].append(elapsed_ms / max(recbole_batches, 1))
        users = users_evaluated(getattr(self.evaluator, "last_struct", None))
        self.timings["eval_ms_per_2048_users"].append(elapsed_ms / users * 2048 if users else None)

    def per_user_result(self) -> Dict[str, "np.ndarray"]:
        """The last evaluation's top-k metrics per user (:mod:`recbole_ext.evaluation.per_user`)."""
        return per_user_metrics(getattr(self.evaluator, "last_struct", None), self.config)


class Trainer(CompatTrainerMixin, RecBoleTrainer):
    """RecBole's ``Trainer`` with the fixes of :class:`CompatTrainerMixin`."""
