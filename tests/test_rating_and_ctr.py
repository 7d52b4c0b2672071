"""Rating models (MF, DenseRating, LSTMRating) and DLRM: layers against naive references,
parameter counts from first principles, and behaviour on generated data with a known answer."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from conftest import build
from synthetic import low_rank_ratings, write_inter, xor_clicks

RATING_HEADER = ("user_id:token", "item_id:token", "rating:float", "timestamp:float")
NOISE = 0.25


# ------------------------------------------------------------------ layers
def test_dot_interaction_equals_a_loop_over_pairs():
    from recbole_ext.model.feature_layers import dot_interaction

    torch.manual_seed(0)
    v = torch.randn(3, 5, 4)
    for self_interaction in (False, True):
        pairs = [(i, j) for i, j in itertools.product(range(5), repeat=2) if (i <= j if self_interaction else i < j)]
        naive = torch.stack([(v[:, i] * v[:, j]).sum(-1) for i, j in pairs], dim=1)
        assert torch.allclose(dot_interaction(v, self_interaction), naive, atol=1e-6)
        assert naive.shape[1] == (15 if self_interaction else 10)


# ------------------------------------------------------------------ rating models
@pytest.fixture(scope="module")
def rating_data(tmp_path_factory):
    return write_inter(
        str(tmp_path_factory.mktemp("ratings")), "lowrank", low_rank_ratings(noise=NOISE), header=RATING_HEADER
    )


def _train_rating(model, data_path, protocol, tmp_path, **keys):
    from recbole_ext.quick_start import run_recbole_ext

    cfg = dict(
        data_path=data_path,
        epochs=40,
        train_batch_size=128,
        learning_rate=0.005,
        stopping_step=5,
        state="ERROR",
        show_progress=False,
        checkpoint_dir=str(tmp_path / "saved"),
        load_col=None,
        **keys,
    )
    out = run_recbole_ext(model, "lowrank", [protocol], cfg, log_dir=str(tmp_path / "log"), saved=True)
    return out["test_result"]


def _baselines(data_path, protocol_keys):
    """RMSE on the test split of predicting the training split's mean rating, and of predicting
    each item's mean training rating (the best possible without knowing the user)."""
    b = build("MF", "lowrank", data_path, load_col=None, **protocol_keys)
    train, test = b.train._dataset.inter_feat, b.test._dataset.inter_feat
    ratings, items = train["rating"].numpy(), train["item_id"].numpy()
    means = {i: ratings[items == i].mean() for i in np.unique(items)}
    target = test["rating"].numpy()
    by_item = np.array([means.get(i, ratings.mean()) for i in test["item_id"].numpy()])
    return (float(np.sqrt(np.mean((target - ratings.mean()) ** 2))), float(np.sqrt(np.mean((target - by_item) ** 2))))


def _protocol_keys(name):
    from recbole_ext.config_sources import protocol_settings

    return protocol_settings(name)


RATING_LEARNERS = [
    ("MF", "protocol-rating.yaml"),
    ("DenseRating", "protocol-rating.yaml"),
    ("LSTMRating", "protocol-rating-time.yaml"),
]
#: the models whose learning is tested here (the model contract's learning clause for them)
LEARNERS = [m for m, _ in RATING_LEARNERS] + ["DLRM"]


@pytest.mark.slow
@pytest.mark.parametrize("model,protocol", RATING_LEARNERS)
def test_rating_models_learn_generated_low_rank_ratings(model, protocol, rating_data, tmp_path):
    """Every model clearly beats predicting the mean rating. MF and DenseRating, which know the
    user, beat the per-item means and MF comes near the noise floor (0.25); LSTMRating sees only
    which items came before (here drawn at random), so the per-item means are its best."""
    global_mean, item_mean = _baselines(rating_data, _protocol_keys(protocol))
    test = _train_rating(model, rating_data, protocol, tmp_path)
    assert set(test) == {"rmse", "mae"}
    assert test["rmse"] < 0.9 * global_mean, (test, global_mean)
    if model == "LSTMRating":
        assert test["rmse"] < 1.05 * item_mean, (test, item_mean)
    else:
        assert test["rmse"] < 0.9 * item_mean, (test, item_mean)
    if model == "MF":
        assert test["rmse"] < 1.6 * NOISE, test


def test_mf_without_biases_is_the_plain_dot_product(rating_data):
    b = build("MF", "lowrank", rating_data, load_col=None, use_bias=False, **_protocol_keys("protocol-rating.yaml"))
    batch = next(iter(b.train))
    net = b.model
    dot = (net.user_embedding(batch["user_id"]) * net.item_embedding(batch["item_id"])).sum(-1)
    assert torch.allclose(net.predict_rating(batch), dot)
    n, m, d = net.n_users, net.n_items, net.embedding_size
    trainable = sum(p.numel() for p in net.parameters() if p.requires_grad)
    assert trainable == (n + m) * d


def test_a_rating_model_without_ratings_is_one_line(ml100k_slice):
    from recbole_ext.errors import ConfigError

    with pytest.raises(ConfigError, match="has no 'rating' column"):
        build("MF", "ml-slice", ml100k_slice, load_col={"inter": ["user_id", "item_id", "timestamp"]})


