"""The requests of the commands that read a checkpoint: ``evaluate``, ``recommend``."""

from __future__ import annotations

import dataclasses
import os
from typing import Optional, Tuple

from recbole_ext.command.options import need, option_key, writable_folder
from recbole_ext.devices import check_device
from recbole_ext.errors import UserError

#: The keys ``evaluate`` may change; every other key is the checkpoint's.
EVAL_KEYS = frozenset(
    {
        "eval_args",
        "eval_neg_exclude",
        "eval_candidates",
        "metrics",
        "topk",
        "valid_metric",
        "eval_batch_size",
        "metric_decimal_place",
        "fast_sampled_eval",
        "data_path",
        "precision",
        "show_progress",
        "state",
    }
)


@dataclasses.dataclass(frozen=True)
class EvaluateRequest:
    """``evaluate``: a checkpoint's validation and test metrics, under its own evaluation
    settings or other ones (:mod:`recbole_ext.serving.evaluate`).

    Attributes:
        checkpoint: the checkpoint a run wrote.
        config_args: ``--key=value`` strings, evaluation keys only.
        trust_checkpoint: allow a legacy RecBole checkpoint (a pickle).
        device: where to evaluate (``None``: a GPU when one is visible).
    """

    checkpoint: Optional[str]
    config_args: Tuple[str, ...] = ()
    trust_checkpoint: bool = False
    device: Optional[str] = None

    def __post_init__(self) -> None:
        need("checkpoint", self.checkpoint, "pass --checkpoint=PATH, a file a run wrote")
        if not os.path.isfile(self.checkpoint):
            raise UserError(f"--checkpoint {self.checkpoint} is not a file")
        for arg in self.config_args:
            key = option_key(arg)
            if key is None:
                raise UserError(f"evaluate takes its keys as --key=value, got '{arg}'")
            if key not in EVAL_KEYS:
                raise UserError(
                    f"evaluate changes evaluation keys only ({', '.join(sorted(EVAL_KEYS))}); got {arg}: "
                    "the model and data keys are the checkpoint's"
                )
        if self.device is not None:
            check_device(self.device)


@dataclasses.dataclass(frozen=True)
class RecommendRequest:
    """``recommend``: top-k items from a checkpoint, for one history or a file of them."""

    checkpoint: Optional[str]
    items: Optional[str] = None
    items_file: Optional[str] = None
    output: Optional[str] = None
    k: int = 10
    exclude_seen: bool = False
    trust_checkpoint: bool = False
    force: bool = False

    def __post_init__(self) -> None:
        if not self.checkpoint:
            raise UserError("recommend needs --checkpoint=PATH")
        if bool(self.items) == bool(self.items_file):
            raise UserError("recommend needs exactly one of --items=ID,ID,... or --items-file=PATH")
        if self.items_file and not self.output:
            raise UserError("--items-file needs --output=PATH")
        if self.items_file and not os.path.isfile(self.items_file):
            raise UserError(f"--items-file {self.items_file} is not a file")
        if self.output and os.path.isdir(self.output):
            raise UserError(f"--output {self.output} is a folder: name the TSV file to write")
        if self.output and os.path.exists(self.output) and not self.force:
            raise UserError(f"--output {self.output} exists; pass --force to overwrite it")
        if self.output:
            writable_folder("--output", os.path.dirname(os.path.abspath(self.output)))
        if self.k < 1:
            raise UserError(f"--k must be at least 1, got {self.k}")
