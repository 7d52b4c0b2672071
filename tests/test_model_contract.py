"""The model contract, one parametrised test per clause over every model of ours (the checks are
in ``tests/contract.py``), and a broken toy model per clause to show that each check fails.

Every model of ours (one YAML under ``recbole_ext/properties/model``) must have a row in
:data:`CASES`: its family (which data it runs on and what it is scored by) and small settings.
The clauses: the YAML keys are the keys the constructor reads; ``full_sort_predict`` equals
``predict``; every parameter gets a gradient; a ranking model beats Pop on the rule data set
(``slow``); the model rebuilds from its checkpoint and serves ``recommend`` (or refuses in one
line); a tune search space exists for it.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
from typing import Dict

import pytest
import torch
import yaml
from test_rating_and_ctr import CLICK_KEYS
from torch import nn

from recbole_ext._paths import OWN_MODEL_YAML_DIR
from recbole_ext.model.abstract_recommender import SequenceEncoderRecommender
from recbole_ext.registry import get_model, own_model_names

import contract
from conftest import SEQ_DATA, build, run_in_folder
from synthetic import low_rank_ratings, write_inter, xor_clicks

GENERAL_SPLIT = {"eval_args": {"split": {"RS": [0.8, 0.1, 0.1]}, "order": "RO", "group_by": "user", "mode": "full"}}
RATING_HEADER = ("user_id:token", "item_id:token", "rating:float", "timestamp:float")


@dataclasses.dataclass(frozen=True)
class Case:
    """A model's row: ``family`` (sequential / general: ranked on the rule data set; rating /
    click: scored by RMSE / AUC, learning tested in ``test_rating_and_ctr.py``), its small
    settings, extra settings for the learning run, and whether it scores a free item history."""

    family: str
    small: Dict
    learn: Dict = dataclasses.field(default_factory=dict)
    serves: bool = True


CASES = {
    "FMLPRec": Case("sequential", dict(hidden_size=16, inner_size=32, n_layers=1)),
    "GLINTRU": Case("sequential", dict(hidden_size=16, n_heads=2)),
    "LRURec": Case("sequential", dict(hidden_size=16, n_layers=1)),
    "LSTM4Rec": Case("sequential", dict(embedding_size=16, hidden_size=16), dict(dropout_prob=0.0)),
    "LinRec": Case("sequential", dict(hidden_size=16, n_heads=2, inner_size=32)),
    "Mamba4Rec": Case("sequential", dict(hidden_size=16, d_state=8)),
    "SMLP4Rec": Case("sequential", dict(hidden_size=16), dict(hidden_dropout_prob=0.1)),
    "SVAE": Case(
        "sequential",
        dict(embedding_size=16, rnn_size=16, hidden_size=16, latent_dim=8),
        dict(train_batch_size=32, learning_rate=0.005),
    ),
    "mLSTM": Case("sequential", dict(embedding_size=16, hidden_size=16), dict(dropout_prob=0.0)),
    "MultVAE": Case(
        "general", dict(mlp_hidden_size=[32], latent_dim=8), dict(train_batch_size=32, learning_rate=0.005)
    ),
    "MF": Case("rating", dict(embedding_size=16), serves=False),
    "DenseRating": Case("rating", dict(embedding_size=16, mlp_hidden_size=[16]), serves=False),
    "LSTMRating": Case("rating-time", dict(embedding_size=16, hidden_size=16)),
    "DLRM": Case("click", dict(embedding_size=8), serves=False),
}
#: declared keys that another part of the run reads, not the constructor: model -> key -> why
READ_ELSEWHERE = {
    "SVAE": {
        "train_max_len": "SVAEDataset cuts the training sequences to it",
        "train_batch_size": "an override of the general key: the loader batches whole users",
    },
}
#: parameters that legitimately get no gradient from calculate_loss: model -> name -> why
UNUSED: Dict[str, Dict[str, str]] = {}
#: how far a ranking model must beat Pop (NDCG@10 on the rule data set): (margin, factor)
MARGIN = {"sequential": (0.2, 2.0), "general": (0.1, 1.5)}
LEARN = dict(epochs=6, learning_rate=0.01, stopping_step=10, topk=[10], metrics=["Hit", "NDCG"], valid_metric="NDCG@10")
MODELS = own_model_names()


def test_every_model_of_ours_has_a_case():
    assert sorted(CASES) == sorted(MODELS)


@pytest.fixture(scope="module")
def families(rule_dataset, tmp_path_factory):
    """family -> (data set, data path, settings): the tiny data sets, written once."""
    from recbole_ext.config_sources import protocol_settings

    root = str(tmp_path_factory.mktemp("contract-data"))
    write_inter(root, "lowrank", low_rank_ratings(), header=RATING_HEADER)
    xor_clicks(root, "xor")
    return {
        "sequential": ("rule-seq", rule_dataset, SEQ_DATA),
        "general": ("rule-seq", rule_dataset, GENERAL_SPLIT),
        "rating": ("lowrank", root, dict(protocol_settings("protocol-rating.yaml"), load_col=None)),
        "rating-time": ("lowrank", root, dict(protocol_settings("protocol-rating-time.yaml"), load_col=None)),
        "click": ("xor", root, CLICK_KEYS),
    }


def build_case(name: str, families, folder, case: Case = None):
    case = case or CASES[name]
    dataset, path, keys = families[case.family]
    settings = dict(keys, state="WARNING", train_batch_size=64, checkpoint_dir=str(folder), **case.small)
    return build(name, dataset, path, trainer=True, **settings)


@pytest.fixture(scope="module")
def built(families, tmp_path_factory):
    """``built(model)``: its config, data, model and trainer, built once for the module."""
    cache = {}

    def get(name: str):
        if name not in cache:
            cache[name] = build_case(name, families, tmp_path_factory.mktemp(f"ckpt-{name}"))
        return cache[name]

    return get


def first_batch(b):
    batch = next(iter(b.train))
    return batch[0] if isinstance(batch, tuple) else batch


def declared_keys(name: str):
    with open(os.path.join(OWN_MODEL_YAML_DIR, f"{name}.yaml"), encoding="utf-8") as f:
        return list(yaml.safe_load(f) or {})


# ------------------------------------------------------------------ the contract
@pytest.mark.parametrize("name", MODELS)
def test_yaml_keys_are_the_keys_the_constructor_reads(name, built):
    b = built(name)
    contract.check_yaml_keys(
        get_model(name), b.config, b.train._dataset, declared_keys(name), READ_ELSEWHERE.get(name, {})
    )


@pytest.mark.parametrize("name", [m for m in MODELS if CASES[m].family != "click"])
def test_full_sort_predict_equals_predict(name, built):
    b = built(name)
    assert contract.has_full_sort(b.model), f"{name} has no full_sort_predict"
    contract.check_full_sort_equals_predict(b.model, first_batch(b))


@pytest.mark.parametrize("name", [m for m in MODELS if CASES[m].family == "click"])
def test_click_models_score_rows_only(name, built):
    """A click model scores (user, item, features) rows: it offers no full ranking to compare."""
    assert not contract.has_full_sort(built(name).model)


@pytest.mark.parametrize("name", MODELS)
def test_every_parameter_gets_a_gradient(name, built):
    b = built(name)
    contract.check_gradients(b.model, first_batch(b), UNUSED.get(name, {}))


@pytest.mark.parametrize("name", MODELS)
def test_rebuilds_from_its_checkpoint_and_serves(name, built):
    b = built(name)
    b.trainer._train_data = b.train
    contract.check_rebuilds_and_serves(b.trainer, first_batch(b), CASES[name].serves)


@pytest.mark.parametrize("name", MODELS)
def test_a_tune_search_space_exists(name, families):
    _, _, keys = families[CASES[name].family]
    contract.check_search_space(name, {k: v for k, v in keys.items() if k != "load_col"})


@pytest.fixture(scope="module")
def pop_ndcg(families, tmp_path_factory):
    """family -> Pop's test NDCG@10 on the rule data set (the baseline to beat)."""
    cache = {}

    def get(family: str) -> float:
        if family not in cache:
            dataset, path, keys = families[family]
            folder = tmp_path_factory.mktemp(f"pop-{family}")
            res = run_in_folder(folder, "Pop", dataset, data_path=path, **dict(keys, **LEARN, show_progress=False))
            cache[family] = float(res["test_result"]["ndcg@10"])
        return cache[family]

    return get