def test_lstm_rating_predicts_each_step_from_the_items_before(rating_data):
    """The rating of the item at step t does not change when later items change (causal)."""
    b = build("LSTMRating", "lowrank", rating_data, load_col=None, **_protocol_keys("protocol-rating-time.yaml"))
    b.model.eval()
    items = torch.tensor([[3, 5, 7, 9], [3, 5, 8, 2]])
    out = b.model.step_ratings(items)
    assert torch.allclose(out[0, :2], out[1, :2]) and not torch.allclose(out[0, 2:], out[1, 2:])


# ------------------------------------------------------------------ DLRM
@pytest.fixture(scope="module")
def clicks(tmp_path_factory):
    return xor_clicks(str(tmp_path_factory.mktemp("clicks")), "xor")


CLICK_KEYS = dict(
    load_col={
        "inter": ["user_id", "item_id", "label", "timestamp"],
        "user": ["user_id", "a"],
        "item": ["item_id", "b"],
    },
    LABEL_FIELD="label",
    threshold=None,
    train_neg_sample_args=None,
    metrics=["AUC", "LogLoss"],
    valid_metric="AUC",
    eval_args={"split": {"RS": [0.8, 0.1, 0.1]}, "order": "TO", "group_by": "user", "mode": "labeled"},
)


def test_dlrm_parameter_count_from_first_principles(clicks):
    b = build("DLRM", "xor", clicks, **CLICK_KEYS, embedding_size=8, top_mlp_sizes=[16])
    net = b.model
    # tokens: user_id, item_id, a, b (RecBole counts the padding id of each); no float field
    users, items = b.train._dataset.user_num, b.train._dataset.item_num
    tables = (users + items + 3 + 3) * 8
    m = 4
    top = (m * (m - 1) // 2) * 16 + 16 + 16 * 1 + 1
    assert sum(p.numel() for p in net.parameters()) == tables + top
    assert net.n_vectors() == m


@pytest.mark.parametrize("tower", ["gru", "transformer"])
def test_sequence_tower_sees_the_history_and_not_the_padding(tower, clicks):
    from recbole.data.interaction import Interaction

    b = build("DLRM", "xor", clicks, **CLICK_KEYS, sequence_tower=tower, MAX_ITEM_LIST_LENGTH=6)
    net = b.model.eval()
    torch.nn.init.normal_(net.tower.item_embedding.weight)  # history vectors of unit scale, padding row too
    batch = next(iter(b.train))
    original, lengths = batch["item_id_list"].clone(), batch["item_length"]
    assert (lengths > 0).any() and (lengths < 6).any()
    pad = torch.arange(6)[None, :] >= lengths[:, None]

    def logits(history):
        batch.update(Interaction({"item_id_list": history}))
        return net.forward(batch)

    base = logits(original)
    padded = original.clone()
    padded[pad] = 7  # other values in the padding slots
    assert torch.allclose(logits(padded), base, atol=1e-5)
    changed = original.clone()
    changed[~pad] = (changed[~pad] % 20) + 1  # other real items
    assert not torch.allclose(logits(changed), base)
    # the tower's vector (before the top MLP's ReLUs): every row with a history moves, no other
    moved = (net.tower(changed, lengths) - net.tower(original, lengths)).abs().amax(1)
    assert (moved[lengths > 0] > 1e-4).all() and (moved[lengths == 0] == 0).all()


def test_history_holds_the_users_previous_items_in_time_order():
    from recbole_ext.data.history import recent_items

    users = np.array([1, 2, 1, 1, 2])
    history, lengths = recent_items(users, np.array([10, 20, 11, 12, 21]), np.array([3, 1, 1, 2, 0]), 2)
    assert history.tolist() == [[11, 12], [21, 0], [0, 0], [11, 0], [0, 0]]
    assert lengths.tolist() == [2, 1, 0, 1, 0]


@pytest.mark.slow
def test_dlrm_learns_a_feature_interaction_a_linear_model_cannot(clicks, tmp_path):
    """The label is a XOR b: DLRM's dot products of the two feature embeddings express it; RecBole's
    LR (no interaction) stays near chance."""
    from recbole_ext.quick_start import run_recbole_ext

    def auc(model, **keys):
        cfg = dict(
            CLICK_KEYS,
            data_path=clicks,
            epochs=30,
            train_batch_size=256,
            learning_rate=0.01,
            stopping_step=5,
            state="ERROR",
            show_progress=False,
            checkpoint_dir=str(tmp_path / model),
            **keys,
        )
        return run_recbole_ext(model, "xor", None, cfg, log_dir=str(tmp_path / "log"), saved=True)["test_result"]["auc"]

    dlrm, linear = auc("DLRM", embedding_size=8), auc("LR")
    print(f"XOR clicks: DLRM AUC {dlrm:.4f}, LR AUC {linear:.4f}")
    assert dlrm > 0.85 and linear < 0.65 and not math.isnan(linear), (dlrm, linear)
