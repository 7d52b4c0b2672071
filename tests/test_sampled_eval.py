"""Fast sampled evaluation (``SampledEvalMixin._neg_sample_batch_eval``) against RecBole's path.

RecBole's sampled ranking evaluation (``uni100``, ``pop100``) calls ``predict`` once per
(row, candidate). Ours encodes each distinct row once; metrics and scores must be the same.
"""

from __future__ import annotations

import pytest
import torch
from recbole.data.dataloader import NegSampleEvalDataLoader
from recbole.utils import init_seed

from recbole_ext.evaluation.sampled import CandidateEvalDataLoader

from conftest import build as build_model

SMALL = {
    "state": "WARNING",
    "show_progress": False,
    "MAX_ITEM_LIST_LENGTH": 20,
    "hidden_size": 16,
    "eval_batch_size": 1010,
    "train_batch_size": 256,
    "metrics": ["Recall", "MRR", "NDCG", "Hit"],
    "topk": [1, 5, 10],
    "valid_metric": "NDCG@10",
    "load_col": {"inter": ["user_id", "item_id", "timestamp"]},
    "eval_candidates": "per_epoch",  # RecBole's draw, so RecBole's loader can be compared
}


MODEL_KEYS = {
    "SASRec": {"n_layers": 1, "n_heads": 2, "inner_size": 32},
    "GLINTRU": {"n_heads": 2},
    "GRU4Rec": {"embedding_size": 16},
    "BERT4Rec": {"n_layers": 1, "n_heads": 2, "inner_size": 32},
}


def build(model: str, data_root: str, mode: str, **extra):
    """Config, trainer (untrained model: xavier-initialised scores are spread out), valid and
    test loaders for ``model`` on the ml-100k slice with evaluation ``mode``."""
    eval_args = {"split": {"LS": "valid_and_test"}, "order": "TO", "mode": mode, "group_by": "user"}
    cfg = dict(SMALL, **MODEL_KEYS.get(model, {}), data_path=data_root, eval_args=eval_args)
    cfg.update(extra)
    b = build_model(model, "ml-slice", cfg.pop("data_path"), trainer=True, **cfg)
    return b.config, b.trainer, b.valid, b.test


def recbole_loader(config, ours, eval_batch_size=None):
    """RecBole's own sampled-evaluation loader over the same split and sampler as ``ours``."""
    if eval_batch_size is not None:
        config["eval_batch_size"] = eval_batch_size
    return NegSampleEvalDataLoader(config, ours._dataset, ours._sampler, shuffle=False)


def evaluate(trainer, data, fast: bool, seed: int = 7):
    trainer.fast_sampled_eval = fast
    init_seed(seed, True)  # same sampled negatives on both paths
    return trainer.evaluate(data, load_best_model=False)


@pytest.mark.parametrize(
    "model,mode",
    [
        ("SASRec", "pop100"),
        ("GLINTRU", "pop100"),
        ("GLINTRU", "uni100"),
        ("GRU4Rec", "uni100"),
        ("BERT4Rec", "pop100"),  # a data transform (mask_itemseq) drawing from Python's random
    ],
)
def test_fast_sampled_metrics_equal_recbole(ml100k_slice, model, mode):
    """Our loader + encode-once scoring == RecBole's loader + per-candidate ``predict``."""
    config, trainer, valid_data, test_data = build(model, ml100k_slice, mode)
    for ours in (valid_data, test_data):
        assert isinstance(ours, CandidateEvalDataLoader) and ours.compact
        theirs = recbole_loader(config, ours)
        assert type(theirs) is NegSampleEvalDataLoader
        slow = evaluate(trainer, theirs, fast=False)
        fast = evaluate(trainer, ours, fast=True)
        assert getattr(trainer, "_fast_eval_ok", True), "fast path fell back to RecBole's"
        assert dict(fast) == dict(slow)
        # RecBole's loader with encode-once scoring, and our loader on RecBole's path, agree too
        assert dict(evaluate(trainer, theirs, fast=True)) == dict(slow)
        assert dict(evaluate(trainer, ours, fast=False)) == dict(slow)


