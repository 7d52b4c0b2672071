"""Shared fixtures: tiny data sets written to temporary folders, and a fast runner.

- ``ml100k_slice``: the first 60 users of the ml-100k copy inside the recbole wheel, as data set
  ``ml-slice`` (about 6,000 interactions).
- ``make_rule_dataset``: generated sequences with a learnable next-item rule
  (``next = perm[current]``) for behaviour tests with thresholds.
- ``run_tiny``: run a model through ``run_recbole_ext`` with one epoch and small batches, logs
  and checkpoints in the test's temporary folder.
- :func:`build`: config -> data -> loaders -> model (-> trainer) without training, through the
  pipeline's steps (:class:`recbole_ext.pipeline.Run`), for the tests that look inside.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Dict, Optional

# One intra-op thread for the whole suite and every process it starts (set before torch is
# imported, so subprocesses inherit it): the models here are tiny, the suite runs one worker per
# core (`-n auto`), and OpenMP threads beyond the cores spin and make every process slower. A test
# about threads sets its own value.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest  # noqa: E402
import torch  # noqa: E402
from torch.utils._python_dispatch import TorchDispatchMode  # noqa: E402

torch.set_num_threads(1)

import recbole  # noqa: E402

from synthetic import rule_sequences, write_inter  # noqa: E402,F401  (tests import them from here)

ML100K = os.path.join(os.path.dirname(recbole.__file__), "dataset_example", "ml-100k", "ml-100k.inter")


@pytest.fixture(scope="session", autouse=True)
def _start_outside_the_checkout(tmp_path_factory):
    """Every test starts in a scratch folder: what RecBole writes relative to the working directory
    (``log_tensorboard/``, ``saved/``) never lands in the checkout, and parallel test workers never
    share it."""
    cwd = os.getcwd()
    os.chdir(tmp_path_factory.mktemp("cwd"))
    yield
    os.chdir(cwd)


@pytest.fixture(scope="session")
def ml100k_slice(tmp_path_factory) -> str:
    """Data root holding ``ml-slice/ml-slice.inter``: ml-100k's first 60 users (real timestamps)."""
    root = str(tmp_path_factory.mktemp("data"))
    with open(ML100K) as f:
        header = f.readline().rstrip("\n").split("\t")
        lines = [line.rstrip("\n").split("\t") for line in f]
    users = sorted({r[0] for r in lines}, key=int)[:60]
    keep = set(users)
    rows = [r for r in lines if r[0] in keep]
    write_inter(root, "ml-slice", rows, header=header)
    return root


@pytest.fixture(scope="session")
def rule_dataset(tmp_path_factory) -> str:
    """Data root holding ``rule-seq/rule-seq.inter`` (see :func:`rule_sequences`)."""
    root = str(tmp_path_factory.mktemp("rule"))
    write_inter(root, "rule-seq", rule_sequences())
    return root


TINY = {
    "epochs": 1,
    "train_batch_size": 256,
    "eval_batch_size": 256,
    "show_progress": False,
    "state": "WARNING",
    "MAX_ITEM_LIST_LENGTH": 20,
    "hidden_size": 16,
    "embedding_size": 16,
    "stopping_step": 2,
    "load_col": {"inter": ["user_id", "item_id", "timestamp"]},
}


def run_in_folder(folder, model: str, dataset: str, **cfg) -> Dict:
    """One run from ``folder`` (its checkpoints and logs inside it), for module-scoped fixtures
    that cannot use ``monkeypatch``; the working directory is put back afterwards."""
    from recbole_ext.quick_start import run_recbole_ext

    cwd = os.getcwd()
    os.chdir(folder)
    try:
        cfg = dict(dict(state="WARNING", checkpoint_dir=os.path.join(str(folder), "saved")), **cfg)
        return run_recbole_ext(model, dataset, None, cfg, log_dir=os.path.join(str(folder), "log"))
    finally:
        os.chdir(cwd)


@pytest.fixture
def run_tiny(tmp_path, monkeypatch):
    """``run_tiny(model, dataset, data_path, **overrides) -> result dict`` in a temporary folder."""
    from recbole_ext.quick_start import run_recbole_ext

    monkeypatch.chdir(tmp_path)

    def _run(model: str, dataset: str, data_path: Optional[str] = None, config_file_list=None, **overrides) -> Dict:
        cfg = dict(TINY)
        cfg["checkpoint_dir"] = str(tmp_path / "saved")
        if data_path is not None:
            cfg["data_path"] = data_path
        cfg.update(overrides)
        return run_recbole_ext(model, dataset, config_file_list, cfg, log_dir=str(tmp_path / "log"))

    return _run


