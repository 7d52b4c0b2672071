"""Fast sampled evaluation (``pop100``, ``uni100``) for sequential models: each distinct
sequence is encoded once and its candidates scored, instead of ``predict`` once per candidate
row as RecBole does. Batches come from :class:`~recbole_ext.evaluation.sampled.loader.CandidateEvalDataLoader`
or from RecBole's ``NegSampleEvalDataLoader``; the metrics equal RecBole's exactly (tested).
"""

from __future__ import annotations

import torch
from recbole.model.abstract_recommender import AbstractRecommender
from recbole.utils import EvaluatorType, ModelType

from recbole_ext.evaluation.sampled.loader import CandidateBatch


class SampledEvalMixin:
    """Put before a RecBole trainer in the bases (through
    :class:`recbole_ext.trainer.trainer.CompatTrainerMixin`)."""

    #: Sampled ranking evaluation (``uni100``, ``pop100``, ...) of sequential models encodes each
    #: distinct sequence once instead of once per candidate row; False: RecBole's path. Set from
    #: the ``fast_sampled_eval`` config key (:func:`recbole_ext.evaluation.sampled.fast_path_on`).
    fast_sampled_eval: bool = True

    def _neg_sample_batch_eval(self, batched_data):
        """Sampled evaluation of one batch, with each sequence encoded once.

        Batches come either from our :class:`~recbole_ext.evaluation.sampled.loader.CandidateEvalDataLoader`
        (:class:`~recbole_ext.evaluation.sampled.loader.CandidateBatch`: each row once plus its candidate
        ids) or from RecBole's ``NegSampleEvalDataLoader`` (every row repeated once per
        candidate). Either way a sequential model in ranking evaluation encodes each distinct
        row once and scores its candidates with ``predict_candidates`` (our models) or by
        gathering from ``full_sort_predict`` (RecBole's). The first batch is checked against
        ``predict`` on one user's rows; value metrics, other model types, models without either
        method, or a failed check use RecBole's path.
        """
        if isinstance(batched_data, CandidateBatch):
            unique, candidates, positive_u = batched_data.interaction, batched_data.candidates, batched_data.positive_u
            scores = self._candidate_scores(unique, candidates, positive_u, batched_data.expand)
            if scores is None:
                return super()._neg_sample_batch_eval(batched_data.expand())
            positive_i = batched_data.positive_i
            interaction = unique
        else:
            interaction, row_idx, positive_u, positive_i = batched_data
            layout = self._recbole_batch_layout(batched_data)
            scores = None
            if layout is not None:
                unique_rows, cand_rows = layout
                candidates = interaction[self.config["ITEM_ID_FIELD"]][cand_rows]

                def first_user_rows(n_users=None):
                    return interaction[cand_rows[positive_u == 0].t().reshape(-1)], None, None, None

                scores = self._candidate_scores(interaction[unique_rows], candidates, positive_u, first_user_rows)
            if scores is None:
                return super()._neg_sample_batch_eval(batched_data)
        n_users = int(positive_u[-1]) + 1
        full = torch.full((n_users, self.tot_item_num), float("-inf"), device=self.device)
        rows = positive_u.to(self.device)[:, None].expand_as(candidates)
        full[rows, candidates.to(self.device)] = scores.to(full.dtype)
        return interaction, full, positive_u, positive_i

    @staticmethod
    def _sampled_eval_layout(row_idx: torch.Tensor, positive_u: torch.Tensor):
        """Where each distinct evaluated row and its candidates sit in a RecBole sampled batch.

        RecBole lays out each user's block as ``times`` copies of the user's ``n_u`` rows (first
        copy: positives; then negatives). Returns ``(unique_rows [U], cand_rows [U, times])`` with
        ``U = len(positive_u)``, or ``None`` when the batch does not have that layout.
        """
        n_users = int(positive_u[-1]) + 1 if len(positive_u) else 0
        if n_users == 0 or len(row_idx) == 0:
            return None
        rows_per_user = torch.bincount(row_idx, minlength=n_users)
        pos_per_user = torch.bincount(positive_u, minlength=n_users)
        if bool((pos_per_user == 0).any()) or bool((rows_per_user % pos_per_user != 0).any()):
            return None
        times = rows_per_user // pos_per_user
        if bool((times != times[0]).any()) or bool((row_idx[1:] < row_idx[:-1]).any()):
            return None
        start = torch.cumsum(rows_per_user, 0) - rows_per_user
        pos_start = torch.cumsum(pos_per_user, 0) - pos_per_user
        k = torch.arange(len(positive_u)) - pos_start[positive_u]
        unique_rows = start[positive_u] + k
        cand_rows = unique_rows[:, None] + torch.arange(int(times[0]))[None, :] * pos_per_user[positive_u][:, None]
        return unique_rows, cand_rows

    def _fast_path_applies(self, interaction) -> bool:
        model = self.model
        if (
            not self.fast_sampled_eval
            or getattr(self, "_fast_eval_ok", True) is False
            or self.config["eval_type"] != EvaluatorType.RANKING
            or getattr(model, "type", None) != ModelType.SEQUENTIAL
            or getattr(model, "ITEM_SEQ", None) not in interaction.interaction
        ):
            return False
        own = callable(getattr(model, "predict_candidates", None))
        return own or type(model).full_sort_predict is not AbstractRecommender.full_sort_predict

    def _recbole_batch_layout(self, batched_data):
        """``(unique_rows, cand_rows)`` of a RecBole sampled batch whose copies of a row all
        carry the same sequence, length and user, or ``None``."""
        interaction, row_idx, positive_u, _ = batched_data
        if row_idx is None or not self._fast_path_applies(interaction):
            return None
        layout = self._sampled_eval_layout(row_idx, positive_u)
        if layout is None:
            return None
        unique_rows, cand_rows = layout
        rep = torch.empty(len(row_idx), dtype=torch.long)
        rep[cand_rows.reshape(-1)] = unique_rows.repeat_interleave(cand_rows.shape[1])
        model = self.model
        for field in (model.ITEM_SEQ, model.ITEM_SEQ_LEN, self.config["USER_ID_FIELD"]):
            if field in interaction.interaction and not torch.equal(interaction[field][rep], interaction[field]):
                return None
        return layout

    def _candidate_scores(self, unique, candidates: torch.Tensor, positive_u: torch.Tensor, expand):
        """Scores ``[R, C]`` of each distinct row's candidates, encoding each row once, or
        ``None`` to use RecBole's path.

        Args:
            unique: the ``R`` distinct rows (an ``Interaction``).
            candidates: ``[R, C]`` candidate item ids per row.
            positive_u: ``[R]`` user index of each row within the batch.
            expand: returns RecBole's batch for these rows; used once, to check the first
                user's scores against ``predict``.
        """
        model = self.model
        if not self._fast_path_applies(unique):
            return None
        unique = unique.to(self.device)
        items = candidates.to(self.device)
        try:
            if callable(getattr(model, "predict_candidates", None)):
                scores = model.predict_candidates(unique, items)
            else:
                all_scores = model.full_sort_predict(unique).view(len(items), -1)
                scores = all_scores.gather(1, items)
        except NotImplementedError:
            self._fast_eval_ok = False
            return None
        if not getattr(self, "_fast_eval_checked", False):
            self._fast_eval_checked = True
            if not self._matches_predict(scores, positive_u, expand):
                self._fast_eval_ok = False
                self.logger.warning(
                    f"{type(model).__name__}: candidate scores differ from predict; "
                    "sampled evaluation uses RecBole's (slower) path"
                )
                return None
        return scores

    def _matches_predict(self, scores: torch.Tensor, positive_u: torch.Tensor, expand) -> bool:
        """Whether the first user's candidate scores equal RecBole's ``predict`` on its rows."""
        first = (positive_u == 0).nonzero(as_tuple=True)[0].to(scores.device)
        expanded = expand(1)[0]
        n_rows = len(first)
        # RecBole's rows of user 0: `times` copies of its n_rows rows, positives first
        head = expanded[torch.arange(n_rows * scores.shape[1])]
        slow = self.model.predict(head.to(self.device)).reshape(scores.shape[1], n_rows).t()
        fast = scores[first]
        tol = 1e-4 * max(1.0, float(slow.abs().max()))
        return bool(torch.allclose(fast.float(), slow.float(), rtol=1e-4, atol=tol))