def test_transform_gets_each_users_rows_as_their_own_tensors(ml100k_slice):
    """The per-user rows a transform sees own their memory: RecBole's ``mask_itemseq``
    deep-copies its input, and a slice (a view) would copy the whole split's storage per user
    (tens of GB a batch on amazon-beauty)."""
    config, trainer, valid_data, _ = build("BERT4Rec", ml100k_slice, "pop100")
    seen, transform = [], valid_data.transform

    def recording(dataset, interaction):
        seen.extend(interaction.interaction.values())
        return transform(dataset, interaction)

    valid_data.transform = recording
    next(iter(valid_data))
    assert seen and all(t.untyped_storage().nbytes() == t.numel() * t.element_size() for t in seen)


def test_candidate_batches_expand_to_recbole_batches(ml100k_slice):
    """Same negatives, same order: each expanded batch equals RecBole's batch field by field."""
    config, _, valid_data, _ = build("GLINTRU", ml100k_slice, "pop100", eval_batch_size=7)
    ours = valid_data
    assert ours.step == 7  # users per batch
    theirs = recbole_loader(config, ours, eval_batch_size=7 * 101)
    init_seed(5, True)
    our_batches = list(ours)
    init_seed(5, True)
    their_batches = list(theirs)
    assert len(our_batches) == len(their_batches) >= 2
    for batch, (inter, row_idx, positive_u, positive_i) in zip(our_batches, their_batches):
        assert batch.candidates.shape == (len(batch), 101)
        e_inter, e_row_idx, e_pos_u, e_pos_i = batch.expand()
        for got, want in ((e_row_idx, row_idx), (e_pos_u, positive_u), (e_pos_i, positive_i)):
            assert torch.equal(got, want)
        assert set(e_inter.interaction) == set(inter.interaction)
        for field in inter.interaction:
            assert torch.equal(e_inter[field], inter[field]), field


@pytest.mark.parametrize("model", ["SASRec", "GLINTRU"])
def test_fast_sampled_scores_and_encodes_once(ml100k_slice, model):
    """On RecBole's batches and on ours, each user's sequence is encoded once and the scores
    equal ``predict``'s."""
    config, trainer, valid_data, _ = build(model, ml100k_slice, "pop100", eval_batch_size=10)
    trainer.model.eval()
    trainer.tot_item_num = valid_data._dataset.item_num
    theirs = recbole_loader(config, valid_data, eval_batch_size=1010)
    init_seed(3, True)
    batches = list(theirs)
    init_seed(3, True)
    compact = list(valid_data)
    assert len(batches) == len(compact) >= 2

    rows_encoded = []
    original_forward = trainer.model.forward

    def counting_forward(item_seq, *args, **kwargs):
        rows_encoded.append(item_seq.shape[0])
        return original_forward(item_seq, *args, **kwargs)

    trainer.model.forward = counting_forward
    with torch.no_grad():
        for batch, candidate_batch in zip(batches, compact):
            trainer.fast_sampled_eval = False
            rows_encoded.clear()
            _, slow, _, _ = trainer._neg_sample_batch_eval(batch)
            slow_rows = sum(rows_encoded)
            n_users = len(batch[2])
            assert slow_rows == len(batch[1]) == 101 * n_users
            trainer.fast_sampled_eval = True
            trainer._fast_eval_checked = True  # count only the batch's own encoding
            finite = torch.isfinite(slow)
            for fast_batch in (batch, candidate_batch):
                rows_encoded.clear()
                _, fast, _, _ = trainer._neg_sample_batch_eval(fast_batch)
                assert sum(rows_encoded) == n_users
                assert torch.equal(finite, torch.isfinite(fast))
                assert torch.allclose(fast[finite], slow[finite], rtol=1e-5, atol=1e-5)


