"""Sampled ranking evaluation (``uni100``, ``pop100``, ...): its loader, candidates and scoring.

RecBole's sampled evaluation repeats every evaluated row once per candidate and calls
``predict`` on all of them, and draws new negatives at every evaluation. This package owns
recbole_ext's version of it, in three parts:

- :mod:`.candidates`: the negatives of a split, drawn once per split and seed
  (``eval_candidates: shared``, the default) so every model and epoch ranks the same ones;
  ``per_epoch`` keeps RecBole's draw. :mod:`.sampling` is RecBole's sampler without its Python
  loops (same draws).
- :mod:`.loader`: :class:`~.loader.CandidateEvalDataLoader`, each evaluated row once plus its
  candidate ids (sequential models), and RecBole's loader on the shared candidates (others).
- :mod:`.scoring`: :class:`~.scoring.SampledEvalMixin`, the trainer's side: each row encoded
  once and its candidates scored (metrics equal RecBole's path exactly).

One key switches the encode-once path on and off: ``fast_sampled_eval`` (``True`` by default
for sequential models), read by :func:`fast_path_on` alone, for the loader and the trainer.
"""

from __future__ import annotations

from typing import Optional

from recbole.data.dataloader import NegSampleEvalDataLoader
from recbole.utils import EvaluatorType, ModelType

from recbole_ext.evaluation.sampled.candidates import SharedNegSampleEvalDataLoader
from recbole_ext.evaluation.sampled.loader import CandidateBatch, CandidateEvalDataLoader
from recbole_ext.evaluation.sampled.scoring import SampledEvalMixin

__all__ = [
    "CandidateBatch",
    "CandidateEvalDataLoader",
    "SampledEvalMixin",
    "SharedNegSampleEvalDataLoader",
    "fast_path_on",
    "loader_class",
]


def fast_path_on(config) -> bool:
    """Whether sampled evaluation encodes each row once (the ``fast_sampled_eval`` key; on
    unless it is ``False``)."""
    return config["fast_sampled_eval"] is not False


def loader_class(config, recbole_class: type) -> Optional[type]:
    """Our loader in place of RecBole's sampled-evaluation loader ``recbole_class``: for
    sequential ranking evaluation on the fast path (the only case where each row can be encoded
    once) the candidate loader, for the other models RecBole's loader on the shared candidates;
    ``None`` for any other loader."""
    if recbole_class is not NegSampleEvalDataLoader:
        return None
    if (
        config["MODEL_TYPE"] == ModelType.SEQUENTIAL
        and config["eval_type"] == EvaluatorType.RANKING
        and fast_path_on(config)
    ):
        return CandidateEvalDataLoader
    return SharedNegSampleEvalDataLoader
