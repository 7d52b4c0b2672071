"""The checkpoint format: the one place that writes and reads it (:class:`Checkpoint`).

RecBole pickles its whole ``Config`` (enums, ``torch.device``) into checkpoints. torch >= 2.6
loads with ``weights_only=True`` by default and refuses those files, and loading them with
``weights_only=False`` runs whatever code a tampered file holds. Ours hold plain types only,
are written atomically (temporary file in the same folder, ``fsync``, then ``os.replace``, so a
crash or a kill during the write leaves the previous file whole) and are read with
``weights_only=True``.

What a checkpoint of ours holds (``format: recbole_ext/3``; the fields of :class:`Checkpoint`):

- ``config``: the resolved config as plain types (enums by name, devices as strings);
- ``state_dict``: the weights of the *best* epoch so far (what evaluation and recommendation
  use, as in RecBole), buffers included (e.g. a VAE's annealing step);
  ``last_state_dict``: the weights after the last finished epoch when they differ (resume);
- ``epoch`` (last finished), ``best_epoch``, ``cur_step``, ``best_valid_score``,
  ``best_valid_result``, ``stopped_early``: the early-stopping state;
- ``optimizer`` and ``scheduler`` state dicts, ``train_loss`` per epoch;
- ``rng``: python ``random``, numpy (as a tensor and plain numbers), torch CPU, CUDA if present,
  and the training loader's shuffling generator (:mod:`recbole_ext.trainer.rng`); in a
  data-parallel run each rank's (``rng["ranks"]``);
- ``world_size``: the number of data-parallel processes that trained it (1: one process); a
  resume must have as many (:func:`check_resume`);
- ``dataset``: the data set's schema (fields, types, token maps, feature tables;
  :mod:`recbole_ext.data.schema`), so that the model can be rebuilt on its own data-set class
  without the data files. ``recbole_ext/2`` files hold the user and item token maps only, and
  restore the same way.

A legacy RecBole checkpoint (pickled ``Config``) is loaded only with ``trust_checkpoint=True``
(``--trust-checkpoint`` on the command line); without it :class:`UntrustedCheckpointError`.
"""

from __future__ import annotations

import dataclasses
import enum
import math
import os
import pickle
import warnings
from typing import Any, Dict, Optional

import numpy as np
import torch

from recbole_ext.compat.numpy import restore_numpy_aliases
from recbole_ext.errors import UserError
from recbole_ext.fileio import atomic_open

FORMAT = "recbole_ext/3"


class CheckpointError(UserError):
    """The file is missing, unreadable or not a recbole_ext/RecBole checkpoint."""


class UntrustedCheckpointError(CheckpointError):
    """The file needs full unpickling (it may run code) and the caller did not trust it."""


def to_plain(obj: Any) -> Any:
    """Convert config values to types ``torch.load(weights_only=True)`` accepts."""
    if isinstance(obj, np.generic):  # before float: np.float64 is a float subclass
        return obj.item()
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if isinstance(obj, enum.Enum):
        return obj.name
    if isinstance(obj, torch.device):
        return str(obj)
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, dict):
        return {str(k): to_plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set)):
        return [to_plain(v) for v in obj]
    return str(obj)


def atomic_torch_save(obj: Any, path: str) -> None:
    """``torch.save`` to a temporary file beside ``path``, fsync, then rename over ``path``."""
    with atomic_open(path, "wb", suffix=".pth") as f:
        torch.save(obj, f)