def learned_ndcg(name: str, families, folder, case: Case = None) -> float:
    case = case or CASES[name]
    dataset, path, keys = families[case.family]
    cfg = dict(keys, **dict(LEARN, **case.small, **case.learn), show_progress=False)
    os.makedirs(folder, exist_ok=True)
    return float(run_in_folder(folder, name, dataset, data_path=path, **cfg)["test_result"]["ndcg@10"])


RANKERS = [m for m in MODELS if CASES.get(m) and CASES[m].family in MARGIN]


@pytest.mark.slow
@pytest.mark.parametrize("name", RANKERS)
def test_beats_pop_on_the_rule_data_set(name, families, pop_ndcg, tmp_path):
    # next item = perm[current] 90% of the time: popularity cannot follow it (every item is
    # about equally frequent), a sequence model can
    family = CASES[name].family
    score, pop = learned_ndcg(name, families, tmp_path), pop_ndcg(family)
    print(f"{name}: test NDCG@10 {score:.4f}, Pop {pop:.4f}")
    contract.check_beats(score, pop, *MARGIN[family])


def test_rating_and_click_models_learn_in_their_own_tests():
    """Pop ranks items; a rating or click model is scored by RMSE or AUC, against the baselines
    of ``test_rating_and_ctr.py`` (the mean ratings; a linear model on XOR clicks)."""
    from test_rating_and_ctr import LEARNERS

    assert sorted(m for m in MODELS if m not in RANKERS) == sorted(LEARNERS)


