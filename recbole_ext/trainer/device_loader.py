"""Training data resident on the training device (``train_data_on_device``).

RecBole's training loader builds every batch on the CPU (``dataset[index]``: the padded
``[B, L]`` item lists of a sequential data set, gathered row by row) and the trainer copies it to
the GPU. :class:`DeviceTrainDataLoader` moves the training interactions to the device once and
gathers each batch there with ``index_select``; only the batch's row numbers cross over. The
rows, their order (RecBole's sampler and shuffling generator) and so every batch are exactly
RecBole's.

It applies where a batch is nothing but rows of the interaction table: a sequential model, no
training negatives, no data transform, no user or item features joined in, no loader workers.
``train_data_on_device``: ``auto`` (default: on a CUDA device where it applies), ``True``
(wherever it applies, the CPU included) or ``False``.
"""

from __future__ import annotations

import numpy as np
import torch
from recbole.data.dataloader import TrainDataLoader
from recbole.data.interaction import Interaction
from recbole.utils import ModelType


def device_loader_applies(config, dataset) -> bool:
    """Whether ``config`` asks for device-resident training data and a batch of ``dataset`` is
    only rows of its interaction table (see the module docstring)."""
    setting = config["train_data_on_device"]
    if setting is False or setting is None or config["single_spec"] is False:  # DDP: RecBole's sharded loader
        return False
    if setting == "auto" and torch.device(config["device"]).type != "cuda":
        return False
    neg = config["train_neg_sample_args"] or {}
    return (
        config["MODEL_TYPE"] == ModelType.SEQUENTIAL
        and neg.get("distribution", "none") in (None, "none")
        and not config["transform"]
        and not config["worker"]
        and getattr(dataset, "user_feat", None) is None
        and getattr(dataset, "item_feat", None) is None
    )


class DeviceTrainDataLoader(TrainDataLoader):
    """RecBole's ``TrainDataLoader`` with the interaction table on ``config["device"]``."""

    def __init__(self, config, dataset, sampler, shuffle=False):
        super().__init__(config, dataset, sampler, shuffle=shuffle)
        self.device = torch.device(config["device"])
        self._rows = {k: v.to(self.device) for k, v in dataset.inter_feat.interaction.items()}

    def collate_fn(self, index):
        """The rows ``index`` of the interaction table, gathered on the device.

        Shape:
            - index: ``B`` row numbers
            - every field of the returned ``Interaction``: ``[B, ...]``
        """
        rows = torch.as_tensor(np.asarray(index, dtype=np.int64)).to(self.device, non_blocking=True)
        return Interaction({k: v.index_select(0, rows) for k, v in self._rows.items()})