def test_vectorised_sampler_draws_recbole_negatives(ml100k_slice):
    """The vectorised sampler gives RecBole's negatives for users with many used items (the
    general, non-repeatable sampler: the ``np.isin`` branch) and one used item."""
    import numpy as np
    from recbole.sampler import Sampler

    from recbole_ext.evaluation.sampled.sampling import vectorised_sampler
    from recbole_ext.pipeline import Run

    config, _, _, _ = build("GLINTRU", ml100k_slice, "pop100")
    dataset = Run(config).prepare_data().parts[0]
    for distribution in ("popularity", "uniform"):
        sampler = Sampler(["train"], [dataset], distribution).set_phase("train")
        fast = vectorised_sampler(sampler)
        assert type(fast) is not type(sampler) and type(sampler) is Sampler
        users = dataset.inter_feat[dataset.uid_field].numpy()[:20]
        assert max(len(sampler.used_ids[u]) for u in users) > 8
        for u in users:
            np.random.seed(int(u))
            want = sampler.sample_by_user_ids(np.array([u, u]), np.array([1, 2]), 50)
            np.random.seed(int(u))
            got = fast.sample_by_user_ids(np.array([u, u]), np.array([1, 2]), 50)
            assert torch.equal(got, want)


def test_candidate_loader_pickles_after_use(ml100k_slice):
    """RecBole can save split data loaders (``save_dataloaders``); ours must still pickle after
    it has built its vectorised sampler, and sample the same after a round trip."""
    import pickle

    _, _, valid_data, _ = build("GLINTRU", ml100k_slice, "pop100")
    init_seed(9, True)
    first = next(iter(valid_data)).candidates
    copy = pickle.loads(pickle.dumps(valid_data))
    init_seed(9, True)
    assert torch.equal(next(iter(copy)).candidates, first)


def test_model_without_candidate_scoring_uses_expanded_batches(ml100k_slice):
    """A sequential model with neither ``predict_candidates`` nor ``full_sort_predict`` is
    evaluated on RecBole's expanded rows and gives RecBole's metrics."""
    from recbole.model.abstract_recommender import AbstractRecommender

    config, trainer, valid_data, _ = build("SASRec", ml100k_slice, "uni100")
    slow = evaluate(trainer, recbole_loader(config, valid_data), fast=False)
    type_backup = type(trainer.model)
    trainer.model.__class__ = type(
        "NoFullSort", (type_backup,), {"full_sort_predict": AbstractRecommender.full_sort_predict}
    )
    try:
        assert dict(evaluate(trainer, valid_data, fast=True)) == dict(slow)
    finally:
        trainer.model.__class__ = type_backup


def test_layout_rejects_unequal_candidate_counts():
    from recbole_ext.evaluation.sampled import SampledEvalMixin

    # two users, one row each, 3 candidates each: accepted
    row_idx = torch.tensor([0, 0, 0, 1, 1, 1])
    layout = SampledEvalMixin._sampled_eval_layout(row_idx, torch.tensor([0, 1]))
    assert layout is not None
    unique_rows, cand_rows = layout
    assert unique_rows.tolist() == [0, 3] and cand_rows.tolist() == [[0, 1, 2], [3, 4, 5]]
    # a user with two rows: copies interleave (p1, p2, n1, n2, ...)
    layout = SampledEvalMixin._sampled_eval_layout(torch.tensor([0, 0, 0, 0]), torch.tensor([0, 0]))
    assert layout[1].tolist() == [[0, 2], [1, 3]]
    # unequal candidate counts: RecBole's path
    assert SampledEvalMixin._sampled_eval_layout(torch.tensor([0, 0, 1, 1, 1]), torch.tensor([0, 1])) is None


def test_full_sort_mode_unaffected(ml100k_slice):
    _, trainer, valid_data, _ = build("GLINTRU", ml100k_slice, "full")
    a = evaluate(trainer, valid_data, fast=True)
    b = evaluate(trainer, valid_data, fast=False)
    assert dict(a) == dict(b)


