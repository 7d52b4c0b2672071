"""What every explicit-rating model of recbole_ext shares, written once: mean squared error on
the rating field, the training mean as a starting point, predictions clipped to the ratings seen.

A rating model implements :meth:`RatingMixin.predict_rating` (``interaction -> [B]`` ratings) and
:meth:`RatingMixin.batch_parameters` (the embeddings and biases its L2 penalty covers); the
mixin provides RecBole's ``calculate_loss`` and ``predict``. It is evaluated as RecBole evaluates
labelled data: ``eval_args.mode: labeled``, ``LABEL_FIELD`` set to the rating field, value
metrics ``RMSE`` and ``MAE`` (``protocol-rating.yaml``).
"""

from __future__ import annotations

from typing import List

import numpy as np
import torch

from recbole_ext.errors import ConfigError
from recbole_ext.model.loss import l2_penalty, mse_loss


class RatingMixin:
    """MSE training and clipped prediction of the ``RATING_FIELD`` of each interaction.

    Config keys read here: ``RATING_FIELD``, ``reg_weight`` (L2 penalty on the batch's
    parameters, per example).
    """

    #: the shipped evaluation protocol these models are measured under (the sweep runs them on it)
    protocol = "protocol-rating.yaml"

    def _init_rating(self, config, dataset) -> None:
        """Read the rating settings and the training data's rating range and mean."""
        # load parameters info
        self.RATING: str = config["RATING_FIELD"]
        self.reg_weight: float = float(config["reg_weight"])

        if self.RATING not in dataset.inter_feat:
            raise ConfigError(
                f"{type(self).__name__} predicts ratings, but the data set has no '{self.RATING}' "
                "column: load it (load_col: {inter: [user_id, item_id, rating, ...]}) or use "
                "--config_files=protocol-rating.yaml"
            )
        # a data set still in its pandas frame (built, not split) or one restored from a
        # checkpoint without interactions: the buffers come back with the checkpoint's weights
        ratings = torch.as_tensor(np.asarray(dataset.inter_feat[self.RATING], dtype=np.float32))
        if len(ratings) == 0:
            ratings = torch.zeros(1)
        self.register_buffer("rating_range", torch.stack([ratings.min(), ratings.max()]))
        self.register_buffer("rating_mean", ratings.mean().reshape(()))

    def predict_rating(self, interaction) -> torch.Tensor:
        """Unclipped predicted rating of each row. Shape: ``[B]``."""
        raise NotImplementedError

    def batch_parameters(self, interaction) -> List[torch.Tensor]:
        """The parameters the batch uses, each ``[B, ...]``, for the L2 penalty."""
        return []

    def calculate_loss(self, interaction) -> torch.Tensor:
        """MSE of the predicted ratings plus ``reg_weight`` x the batch's L2 penalty. Returns a scalar."""
        loss = mse_loss(self.predict_rating(interaction), interaction[self.RATING])
        params = self.batch_parameters(interaction)
        if self.reg_weight and params:
            loss = loss + self.reg_weight * l2_penalty(*params)
        return loss

    def predict(self, interaction) -> torch.Tensor:
        """Predicted rating of each row, clipped to the training ratings' range. Shape: ``[B]``."""
        low, high = self.rating_range
        return self.predict_rating(interaction).clamp(low, high)
