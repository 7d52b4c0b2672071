"""Pure loss functions shared by every model of the package.

Each function takes scores (logits) and targets and returns a scalar tensor; none holds state,
so models, tests and benchmarks call the same code.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


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


# --------------------------------------------------------------------------- VAE losses


def multinomial_nll_from_ids(logits: torch.Tensor, target_ids: torch.Tensor, pad_id: int = 0) -> torch.Tensor:
    """Multinomial negative log-likelihood of a few target items given by id, per row.

    The same value as :func:`multinomial_nll` with a multi-hot (count) target row holding the
    ids in ``target_ids``, without building that ``[..., n_items]`` row. Ids equal to ``pad_id``
    are ignored; an id repeated counts twice, as a count vector would.

    Args:
        logits: unnormalised scores over items.
        target_ids: item ids of the observed items, ``pad_id`` where there is none.
        pad_id: the id that marks "no target".

    Returns:
        ``-sum_k log softmax(logits)[target_k]`` per row (not averaged).

    Shape:
        - logits: ``[N, n_items]``
        - target_ids: ``[N, K]``
        - output: ``[N]``
    """
    log_p = F.log_softmax(logits, dim=-1).gather(-1, target_ids)
    return -(log_p * (target_ids != pad_id).to(log_p.dtype)).sum(dim=-1)


def annealed_elbo_loss(nll: torch.Tensor, kl: torch.Tensor, beta: float, weight: torch.Tensor = None) -> torch.Tensor:
    """Negative annealed ELBO ``mean(nll + beta * kl)``, optionally a weighted mean.

    Args:
        nll: reconstruction negative log-likelihood per row.
        kl: KL divergence per row (see :func:`gaussian_kl`).
        beta: KL weight (see :func:`kl_anneal_beta`).
        weight: non-negative weight per row (0 masks a row out); ``None``: plain mean.

    Returns:
        The scalar loss; 0 when every weight is 0.

    Shape:
        - nll, kl, weight: ``[N]``
        - output: ``[]``
    """
    per_row = nll + beta * kl
    if weight is None:
        return per_row.mean()
    weight = weight.to(per_row.dtype)
    return (per_row * weight).sum() / weight.sum().clamp(min=1.0)


def mse_loss(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error of predicted ratings.

    Shape:
        - prediction, target: ``[B]``
        - output: ``[]``
    """
    return F.mse_loss(prediction, target.to(prediction.dtype))


def l2_penalty(*tensors: torch.Tensor) -> torch.Tensor:
    """Sum of squares of the batch's parameters (rows of embeddings, biases), divided by the
    batch size (the first dimension of the first tensor): Koren's per-example regularisation.

    Shape:
        - tensors: ``[B, ...]`` each
        - output: ``[]``
    """
    return sum((t.float() ** 2).sum() for t in tensors) / max(tensors[0].shape[0], 1)
