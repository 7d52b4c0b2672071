"""SVAE: the sequential variational autoencoder for collaborative filtering, batched.

Paper: Noveen Sachdeva, Giuseppe Manco, Ettore Ritacco, Vikram Pudi, "Sequential Variational
Autoencoders for Collaborative Filtering", WSDM 2019.
Reference code: https://github.com/noveens/svae_cf (PyTorch, ``main_svae.py`` / ``main_svae.ipynb``).

Model, at every time step ``t`` of a user's sequence: item embedding -> GRU -> ``Linear + tanh``
-> ``(mu_t, logvar_t)`` -> ``z_t`` (sampled in training, ``mu_t`` at evaluation) -> ``Linear + tanh``
-> ``Linear`` to ``n_items``: the distribution of the next item(s). Loss per user, as the
reference's ``VAELoss``: the multinomial NLL of the next ``next_k`` items summed over the user's
real steps and divided by the number of targets of the first step (``next_k``, fewer for a user
with fewer items left), plus ``beta * KL(q(z_t) || N(0, I))`` averaged over the real steps;
the batch loss is the mean over users. ``beta = min(anneal_cap, step / total_anneal_steps)``,
``step`` counting optimiser updates. ``loss_normalisation: per_step`` averages
``NLL / next_k + beta * KL`` over all real steps of the batch instead, which weighs the KL term
as many times more as a user has steps.

Deviations from the paper / reference code:

- Batched: each batch holds ``train_batch_size`` users' whole training sequences, right-padded;
  the loss is masked to real steps (the reference trains one user at a time, batch size 1). One
  sample per user per epoch (:class:`recbole_ext.data.dataset.SVAEDataset`), not RecBole's one
  sample per prefix. Training sequences keep the last ``train_max_len`` items
  (default ``MAX_ITEM_LIST_LENGTH + 1``); the reference uses whole histories.
- Bug fixed: the reference's KL term reads the encoder output as a log-variance
  (``0.5 * (-logvar + exp(logvar) + mu^2 - 1)``) while its sampler reads the same output as a
  log-standard-deviation (``z = mu + exp(log_sigma) * eps``). Here it is a log-variance in both
  (``z = mu + exp(logvar / 2) * eps``), clamped to ``[-logvar_clamp, logvar_clamp]``.
- Bug fixed: the reference re-creates its annealing counter at the start of every epoch, so with
  ``total_anneal_steps = 200000`` the KL weight never gets near the cap. Here the counter is a
  registered buffer (``anneal_step``) advanced after every optimiser update across epochs, saved
  in the state dict (a resumed run continues the schedule).
- Bug fixed: the reference samples ``z`` at test time, so its rankings are random draws. Here
  evaluation uses ``z = mu`` (deterministic).
- ``mu`` and ``logvar`` come from two linear heads (the reference splits one layer of
  ``2 * latent_dim`` outputs in half: the same function).
- Evaluation is RecBole's leave-one-out protocol: the next item is scored from the state after the
  last input item (the reference ranks a held-out 20% of each test user's items from the last
  step). Scoring, ``predict`` and ``full_sort_predict`` are those of
  :class:`~recbole_ext.model.abstract_recommender.SequenceEncoderRecommender`: :meth:`forward`
  returns the decoder's hidden layer, :meth:`item_table` is the output layer's weight and the
  base's ``item_bias`` is the output layer's bias (``item_bias: True`` in the defaults).
- The embedding has a padding row (id 0); the reference has none, which is why it cannot pad.
- Initialisation: the linear layers are Xavier-normal with zero biases; the reference keeps
  PyTorch's defaults (Kaiming-uniform weights, uniform biases). Its one ``2 * latent_dim`` layer
  split in half initialises like one layer; ours are two heads of ``latent_dim``.
- Defaults as the reference (embedding 256, GRU 200, hidden 150, latent 64) except ``next_k = 1``
  (the reference's script uses 4) and ``weight_decay`` RecBole's 0 (reference 5e-3).
"""

from __future__ import annotations

from typing import Tuple

import torch
from torch import nn

