"""Whether a model fits, checked before its weights exist: the model is built on PyTorch's meta
device (shapes, no memory), its weights are counted against the run's device memory, and a
checkpoint to continue is compared with its shapes."""

from __future__ import annotations

import logging
import os
import warnings
from typing import Optional

import torch
from recbole.utils import ModelType

from recbole_ext.errors import ConfigError, UserError
from recbole_ext.trainer.checkpoint import Checkpoint, check_fits

#: bytes per weight while training, as a multiple of the weights alone: the weights and their
#: gradients (the optimizer's state comes on top, so this is a lower bound)
TRAINING_COPIES = 2


def meta_model(model_class: type, config, dataset) -> Optional[torch.nn.Module]:
    """``model_class(config, dataset)`` built on the meta device, or ``None`` for a model whose
    construction does work on the data (RecBole's traditional models) or cannot run there."""
    if getattr(model_class, "type", None) in (ModelType.TRADITIONAL, ModelType.DECISIONTREE):
        return None
    quiet = logging.root.manager.disable
    logging.disable(logging.WARNING)  # the real build says what it has to say, once
    try:
        with torch.device("meta"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return model_class(config, dataset)
    except UserError:  # a model's check of its settings against the data set
        raise
    except Exception:  # noqa: BLE001 - a model that builds only on a real device is checked by building it
        return None
    finally:
        logging.disable(quiet)


def state_bytes(model: torch.nn.Module) -> int:
    """Bytes of ``model``'s parameters and buffers."""
    tensors = list(model.parameters()) + list(model.buffers())
    return sum(t.numel() * t.element_size() for t in tensors)


def device_memory(device) -> Optional[int]:
    """Total memory of ``device`` in bytes (the machine's RAM for the CPU), ``None`` if unknown."""
    device = torch.device(device)
    if device.type == "cuda" and torch.cuda.is_available():
        return int(torch.cuda.get_device_properties(device).total_memory)
    if device.type == "cpu" and hasattr(os, "sysconf"):
        try:
            return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
        except (ValueError, OSError):
            return None
    return None


def check_memory(model: torch.nn.Module, config) -> None:
    """A one-line ConfigError when ``model``'s weights and their gradients exceed the memory of
    the run's device."""
    need = state_bytes(model) * TRAINING_COPIES
    have = device_memory(config["device"])
    if have is None or need <= have:
        return
    n = sum(p.numel() for p in model.parameters())
    raise ConfigError(
        f"{config['model']} has {n:,} weights; training needs at least {need / 2**30:,.1f} GiB, and "
        f"{config['device']} has {have / 2**30:,.1f} GiB: lower its sizes (hidden_size, embedding_size, ...)"
    )


def check_model_fits(
    model_class: type, config, dataset, resume_file: Optional[str] = None, checkpoint: Optional[Checkpoint] = None
):
    """Before the model is built: it fits the device's memory, and the weights of
    ``checkpoint`` (read from ``resume_file``) have its shapes
    (:func:`recbole_ext.trainer.checkpoint.check_fits`); one line otherwise."""
    model = meta_model(model_class, config, dataset)
    if model is None:
        return
    check_memory(model, config)
    if resume_file and checkpoint is not None:
        check_fits(resume_file, checkpoint, model, config)
