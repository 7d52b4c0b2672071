"""Memory that does not grow with the catalogue: CE without the logit matrix (``loss_impl``) and
the full-ranking top-k in item chunks (``full_sort_memory_mb``).

- ``loss_impl: chunked`` gives the dense loss and every parameter's gradient, for our models
  (through the shared base class) and RecBole's (through the mended classes), BERT4Rec's masked
  positions included, and never creates a tensor of the logit matrix's size.
- The top-k under the tie rule (higher score, then lower item id) is the same from one matrix and
  from item chunks of any size, on rows full of ties; without ties it is ``torch.topk``'s.
- A trainer's full-ranking evaluation in item chunks (a tiny ``full_sort_memory_mb``) collects
  exactly the data of the one-shot evaluation, and so the same metrics.
"""

from __future__ import annotations

from typing import Dict, List, Tuple

import pytest
import torch

from recbole_ext.config import Config
from recbole_ext.errors import ConfigError
from recbole_ext.evaluation import full_sort
from recbole_ext.evaluation.topk import TopKMerger, rank_keys, topk_items
from recbole_ext.model import linear_head
from recbole_ext.model.linear_head import LinearHead, linear_softmax_ce, loss_impl_of

from conftest import SEQ_DATA, LargestOutput, build

SMALL = {
    "hidden_size": 16,
    "embedding_size": 16,
    "inner_size": 32,
    "n_layers": 1,
    "n_heads": 2,
    "MAX_ITEM_LIST_LENGTH": 10,
    "train_batch_size": 64,
    "eval_batch_size": 64,
    "show_progress": False,
    "state": "WARNING",
    **SEQ_DATA,
}
#: ours (through SequenceEncoderRecommender; LRURec with its item bias) and RecBole's
MODELS = ["GLINTRU", "LinRec", "FMLPRec", "LRURec", "SASRec", "GRU4Rec", "BERT4Rec", "LightSANs", "NARM"]


# ----------------------------------------------------------------------------- the loss
def loss_and_grads(model, batch, impl: str) -> Tuple[torch.Tensor, Dict[str, torch.Tensor]]:
    model.loss_impl = impl
    model.zero_grad()
    torch.manual_seed(3)  # the same dropout masks in both
    loss = model.calculate_loss(batch)
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("name", MODELS)
def test_chunked_loss_and_gradients_equal_dense(name, ml100k_slice, monkeypatch):
    """Several chunks per batch (a small chunk budget), dropout on: the same loss and gradients."""
    built = build(name, "ml-slice", ml100k_slice, **SMALL)
    model, batch = built.model.train(), next(iter(built.train))
    assert model.loss_impl == "chunked"  # the default
    monkeypatch.setattr(linear_head, "CHUNK_BYTES", 4 * model.n_items * 7)  # 7 rows per chunk
    dense_loss, dense_grads = loss_and_grads(model, batch, "dense")
    chunked_loss, chunked_grads = loss_and_grads(model, batch, "chunked")
    torch.testing.assert_close(chunked_loss, dense_loss, rtol=1e-5, atol=1e-6)
    assert chunked_grads.keys() == dense_grads.keys() and len(dense_grads) > 0
    for key, grad in dense_grads.items():
        torch.testing.assert_close(chunked_grads[key], grad, rtol=1e-4, atol=1e-6, msg=f"{name}: {key}")


@pytest.mark.parametrize("impl", ["dense", "chunked"])
def test_chunked_loss_never_creates_the_logit_matrix(impl, monkeypatch):
    rows, n_items, d = 64, 5000, 8
    monkeypatch.setattr(linear_head, "CHUNK_BYTES", 4 * n_items * 16)
    query = torch.randn(rows, d, requires_grad=True)
    table = torch.randn(n_items, d, requires_grad=True)
    with LargestOutput() as seen:
        linear_softmax_ce(LinearHead(query, table, None), torch.randint(n_items, (rows,)), impl == "chunked").backward()
    if impl == "dense":
        assert seen.largest >= rows * n_items  # the check sees the dense path's logits
    else:
        assert seen.largest <= 16 * n_items


def test_chunked_loss_with_a_bias_and_one_row():
    torch.manual_seed(0)
    for rows in (1, 33):
        head = LinearHead(torch.randn(rows, 4), torch.randn(50, 4), torch.randn(50))
        target = torch.randint(50, (rows,))
        torch.testing.assert_close(linear_softmax_ce(head, target, True), linear_softmax_ce(head, target, False))


def test_chunked_loss_under_bf16_autocast():
    """``precision: bf16``: the op runs in bfloat16 (float32 accumulation), the dense logits are
    bfloat16 too; both losses are float32 and agree to bfloat16's precision."""
    torch.manual_seed(0)
    query, table = torch.randn(64, 16), torch.randn(500, 16, requires_grad=True)
    target = torch.randint(500, (64,))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        head = LinearHead(torch.nn.functional.linear(query, torch.eye(16)), table, None)  # a bf16 query
        dense, chunked = linear_softmax_ce(head, target, False), linear_softmax_ce(head, target, True)
    assert head.query.dtype == torch.bfloat16 and dense.dtype == chunked.dtype == torch.float32
    torch.testing.assert_close(chunked, dense, rtol=2e-2, atol=0)
    chunked.backward()
    assert table.grad.dtype == torch.float32 and torch.isfinite(table.grad).all()


def test_loss_impl_is_checked(ml100k_slice):
    with pytest.raises(ConfigError, match=r"loss_impl='fused'; allowed: str: dense \| chunked"):
        Config("SASRec", "ml-slice", config_dict={"data_path": ml100k_slice, "loss_impl": "fused"})
    with pytest.raises(ConfigError, match="loss_impl='fused'"):
        loss_impl_of({"loss_impl": "fused"})
    assert loss_impl_of({}) == "chunked"


