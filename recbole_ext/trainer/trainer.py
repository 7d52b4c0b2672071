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
- per-epoch training time, evaluation time per batch and the validation score of each
  evaluated epoch (``valid_curve``), kept in ``self.timings``.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import time
from typing import Dict, List

import numpy as np
import torch
from recbole.trainer import Trainer as RecBoleTrainer
from recbole.utils import get_gpu_usage, set_color
from torch.nn.utils.clip_grad import clip_grad_norm_
from tqdm import tqdm

from recbole_ext.data.schema import dataset_schema
from recbole_ext.distributed import as_one_process, broadcast
from recbole_ext.evaluation.per_user import CapturingEvaluator, per_user_metrics
from recbole_ext.evaluation.sampled import SampledEvalMixin, fast_path_on
from recbole_ext.trainer.checkpoint import (
    Checkpoint,
    CheckpointError,
    check_identity,
    load_checkpoint,
    plain_other_parameter,
    to_plain,
)
from recbole_ext.trainer.data_parallel import DataParallelMixin
from recbole_ext.trainer.fast_path import LossTotal, autocast, check_precision, compile_forward, set_tf32
from recbole_ext.trainer.rng import rng_state, set_rng_state


class CompatTrainerMixin(DataParallelMixin, SampledEvalMixin):
    """Put first in the bases of a RecBole trainer (see the module docstring)."""

    def __init__(self, config, model):
        if config["single_spec"] is False:  # RecBole's exists-then-makedirs races between ranks
            os.makedirs(config["checkpoint_dir"], exist_ok=True)
        with as_one_process(config):  # RecBole's CUDA-only DDP wrapper: ours follows (data_parallel.py)
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
        self.timings: Dict[str, List] = {"train_epoch_s": [], "eval_batch_ms": [], "valid_curve": []}
        self.evaluator = CapturingEvaluator(config)  # keeps the last evaluation's per-user data
        self.fast_sampled_eval = fast_path_on(config)
        self.time_budget_s = config["train_time_budget_s"]
        self.precision = check_precision(config["precision"])
        if self.precision == "tf32":
            set_tf32(True)
        compile_forward(model, config["compile"])

    def _move_tensorboard(self, run_id, folder) -> None:
        """RecBole opens its TensorBoard writer in ``log_tensorboard/<run id>``; with another
        ``tensorboard_dir`` (the comparison runner's results folder), reopen it there."""
        if not run_id or not folder or os.path.normpath(folder) == "log_tensorboard" or not self._is_main():
            return
        from torch.utils.tensorboard import SummaryWriter

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
        for interaction in iter_data:
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
            self._check_nan(torch.tensor(sum(total_loss) if isinstance(total_loss, tuple) else total_loss))
        self.timings["train_epoch_s"].append(time.perf_counter() - start)
        return total_loss

    def _after_optimizer_step(self) -> None:
        """Hook after each optimiser update (models with step counters use ``on_optimizer_step``)."""
        hook = getattr(self.model, "on_optimizer_step", None)
        if hook is not None:
            hook()

    # ------------------------------------------------------------ checkpoints
    # One file per run (``saved_model_file``), rewritten atomically after every epoch: the best
    # weights (``state_dict``, what evaluation and recommendation use) plus everything needed to
    # continue training exactly where the last finished epoch left off. See
    # :mod:`recbole_ext.trainer.checkpoint` for the layout.
    _best_state = None
    _best_epoch = -1
    _stopped_early = False
    _pending_resume = None
    _train_data = None
    _schema = None

    def _checkpoint(self, epoch: int) -> Checkpoint:
        """This run's state after ``epoch``: the best weights so far and what resuming needs."""
        current = {k: v.detach().cpu() for k, v in self.model.state_dict().items()}
        best = self._best_state if self._best_state is not None else current
        scheduler = getattr(self, "scheduler", None)
        rng = rng_state()
        generator = getattr(self._train_data, "generator", None)
        rng["train_loader"] = generator.get_state() if generator is not None else None
        config = to_plain(self.config.final_config_dict)
        if config.get("data_path"):
            config["data_path"] = os.path.abspath(config["data_path"])
        dataset = getattr(self._train_data, "_dataset", None)
        if dataset is not None and (self._schema is None or self._schema[0] is not dataset):
            self._schema = (dataset, dataset_schema(dataset))  # once per data set, not per epoch
        return Checkpoint(
            config=config,
            state_dict=best,
            epoch=int(epoch),
            best_epoch=int(self._best_epoch if self._best_state is not None else epoch),
            cur_step=int(self.cur_step),
            best_valid_score=float(self.best_valid_score),
            best_valid_result=to_plain(self.best_valid_result),
            stopped_early=bool(self._stopped_early),
            last_state_dict=None if best is current else current,
            other_parameter=plain_other_parameter(self.model.other_parameter()),
            optimizer=self.optimizer.state_dict(),
            scheduler=scheduler.state_dict() if hasattr(scheduler, "state_dict") else None,
            train_loss={int(k): to_plain(v) for k, v in self.train_loss_dict.items()},
            rng=rng,
            dataset=self._schema[1] if dataset is not None else {},
        )

    def _save_checkpoint(self, epoch, verbose=True, **kwargs):
        rank_rng = self._rank_rng_states()  # a collective: every rank takes part
        if not self._is_main():
            return
        saved_model_file = kwargs.pop("saved_model_file", self.saved_model_file)
        checkpoint = self._checkpoint(epoch)
        if rank_rng is not None:
            checkpoint.rng["ranks"] = rank_rng
        checkpoint.save(saved_model_file)
        if verbose:
            self.logger.info(set_color("Saving current", "blue") + f": {saved_model_file}")

    def _load_model_from(self, checkpoint_file: str, trust_checkpoint: bool = False) -> Checkpoint:
        shared = self.distributed_model is not None  # rank 0's file, which other machines may not see
        where = "cpu" if shared else self.device
        checkpoint = load_checkpoint(checkpoint_file, trust_checkpoint, map_location=where) if self._is_main() else None
        if shared:
            checkpoint = broadcast(checkpoint)
            checkpoint.other_parameter = {
                k: v.to(self.device) if torch.is_tensor(v) else v for k, v in checkpoint.other_parameter.items()
            }
        checkpoint.load_weights(self.model)
        return checkpoint

    def resume_checkpoint(self, resume_file, trust_checkpoint: bool = False):
        """Continue from a checkpoint: weights of its last epoch, optimizer, scheduler, RNG
        states, the training loader's shuffling generator and the early-stopping state.

        Training then writes into ``resume_file``. A legacy RecBole checkpoint needs
        ``trust_checkpoint=True`` and restores only weights, optimizer and early stopping.
        """
        resume_file = str(resume_file)
        try:
            checkpoint = self._load_model_from(resume_file, trust_checkpoint)
            check_identity(resume_file, checkpoint.config, self.config)
            checkpoint.load_weights(self.model, last=True)
        except RuntimeError as e:  # same model and data-set name, other sizes (items, width)
            first = str(e).strip().splitlines()
            raise CheckpointError(
                f"{resume_file} does not fit this model and data set: "
                f"{first[1].strip() if len(first) > 1 else first[0]}"
            ) from None
        self.saved_model_file = resume_file
        self.start_epoch = checkpoint.epoch + 1
        self.cur_step = checkpoint.cur_step
        self.best_valid_score = float(checkpoint.best_valid_score)
        self.best_valid_result = checkpoint.best_valid_result
        self._best_epoch = checkpoint.best_epoch
        self._best_state = {k: v.detach().cpu().clone() for k, v in checkpoint.state_dict.items()}
        self._stopped_early = checkpoint.stopped_early
        self.train_loss_dict = dict(checkpoint.train_loss)
        self.optimizer.load_state_dict(checkpoint.optimizer)
        scheduler = getattr(self, "scheduler", None)
        if checkpoint.scheduler is not None and hasattr(scheduler, "load_state_dict"):
            scheduler.load_state_dict(checkpoint.scheduler)
        self._pending_resume = checkpoint.rng
        if checkpoint.legacy:
            self.logger.warning(
                "legacy RecBole checkpoint: RNG states and data order are not restored, "
                "so the continued run will not match an uninterrupted one exactly"
            )
        self.logger.info(f"Checkpoint loaded. Resume training from epoch {self.start_epoch}")

    def _restore_pending_rng(self, train_data) -> None:
        rng, self._pending_resume = self._rank_rng(self._pending_resume), None
        if not rng:
            return
        set_rng_state(rng)
        generator = getattr(train_data, "generator", None)
        if rng.get("train_loader") is not None and generator is not None:
            generator.set_state(rng["train_loader"].cpu())

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
        from recbole.trainer.trainer import dict2str, early_stopping

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
        n_batches = max(len(eval_data), 1)
        self.timings["eval_batch_ms"].append(1000.0 * (time.perf_counter() - start) / n_batches)
        return result

    def per_user_result(self) -> Dict[str, "np.ndarray"]:
        """The last evaluation's top-k metrics per user (:mod:`recbole_ext.evaluation.per_user`)."""
        return per_user_metrics(getattr(self.evaluator, "last_struct", None), self.config)

    def _full_sort_batch_eval(self, batched_data):
        """RecBole's full-ranking batch, with the scores in float32 for the metrics (a no-op
        unless ``precision: bf16`` produced lower-precision scores)."""
        interaction, scores, positive_u, positive_i = super()._full_sort_batch_eval(batched_data)
        return interaction, scores.float(), positive_u, positive_i


class Trainer(CompatTrainerMixin, RecBoleTrainer):
    """RecBole's ``Trainer`` with the fixes of :class:`CompatTrainerMixin`."""
