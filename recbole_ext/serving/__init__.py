"""Recommendations from a trained checkpoint: :class:`Recommender` (load once, ask many times),
:func:`recommend`, :func:`recommend_file`."""

from recbole_ext.serving.batch import read_histories, recommend_file, write_recommendations
from recbole_ext.serving.recommender import (
    EmptyHistoryError,
    Recommendation,
    Recommender,
    UnknownTokenWarning,
    recommend,
)
from recbole_ext.serving.restore import UnsupportedModelError, restore_model

__all__ = [
    "EmptyHistoryError",
    "Recommendation",
    "Recommender",
    "UnknownTokenWarning",
    "UnsupportedModelError",
    "read_histories",
    "recommend",
    "recommend_file",
    "restore_model",
    "write_recommendations",
]
