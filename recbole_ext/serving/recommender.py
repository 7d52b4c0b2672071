"""Recommendations from a trained checkpoint, for item histories given as raw tokens.

``recommend(checkpoint, items, k=10)`` takes the item tokens as they appear in the atomic files
(most recent last) and returns the top-k item tokens with their scores. The model is rebuilt from
the checkpoint (:func:`recbole_ext.serving.restore.restore_model`).

- Sequential models (ours and RecBole's): the history is the input sequence; only the most
  recent ``MAX_ITEM_LIST_LENGTH`` items are kept; repeated items stay (repeat consumption is a
  sequence signal).
- General models that score a user's history row (RecBole's auto-encoders such as MultiVAE,
  MultiDAE, RecVAE, and ours that keep ``history_item_id``/``history_item_value``): the items
  form the user's history row (duplicates count once).

Unknown tokens are reported with an :class:`UnknownTokenWarning` and skipped; a history with no
known item raises :class:`EmptyHistoryError`. The padding item is never recommended;
``exclude_seen`` also drops the input items. ``k`` larger than what is left returns what is left.

Batch form: :func:`recbole_ext.serving.batch.recommend_file`.
"""

from __future__ import annotations

import os
import warnings
from typing import Dict, Iterable, List, Optional, Sequence, Tuple, Union

import torch
from recbole.data.interaction import Interaction
from recbole.utils import ModelType

from recbole_ext.errors import UserError
from recbole_ext.serving.restore import UnsupportedModelError, restore_model

Recommendation = List[Tuple[str, float]]


class EmptyHistoryError(UserError, ValueError):
    """The history holds no item the model knows."""


class UnknownTokenWarning(UserWarning):
    """Some input item tokens are not in the model's catalogue; they were skipped."""


