"""MultVAE: the multinomial variational autoencoder for collaborative filtering.

Paper: Dawen Liang, Rahul G. Krishnan, Matthew D. Hoffman, Tony Jebara, "Variational
Autoencoders for Collaborative Filtering", WWW 2018.
Reference code: https://github.com/dawenl/vae_cf (TensorFlow 1, ``VAE_ML20M_WWW2018.ipynb``).

Model: the user's training row ``x`` (multi-hot over items) is L2-normalised, dropped out
(``dropout_prob``, 0.5), encoded ``n_items -> 600 -> (mu, logvar)`` with tanh, sampled
``z = mu + eps * sigma`` (``eps ~ N(0, 1)``) in training and ``z = mu`` at evaluation, and decoded
``latent -> 600 -> n_items`` with tanh between layers. Loss: multinomial NLL
``-sum_i x_i log softmax(f(z))_i`` plus ``beta * KL(q(z|x) || N(0, I))``, averaged over users,
with ``beta = min(anneal_cap, step / total_anneal_steps)`` where ``step`` counts optimiser
updates across epochs.

Deviations from the paper / reference code:

- ``mu`` and ``logvar`` come from two linear heads of ``latent_dim`` each; the reference uses one
  layer of ``2 * latent_dim`` outputs split in half, which is the same function but a different
  initialisation: Xavier-uniform on each ``600 x 200`` head gives a wider bound
  (``sqrt(6 / 800)``) than on the reference's one ``600 x 400`` layer (``sqrt(6 / 1000)``).
- The log-variance is clamped to ``[-10, 10]`` (``logvar_clamp``) so extreme inputs cannot give
  ``inf``; the reference has no clamp.
- The annealing step counter is a registered buffer (``anneal_step``): it is saved in the state
  dict and a resumed run continues the schedule. It advances in :meth:`on_optimizer_step`, which
  the trainer calls after every update; the reference counts in its own Python loop.
- No L2 weight penalty, as the reference's Mult-VAE run (``lam=0.0``; only its Mult-DAE run uses
  L2, ``lam=0.01``); RecBole's ``weight_decay`` adds one if wanted. Biases start at 0
  (reference: truncated normal with std 0.001); weights use Xavier-uniform as the reference.
- Training batches are users from RecBole's ``UserDataLoader`` (``train_batch_size`` users); the
  reference uses 500 users per batch on ML-20M. Evaluation follows RecBole's protocol (the rows
  of the training split are the input; RecBole masks training items in full ranking); the paper
  evaluates on held-out users with a fold-in split.

Differences from RecBole's ``MultiVAE`` (both stay runnable, ``--model=MultiVAE`` is RecBole's):

- RecBole splits one ``latent_dimension`` (128) output in half, so its latent size is 64; here
  ``mu`` and ``logvar`` are each ``latent_dim`` (200, as the paper).
- RecBole samples ``eps ~ N(0, 0.01^2)`` (noise std 0.01), which nearly removes the sampling;
  here ``eps ~ N(0, 1)`` as the paper.
- RecBole's step counter is a plain attribute that advances on every ``calculate_loss`` call and is
  not saved with the model; ours is a buffer advanced per optimiser update.
- RecBole's log-variance is unbounded; ours is clamped.
- RecBole initialises with Xavier-normal; ours with Xavier-uniform as the reference.
"""

from __future__ import annotations

from typing import Tuple

import torch
import torch.nn.functional as F
from recbole.data.dataloader import UserDataLoader
from recbole.model.abstract_recommender import AutoEncoderMixin, GeneralRecommender
from recbole.utils import InputType
from torch import nn

from recbole_ext.model.layers import GaussianLatent
from recbole_ext.model.loss import annealed_elbo_loss, gaussian_kl, kl_anneal_beta, multinomial_nll


def _mlp(dims, final_activation: bool) -> nn.Sequential:
    """Linear layers ``dims[0] -> ... -> dims[-1]`` with tanh between them (and after the last one
    when ``final_activation``)."""
    layers = []
    for i, (d_in, d_out) in enumerate(zip(dims[:-1], dims[1:])):
        layers.append(nn.Linear(d_in, d_out))
        if final_activation or i < len(dims) - 2:
            layers.append(nn.Tanh())
    return nn.Sequential(*layers)


