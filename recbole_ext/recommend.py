"""Recommendations from a trained checkpoint, for item histories given as raw tokens.

``recommend(checkpoint, items, k=10)`` takes the item tokens as they appear in the atomic files
(most recent last) and returns the top-k item tokens with their scores. The model is rebuilt from
the checkpoint alone: its saved config and token maps feed a light stand-in for the data set
(:class:`TokenMapDataset`) that answers what models read in ``__init__`` (field names, ``num``,
an empty history matrix). A model that asks the data set for more (item features, say) is built
on the real data set instead, reloaded from the saved config's ``data_path``.

- Sequential models (ours and RecBole's): the history is the input sequence; only the most
  recent ``MAX_ITEM_LIST_LENGTH`` items are kept; repeated items stay (repeat consumption is a
  sequence signal).
- General models that score a user's history row (RecBole's auto-encoders such as MultiVAE,
  MultiDAE, RecVAE, and ours that keep ``history_item_id``/``history_item_value``): the items
  form the user's history row (duplicates count once).

Unknown tokens are reported with an :class:`UnknownTokenWarning` and skipped; a history with no
known item raises :class:`EmptyHistoryError`. The padding item is never recommended;
``exclude_seen`` also drops the input items. ``k`` larger than what is left returns what is left.

Batch form: :func:`recommend_file` reads ``user<TAB>item item item`` lines and writes
``user, rank, item, score`` rows (TSV with a header), atomically.
"""

from __future__ import annotations

import os
import warnings
from typing import Dict, Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from recbole.utils import EvaluatorType, InputType, ModelType

from recbole_ext.errors import UserError
from recbole_ext.fileio import atomic_open
from recbole_ext.trainer.checkpoint import CheckpointError, load_checkpoint

Recommendation = List[Tuple[str, float]]


class EmptyHistoryError(UserError, ValueError):
    """The history holds no item the model knows."""


class UnsupportedModelError(UserError, ValueError):
    """The model cannot score a free item history (e.g. it needs a known user id)."""


class UnknownTokenWarning(UserWarning):
    """Some input item tokens are not in the model's catalogue; they were skipped."""


# ---------------------------------------------------------------- stand-ins
_ENUM_KEYS = {"MODEL_TYPE": ModelType, "MODEL_INPUT_TYPE": InputType, "eval_type": EvaluatorType}


class PlainConfig(dict):
    """The checkpoint's plain config, read like RecBole's ``Config`` (missing keys are None)."""

    def __init__(self, plain: dict, device: str = "cpu"):
        super().__init__(plain)
        for key, enum_type in _ENUM_KEYS.items():
            if isinstance(self.get(key), str):
                self[key] = enum_type[self[key]]
        self["device"] = torch.device(device)
        self["use_gpu"] = torch.device(device).type == "cuda"
        self.final_config_dict = self

    def __getitem__(self, key):
        return self.get(key)


class StandInMissing(AttributeError):
    """The stand-in data set cannot answer this; the real data set is needed."""


class TokenMapDataset:
    """What models read from a data set in ``__init__``, rebuilt from a checkpoint's token maps.

    Answers ``uid_field``, ``iid_field``, ``num(field)``, ``user_num``, ``item_num``,
    ``field2id_token``, ``field2token_id`` and an all-padding ``history_item_matrix()``; any other
    attribute raises :class:`StandInMissing` so the caller can fall back to the real data set.
    """

    def __init__(self, info: dict):
        self.uid_field: Optional[str] = info.get("uid_field")
        self.iid_field: str = info["iid_field"]
        self.user_num: int = int(info.get("n_users") or 1)
        self.item_num: int = int(info["n_items"])
        self.field2id_token: Dict[str, np.ndarray] = {}
        if info.get("item_tokens") is not None:
            self.field2id_token[self.iid_field] = np.array(info["item_tokens"])
        if self.uid_field and info.get("user_tokens") is not None:
            self.field2id_token[self.uid_field] = np.array(info["user_tokens"])
        self.field2token_id = {f: {t: i for i, t in enumerate(toks)} for f, toks in self.field2id_token.items()}

    def num(self, field: str) -> int:
        if field == self.iid_field:
            return self.item_num
        if field == self.uid_field:
            return self.user_num
        raise StandInMissing(f"the stand-in data set knows no field {field!r}")

    def history_item_matrix(self, value_field=None, max_history_len=None):
        ids = torch.zeros(self.user_num, 1, dtype=torch.long)
        return ids, torch.zeros(self.user_num, 1), torch.zeros(self.user_num, dtype=torch.long)

    def __getattr__(self, name):
        raise StandInMissing(f"the stand-in data set has no attribute {name!r}")