from recbole_ext.errors import ConfigError
from recbole_ext.model.abstract_recommender import SequenceEncoderRecommender
from recbole_ext.model.layers import GaussianLatent
from recbole_ext.model.loss import annealed_elbo_loss, gaussian_kl, kl_anneal_beta, multinomial_nll_from_ids


def next_k_targets(item_seq: torch.Tensor, item_seq_len: torch.Tensor, last_item: torch.Tensor, k: int) -> torch.Tensor:
    """Targets of every input step: the next ``k`` items of the full sequence, 0 where none.

    The full sequence of row ``b`` is ``item_seq[b, :len_b] + [last_item[b]]``; the targets of
    step ``t < len_b`` are its items ``t + 1 .. t + k``.

    Shape:
        - item_seq: ``[B, T]`` (right-padded with 0); item_seq_len, last_item: ``[B]``
        - output: ``[B, T, k]``
    """
    B, T = item_seq.shape
    full = torch.cat([item_seq, item_seq.new_zeros(B, k)], dim=1)  # [B, T + k]
    full[torch.arange(B, device=item_seq.device), item_seq_len] = last_item
    # steps past the end of a row read only padding, so their targets stay 0
    return full.unfold(1, k, 1)[:, 1 : T + 1]  # [B, T, k]


class SVAE(SequenceEncoderRecommender):
    """Sequential VAE of Sachdeva et al. (2019), batched; see the module docstring.

    Config keys: ``embedding_size`` (256), ``rnn_size`` (200), ``hidden_size`` (150),
    ``latent_dim`` (64), ``next_k`` (1), ``anneal_cap`` (0.2), ``total_anneal_steps`` (200000),
    ``logvar_clamp`` (10.0), ``loss_normalisation`` (``reference``), ``train_max_len`` (read by
    the data set), plus the base's
    ``loss_type`` (must be ``CE``; the loss is SVAE's own) and ``item_bias``.
    """

    def __init__(self, config, dataset):
        super().__init__(config, dataset)

        # load parameters info
        self.embedding_size: int = int(config["embedding_size"])
        self.rnn_size: int = int(config["rnn_size"])
        self.hidden_size: int = int(config["hidden_size"])
        self.latent_dim: int = int(config["latent_dim"])
        self.next_k: int = int(config["next_k"])
        self.anneal_cap: float = float(config["anneal_cap"])
        self.total_anneal_steps: int = int(config["total_anneal_steps"])
        logvar_clamp: float = float(config["logvar_clamp"])
        self.loss_normalisation: str = str(config["loss_normalisation"] or "reference")
        if self.next_k < 1:
            raise ConfigError(f"next_k must be at least 1, got {self.next_k}")
        if self.loss_normalisation not in ("reference", "per_step"):
            raise ConfigError(f"loss_normalisation must be reference or per_step, got {self.loss_normalisation!r}")

        # define layers
        self.item_embedding = nn.Embedding(self.n_items, self.embedding_size, padding_idx=0)
        self.gru = nn.GRU(self.embedding_size, self.rnn_size, batch_first=True)
        self.encoder = nn.Sequential(nn.Linear(self.rnn_size, self.hidden_size), nn.Tanh())
        self.latent = GaussianLatent(self.hidden_size, self.latent_dim, logvar_clamp)
        self.decoder = nn.Sequential(nn.Linear(self.latent_dim, self.hidden_size), nn.Tanh())
        self.item_output = nn.Linear(self.hidden_size, self.n_items, bias=False)
        self.register_buffer("anneal_step", torch.zeros((), dtype=torch.long))

        # parameters initialization
        for module in (self.encoder[0], self.latent.mu, self.latent.logvar, self.decoder[0], self.item_output):
            nn.init.xavier_normal_(module.weight)
            if module.bias is not None:
                nn.init.zeros_(module.bias)

    # ------------------------------------------------------------------ annealing
    def beta(self) -> float:
        """The current KL weight ``min(anneal_cap, anneal_step / total_anneal_steps)``."""
        return kl_anneal_beta(int(self.anneal_step), self.total_anneal_steps, self.anneal_cap)

    def on_optimizer_step(self) -> None:
        """Called by the trainer after each optimiser update: advance the annealing schedule."""
        self.anneal_step += 1

    # ------------------------------------------------------------------ model
    def item_table(self) -> torch.Tensor:
        """The decoder's output layer, ``[n_items, hidden_size]`` (untied from the embedding)."""
        return self.item_output.weight

    def steps(self, item_seq: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Run the GRU and the encoder over every step.

        Returns:
            ``(h, mu, logvar)``: the decoder's hidden layer (input of the item scores) and the
            posterior of every step. Padded steps hold values that must be masked.

        Shape:
            - item_seq: ``[B, T]``
            - h: ``[B, T, hidden_size]``; mu, logvar: ``[B, T, latent_dim]``
        """
        rnn_out, _ = self.gru(self.item_embedding(item_seq))
        z, mu, logvar = self.latent(self.encoder(rnn_out))
        return self.decoder(z), mu, logvar

    def forward(self, item_seq: torch.Tensor, item_seq_len: torch.Tensor) -> torch.Tensor:
        """The decoder's hidden layer after the last real input item (``z = mu`` in eval mode).

        Shape:
            - item_seq: ``[B, L]``; item_seq_len: ``[B]``
            - output: ``[B, hidden_size]``
        """
        rnn_out, _ = self.gru(self.item_embedding(item_seq))
        last = self.gather_indexes(rnn_out, (item_seq_len - 1).clamp(min=0))
        z, _, _ = self.latent(self.encoder(last))
        return self.decoder(z)

    def calculate_loss(self, interaction) -> torch.Tensor:
        """Masked per-step loss over each user's whole training sequence (see the module docstring).

        The batch holds ``ITEM_SEQ`` / ``ITEM_SEQ_LEN`` (the input steps) and ``ITEM_ID`` (the item
        after the last step), as :class:`~recbole_ext.data.dataset.SVAEDataset` builds them.
        """
        item_seq_len = interaction[self.ITEM_SEQ_LEN]
        width = max(int(item_seq_len.max()), 1)
        item_seq = interaction[self.ITEM_SEQ][:, :width]
        targets = next_k_targets(item_seq, item_seq_len, interaction[self.POS_ITEM_ID], self.next_k)
        mask = torch.arange(width, device=item_seq.device)[None, :] < item_seq_len[:, None]  # [B, T]

        h, mu, logvar = self.steps(item_seq)
        # score real steps only: the [steps, n_items] logits are the largest tensor
        logits = self.score_all(h[mask])
        nll = multinomial_nll_from_ids(logits, targets[mask])  # [steps]
        kl = gaussian_kl(mu[mask], logvar[mask])  # [steps]
        if self.loss_normalisation == "per_step":
            return annealed_elbo_loss(nll / self.next_k, kl, self.beta())
        return self._reference_loss(nll, kl, mask, targets)

    def _reference_loss(
        self, nll: torch.Tensor, kl: torch.Tensor, mask: torch.Tensor, targets: torch.Tensor
    ) -> torch.Tensor:
        """Per user: summed NLL over its steps / its first step's target count, plus ``beta`` x
        its mean KL; then the mean over users (the reference's ``VAELoss``, batch size 1).

        Shape:
            - nll, kl: ``[steps]`` (the real steps, row by row); mask: ``[B, T]``; targets: ``[B, T, k]``
            - output: ``[]``
        """
        B = mask.shape[0]
        user = torch.arange(B, device=mask.device)[:, None].expand_as(mask)[mask]  # [steps]
        steps = mask.sum(dim=1).to(nll.dtype)  # [B]
        nll_user = nll.new_zeros(B).index_add_(0, user, nll)
        kl_user = kl.new_zeros(B).index_add_(0, user, kl) / steps.clamp(min=1)
        first_targets = (targets[:, 0] != 0).sum(dim=-1).clamp(min=1).to(nll.dtype)  # [B]
        return annealed_elbo_loss(nll_user / first_targets, kl_user, self.beta(), weight=steps > 0)