def _candidate_sets(loader) -> dict:
    """{(user id, positive item): sorted candidate ids} over one pass of a sampled loader (ours
    or RecBole's expanded layout)."""
    from recbole_ext.evaluation.sampled import CandidateBatch

    uid, iid = loader._dataset.uid_field, loader._dataset.iid_field
    out = {}
    for batch in loader:
        if isinstance(batch, CandidateBatch):
            users, cands = batch.interaction[uid], batch.candidates
            for u, row in zip(users.tolist(), cands.tolist()):
                out[(u, row[0])] = sorted(row)
            continue
        inter, row_idx, positive_u, positive_i = batch
        for k in range(int(positive_u.max()) + 1):
            rows = (row_idx == k).nonzero(as_tuple=True)[0]
            assert len(positive_i[positive_u == k]) == 1  # leave-one-out: one positive per user
            out[(int(inter[uid][rows[0]]), int(positive_i[positive_u == k][0]))] = sorted(inter[iid][rows].tolist())
    return out


def test_shared_candidates_are_the_same_for_every_model_and_epoch(ml100k_slice):
    """``eval_candidates: shared``: two sequential models (our loader), two general models
    (RecBole's loader; RecBole's general sampler excludes every item the user has seen, the
    sequential one only the row's own item, so the two families rank different candidates), and
    two passes at different global RNG states each rank the same candidates; the global numpy
    stream is left as it was; ``per_epoch`` draws anew."""
    import numpy as np

    seen = {}
    for model in ("GLINTRU", "SASRec", "BPR", "Pop"):
        _, _, valid_data, test_data = build(model, ml100k_slice, "pop100", eval_candidates="shared")
        family = "general" if model in ("BPR", "Pop") else "sequential"
        for phase, loader in ((family + " valid", valid_data), (family + " test", test_data)):
            init_seed(1, True)
            state = np.random.get_state()[1].copy()
            first = _candidate_sets(loader)
            assert np.array_equal(np.random.get_state()[1], state)  # the global stream untouched
            init_seed(2, True)
            assert _candidate_sets(loader) == first  # every epoch the same
            assert all(len(c) == 101 for c in first.values())
            seen.setdefault(phase, []).append((model, first))
    for phase, runs in seen.items():
        (_, reference), *others = runs
        for model, sets in others:
            assert sets == reference, f"{model} ranked other {phase} candidates"
    assert len(seen) == 4 and seen["sequential valid"][0][1] != seen["sequential test"][0][1]
    _, _, valid_data, _ = build("GLINTRU", ml100k_slice, "pop100")  # SMALL: per_epoch
    init_seed(1, True)
    a = _candidate_sets(valid_data)
    init_seed(2, True)
    assert _candidate_sets(valid_data) != a


@pytest.mark.parametrize("candidates", ["shared", "per_epoch"])
def test_history_negatives_avoid_every_item_of_the_user(ml100k_slice, candidates):
    """``eval_neg_exclude: history`` (a diagnostic): no negative of a sequential model's valid or
    test row is any item of its user in the data file; under RecBole's ``target`` some are (the
    slice's users have rated many of the popular items the pop100 draw favours)."""
    import os

    _, _, valid_data, test_data = build(
        "GLINTRU", ml100k_slice, "pop100", eval_candidates=candidates, eval_neg_exclude="history"
    )
    ds = test_data._dataset
    history = {}
    with open(os.path.join(ml100k_slice, "ml-slice", "ml-slice.inter")) as f:
        next(f)
        for line in f:
            user, item = line.split("\t")[:2]
            history.setdefault(int(ds.token2id(ds.uid_field, user)), set()).add(int(ds.token2id(ds.iid_field, item)))

    def collisions(loader) -> int:
        init_seed(3, True)
        found = 0
        for (user, positive), cands in _candidate_sets(loader).items():
            negatives = list(cands)
            negatives.remove(positive)
            assert len(negatives) == 100
            found += len(set(negatives) & history[user])
        return found

    assert collisions(valid_data) == 0 and collisions(test_data) == 0
    _, _, plain_valid, plain_test = build("GLINTRU", ml100k_slice, "pop100", eval_candidates=candidates)
    assert collisions(plain_test) > 0 and collisions(plain_valid) > 0