def safe_load(path: str, map_location=None) -> dict:
    """Load a checkpoint with ``weights_only=True`` (no code can run); torch's warnings about
    what it refused stay quiet: the refusal is reported in one line by the caller."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.load(path, map_location=map_location, weights_only=True)


# ---------------------------------------------------------------- loading
_LEGACY_WHY = (
    "it was not written by recbole_ext: it is a pickled file (RecBole pickles its whole Config), "
    "and unpickling runs whatever code the file holds. Load it only if you trust where it came "
    "from, with --trust-checkpoint (trust_checkpoint=True)"
)


def _is_legacy_refusal(err: Exception) -> bool:
    return isinstance(err, pickle.UnpicklingError) or "weights_only" in str(err)


def load_checkpoint(path: str, trust_checkpoint: bool = False, map_location="cpu") -> "Checkpoint":
    """Read a checkpoint of ours safely, or a legacy RecBole one when trusted.

    Args:
        path: the ``.pth`` file.
        trust_checkpoint: allow full unpickling (RecBole's own checkpoints). Only for files
            whose origin you trust: unpickling can run any code.
        map_location: passed to ``torch.load``.

    Returns:
        The :class:`Checkpoint`; a legacy file's ``config`` is converted to plain types and
        ``legacy`` is ``True``.

    Raises:
        CheckpointError: missing or unreadable file, or not a checkpoint.
        UntrustedCheckpointError: the file needs unpickling and ``trust_checkpoint`` is False.
    """
    path = str(path)
    if not os.path.isfile(path):
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        raw, legacy = safe_load(path, map_location=map_location), False
    except Exception as e:  # noqa: BLE001 - torch raises several types here
        if not _is_legacy_refusal(e):
            why = str(e).strip().split(". ")[0].splitlines()[0][:100] if str(e).strip() else ""
            raise CheckpointError(
                f"cannot read checkpoint {path} ({type(e).__name__}: {why}): the file is cut short or damaged; "
                "use another checkpoint, or train again"
            ) from None
        if not trust_checkpoint:
            raise UntrustedCheckpointError(f"refusing to load {path}: {_LEGACY_WHY}") from None
        raw, legacy = _unpickle(path, map_location), True
    if not isinstance(raw, dict) or "state_dict" not in raw or "config" not in raw:
        raise CheckpointError(
            f"{path} is not a model checkpoint (expected a dict with 'config' and 'state_dict', "
            f"got {type(raw).__name__})"
        )
    if legacy or not isinstance(raw["config"], dict):
        raw["config"] = to_plain(dict(getattr(raw["config"], "final_config_dict", raw["config"])))
        legacy = True
    return Checkpoint.from_dict(raw, legacy=legacy)


def _unpickle(path: str, map_location):
    """A legacy RecBole checkpoint, fully unpickled (the caller trusts it)."""
    restore_numpy_aliases()
    warnings.warn(f"loading {path} with full unpickling (trust_checkpoint=True): this can run code", stacklevel=3)
    try:
        return torch.load(path, map_location=map_location, weights_only=False)
    except Exception as e:  # noqa: BLE001
        raise CheckpointError(f"cannot read checkpoint {path}: {type(e).__name__}: {e}") from None


@dataclasses.dataclass
class Checkpoint:
    """A checkpoint's contents (see the module docstring for each field). :meth:`save` writes
    the layout, :func:`load_checkpoint` reads it back; nothing else knows the keys."""

    config: Dict[str, Any]
    state_dict: Dict[str, torch.Tensor]
    epoch: int = -1
    best_epoch: int = -1
    cur_step: int = 0
    best_valid_score: float = -math.inf
    best_valid_result: Optional[Dict[str, Any]] = None
    stopped_early: bool = False
    last_state_dict: Optional[Dict[str, torch.Tensor]] = None
    other_parameter: Dict[str, Any] = dataclasses.field(default_factory=dict)
    optimizer: Optional[Dict[str, Any]] = None
    scheduler: Optional[Dict[str, Any]] = None
    train_loss: Dict[int, Any] = dataclasses.field(default_factory=dict)
    rng: Optional[Dict[str, Any]] = None
    dataset: Dict[str, Any] = dataclasses.field(default_factory=dict)
    world_size: int = 1
    legacy: bool = False

    @classmethod
    def from_dict(cls, raw: Dict[str, Any], legacy: bool = False) -> "Checkpoint":
        """From a loaded file (ours of any format, or RecBole's, which lacks most fields)."""
        names = {f.name for f in dataclasses.fields(cls)} - {"legacy"}
        kept = {k: v for k, v in raw.items() if k in names and v is not None}
        kept["train_loss"] = {int(k): v for k, v in (kept.get("train_loss") or {}).items()}
        kept.setdefault("best_epoch", kept.get("epoch", -1))
        rng = kept.get("rng")
        ranks = rng.get("ranks") if isinstance(rng, dict) else None
        kept.setdefault("world_size", len(ranks) if ranks else 1)  # files written before the field
        return cls(**kept, legacy=legacy)

    def save(self, path: str) -> None:
        """Write the file atomically, with the format tag."""
        state = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "legacy"}
        atomic_torch_save({"format": FORMAT, **state}, path)

    def load_weights(self, model: torch.nn.Module, last: bool = False) -> None:
        """The best weights (``last``: those of the last finished epoch) and the other
        parameters into ``model``."""
        model.load_state_dict(self.last_state_dict if last and self.last_state_dict is not None else self.state_dict)
        restore_other_parameter(model, self.other_parameter)


def plain_other_parameter(other: Optional[dict]) -> dict:
    """A model's ``other_parameter()`` with arrays as tensors (weights_only-loadable). Submodules
    (RecBole's DIN lists its ``embedding_layer``) are left out: their weights are in the state
    dict already, and as plain data they would come back as text."""
    out = {}
    for key, value in (other or {}).items():
        if isinstance(value, torch.nn.Module):
            continue
        if isinstance(value, np.ndarray) and value.dtype.kind in "biuf":
            out[str(key)] = torch.from_numpy(value.copy())
        else:
            out[str(key)] = to_plain(value)
    return out


def check_identity(path: str, saved_config: dict, config) -> None:
    """A checkpoint (its plain ``saved_config``) must be of ``config``'s model and data set."""
    for key in ("model", "dataset"):
        theirs, ours = str(saved_config.get(key, "")), str(config[key])
        if theirs.lower() != ours.lower():
            raise CheckpointError(f"{path} was written for {key} {theirs}, not {ours}: resume it with --{key}={theirs}")


def check_fits(path: str, checkpoint: "Checkpoint", model: torch.nn.Module, config) -> None:
    """The checkpoint's weights have this model's shapes, or one line naming the weights that
    differ and the settings that made them differ."""
    mine, theirs = model.state_dict(), checkpoint.state_dict
    wrong = [
        f"{k} {list(theirs[k].shape)} there, {list(mine[k].shape)} here"
        for k in theirs
        if k in mine and tuple(theirs[k].shape) != tuple(mine[k].shape)
    ]
    wrong += [f"{k} missing there" for k in mine if k not in theirs]
    wrong += [f"{k} not in this model" for k in theirs if k not in mine]
    if not wrong:
        return
    keys = set(getattr(config, "model_keys", [])) | {"MAX_ITEM_LIST_LENGTH", "embedding_size", "hidden_size"}
    changed = sorted(
        f"{k}={checkpoint.config[k]!r} there, {config[k]!r} here"
        for k in keys
        if k in checkpoint.config and k in config and checkpoint.config[k] != config[k]
    )
    why = f" (settings: {'; '.join(changed)})" if changed else ""
    shown = "; ".join(wrong[:3]) + (f"; and {len(wrong) - 3} more" if len(wrong) > 3 else "")
    raise CheckpointError(f"{path} does not fit this model: {shown}{why}; resume with the settings it was trained with")


def check_resume(path: str, config, trust_checkpoint: bool = False, world_size: int = 1) -> "Checkpoint":
    """Before any data set or model is built: ``path`` must be a readable checkpoint of this
    model on this data set, trained by ``world_size`` processes (a one-line
    :class:`CheckpointError` otherwise). Returns the checkpoint, read once."""
    checkpoint = load_checkpoint(path, trust_checkpoint, map_location="cpu")
    check_identity(path, checkpoint.config, config)
    check_world_size(path, checkpoint, world_size)
    return checkpoint


def check_world_size(path: str, checkpoint: "Checkpoint", world_size: int) -> None:
    """A run continues only under as many processes as trained it: each one's random state and
    share of the training data are in the checkpoint, so another number would train on."""
    theirs = int(checkpoint.world_size or 1)
    if checkpoint.legacy or theirs == world_size:
        return
    how = (
        f"{theirs} data-parallel processes (torchrun --nproc_per_node/--nnodes, or --nproc={theirs})"
        if theirs > 1
        else "one process (no torchrun, no --nproc)"
    )
    raise CheckpointError(
        f"{path} was trained by {theirs} process(es) and this run has {world_size}: each process's random "
        f"state and share of the data are in it, so another number would not continue the same run; resume with {how}"
    )


def restore_other_parameter(model: torch.nn.Module, other: Optional[dict]) -> None:
    """RecBole's ``load_other_parameter`` for a checkpoint's ``other_parameter``, skipping any
    entry that names one of the model's submodules (checkpoints written before submodules were
    left out hold them as text)."""
    kept = {k: v for k, v in (other or {}).items() if not isinstance(getattr(model, k, None), torch.nn.Module)}
    model.load_other_parameter(kept or None)
