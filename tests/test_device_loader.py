"""Device-resident training data (``train_data_on_device``): the same batches as RecBole's
loader, in the same order, for every epoch; used only where a batch is plain table rows."""

from __future__ import annotations

import pytest
import torch
from recbole.data.dataloader import TrainDataLoader
from recbole.utils import init_seed

from recbole_ext.trainer.device_loader import DeviceTrainDataLoader

from conftest import build as build_model

SMALL = {
    "state": "WARNING",
    "show_progress": False,
    "MAX_ITEM_LIST_LENGTH": 20,
    "train_batch_size": 64,
    "load_col": {"inter": ["user_id", "item_id", "timestamp"]},
}


def train_loader(model, data_root, **keys):
    return build_model(model, "ml-slice", data_root, **dict(SMALL, **keys)).train


def epochs(loader, n=2):
    out = []
    for epoch in range(n):
        init_seed(epoch, True)
        out.append(list(loader))
    return out


def test_device_batches_equal_recboles(ml100k_slice):
    ours = train_loader("GLINTRU", ml100k_slice, train_data_on_device=True)
    theirs = train_loader("GLINTRU", ml100k_slice, train_data_on_device=False)
    assert type(ours) is DeviceTrainDataLoader and type(theirs) is TrainDataLoader
    got, want = epochs(ours), epochs(theirs)
    assert len(got[0]) == len(want[0]) >= 3
    assert not torch.equal(got[0][0]["item_id"], got[1][0]["item_id"])  # shuffled anew each epoch
    for got_epoch, want_epoch in zip(got, want):
        for g, w in zip(got_epoch, want_epoch):
            assert set(g.interaction) == set(w.interaction)
            for field in w.interaction:
                assert torch.equal(g[field], w[field]), field


@pytest.mark.parametrize(
    "model,keys",
    [
        ("GLINTRU", {}),  # auto: CUDA only
        ("BERT4Rec", {"train_data_on_device": True}),  # a data transform (mask_itemseq)
        (
            "GLINTRU",
            {
                "train_data_on_device": True,
                "loss_type": "BPR",  # training negatives
                "train_neg_sample_args": {"distribution": "uniform", "sample_num": 1},
            },
        ),
    ],
)
def test_recboles_loader_where_it_does_not_apply(ml100k_slice, model, keys):
    assert type(train_loader(model, ml100k_slice, **keys)) is TrainDataLoader
