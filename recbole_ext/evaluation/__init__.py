"""Evaluation of recbole_ext: fast sampled evaluation (:mod:`.sampled`)."""
