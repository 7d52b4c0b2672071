"""The trainer's side of data-parallel training (see :mod:`recbole_ext.distributed`).

RecBole 1.2.1 wraps the model in ``DistributedDataParallel(model, device_ids=[local_rank])``
(CUDA only), then never calls the wrapper for the loss: it runs a dummy forward to arm the
gradient hooks and adds ``0 * sum(parameters)`` to the loss. Here the loss itself goes through
the wrapper (:class:`LossModule`), on GPUs and CPUs alike, so DDP averages the gradients of the
real forward pass. Everything that decides what the ranks do next (early stopping, the time
budget, whether a checkpoint exists) is rank 0's decision or computed from gathered data, so
the ranks never diverge; rank 0 alone writes the checkpoint, the log and TensorBoard.
"""

from __future__ import annotations

import contextlib
from typing import Any, Iterator, List, Optional

import recbole.trainer.trainer as recbole_trainer
import torch
from torch.nn.parallel import DistributedDataParallel

from recbole_ext.distributed import all_gather, broadcast, is_distributed, rank
from recbole_ext.trainer.rng import rng_state


class LossModule(torch.nn.Module):
    """``forward(loss_func, interaction)`` = ``loss_func(interaction)`` over ``model``'s
    parameters, so DDP sees the loss computation as the module's forward pass."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, loss_func, interaction):
        losses = loss_func(interaction)
        # parameters a loss does not use (an embedding's padding row is used; a model's unused
        # branch is not) get a zero gradient, so every rank reduces every bucket each step
        anchor = sum(p.sum() for p in self.model.parameters() if p.requires_grad) * 0.0
        if isinstance(losses, tuple):
            return (losses[0] + anchor,) + tuple(losses[1:])
        return losses + anchor


class _NullWriter:
    """TensorBoard writer of ranks other than 0: accepts every call, writes nothing."""

    def __getattr__(self, name: str):
        return lambda *args, **kwargs: None


@contextlib.contextmanager
def no_rank_folders(quiet: bool) -> Iterator[None]:
    """While RecBole's trainer is built on a rank other than 0 (``quiet``): no checkpoint folder
    and no TensorBoard folder (RecBole's trainer makes both on every rank; only rank 0 writes,
    and another machine's rank would leave them empty)."""
    if not quiet:
        yield
        return

    saved = recbole_trainer.get_tensorboard, recbole_trainer.ensure_dir
    recbole_trainer.get_tensorboard = lambda logger: _NullWriter()
    recbole_trainer.ensure_dir = lambda path: None
    try:
        yield
    finally:
        recbole_trainer.get_tensorboard, recbole_trainer.ensure_dir = saved


class DataParallelMixin:
    """Put before RecBole's trainer in the bases (through ``CompatTrainerMixin``)."""

    distributed_model: Optional[DistributedDataParallel] = None

    def _wrap_data_parallel(self) -> None:
        """Wrap the model for DDP on a data-parallel rank (off rank 0 TensorBoard is silent:
        :func:`no_rank_folders`)."""
        if not is_distributed(self.config):
            return
        cuda = self.device.type == "cuda"
        if cuda:  # keeps the parameters themselves: the optimizer built on them stays valid
            self.model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(self.model)
        self.distributed_model = DistributedDataParallel(
            LossModule(self.model), device_ids=[self.device.index] if cuda else None
        )
        if rank() != 0:
            self.tensorboard = _NullWriter()

    def _losses(self, loss_func, interaction):
        """The batch's loss(es), through the DDP wrapper on a data-parallel rank."""
        if self.distributed_model is not None:
            return self.distributed_model(loss_func, interaction)
        return loss_func(interaction)

    def _map_reduce(self, result, num_sample):
        # RecBole averages per-rank metrics weighted by batch counts; the evaluator has already
        # computed them from every rank's gathered per-user rows
        return result

    def _rank_rng_states(self) -> Optional[List[Any]]:
        """Every rank's RNG state (a collective: all ranks call it), or None in one process."""
        if self.distributed_model is None:
            return None

        return all_gather(rng_state())

    def _is_main(self) -> bool:
        return self.distributed_model is None or rank() == 0

    def _agreed(self, decision: bool) -> bool:
        """Rank 0's ``decision`` on every rank (for choices made from clocks or files)."""
        return bool(broadcast(decision)) if self.distributed_model is not None else decision

    def _rank_rng(self, rng: Optional[dict]) -> Optional[dict]:
        """This rank's RNG state from a checkpoint's ``rng`` (rank 0's, with every rank's under
        ``ranks`` when written by a data-parallel run of the same size)."""
        if not rng or self.distributed_model is None:
            return rng
        ranks = rng.get("ranks")
        if ranks and len(ranks) == torch.distributed.get_world_size():
            return ranks[rank()]
        return rng
