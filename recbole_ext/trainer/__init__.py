"""Trainers of recbole_ext. ``<Model>Trainer`` here wins over RecBole's for that model."""

from recbole_ext.trainer.trainer import CompatTrainerMixin, Trainer  # noqa: F401
