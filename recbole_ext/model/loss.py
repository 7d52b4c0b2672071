"""Pure loss functions shared by every model of the package.

Each function takes scores (logits) and targets and returns a scalar tensor; none holds state,
so models, tests and benchmarks call the same code.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def softmax_ce_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of the true next item against every item in the catalogue.

    Args:
        logits: scores for every item.
        target: index of the true item.

    Returns:
        The mean loss over the batch.

    Shape:
        - logits: ``[B, n_items]``
        - target: ``[B]``
        - output: ``[]``
    """
    return F.cross_entropy(logits, target)


def bpr_loss(pos_score: torch.Tensor, neg_score: torch.Tensor, gamma: float = 1e-10) -> torch.Tensor:
    """Bayesian personalised ranking: ``-log sigmoid(pos - neg)``, averaged.

    Shape:
        - pos_score, neg_score: ``[B]`` (or any equal shape)
        - output: ``[]``
    """
    return -torch.log(gamma + torch.sigmoid(pos_score - neg_score)).mean()


def multinomial_nll(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Multinomial negative log-likelihood ``-sum_i x_i log softmax(logits)_i`` per row.

    Args:
        logits: unnormalised scores over items.
        target: non-negative counts/weights of the observed items (a multi-hot row).

    Returns:
        The per-row negative log-likelihood (not averaged, so callers can mask rows).

    Shape:
        - logits, target: ``[..., n_items]``
        - output: ``[...]``
    """
    return -(F.log_softmax(logits, dim=-1) * target).sum(dim=-1)


def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL divergence ``KL(N(mu, exp(logvar)) || N(0, I))`` summed over the last dimension.

    Shape:
        - mu, logvar: ``[..., d]``
        - output: ``[...]``
    """
    return -0.5 * torch.sum(1.0 + logvar - mu.pow(2) - logvar.exp(), dim=-1)


def kl_anneal_beta(step: int, total_anneal_steps: int, anneal_cap: float) -> float:
    """KL weight after ``step`` optimiser updates: ``min(anneal_cap, step / total_anneal_steps)``.

    ``total_anneal_steps <= 0`` means no annealing: the cap is used from the first step.
    """
    if total_anneal_steps <= 0:
        return float(anneal_cap)
    return float(min(anneal_cap, step / total_anneal_steps))
