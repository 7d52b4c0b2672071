"""Name resolution: our classes first, RecBole's as fallback; which defaults each name gets."""

from __future__ import annotations

import os

import pytest
import yaml

from recbole_ext.config import Config
from recbole_ext.errors import UnknownModelError
from recbole_ext.registry import OWN_MODEL_YAML_DIR, get_model, get_trainer, own_model_names


@pytest.mark.parametrize("name", ["SASRec", "GRU4Rec", "BERT4Rec", "MultiVAE", "BPR", "Pop", "LightGCN"])
def test_recbole_names_resolve_to_recbole(name):
    import importlib

    cls = get_model(name)
    assert cls.__name__ == name
    # RecBole's class itself, or (for a model whose methods break on today's stack) our mended subclass of it
    recbole_cls = next(c for c in cls.__mro__ if c.__module__.startswith("recbole.model."))
    assert recbole_cls.__name__ == name
    assert getattr(importlib.import_module(recbole_cls.__module__), name) is recbole_cls


def test_own_names_resolve_to_ours_with_their_yaml_defaults(ml100k_slice):
    names = own_model_names()
    assert names, "recbole_ext ships no model YAML"
    for name in names:
        cls = get_model(name)
        assert cls.__module__.startswith("recbole_ext.model."), name
        assert cls.__name__ == name
        with open(os.path.join(OWN_MODEL_YAML_DIR, f"{name}.yaml")) as f:
            defaults = yaml.safe_load(f) or {}
        cfg = Config(name, "ml-slice", config_dict={"data_path": ml100k_slice})
        for key, value in defaults.items():
            if key in ("train_neg_sample_args",):
                continue
            assert cfg[key] == value, f"{name}.{key}: {cfg[key]!r} != {value!r}"


def test_case_insensitive_and_unknown_names():
    assert get_model("sasrec").__name__ == "SASRec"
    with pytest.raises(UnknownModelError) as e:
        get_model("SASRek")
    assert "SASRec" in str(e.value) and "'recbole-ext models' lists all" in str(e.value)


def test_trainer_resolution_wraps_recbole_trainers():
    from recbole.trainer import KGTrainer, Trainer
    from recbole.utils import ModelType

    from recbole_ext.trainer.trainer import CompatTrainerMixin

    t = get_trainer(ModelType.SEQUENTIAL, "SASRec")
    assert issubclass(t, CompatTrainerMixin) and issubclass(t, Trainer)
    k = get_trainer(ModelType.KNOWLEDGE, "CKE")
    assert issubclass(k, CompatTrainerMixin) and issubclass(k, KGTrainer)


def test_dataset_resolution_puts_compat_mixin_first(ml100k_slice):
    from recbole.data.dataset import SequentialDataset

    from recbole_ext.data.dataset import CompatDatasetMixin
    from recbole_ext.registry import get_dataset_class

    cfg = Config("SASRec", "ml-slice", config_dict={"data_path": ml100k_slice})
    cls = get_dataset_class(cfg)
    assert issubclass(cls, SequentialDataset) and cls.__mro__[1] is CompatDatasetMixin


def test_config_precedence(tmp_path, ml100k_slice, monkeypatch):
    """RecBole default < model YAML < sequential base < data-set YAML < files < dict < command line."""
    ydir = tmp_path / "yaml"
    ydir.mkdir()
    (ydir / "ml-slice.yaml").write_text("MAX_ITEM_LIST_LENGTH: 33\nlearning_rate: 0.005\neval_batch_size: 111\n")
    monkeypatch.setenv("RECBOLE_EXT_YAML_DIR", str(ydir))
    user = tmp_path / "user.yaml"
    user.write_text("learning_rate: 0.002\nhidden_size: 48\n")
    cfg = Config(
        "GRU4Rec",
        "ml-slice",
        [str(user)],
        {"data_path": ml100k_slice, "hidden_size": 40},
        cmd_args=["--eval_batch_size=222"],
    )
    assert cfg["train_neg_sample_args"]["distribution"] == "none"  # sequential base (RecBole default samples)
    assert cfg["MAX_ITEM_LIST_LENGTH"] == 33  # data-set YAML over RecBole's 50
    assert cfg["learning_rate"] == 0.002  # user file over data-set YAML
    assert cfg["hidden_size"] == 40  # dict over file
    assert cfg["eval_batch_size"] == 222  # command line over data-set YAML
    assert cfg["embedding_size"] == 64  # RecBole's GRU4Rec.yaml default untouched


def test_mended_recbole_classes_pickle_by_name_in_a_fresh_process():
    """A mended RecBole class (our mixin in front, composed in the registry) is pickled by
    reference, as RecBole's pickled Config holds its model class, and a fresh process that never
    called get_model finds it."""
    import pickle
    import subprocess
    import sys

    from recbole_ext.registry import get_model

    for name in ("SASRec", "GRU4Rec", "LightGCN"):
        cls = get_model(name)
        assert cls.__name__ == name and pickle.loads(pickle.dumps(cls)) is cls
    data = pickle.dumps(get_model("SASRec"))
    code = (
        "import pickle, sys; c = pickle.loads(sys.stdin.buffer.read()); "
        "print(c.__module__, 'recbole.model.sequential_recommender.sasrec' in [k.__module__ for k in c.__mro__])"
    )
    out = subprocess.run([sys.executable, "-c", code], input=data, capture_output=True, timeout=120)
    assert out.returncode == 0, out.stderr.decode()[-2000:]
    assert out.stdout.decode().split() == ["recbole_ext.registry", "True"]


def test_the_package_description_names_every_model_of_ours():
    """pyproject.toml's one-line description lists our models; a new model joins it (GLINT-RU
    is GLINTRU's paper spelling)."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with open(os.path.join(root, "pyproject.toml"), encoding="utf-8") as f:
        (line,) = [l for l in f if l.startswith("description = ")]
    named = {n.strip().replace("-", "") for n in line.split("(", 1)[1].split(")", 1)[0].split(",")}
    assert sorted(set(own_model_names()) - named) == []
