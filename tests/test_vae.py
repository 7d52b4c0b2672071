"""MultVAE and SVAE: losses, annealing, masking, determinism, numerical safety, one-epoch runs
(their learning on the rule data: the model contract, tests/test_model_contract.py)."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch

from recbole_ext.model.loss import (
    annealed_elbo_loss,
    gaussian_kl,
    kl_anneal_beta,
    multinomial_nll,
    multinomial_nll_from_ids,
)
from recbole_ext.model.sequential_recommender.svae import next_k_targets

from conftest import build as build_model
from conftest import rule_sequences

BASE = {
    "state": "WARNING",
    "show_progress": False,
    "load_col": {"inter": ["user_id", "item_id", "timestamp"]},
    "MAX_ITEM_LIST_LENGTH": 20,
}
# small layers keep the unit tests fast; the structure is the full model's
SMALL = {
    "MultVAE": dict(BASE, mlp_hidden_size=[32], latent_dim=8),
    "SVAE": dict(BASE, embedding_size=16, rnn_size=16, hidden_size=16, latent_dim=8),
}
GENERAL_SPLIT = {"eval_args": {"split": {"RS": [0.8, 0.1, 0.1]}, "order": "RO", "group_by": "user", "mode": "full"}}


def build(model: str, data_root: str, dataset: str = "rule-seq", **overrides):
    """``(config, model, train_data, valid_data, test_data)`` without training."""
    b = build_model(model, dataset, data_root, **dict(SMALL[model], **overrides))
    return b.config, b.model, b.train, b.valid, b.test


@pytest.fixture(scope="module")
def svae_built(rule_dataset):
    return build("SVAE", rule_dataset)


@pytest.fixture(scope="module")
def multvae_built(rule_dataset):
    return build("MultVAE", rule_dataset, **GENERAL_SPLIT)


# ----------------------------------------------------------------------------- losses
def test_gaussian_kl_zero_at_standard_normal_and_matches_torch():
    assert torch.equal(gaussian_kl(torch.zeros(3, 5), torch.zeros(3, 5)), torch.zeros(3))
    g = torch.Generator().manual_seed(0)
    mu, logvar = torch.randn(4, 6, generator=g), torch.randn(4, 6, generator=g)
    ref = torch.distributions.kl_divergence(
        torch.distributions.Normal(mu, torch.exp(0.5 * logvar)), torch.distributions.Normal(0.0, 1.0)
    ).sum(-1)
    assert torch.allclose(gaussian_kl(mu, logvar), ref, atol=1e-5)
    assert bool((gaussian_kl(mu, logvar) > 0).all())


@pytest.mark.parametrize(
    "step,total,cap,expected",
    [
        (0, 200000, 0.2, 0.0),
        (20000, 200000, 0.2, 0.1),
        (40000, 200000, 0.2, 0.2),
        (10**7, 200000, 0.2, 0.2),
        (5, 10, 1.0, 0.5),
        (3, 0, 0.3, 0.3),
    ],
)
def test_kl_anneal_beta_values(step, total, cap, expected):
    assert kl_anneal_beta(step, total, cap) == pytest.approx(expected)


def test_multinomial_nll_from_ids_matches_dense_counts():
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(5, 12, generator=g)
    ids = torch.tensor([[3, 4, 0], [1, 1, 2], [0, 0, 0], [11, 5, 7], [9, 0, 9]])
    dense = torch.zeros(5, 12)
    for r in range(5):
        for i in ids[r].tolist():
            if i:
                dense[r, i] += 1.0  # repeats count, 0 is padding
    assert torch.allclose(multinomial_nll_from_ids(logits, ids), multinomial_nll(logits, dense), atol=1e-5)


def test_annealed_elbo_loss_weighting():
    nll, kl = torch.tensor([1.0, 2.0, 100.0]), torch.tensor([10.0, 20.0, 1000.0])
    w = torch.tensor([1.0, 1.0, 0.0])
    assert annealed_elbo_loss(nll, kl, 0.5, w).item() == pytest.approx((6.0 + 12.0) / 2)
    assert annealed_elbo_loss(nll, kl, 0.0).item() == pytest.approx(103.0 / 3)
    assert annealed_elbo_loss(nll, kl, 0.5, torch.zeros(3)).item() == 0.0


def test_next_k_targets_matches_naive():
    seq = torch.tensor([[5, 6, 7, 0, 0], [1, 2, 3, 4, 9], [8, 0, 0, 0, 0]])
    lens = torch.tensor([3, 5, 1])
    last = torch.tensor([10, 11, 12])
    for k in (1, 2, 4):
        got = next_k_targets(seq, lens, last, k)
        assert got.shape == (3, 5, k)
        for b in range(3):
            full = seq[b, : lens[b]].tolist() + [int(last[b])]
            for t in range(5):
                want = (full[t + 1 : t + 1 + k] if t < lens[b] else []) + [0] * k
                assert got[b, t].tolist() == want[:k], (k, b, t)


# ----------------------------------------------------------------------------- data
def test_svae_dataset_one_full_sequence_per_user(svae_built):
    config, _, train, valid, _ = svae_built
    inter = train._dataset.inter_feat
    n_users = 200
    assert len(inter) == n_users  # one sample per user, not one per prefix
    max_len = config["MAX_ITEM_LIST_LENGTH"] + 1
    # rebuild each user's training sequence from the generated rows: all but the last two items
    rows = rule_sequences()
    seqs = {}
    for u, i, _ in rows:
        seqs.setdefault(u, []).append(i)
    ds = train._dataset
    tok_u, tok_i = ds.field2id_token["user_id"], ds.field2id_token["item_id"]
    for r in range(len(inter)):
        u = int(tok_u[int(inter["user_id"][r])])
        n = int(inter["item_length"][r])
        got = [int(tok_i[int(x)]) for x in inter["item_id_list"][r, :n]] + [int(tok_i[int(inter["item_id"][r])])]
        assert got == seqs[u][:-2][-max_len:]
        assert bool((inter["item_id_list"][r, n:] == 0).all())
    # the validation split is RecBole's leave-one-out: one row per user
    assert len(valid._dataset.inter_feat) == n_users


# ----------------------------------------------------------------------------- annealing state
@pytest.mark.parametrize("which", ["multvae_built", "svae_built"])
def test_step_counter_survives_state_dict_roundtrip(which, request):
    config, net, train, _, _ = request.getfixturevalue(which)
    model_cls = type(net)
    net.anneal_step.zero_()
    for _ in range(7):
        net.on_optimizer_step()
    assert int(net.anneal_step) == 7
    assert net.beta() == pytest.approx(kl_anneal_beta(7, config["total_anneal_steps"], config["anneal_cap"]))
    buf = io.BytesIO()
    torch.save(net.state_dict(), buf)
    buf.seek(0)
    fresh = model_cls(config, train._dataset)
    assert int(fresh.anneal_step) == 0
    fresh.load_state_dict(torch.load(buf, weights_only=True))
    assert int(fresh.anneal_step) == 7
    assert fresh.beta() == net.beta()
    net.anneal_step.zero_()


# ----------------------------------------------------------------------------- SVAE masking
def test_svae_loss_ignores_padding_and_equals_per_user_average(svae_built):
    _, net, train, _, _ = svae_built
    net.eval()  # z = mu: the loss is deterministic
    # users of different lengths: truncate some rows so there is padding to play with
    batch = train._dataset.inter_feat[np.arange(6)]
    seq, lens = batch["item_id_list"].clone(), batch["item_length"].clone()
    lens[:3] = torch.tensor([2, 5, 1])
    for b in range(3):
        seq[b, lens[b] :] = 0
    batch.interaction["item_id_list"], batch.interaction["item_length"] = seq, lens
    with torch.no_grad():
        base = net.calculate_loss(batch)
        # garbage in the padded positions, and extra padding columns, change nothing
        noisy = seq.clone()
        pad = torch.arange(seq.shape[1])[None, :] >= lens[:, None]
        noisy[pad] = torch.randint(1, net.n_items, (int(pad.sum()),))
        batch.interaction["item_id_list"] = torch.cat([noisy, torch.randint(1, net.n_items, (6, 7))], dim=1)
        assert torch.allclose(net.calculate_loss(batch), base, atol=1e-6)
        # the reference's normalisation (default): the batched loss is the mean of the batch-1
        # losses; per_step: their step-weighted mean
        batch.interaction["item_id_list"] = seq
        for mode, weights in (("reference", torch.ones(6)), ("per_step", lens.float())):
            net.loss_normalisation = mode
            per_user = []
            for b in range(6):
                one = batch[torch.tensor([b])]
                one.interaction["item_id_list"] = seq[b : b + 1, : lens[b]]
                per_user.append(net.calculate_loss(one))
            ref = (torch.stack(per_user) * weights).sum() / weights.sum()
            assert torch.allclose(net.calculate_loss(batch), ref, atol=1e-5), mode
    net.loss_normalisation = "reference"
    net.train()


def test_svae_reference_loss_sums_nll_over_steps_and_averages_kl(svae_built):
    """One user, written out: NLL summed over the steps / the first step's target count, plus
    beta x the KL averaged over the steps (the reference's VAELoss at batch size 1)."""
    from recbole_ext.model.loss import gaussian_kl, multinomial_nll_from_ids

    _, net, train, _, _ = svae_built
    net.eval()
    one = train._dataset.inter_feat[np.arange(1)]
    n = int(one["item_length"][0])
    seq = one["item_id_list"][:, :n]
    net.anneal_step.fill_(int(0.1 * net.total_anneal_steps))  # beta = 0.1: both terms count
    with torch.no_grad():
        h, mu, logvar = net.steps(seq)
        full = torch.cat([seq[0], one["item_id"]])
        nll = multinomial_nll_from_ids(net.score_all(h[0]), full[1:, None]).sum()
        expected = nll / 1 + net.beta() * gaussian_kl(mu[0], logvar[0]).mean()
        assert torch.allclose(net.calculate_loss(one), expected, atol=1e-5)
        net.loss_normalisation = "per_step"
        per_step = (
            multinomial_nll_from_ids(net.score_all(h[0]), full[1:, None]) + net.beta() * gaussian_kl(mu[0], logvar[0])
        ).mean()
        assert torch.allclose(net.calculate_loss(one), per_step, atol=1e-5)
    net.loss_normalisation = "reference"
    net.anneal_step.zero_()
    net.train()


# ----------------------------------------------------------------------------- determinism
@pytest.mark.parametrize("which", ["multvae_built", "svae_built"])
def test_eval_is_deterministic_training_samples(which, request):
    _, net, _, _, test = request.getfixturevalue(which)
    batch = next(iter(test))[0]
    net.eval()
    with torch.no_grad():
        a, b = net.full_sort_predict(batch), net.full_sort_predict(batch)
    assert torch.equal(a, b)
    net.train()
    torch.manual_seed(0)
    with torch.no_grad():
        c, d = net.full_sort_predict(batch), net.full_sort_predict(batch)
    assert not torch.equal(c, d)  # training mode samples z (and MultVAE drops input)
    net.eval()


# ----------------------------------------------------------------------------- numerical safety
def test_multvae_extreme_inputs_stay_finite(multvae_built):
    _, net, train, _, _ = multvae_built
    net.train()
    n = net.n_items
    x = torch.zeros(4, n)
    x[0, 1] = 1.0  # a user with one interaction
    x[1] = 1e6  # huge counts (normalised away)
    x[2, 3] = 1.0
    # row 3: no interaction at all
    with torch.no_grad():
        net.latent.logvar.bias.fill_(1e4)  # would overflow exp() without the clamp
    logits, mu, logvar = net(x)
    loss = annealed_elbo_loss(multinomial_nll(logits, x), gaussian_kl(mu, logvar), 0.2)
    loss.backward()
    assert bool(torch.isfinite(logits).all()) and bool(torch.isfinite(loss))
    assert all(bool(torch.isfinite(p.grad).all()) for p in net.parameters() if p.grad is not None)
    assert float(logvar.detach().max()) <= net.latent.logvar_clamp
    net.zero_grad()
    with torch.no_grad():
        net.latent.logvar.bias.zero_()


def test_svae_extreme_inputs_stay_finite(svae_built):
    _, net, train, _, _ = svae_built
    net.train()
    ds = train._dataset.inter_feat
    batch = ds[np.arange(3)]
    seq = torch.zeros(3, 4, dtype=torch.long)
    seq[0, 0] = 1  # one input step (a user with two training items)
    seq[1, :4] = net.n_items - 1
    seq[2, :2] = torch.tensor([2, 3])
    batch.interaction["item_id_list"] = seq
    batch.interaction["item_length"] = torch.tensor([1, 4, 2])
    with torch.no_grad():
        net.item_embedding.weight[net.n_items - 1].fill_(1e4)  # a wild, never-trained embedding
        net.latent.logvar.bias.fill_(-1e4)
    loss = net.calculate_loss(batch)
    loss.backward()
    assert bool(torch.isfinite(loss))
    assert all(bool(torch.isfinite(p.grad).all()) for p in net.parameters() if p.grad is not None)
    net.eval()
    with torch.no_grad():
        scores = net.full_sort_predict(batch)
    assert bool(torch.isfinite(scores).all())
    net.zero_grad()
    init = type(net)(svae_built[0], train._dataset)  # restore the fixture's weights
    net.load_state_dict(init.state_dict())


def test_unseen_item_scores_finite(rule_dataset, tmp_path):
    """An item that appears only in a test position (never in training) is scored finitely."""
    from conftest import write_inter

    rows = [r for r in rule_sequences(n_users=30, n_items=20, length=8)]
    # item 99 only as the last interaction of user 1: in its test target, never in training
    rows.append((1, 99, 100))
    root = write_inter(str(tmp_path), "unseen", rows)
    for model, extra in (("SVAE", {}), ("MultVAE", {})):
        _, net, _, _, test = build(model, root, "unseen", **extra)
        net.eval()
        batch = next(iter(test))[0]
        with torch.no_grad():
            scores = net.full_sort_predict(batch)
        assert bool(torch.isfinite(scores).all()), model


# ----------------------------------------------------------------------------- end to end
@pytest.mark.parametrize("model,extra", [("MultVAE", GENERAL_SPLIT), ("SVAE", {})])
def test_one_epoch_through_run_tiny(run_tiny, rule_dataset, model, extra):
    result = run_tiny(model, "rule-seq", rule_dataset, **dict(SMALL[model], **extra))
    assert result["model"] == model
    assert set(result["test_result"]) and all(np.isfinite(v) for v in result["test_result"].values())
    assert len(result["timings"]["train_epoch_s"]) == 1
