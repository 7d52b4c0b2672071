"""The model contract's checks (``tests/test_model_contract.py``), each a function that takes a
built model (or its name) and raises ``AssertionError`` saying which clause broke, so that they
apply to any model, including a deliberately broken one.

- :func:`check_yaml_keys`: the keys of the model's YAML are the keys its constructor reads.
- :func:`check_full_sort_equals_predict`: ``full_sort_predict`` scores as ``predict`` does.
- :func:`check_gradients`: every parameter gets a gradient from ``calculate_loss``.
- :func:`check_beats`: a learned score beats a baseline's by a margin (Pop on the rule data).
- :func:`check_rebuilds_and_serves`: the model rebuilt from its checkpoint predicts as the
  original and serves ``recommend`` (or, for a model that cannot score a free item history,
  refuses in one line).
- :func:`check_search_space`: a packaged tune search space fits the model's config.
"""

from __future__ import annotations

import os
from typing import Any, Dict, Iterable, Mapping, Optional, Set

import torch
import yaml
from recbole.data.interaction import Interaction


class _RecordingDict(dict):
    """A config's ``final_config_dict`` that notes every key looked up, whichever way."""

    def __init__(self, data: Mapping, reads: Set[str]):
        super().__init__(data)
        self.reads = reads

    def __getitem__(self, key):
        self.reads.add(key)
        return super().__getitem__(key)

    def get(self, key, default=None):
        self.reads.add(key)
        return super().get(key, default)

    def __contains__(self, key):
        self.reads.add(key)
        return super().__contains__(key)


def keys_read(build, config) -> Set[str]:
    """The config keys ``build(config)`` looks up (``config[k]``, ``k in config``, ``config.k``)."""
    reads: Set[str] = set()
    saved = config.final_config_dict
    config.final_config_dict = _RecordingDict(saved, reads)
    try:
        build(config)
    finally:
        config.final_config_dict = saved
    return reads


def recbole_base(model_class: type) -> type:
    """The first RecBole model class among ``model_class``'s bases (SequentialRecommender, ...)."""
    return next(c for c in model_class.__mro__ if c.__module__.startswith("recbole.model."))


def check_yaml_keys(
    model_class: type,
    config,
    dataset,
    declared: Iterable[str],
    read_elsewhere: Iterable[str] = (),
) -> None:
    """The keys ``declared`` (the model's YAML) are the keys ``model_class``'s constructor reads.

    A key the constructor reads need not be declared when another default file of the config
    declares it (RecBole's and our general settings) or RecBole's base class reads it too.

    Args:
        model_class: the class to construct on ``(config, dataset)``.
        config: a config of the model (its ``default_files`` name every default file).
        dataset: the data set to construct on.
        declared: the keys the model's YAML holds.
        read_elsewhere: declared keys read by another part of the run (the model's data-set
            class, the data loader), each listed with its reason by the caller.
    """
    declared = set(declared)
    reads = keys_read(lambda c: model_class(c, dataset), config)
    base_reads = keys_read(lambda c: recbole_base(model_class)(c, dataset), config)
    general: Set[str] = set()
    for path in config.default_files:
        if os.path.basename(path) != f"{config['model']}.yaml" or "recbole_ext" not in path:
            with open(path, encoding="utf-8") as f:
                general |= set(yaml.safe_load(f) or {})
    unread = declared - reads - set(read_elsewhere)
    undeclared = reads - declared - general - base_reads
    assert not unread, f"{model_class.__name__}: declared but never read by the constructor: {sorted(unread)}"
    assert not undeclared, f"{model_class.__name__}: read by the constructor but not declared: {sorted(undeclared)}"


def has_full_sort(model) -> bool:
    """Whether the model scores every item at once (RecBole's base raises NotImplementedError)."""
    from recbole.model.abstract_recommender import AbstractRecommender

    return type(model).full_sort_predict is not AbstractRecommender.full_sort_predict


def check_full_sort_equals_predict(model, batch: Interaction, rows: int = 3, atol: float = 1e-5) -> None:
    """``full_sort_predict`` of the first ``rows`` rows of ``batch`` equals ``predict`` of each
    (row, item) pair, over every item, in eval mode."""
    model.eval()
    batch = batch[torch.arange(rows)]
    n = model.n_items
    every = batch.repeat_interleave(n)
    every.update(Interaction({model.ITEM_ID: torch.arange(n).repeat(rows)}))
    with torch.no_grad():
        full = model.full_sort_predict(batch).reshape(rows, -1)
        single = model.predict(every).reshape(rows, n)
    assert full.shape == (rows, n), f"full_sort_predict gives {tuple(full.shape)}, expected {(rows, n)}"
    gap = float((full - single).abs().max())
    assert gap <= atol, f"full_sort_predict differs from predict by {gap:.3g}"


