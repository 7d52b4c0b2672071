"""Checkpoints that hold only tensors and plain data.

RecBole pickles its whole ``Config`` (enums, ``torch.device``) into checkpoints. torch >= 2.6
loads with ``weights_only=True`` by default and refuses those files, and loading them with
``weights_only=False`` runs whatever code a tampered file holds. Ours hold plain types only,
are written atomically (temporary file in the same folder, ``fsync``, then ``os.replace``, so a
crash or a kill during the write leaves the previous file whole) and are read with
``weights_only=True``.

What a checkpoint of ours holds (``format: recbole_ext/2``):

- ``config``: the resolved config as plain types (enums by name, devices as strings);
- ``state_dict``: the weights of the *best* epoch so far (what evaluation and recommendation
  use, as in RecBole), buffers included (e.g. a VAE's annealing step);
  ``last_state_dict``: the weights after the last finished epoch when they differ (resume);
- ``epoch`` (last finished), ``best_epoch``, ``cur_step``, ``best_valid_score``,
  ``best_valid_result``, ``stopped_early``: the early-stopping state;
- ``optimizer`` and ``scheduler`` state dicts, ``train_loss`` per epoch;
- ``rng``: python ``random``, numpy (as a tensor and plain numbers), torch CPU, CUDA if present,
  and the training loader's shuffling generator;
- ``dataset``: the user and item field names, counts and id -> token lists, so that a model can
  be rebuilt and asked for recommendations without reloading the data set.

A legacy RecBole checkpoint (pickled ``Config``) is loaded only with ``trust_checkpoint=True``
(``--trust-checkpoint`` on the command line); without it :class:`UntrustedCheckpointError`.
"""

from __future__ import annotations

import enum
import os
import pickle
import random
from typing import Any, Dict, Optional

import numpy as np
import torch

from recbole_ext.fileio import atomic_open

from recbole_ext.errors import UserError

FORMAT = "recbole_ext/2"


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
    """Load a checkpoint with ``weights_only=True`` (no code can run)."""
    return torch.load(path, map_location=map_location, weights_only=True)


# ---------------------------------------------------------------- RNG states
def rng_state() -> Dict[str, Any]:
    """Every global random state training draws from, as tensors and plain numbers.

    numpy's ``MT19937`` state is stored as a uint32 key tensor (as int64) plus plain numbers,
    so ``weights_only`` loading accepts it.
    """
    py_version, py_internal, py_gauss = random.getstate()
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    state = {
        "python": {
            "version": int(py_version),
            "internal": torch.tensor(py_internal, dtype=torch.int64),
            "gauss_next": py_gauss,
        },
        "numpy": {
            "name": str(np_name),
            "keys": torch.from_numpy(np.asarray(np_keys, dtype=np.int64).copy()),
            "pos": int(np_pos),
            "has_gauss": int(np_has_gauss),
            "cached_gaussian": float(np_gauss),
        },
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }
    return state


def set_rng_state(state: Dict[str, Any]) -> None:
    """Restore what :func:`rng_state` captured (CUDA only where devices are present).

    The state may come from a checkpoint loaded onto a GPU (``map_location="cuda"``): every
    tensor is read back through the CPU, which is where RNG states and numpy live.
    """
    py = state["python"]
    random.setstate((py["version"], tuple(int(x) for x in py["internal"].tolist()), py["gauss_next"]))
    npst = state["numpy"]
    np.random.set_state(
        (
            npst["name"],
            npst["keys"].cpu().numpy().astype(np.uint32),
            npst["pos"],
            npst["has_gauss"],
            npst["cached_gaussian"],
        )
    )
    torch.set_rng_state(state["torch"].cpu())
    cuda = state.get("cuda") or []
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all([c.cpu() for c in cuda])


# ---------------------------------------------------------------- loading
_LEGACY_WHY = (
    "it was not written by recbole_ext: it is a pickled file (RecBole pickles its whole Config), "
    "and unpickling runs whatever code the file holds. Load it only if you trust where it came "
    "from, with --trust-checkpoint (trust_checkpoint=True)"
)


def _is_legacy_refusal(err: Exception) -> bool:
    return isinstance(err, pickle.UnpicklingError) or "weights_only" in str(err)


def load_checkpoint(path: str, trust_checkpoint: bool = False, map_location="cpu") -> dict:
    """Load a checkpoint of ours safely, or a legacy RecBole one when trusted.

    Args:
        path: the ``.pth`` file.
        trust_checkpoint: allow full unpickling (RecBole's own checkpoints). Only for files
            whose origin you trust: unpickling can run any code.
        map_location: passed to ``torch.load``.

    Returns:
        The checkpoint dict; a legacy file's ``config`` is converted to plain types and
        ``legacy`` is set to ``True``.

    Raises:
        CheckpointError: missing or unreadable file, or not a checkpoint.
        UntrustedCheckpointError: the file needs unpickling and ``trust_checkpoint`` is False.
    """
    path = str(path)
    if not os.path.isfile(path):
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        ckpt = safe_load(path, map_location=map_location)
        legacy = False
    except Exception as e:  # noqa: BLE001 - torch raises several types here
        if not _is_legacy_refusal(e):
            raise CheckpointError(f"cannot read checkpoint {path}: {type(e).__name__}: {e}") from None
        if not trust_checkpoint:
            raise UntrustedCheckpointError(f"refusing to load {path}: {_LEGACY_WHY}") from None
        from recbole_ext.compat.numpy import restore_numpy_aliases

        restore_numpy_aliases()
        import warnings

        warnings.warn(
            f"loading {path} with full unpickling (trust_checkpoint=True): this can run code",
            stacklevel=2,
        )
        try:
            ckpt = torch.load(path, map_location=map_location, weights_only=False)
        except Exception as e2:  # noqa: BLE001
            raise CheckpointError(f"cannot read checkpoint {path}: {type(e2).__name__}: {e2}") from None
        legacy = True
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt or "config" not in ckpt:
        raise CheckpointError(
            f"{path} is not a model checkpoint (expected a dict with 'config' and 'state_dict', "
            f"got {type(ckpt).__name__})"
        )
    if legacy or not isinstance(ckpt["config"], dict):
        cfg = ckpt["config"]
        cfg = getattr(cfg, "final_config_dict", cfg)
        ckpt["config"] = to_plain(dict(cfg))
        ckpt["legacy"] = True
    return ckpt


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


def check_resume(path: str, config, trust_checkpoint: bool = False) -> None:
    """Before any data set or model is built: ``path`` must be a readable checkpoint of this
    model on this data set (a one-line :class:`CheckpointError` otherwise)."""
    check_identity(path, load_checkpoint(path, trust_checkpoint, map_location="cpu")["config"], config)


def restore_other_parameter(model: torch.nn.Module, other: Optional[dict]) -> None:
    """RecBole's ``load_other_parameter`` for a checkpoint's ``other_parameter``, skipping any
    entry that names one of the model's submodules (checkpoints written before submodules were
    left out hold them as text)."""
    kept = {k: v for k, v in (other or {}).items() if not isinstance(getattr(model, k, None), torch.nn.Module)}
    model.load_other_parameter(kept or None)