# ----------------------------------------------------------------------------- the top-k
def reference_topk(scores: torch.Tensor, k: int) -> torch.Tensor:
    """The tie rule by a stable sort: higher score first, then the lower item id."""
    return torch.sort(scores, dim=1, descending=True, stable=True).indices[:, :k]


def tied_scores(rows: int, n_items: int, seed: int) -> torch.Tensor:
    """Scores with many ties (few distinct values, -inf, -0.0 and +0.0, negatives)."""
    g = torch.Generator().manual_seed(seed)
    values = torch.tensor([-float("inf"), -2.5, -0.0, 0.0, 1.0, 3.0e38])
    return values[torch.randint(len(values), (rows, n_items), generator=g)]


@pytest.mark.parametrize("seed", range(4))
def test_topk_in_chunks_equals_one_shot_with_ties(seed):
    scores = tied_scores(7, 503, seed)
    for k in (1, 10, 50, 503):
        expected = reference_topk(scores, k)
        assert torch.equal(topk_items(scores, k), expected)
        for step in (1, 9, 64, 500):
            merger = TopKMerger(k)
            starts = list(range(0, scores.shape[1], step))
            for start in reversed(starts) if seed % 2 else starts:  # any chunk order
                merger.add(scores[:, start : start + step], start)
            assert torch.equal(merger.items(), expected), (k, step)


def test_without_ties_the_rule_is_torch_topk():
    scores = torch.randn(16, 2000, generator=torch.Generator().manual_seed(0))
    assert torch.equal(topk_items(scores, 20), torch.topk(scores, 20, dim=1).indices)


def test_rank_keys_order_floats_as_floats():
    values = torch.tensor([[-float("inf"), -3.0e38, -1.0, -1e-30, -0.0, 0.0, 1e-30, 2.0, 3.0e38, float("inf")]])
    keys = rank_keys(values)
    order = torch.argsort(keys[0], descending=True)
    assert order.tolist() == [9, 8, 7, 6, 4, 5, 3, 2, 1, 0]  # -0.0 and +0.0 tie: the lower id first


# ----------------------------------------------------------------------------- the evaluation
class RecordingCollector(full_sort.TopKCollector):
    """Keeps each batch's collected ``rec.topk`` rows."""

    batches: List[torch.Tensor]

    def eval_batch_collect(self, scores_tensor, interaction, positive_u, positive_i):
        super().eval_batch_collect(scores_tensor, interaction, positive_u, positive_i)
        self.batches.append(self.data_struct.get("rec.topk").clone())


def evaluation(built, memory_mb: float):
    trainer = built.trainer
    trainer.full_sort_memory_mb = memory_mb
    collector = RecordingCollector(built.config)
    collector.batches = []
    trainer.eval_collector = collector
    result = trainer.evaluate(built.test, load_best_model=False)
    return result, collector.batches


@pytest.mark.parametrize("name", ["SASRec", "BERT4Rec", "GLINTRU", "STAMP", "BPR"])
def test_chunked_evaluation_collects_what_one_shot_does(name, ml100k_slice, monkeypatch):
    """Item chunks (a model with ``full_sort_head``) or row chunks (BPR, with each user's
    history excluded; STAMP, whose head is removed here): the same top-k data and metrics."""
    keys = dict(SMALL, topk=[5, 20], valid_metric="MRR@20")
    if name == "BPR":  # RecBole batches eval_batch_size // n_items users of a general model
        keys["eval_batch_size"] = 20000
    built = build(name, "ml-slice", ml100k_slice, trainer=True, **keys)
    if name == "STAMP":
        monkeypatch.setattr(type(built.model), "full_sort_head", None, raising=False)
    calls = []
    predict = built.model.full_sort_predict
    monkeypatch.setattr(built.model, "full_sort_predict", lambda inter: calls.append(len(inter)) or predict(inter))
    built.model.eval()
    one_shot, one_shot_batches = evaluation(built, 1024.0)
    chunks_seen = []
    merge = full_sort.TopKMerger.add
    monkeypatch.setattr(full_sort.TopKMerger, "add", lambda self, s, f: chunks_seen.append(f) or merge(self, s, f))
    calls.clear()  # 300 scores at once: chunks of k = 20 items (64 rows), or of one row (BPR, STAMP)
    chunked, chunked_batches = evaluation(built, 300 * full_sort.BYTES_PER_SCORE / 2**20)
    assert len(one_shot_batches) == len(chunked_batches) > 0
    for a, b in zip(one_shot_batches, chunked_batches):
        assert torch.equal(a, b)
    assert chunked == one_shot
    assert one_shot["hit@20"] > 0
    if name in ("STAMP", "BPR"):
        assert len(calls) > len(chunked_batches)  # the row-chunk path ran
    else:
        assert len(set(chunks_seen)) > 5 and not calls  # the item-chunk path ran


def test_collector_hits_equal_recboles_positives_matrix():
    """``topk_hits`` against RecBole's own construction (a duplicated positive counts once)."""
    g = torch.Generator().manual_seed(1)
    scores = torch.randn(6, 40, generator=g)
    positive_u = torch.tensor([0, 0, 1, 3, 3, 3, 5, 5])
    positive_i = torch.tensor([4, 4, 7, 1, 2, 39, 0, 10])
    items = topk_items(scores, 10)
    pos = torch.zeros_like(scores, dtype=torch.int)
    pos[positive_u, positive_i] = 1
    expected = torch.cat([torch.gather(pos, 1, items), pos.sum(1, keepdim=True)], dim=1)
    got = full_sort.topk_hits(items, positive_u, positive_i)
    assert got.dtype == expected.dtype and torch.equal(got, expected)