def config_for_rebuild(plain: dict):
    """A real :class:`recbole_ext.config.Config` from a checkpoint's plain config (to reload
    the data set): the derived keys (enums, device) are left to the configurator."""
    from recbole_ext.config import Config

    skip = set(_ENUM_KEYS) | {
        "device", "config_files", "local_rank", "single_spec", "world_size",
        "valid_neg_sample_args", "test_neg_sample_args",
    }
    cfg = {k: v for k, v in plain.items() if k not in skip}
    neg = cfg.get("train_neg_sample_args")
    if isinstance(neg, dict) and neg.get("distribution") in (None, "none", "None"):
        cfg["train_neg_sample_args"] = None
    cfg["use_gpu"] = False
    if cfg.get("data_path"):  # the resolved path is the data set's own folder
        cfg["data_path"] = os.path.dirname(os.path.normpath(cfg["data_path"]))
    return Config(plain["model"], plain["dataset"], config_dict=cfg)


# ---------------------------------------------------------------- the recommender
class Recommender:
    """A model rebuilt from a checkpoint, with its token maps; see the module docstring.

    Args:
        checkpoint: path of a checkpoint (ours, or RecBole's with ``trust_checkpoint``).
        trust_checkpoint: allow unpickling a legacy RecBole checkpoint (can run code).
        device: where to run the model (``"cpu"`` by default).
        reload_dataset: ``None`` (stand-in first, real data set if the model needs it),
            ``True`` (always reload the data set) or ``False`` (never).
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
        from recbole_ext.utils import get_model

        ckpt = load_checkpoint(checkpoint, trust_checkpoint, map_location=device)
        self.path = str(checkpoint)
        self.batch_size = int(batch_size)
        plain = ckpt["config"]
        self.model_name: str = plain["model"]
        model_class = get_model(self.model_name)
        info = ckpt.get("dataset") or {}
        self.built_on = "stand-in"
        model = None
        if reload_dataset is not True and info.get("item_tokens") is not None:
            try:
                dataset = TokenMapDataset(info)
                model = model_class(PlainConfig(plain, device), dataset)
            except StandInMissing:
                if reload_dataset is False:
                    raise UnsupportedModelError(
                        f"{self.model_name} needs the real data set to be rebuilt (reload_dataset=False)"
                    ) from None
        if model is None:
            if reload_dataset is False:
                raise CheckpointError(f"{checkpoint} holds no token maps: the data set must be reloaded")
            from recbole_ext.data.utils import create_dataset

            config = config_for_rebuild(plain)
            config["device"] = torch.device(device)
            dataset = create_dataset(config)
            saved_tokens = info.get("item_tokens")
            real_tokens = [str(t) for t in dataset.field2id_token[dataset.iid_field]]
            if saved_tokens is not None and list(saved_tokens) != real_tokens:
                raise CheckpointError(
                    f"the data set at {config['data_path']} no longer matches {checkpoint} (item ids differ)"
                )
            info = {
                "uid_field": dataset.uid_field,
                "iid_field": dataset.iid_field,
                "n_users": dataset.user_num,
                "n_items": dataset.item_num,
                "item_tokens": real_tokens,
                "user_tokens": [str(t) for t in dataset.field2id_token[dataset.uid_field]]
                if dataset.uid_field
                else None,
            }
            model = model_class(config, dataset)
            self.built_on = "data set"
        model.load_state_dict(ckpt["state_dict"])
        model.load_other_parameter(ckpt.get("other_parameter"))
        self.model = model.to(device).eval()
        self.device = torch.device(device)
        self.config = plain
        self.item_tokens: List[str] = list(info["item_tokens"])
        self.item_token_id: Dict[str, int] = {t: i for i, t in enumerate(self.item_tokens)}
        self.user_token_id: Dict[str, int] = {
            t: i for i, t in enumerate(info.get("user_tokens") or [])
        }
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
        if unknown:
            shown = ", ".join(unknown[:10]) + (" ..." if len(unknown) > 10 else "")
            warnings.warn(
                f"{len(unknown)} unknown item token(s){where} skipped: {shown}", UnknownTokenWarning, stacklevel=3
            )
        return ids

    # ------------------------------------------------------------ scoring
    @torch.no_grad()
    def scores(self, histories: Sequence[Sequence[int]], user_ids: Optional[Sequence[int]] = None) -> torch.Tensor:
        """Scores of every item for each history of item ids. Shape: ``[B, n_items]``."""
        from recbole.data.interaction import Interaction

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
        from recbole.data.interaction import Interaction

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

    def recommend(self, items: Iterable, k: int = 10, exclude_seen: bool = False, user: Optional[str] = None) -> Recommendation:
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
        return [
            (self.item_tokens[int(i)], float(s))
            for i, s, v in zip(top_ids[0], top_scores[0], valid[0])
            if v
        ]

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


# ---------------------------------------------------------------- functions
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


def read_histories(path: str) -> Dict[str, List[str]]:
    """Read ``user<TAB>item item item`` lines (blank lines and ``#`` comments skipped)."""
    histories: Dict[str, List[str]] = {}
    try:
        f = open(path, encoding="utf-8")
    except OSError as e:
        raise UserError(f"cannot read items file {path}: {e.strerror}") from None
    with f:
        for n, line in enumerate(f, 1):
            line = line.rstrip("\n")
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            if "\t" not in line:
                raise UserError(f"{path}:{n}: expected 'user<TAB>item item ...', got {line[:60]!r}")
            user, items = line.split("\t", 1)
            histories[user.strip()] = items.replace(",", " ").split()
    return histories


def write_recommendations(path: str, recs: Dict[str, Recommendation]) -> None:
    """Write ``user, rank, item, score`` TSV rows (with a header) atomically."""
    with atomic_open(path, "w", suffix=".tsv") as f:
        f.write("user\trank\titem\tscore\n")
        for user, rows in recs.items():
            for rank, (item, score) in enumerate(rows, 1):
                f.write(f"{user}\t{rank}\t{item}\t{score:.6g}\n")


def recommend_file(
    checkpoint: Union[str, os.PathLike, Recommender],
    items_file: str,
    output: str,
    k: int = 10,
    exclude_seen: bool = False,
    trust_checkpoint: bool = False,
) -> Dict[str, Recommendation]:
    """Batch form: histories from ``items_file``, top-k rows to ``output`` (see the module docstring)."""
    rec = _as_recommender(checkpoint, trust_checkpoint)
    recs = rec.recommend_many(read_histories(items_file), k, exclude_seen)
    write_recommendations(output, recs)
    return recs


class _CallableModule(type(os)):
    """``recbole_ext.recommend`` is both this module and the function :func:`recommend`: once
    the module is imported, the package attribute is the module, so calling it recommends."""

    def __call__(self, *args, **kwargs):
        return recommend(*args, **kwargs)


import sys as _sys  # noqa: E402

_sys.modules[__name__].__class__ = _CallableModule
