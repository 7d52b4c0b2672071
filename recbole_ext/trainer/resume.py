"""The trainer's checkpoints: one file per run, rewritten atomically after every epoch with the
best weights and everything needed to continue exactly where the last finished epoch left off
(the layout is :class:`recbole_ext.trainer.checkpoint.Checkpoint`'s), and resuming from one."""

from __future__ import annotations

import os

import torch
from recbole.utils import set_color

from recbole_ext.data.schema import dataset_schema
from recbole_ext.distributed import broadcast_tensors
from recbole_ext.errors import RunFailed
from recbole_ext.fileio import write_failure
from recbole_ext.trainer.checkpoint import (
    Checkpoint,
    CheckpointError,
    check_fits,
    check_identity,
    load_checkpoint,
    plain_other_parameter,
    to_plain,
)
from recbole_ext.trainer.rng import rng_state, set_rng_state


class CheckpointMixin:
    """Writing, loading and resuming checkpoints (through :class:`CompatTrainerMixin`)."""

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
            world_size=torch.distributed.get_world_size() if self.distributed_model is not None else 1,
        )

    def _save_checkpoint(self, epoch, verbose=True, **kwargs):
        rank_rng = self._rank_rng_states()  # a collective: every rank takes part
        if not self._is_main():
            return
        saved_model_file = kwargs.pop("saved_model_file", self.saved_model_file)
        checkpoint = self._checkpoint(epoch)
        if rank_rng is not None:
            checkpoint.rng["ranks"] = rank_rng
        try:
            checkpoint.save(saved_model_file)
        except (OSError, RuntimeError) as e:  # a full disk, a folder gone read-only: the previous file is whole
            kept = "the last good one is whole" if os.path.isfile(saved_model_file) else "none was written before"
            raise RunFailed(
                f"cannot write the checkpoint {saved_model_file} after epoch {epoch} ({write_failure(e)}); {kept}"
            ) from None
        if verbose:
            self.logger.info(set_color("Saving current", "blue") + f": {saved_model_file}")

    def _load_model_from(self, checkpoint_file: str, trust_checkpoint: bool = False) -> Checkpoint:
        shared = self.distributed_model is not None  # rank 0's file, which other machines may not see
        where = "cpu" if shared else self.device
        checkpoint = load_checkpoint(checkpoint_file, trust_checkpoint, map_location=where) if self._is_main() else None
        if shared:
            checkpoint = broadcast_tensors(checkpoint)  # the structure pickled, each tensor as a tensor
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
            saved = load_checkpoint(resume_file, trust_checkpoint, map_location="cpu")
            check_identity(resume_file, saved.config, self.config)
            check_fits(resume_file, saved, self.model, self.config)  # names the weights and settings
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