# ------------------------------------------------------------------ each check can fail
HOST = "LSTM4Rec"  # the broken toys are built under this model's name (its YAML, its data)


class Toy(SequenceEncoderRecommender):
    """The last item's vector through a linear layer: keeps every clause."""

    DECLARED = ("embedding_size", "loss_type", "item_bias")

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        # load parameters info
        self.embedding_size: int = config["embedding_size"]
        # define layers
        self.item_embedding = nn.Embedding(self.n_items, self.embedding_size, padding_idx=0)
        self.proj = nn.Linear(self.embedding_size, self.embedding_size)

    def forward(self, item_seq: torch.Tensor, item_seq_len: torch.Tensor) -> torch.Tensor:
        last = self.item_embedding(item_seq)[torch.arange(len(item_seq)), item_seq_len - 1]
        return self.proj(last)


class ReadsUndeclared(Toy):
    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        self.scale = config["toy_scale"] or 1.0


class FullSortDiffers(Toy):
    def full_sort_predict(self, interaction):
        return super().full_sort_predict(interaction) + 0.1


class SpareLayer(Toy):
    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        self.spare = nn.Linear(4, 4)


_instances = itertools.count()


class Forgetful(Toy):
    """An offset that differs from instance to instance and is not in the checkpoint."""

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        self.offset = float(next(_instances))

    def forward(self, item_seq, item_seq_len):
        return super().forward(item_seq, item_seq_len) + self.offset


class Blind(Toy):
    """Ignores the sequence: one learned vector for everyone (popularity at best)."""

    def forward(self, item_seq, item_seq_len):
        return self.proj.bias.expand(len(item_seq), -1)


def under_host_name(cls: type) -> type:
    """``cls`` named as the host model (a config takes the model's name from its class)."""
    return type(HOST, (cls,), {"__module__": cls.__module__})


@pytest.fixture
def as_host(monkeypatch, families, tmp_path):
    """``as_host(cls) -> built``: ``cls`` resolved under the host's name, built on its data."""
    module = __import__(get_model(HOST).__module__, fromlist=[HOST])

    def install(cls):
        monkeypatch.setattr(module, HOST, under_host_name(cls))
        return build_case(HOST, families, tmp_path / cls.__name__, Case("sequential", dict(embedding_size=16)))

    return install