class Recommender:
    """A model rebuilt from a checkpoint, with its token maps; see the module docstring.

    Args:
        checkpoint: path of a checkpoint (ours, or RecBole's with ``trust_checkpoint``).
        trust_checkpoint: allow unpickling a legacy RecBole checkpoint (can run code).
        device: where to run the model (``"cpu"`` by default).
        reload_dataset: ``None`` (the data set's schema from the checkpoint first, the data
            set reloaded if the model needs it), ``True`` (always reload the data set) or
            ``False`` (never).
        batch_size: histories scored per forward pass.
    """

    def __init__(
        self,
        checkpoint: str,
        trust_checkpoint: bool = False,
        device: str = "cpu",
        reload_dataset: Optional[bool] = None,
        batch_size: int = 1024,
    ):
        model, plain, info = restore_model(str(checkpoint), device, trust_checkpoint, reload_dataset)
        self.path = str(checkpoint)
        self.batch_size = int(batch_size)
        self.model_name: str = plain["model"]
        self.built_on = info["built_on"]
        self.model = model
        self.device = torch.device(device)
        self.config = plain
        self.item_tokens: List[str] = list(info["item_tokens"])
        self.item_token_id: Dict[str, int] = {t: i for i, t in enumerate(self.item_tokens)}
        self.user_token_id: Dict[str, int] = {t: i for i, t in enumerate(info.get("user_tokens") or [])}
        self.n_items = len(self.item_tokens)
        self.kind = self._kind()

    def _kind(self) -> str:
        mtype = getattr(self.model, "type", None)
        if mtype == ModelType.SEQUENTIAL:
            return "sequential"
        if hasattr(self.model, "history_item_id") and hasattr(self.model, "history_item_value"):
            return "history"
        raise UnsupportedModelError(
            f"{self.model_name} cannot recommend for a free item history: recommend() supports "
            "sequential models and general models that score a history row (MultiVAE, MultiDAE, ...)"
        )

    # ------------------------------------------------------------ tokens
    def ids_of(self, items: Iterable, where: str = "") -> List[int]:
        """Item ids of raw tokens; unknown tokens are warned about and skipped."""
        ids, unknown = [], []
        for tok in items:
            tok = str(tok)
            i = self.item_token_id.get(tok)
            if i is None or i == 0:
                unknown.append(tok)
            else:
                ids.append(i)
        if unknown and ids:  # with no known token at all, the caller's error says it all
            shown = ", ".join(unknown[:10]) + (" ..." if len(unknown) > 10 else "")
            warnings.warn(
                f"{len(unknown)} unknown item token(s){where} skipped: {shown}", UnknownTokenWarning, stacklevel=3
            )
        return ids

    # ------------------------------------------------------------ scoring
    @torch.no_grad()
    def scores(self, histories: Sequence[Sequence[int]], user_ids: Optional[Sequence[int]] = None) -> torch.Tensor:
        """Scores of every item for each history of item ids. Shape: ``[B, n_items]``."""
        out = []
        for start in range(0, len(histories), self.batch_size):
            chunk = histories[start : start + self.batch_size]
            users = torch.tensor(
                list(user_ids[start : start + self.batch_size]) if user_ids is not None else [0] * len(chunk),
                dtype=torch.long,
                device=self.device,
            )
            if self.kind == "sequential":
                max_len = int(self.model.max_seq_length)
                seqs = [list(h)[-max_len:] for h in chunk]
                seq = torch.zeros(len(chunk), max_len, dtype=torch.long)
                for r, h in enumerate(seqs):
                    seq[r, : len(h)] = torch.tensor(h, dtype=torch.long)
                lengths = torch.tensor([len(h) for h in seqs], dtype=torch.long)
                inter = Interaction(
                    {
                        self.model.ITEM_SEQ: seq.to(self.device),
                        self.model.ITEM_SEQ_LEN: lengths.to(self.device),
                        self.model.USER_ID: users,
                    }
                )
                s = self.model.full_sort_predict(inter)
            else:
                s = self._history_scores(chunk)
            out.append(s.reshape(len(chunk), -1).float().cpu())
        return torch.cat(out, 0) if out else torch.zeros(0, self.n_items)

    def _history_scores(self, chunk: Sequence[Sequence[int]]) -> torch.Tensor:
        """Score history rows with a model that keeps ``history_item_id``/``_value`` per user:
        the batch's rows stand in for the model's stored history while it predicts."""
        rows = [sorted(set(h)) for h in chunk]
        width = max(len(r) for r in rows)
        hid = torch.zeros(len(rows), width, dtype=torch.long)
        hval = torch.zeros(len(rows), width)
        for r, items in enumerate(rows):
            hid[r, : len(items)] = torch.tensor(items, dtype=torch.long)
            hval[r, : len(items)] = 1.0
        model = self.model
        saved = (model.history_item_id, model.history_item_value)
        try:
            model.history_item_id = hid.to(self.device)
            model.history_item_value = hval.to(self.device)
            user_field = getattr(model, "USER_ID", None) or self.config.get("USER_ID_FIELD", "user_id")
            inter = Interaction({user_field: torch.arange(len(rows), device=self.device)})
            return model.full_sort_predict(inter)
        finally:
            model.history_item_id, model.history_item_value = saved

    def recommend_ids(
        self,
        histories: Sequence[Sequence[int]],
        k: int = 10,
        exclude_seen: bool = False,
        user_ids: Optional[Sequence[int]] = None,
    ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Top-k item ids and scores per history: ``(ids [B, k'], scores [B, k'], valid [B, k'])``.

        ``valid`` is False where a row had fewer than ``k'`` items left to recommend.
        """
        scores = self.scores(histories, user_ids)
        scores[:, 0] = -torch.inf
        if exclude_seen:
            for r, h in enumerate(histories):
                scores[r, list(h)] = -torch.inf
        kk = max(0, min(int(k), self.n_items - 1))
        top_scores, top_ids = torch.topk(scores, kk, dim=1)
        return top_ids, top_scores, torch.isfinite(top_scores)

    def recommend(
        self, items: Iterable, k: int = 10, exclude_seen: bool = False, user: Optional[str] = None
    ) -> Recommendation:
        """Top-k ``(item token, score)`` for one history of raw item tokens (most recent last)."""
        if k < 1:
            raise UserError(f"k must be at least 1, got {k}")
        items = list(items)
        if not items:
            raise EmptyHistoryError("the item history is empty: give at least one item token")
        ids = self.ids_of(items)
        if not ids:
            raise EmptyHistoryError(
                f"none of the {len(items)} item token(s) is known to the model "
                f"(its catalogue has {self.n_items - 1} items, e.g. {', '.join(self.item_tokens[1:4])})"
            )
        uid = [self.user_token_id.get(str(user), 0)] if user is not None else None
        top_ids, top_scores, valid = self.recommend_ids([ids], k, exclude_seen, uid)
        return [(self.item_tokens[int(i)], float(s)) for i, s, v in zip(top_ids[0], top_scores[0], valid[0]) if v]

    def recommend_many(
        self, histories: Dict[str, Sequence], k: int = 10, exclude_seen: bool = False
    ) -> Dict[str, Recommendation]:
        """``{user: history tokens}`` -> ``{user: [(item token, score), ...]}``. Users whose
        history has no known item are skipped with a warning."""
        users, id_lists = [], []
        for user, items in histories.items():
            ids = self.ids_of(items, where=f" for user {user}")
            if not ids:
                warnings.warn(f"user {user}: no known item in the history; skipped", UnknownTokenWarning, stacklevel=2)
                continue
            users.append(user)
            id_lists.append(ids)
        if not users:
            raise EmptyHistoryError("no user has a known item in the history")
        uids = [self.user_token_id.get(str(u), 0) for u in users]
        top_ids, top_scores, valid = self.recommend_ids(id_lists, k, exclude_seen, uids)
        tokens = self.item_tokens
        out = {}
        for r, user in enumerate(users):
            ids_r, sc_r, v_r = top_ids[r].tolist(), top_scores[r].tolist(), valid[r].tolist()
            out[user] = [(tokens[i], s) for i, s, v in zip(ids_r, sc_r, v_r) if v]
        return out


def _as_recommender(checkpoint, trust_checkpoint: bool) -> Recommender:
    if isinstance(checkpoint, Recommender):
        return checkpoint
    return Recommender(str(checkpoint), trust_checkpoint=trust_checkpoint)


def recommend(
    checkpoint: Union[str, os.PathLike, Recommender],
    items: Union[str, Iterable],
    k: int = 10,
    exclude_seen: bool = False,
    trust_checkpoint: bool = False,
) -> Recommendation:
    """Top-k ``(item token, score)`` for a history of raw item tokens (most recent last).

    Args:
        checkpoint: a checkpoint path, or a :class:`Recommender` (load once, ask many times).
        items: item tokens as in the atomic files, or one comma-separated string.
        k: how many items to return (fewer when the catalogue has fewer left).
        exclude_seen: do not recommend the input items.
        trust_checkpoint: allow a legacy RecBole checkpoint (unpickling can run code).
    """
    if isinstance(items, str):
        items = [t for t in (x.strip() for x in items.split(",")) if t]
    return _as_recommender(checkpoint, trust_checkpoint).recommend(items, k, exclude_seen)
