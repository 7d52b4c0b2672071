"""Per-user metric values of an evaluation, for significance tests over users.

RecBole's evaluator averages each top-k metric over the evaluated users at once. The
:class:`CapturingEvaluator` keeps the last data it evaluated (RecBole's ``DataStruct``: the
``rec.topk`` hit matrix and each user's positive count), and :func:`per_user_metrics` turns it into
one value per user and metric with RecBole's own metric classes (``metric_info``), so the mean of a
vector is exactly the reported metric. Value metrics (AUC, RMSE, ...) have no per-user form here.
"""

from __future__ import annotations

import inspect
from typing import Dict, Optional

import numpy as np
from recbole.evaluator import Evaluator
from recbole.evaluator.base_metric import TopkMetric
from recbole.evaluator.register import metrics_dict

from recbole_ext.distributed import is_distributed
from recbole_ext.evaluation.sharding import gather_struct


class CapturingEvaluator(Evaluator):
    """RecBole's ``Evaluator`` that remembers the data of its last evaluation (``last_struct``).

    On a rank of a data-parallel run it first gathers every rank's per-user rows in rank order
    (:func:`recbole_ext.evaluation.sharding.gather_struct`), so every rank computes the metrics of the
    whole evaluation, exactly as one process does.
    """

    last_struct = None

    def evaluate(self, dataobject):
        if is_distributed(self.config):
            gather_struct(dataobject)
        self.last_struct = dataobject
        return super().evaluate(dataobject)


def users_evaluated(struct) -> Optional[int]:
    """How many users an evaluation ranked (the rows of its ``rec.topk``), or ``None`` when the
    data hold no top-k ranking."""
    if struct is None or "rec.topk" not in struct:
        return None
    return int(struct.get("rec.topk").shape[0])


def per_user_metrics(struct, config) -> Dict[str, np.ndarray]:
    """``{"ndcg@10": [n_users], ...}`` for every top-k metric of ``config['metrics']``.

    Args:
        struct: RecBole's ``DataStruct`` of one evaluation (``CapturingEvaluator.last_struct``).
        config: the run's config (``metrics``, ``topk``).

    Returns:
        One float array per ``metric@k``, in the evaluation's user order; empty when the data
        hold no top-k ranking.
    """
    if struct is None or "rec.topk" not in struct:
        return {}
    out: Dict[str, np.ndarray] = {}
    for name in config["metrics"]:
        metric_class: Optional[type] = metrics_dict.get(name.lower())
        if metric_class is None or not issubclass(metric_class, TopkMetric):
            continue
        metric = metric_class(config)
        pos_index, pos_len = metric.used_info(struct)
        # RecBole's metric_info takes (pos_index, pos_len) for Recall/NDCG/MAP, (pos_index) for Hit/MRR/Precision
        wants_len = len(inspect.signature(metric.metric_info).parameters) > 1
        values = metric.metric_info(pos_index, pos_len) if wants_len else metric.metric_info(pos_index)
        for k in metric.topk:
            out[f"{name.lower()}@{k}"] = np.asarray(values[:, k - 1], dtype=np.float64)
    return out