def test_the_toy_keeps_every_quick_clause(as_host):
    b = as_host(Toy)
    contract.check_yaml_keys(Toy, b.config, b.train._dataset, Toy.DECLARED)
    contract.check_full_sort_equals_predict(b.model, first_batch(b))
    contract.check_gradients(b.model, first_batch(b))
    b.trainer._train_data = b.train
    contract.check_rebuilds_and_serves(b.trainer, first_batch(b), serves=True)


def test_the_key_check_fails_on_a_key_read_but_not_declared_and_on_one_declared_but_not_read(as_host):
    b = as_host(ReadsUndeclared)
    with pytest.raises(AssertionError, match="not declared: \\['toy_scale'\\]"):
        contract.check_yaml_keys(ReadsUndeclared, b.config, b.train._dataset, Toy.DECLARED)
    with pytest.raises(AssertionError, match="never read by the constructor: \\['num_layers'\\]"):
        contract.check_yaml_keys(Toy, b.config, b.train._dataset, Toy.DECLARED + ("num_layers",))


def test_the_full_sort_check_fails_when_it_differs_from_predict(as_host):
    b = as_host(FullSortDiffers)
    with pytest.raises(AssertionError, match="differs from predict by 0.1"):
        contract.check_full_sort_equals_predict(b.model, first_batch(b))


def test_the_gradient_check_fails_on_an_unused_parameter(as_host):
    b = as_host(SpareLayer)
    with pytest.raises(AssertionError, match="spare.weight"):
        contract.check_gradients(b.model, first_batch(b))
    contract.check_gradients(b.model, first_batch(b), {"spare.weight": "toy", "spare.bias": "toy"})


def test_the_serving_check_fails_when_the_checkpoint_misses_state(as_host):
    b = as_host(Forgetful)
    b.trainer._train_data = b.train
    with pytest.raises(AssertionError, match="rebuilt from its checkpoint scores differently"):
        contract.check_rebuilds_and_serves(b.trainer, first_batch(b), serves=True)


def test_the_serving_check_fails_when_a_model_that_should_refuse_serves(as_host):
    b = as_host(Toy)
    b.trainer._train_data = b.train
    with pytest.raises(AssertionError, match="expected to refuse"):
        contract.check_rebuilds_and_serves(b.trainer, first_batch(b), serves=False)


def test_the_space_check_fails_without_a_space_or_with_a_foreign_key(monkeypatch, tmp_path):
    from recbole_ext.tune import space

    monkeypatch.setattr(space, "TUNE_DIR", str(tmp_path))
    with pytest.raises(AssertionError, match="no packaged search space"):
        contract.check_search_space(HOST)
    (tmp_path / f"{HOST}.yaml").write_text("learning_rate: {loguniform: [1.0e-4, 1.0e-2]}\ntoy_key: {int: [1, 3]}\n")
    with pytest.raises(AssertionError, match="does not know: \\['toy_key'\\]"):
        contract.check_search_space(HOST)
    (tmp_path / f"{HOST}.yaml").write_text("num_layers: {choice: [1, two]}\n")
    with pytest.raises(AssertionError, match="search space"):
        contract.check_search_space(HOST)


@pytest.mark.slow
def test_the_learning_check_fails_on_a_model_blind_to_the_sequence(monkeypatch, families, pop_ndcg, tmp_path):
    module = __import__(get_model(HOST).__module__, fromlist=[HOST])
    toy_case = Case("sequential", dict(embedding_size=16))
    monkeypatch.setattr(module, HOST, under_host_name(Toy))
    contract.check_beats(learned_ndcg(HOST, families, tmp_path / "toy", toy_case), pop_ndcg("sequential"), 0.2, 2.0)
    monkeypatch.setattr(module, HOST, under_host_name(Blind))
    with pytest.raises(AssertionError, match="does not beat the baseline"):
        contract.check_beats(learned_ndcg(HOST, families, tmp_path / "blind", toy_case), pop_ndcg("sequential"), 0.2)