class MultVAE(GeneralRecommender, AutoEncoderMixin):
    """Mult-VAE of Liang et al. (2018); see the module docstring.

    Config keys: ``mlp_hidden_size`` (list of hidden widths, ``[600]``), ``latent_dim`` (200),
    ``dropout_prob`` (0.5), ``anneal_cap`` (0.2), ``total_anneal_steps`` (200000),
    ``logvar_clamp`` (10.0).
    """

    input_type = InputType.POINTWISE
    train_dataloader = UserDataLoader

    def __init__(self, config, dataset):
        super().__init__(config, dataset)

        # load parameters info
        self.hidden_sizes = list(config["mlp_hidden_size"])
        self.latent_dim: int = int(config["latent_dim"])
        self.dropout_prob: float = float(config["dropout_prob"])
        self.anneal_cap: float = float(config["anneal_cap"])
        self.total_anneal_steps: int = int(config["total_anneal_steps"])
        logvar_clamp: float = float(config["logvar_clamp"])

        self.build_histroy_items(dataset)

        # define layers
        enc_dims = [self.n_items] + self.hidden_sizes
        self.encoder = _mlp(enc_dims, final_activation=True) if self.hidden_sizes else nn.Identity()
        self.latent = GaussianLatent(enc_dims[-1], self.latent_dim, logvar_clamp)
        self.decoder = _mlp([self.latent_dim] + self.hidden_sizes[::-1] + [self.n_items], final_activation=False)
        # optimiser updates so far: in the state dict, so a resumed run continues the schedule
        self.register_buffer("anneal_step", torch.zeros((), dtype=torch.long))

        # parameters initialization
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.xavier_uniform_(module.weight)
            nn.init.zeros_(module.bias)

    # ------------------------------------------------------------------ annealing
    def beta(self) -> float:
        """The current KL weight ``min(anneal_cap, anneal_step / total_anneal_steps)``."""
        return kl_anneal_beta(int(self.anneal_step), self.total_anneal_steps, self.anneal_cap)

    def on_optimizer_step(self) -> None:
        """Called by the trainer after each optimiser update: advance the annealing schedule."""
        self.anneal_step += 1

    # ------------------------------------------------------------------ model
    def forward(self, rating_matrix: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Encode users' rows and decode item logits.

        Args:
            rating_matrix: the users' training interactions (multi-hot).

        Returns:
            ``(logits, mu, logvar)``.

        Shape:
            - rating_matrix: ``[B, n_items]``
            - logits: ``[B, n_items]``; mu, logvar: ``[B, latent_dim]``
        """
        h = F.normalize(rating_matrix, p=2, dim=1)
        h = F.dropout(h, self.dropout_prob, training=self.training)
        h = self.encoder(h)
        z, mu, logvar = self.latent(h)
        return self.decoder(z), mu, logvar

    def calculate_loss(self, interaction) -> torch.Tensor:
        """Multinomial NLL + ``beta`` * KL, averaged over the batch's users."""
        rating_matrix = self.get_rating_matrix(interaction[self.USER_ID])
        logits, mu, logvar = self.forward(rating_matrix)
        return annealed_elbo_loss(multinomial_nll(logits, rating_matrix), gaussian_kl(mu, logvar), self.beta())

    def predict(self, interaction) -> torch.Tensor:
        """Score of ``interaction[ITEM_ID]`` for each row. Shape: ``[B]``."""
        item = interaction[self.ITEM_ID]
        scores, _, _ = self.forward(self.get_rating_matrix(interaction[self.USER_ID]))
        return scores.gather(1, item.view(-1, 1)).squeeze(1)

    def full_sort_predict(self, interaction) -> torch.Tensor:
        """Scores of every item for each user. Shape: ``[B, n_items]``."""
        scores, _, _ = self.forward(self.get_rating_matrix(interaction[self.USER_ID]))
        return scores