def assert_ranking_metrics(test: Dict[str, float], one_target: bool = True) -> None:
    """What top-10 ranking metrics must satisfy for any model. Always: every metric is at most
    hit (a user contributes to any of them only with a hit in its top 10). With one target per
    user (leave-one-out): hit = recall, precision = recall / 10, and MRR <= NDCG (1/r against
    1/log2(r + 1) at the target's rank r)."""
    assert 0 <= test["hit@10"] <= 1
    assert all(test[m] <= test["hit@10"] for m in ("mrr@10", "ndcg@10", "recall@10", "precision@10"))
    if one_target:
        assert test["hit@10"] == test["recall@10"]
        assert abs(test["precision@10"] - test["recall@10"] / 10) < 1e-3
        assert test["mrr@10"] <= test["ndcg@10"]


@dataclasses.dataclass
class Built:
    """What :func:`build` returns."""

    config: Any
    model: Any
    train: Any
    valid: Any
    test: Any
    trainer: Any = None


def build(model: str, dataset: str, data_path: str, trainer: bool = False, **keys) -> Built:
    """Config, data set, loaders and a freshly initialised model (and its trainer) for ``model``
    on ``dataset`` under ``data_path``: the pipeline's steps, seeded as a run seeds them."""
    from recbole_ext.pipeline import Run

    run = Run.resolve(model, dataset, config_dict=dict(keys, data_path=data_path))
    loaders = run.build_loaders(run.prepare_data())
    net = run.build_model(loaders.train_set)
    built = Built(run.config, net, loaders.train, loaders.valid, loaders.test)
    if trainer:
        built.trainer = run.build_trainer(net)
    return built


#: a sequential data set read as the sequential models' tests read it: leave-one-out by time,
#: full ranking
SEQ_DATA = {
    "load_col": {"inter": ["user_id", "item_id", "timestamp"]},
    "eval_args": {"split": {"LS": "valid_and_test"}, "order": "TO", "mode": "full", "group_by": "user"},
}


def slice_config_and_data(model: str, data_path: str):
    """``(config, dataset)`` of ``model`` on ``ml-slice`` under :data:`SEQ_DATA` (a module
    fixture's value: build models from it with :func:`model_on_slice`)."""
    from recbole_ext.pipeline import Run

    run = Run.resolve(model, "ml-slice", config_dict=dict(SEQ_DATA, data_path=data_path, state="WARNING"))
    return run.config, run.load_dataset()


def model_on_slice(slice_data, model: str, **keys):
    """A freshly initialised ``model`` (seed 0) on the data of :func:`slice_config_and_data`,
    with ``keys`` set in the config for this build only (the defaults are put back)."""
    from recbole.utils import init_seed

    from recbole_ext.registry import get_model

    config, dataset = slice_data
    saved = {k: config[k] for k in keys}
    for k, v in keys.items():
        config[k] = v
    init_seed(0, True)
    try:
        return get_model(model)(config, dataset)
    finally:
        for k, v in saved.items():
            config[k] = v


def scramble_after_last(seq: torch.Tensor, lengths: torch.Tensor, n_items: int, seed: int = 5) -> torch.Tensor:
    """``seq`` with every position after each row's last real item replaced by a random item."""
    g = torch.Generator().manual_seed(seed)
    out = seq.clone()
    for i, n in enumerate(lengths.tolist()):
        out[i, n:] = torch.randint(1, n_items, (seq.shape[1] - n,), generator=g)
    return out


def padded_batch(n_items: int, length: int, seed: int = 0):
    """``length`` right-padded rows (RecBole's layout) of random items, row ``i`` with ``i + 1``
    real items. Returns ``(item_seq [length, length], item_seq_len [length])``."""
    g = torch.Generator().manual_seed(seed)
    seq = torch.randint(1, n_items, (length, length), generator=g)
    lengths = torch.arange(1, length + 1)
    for i, n in enumerate(lengths.tolist()):
        seq[i, n:] = 0
    return seq, lengths


def assert_full_sort_equals_predict(model, batch, rows: int = 3, atol: float = 1e-5) -> None:
    """``full_sort_predict`` of the first ``rows`` rows of ``batch`` equals ``predict`` of each
    (row, item) pair, over every item (the scoring the shared base class writes once)."""
    batch = batch[torch.arange(rows)]
    n = model.n_items
    every = batch.repeat_interleave(n)
    every.update(type(batch)({model.ITEM_ID: torch.arange(n).repeat(rows)}))
    with torch.no_grad():
        full = model.full_sort_predict(batch)
        assert full.shape == (rows, n)
        assert torch.allclose(model.predict(every).view(rows, n), full, rtol=0, atol=atol)


class LargestOutput(TorchDispatchMode):
    """Records the largest number of elements of any tensor an operation returns."""

    def __init__(self):
        super().__init__()
        self.largest = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else [out]:
            if isinstance(t, torch.Tensor):
                self.largest = max(self.largest, t.numel())
        return out


@pytest.fixture
def empty(tmp_path, monkeypatch, ml100k_slice):
    """An empty working folder; the slice's data root beside it."""
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return work, ml100k_slice