def check_gradients(model, batch: Interaction, unused: Mapping[str, str] = ()) -> None:
    """One ``calculate_loss`` on ``batch`` in training mode gives every parameter a gradient that
    is finite and not all zero, but the ones ``unused`` names (parameter name -> why)."""
    model.train()
    model.zero_grad(set_to_none=True)
    torch.manual_seed(0)
    loss = model.calculate_loss(batch)
    loss = loss.sum() if isinstance(loss, tuple) else loss
    assert loss.dim() == 0 and torch.isfinite(loss), f"calculate_loss gives {loss}"
    loss.backward()
    none = []
    for name, p in model.named_parameters():
        if not p.requires_grad or name in unused:
            continue
        if p.grad is None or not bool(p.grad.abs().sum() > 0) or not bool(torch.isfinite(p.grad).all()):
            none.append(name)
    assert not none, f"{type(model).__name__}: no gradient (or a zero or non-finite one) for {none}"


def check_beats(score: float, baseline: float, margin: float, factor: float = 1.0, what: str = "NDCG@10") -> None:
    """``score > baseline + margin`` and ``score > factor * baseline``."""
    assert score > baseline + margin and score > factor * baseline, (
        f"{what} {score:.4f} does not beat the baseline's {baseline:.4f} (by {margin}, and x{factor})"
    )


def check_rebuilds_and_serves(trainer, batch: Interaction, serves: bool, k: int = 5) -> None:
    """The checkpoint ``trainer`` writes now rebuilds a model that scores ``batch`` as
    ``trainer.model`` does; then ``recommend`` from that checkpoint scores histories as the
    model's ``full_sort_predict`` (``serves``) or refuses in one line (otherwise)."""
    from recbole_ext.serving import Recommender, UnsupportedModelError, recommend, restore_model

    trainer._save_checkpoint(0, verbose=False)
    path, model = trainer.saved_model_file, trainer.model.eval()
    rebuilt, _, info = restore_model(path)
    assert type(rebuilt) is type(model), f"rebuilt as {type(rebuilt).__name__}"
    state, again = model.state_dict(), rebuilt.state_dict()
    assert state.keys() == again.keys() and all(torch.equal(state[k], again[k].to(state[k].device)) for k in state), (
        "the rebuilt model's weights differ from the saved ones"
    )
    # a model that keeps users' history rows holds them from the data set it is built on; its
    # scores of given rows are compared below, through recommend
    if not hasattr(model, "history_item_id"):
        with torch.no_grad():
            gap = float((_scores(rebuilt, batch) - _scores(model, batch)).abs().max())
        assert gap <= 1e-5, f"the model rebuilt from its checkpoint scores differently (by {gap:.3g})"
    if not serves:
        try:
            Recommender(path)
        except UnsupportedModelError as e:
            assert "\n" not in str(e) and "cannot recommend" in str(e), str(e)
            return
        raise AssertionError(f"{type(model).__name__} was expected to refuse free item histories")
    rec = Recommender(path)
    histories, direct = _histories_and_scores(model, batch)
    gap = float((rec.scores(histories) - direct).abs().max())
    assert gap <= 1e-5, f"recommend's scores differ from the model's own by {gap:.3g}"
    tokens = [info["item_tokens"][i] for i in histories[0]]
    out = recommend(rec, tokens, k=k)
    assert len(out) == k and all(t in rec.item_token_id and t != "[PAD]" for t, _ in out), out
    assert [s for _, s in out] == sorted((s for _, s in out), reverse=True)


def _scores(model, batch: Interaction) -> torch.Tensor:
    return model.full_sort_predict(batch[torch.arange(3)]) if has_full_sort(model) else model.predict(batch)


@torch.no_grad()
def _histories_and_scores(model, batch: Interaction, rows: int = 2):
    """Item-id histories of the first ``rows`` rows of ``batch`` (the sequences, or the users'
    history rows) and the model's own ``full_sort_predict`` of them, ``[rows, n_items]``."""
    if not hasattr(model, "ITEM_SEQ"):
        users = batch[model.USER_ID][:rows]
        histories = [sorted({int(i) for i in model.history_item_id[u] if int(i) > 0}) for u in users]
        return histories, model.full_sort_predict(Interaction({model.USER_ID: users})).reshape(rows, -1)
    seq, lengths = batch[model.ITEM_SEQ][:rows], batch[model.ITEM_SEQ_LEN][:rows]
    histories = [[int(i) for i in s[: int(n)]] for s, n in zip(seq, lengths)]
    inter = Interaction({model.ITEM_SEQ: seq, model.ITEM_SEQ_LEN: lengths, model.USER_ID: torch.zeros_like(lengths)})
    return histories, model.full_sort_predict(inter).reshape(rows, -1)


def check_search_space(model: str, config_dict: Optional[Dict[str, Any]] = None) -> None:
    """``model`` has a packaged tune search space whose keys are keys of its config and whose
    every choice and both ends of every range pass the config's types."""
    from recbole_ext.config import Config
    from recbole_ext.config_schema import Schema
    from recbole_ext.errors import UserError
    from recbole_ext.tune.space import extremes, load_space, packaged_space_path

    assert packaged_space_path(model) is not None, f"{model} has no packaged search space"
    try:
        space = load_space(None, model)
        config = Config(model, "ml-100k", config_dict=dict(config_dict or {}, download="never"))
        schema = Schema.from_files(config.default_files)
        for setting in extremes(space):
            schema.check(setting)
    except UserError as e:
        raise AssertionError(f"{model}'s search space: {e}") from None
    strange = sorted(set(space) - set(config.final_config_dict))
    assert not strange, f"{model}'s search space has keys the model does not know: {strange}"
