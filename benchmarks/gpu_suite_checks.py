"""GPU suite, part (a): correctness on the device.

- every model of ours and SASRec, GRU4Rec, BERT4Rec: one short epoch through ``run_recbole_ext``
  (training, validation, checkpoint, test of the best checkpoint);
- checkpoint -> resume -> recommend: a 2-epoch run resumed to 3 epochs against an uninterrupted
  3-epoch run, then top-10 recommendations from the checkpoint on the device;
- fast sampled evaluation (pop100) against RecBole's own loader and per-candidate ``predict``;
- the mLSTM recurrences that run on the device against the step-by-step reference of the tests
  (outputs and gradients, float64).
"""

from __future__ import annotations

import math
import os
import time
from typing import Dict, List, Tuple

import torch

from gpu_suite_common import suite_run

SMOKE_MODELS = ["GLINTRU", "mLSTM", "LSTM4Rec", "SVAE", "MultVAE", "SASRec", "GRU4Rec", "BERT4Rec"]
MODEL_KEYS: Dict[str, Dict] = {
    "SASRec": {"n_layers": 2, "n_heads": 2},
    "BERT4Rec": {"n_layers": 2, "n_heads": 2},
    "GLINTRU": {"n_heads": 4},
}


def run_one(model: str, data: Dict, workdir: str, **keys) -> Dict:
    """``run_recbole_ext`` of ``model`` on ``data`` (``dataset``, ``data_path``, ``keys``)."""
    from recbole_ext.quick_start import run_recbole_ext

    cfg = {"state": "ERROR", "show_progress": False, "checkpoint_dir": os.path.join(workdir, "saved")}
    if data.get("data_path"):
        cfg["data_path"] = data["data_path"]
    cfg.update(data.get("keys", {}))
    cfg.update(MODEL_KEYS.get(model, {}))
    cfg.update(keys)
    resume = cfg.pop("resume_file", None)
    return run_recbole_ext(
        model, data["dataset"], config_dict=cfg, log_dir=os.path.join(workdir, "log"), resume_file=resume
    )


def fmt(result: Dict) -> str:
    return ", ".join(f"{k} {float(v):.4f}" for k, v in result.items())


def check_models(data: Dict, workdir: str, models: List[str]) -> List[Tuple[str, bool, str, Dict]]:
    """One epoch of each model; a result counts as OK when every test metric is finite."""
    rows = []
    for model in models:
        res = run_one(model, data, workdir, epochs=1)
        test = {k: float(v) for k, v in res["test_result"].items()}
        ok = all(math.isfinite(v) for v in test.values())
        epoch_s = res["timings"]["train_epoch_s"][0]
        rows.append((model, ok, f"epoch {epoch_s:.2f} s; test {fmt(test)}", {"epoch_s": epoch_s, **test}))
    return rows


def check_resume(data: Dict, workdir: str) -> Tuple[bool, str, Dict]:
    """2 epochs, resumed to 3, against 3 uninterrupted; then recommendations on the device."""
    from recbole_ext.serving import Recommender

    straight = run_one("GLINTRU", data, os.path.join(workdir, "straight"), epochs=3)
    first = run_one("GLINTRU", data, os.path.join(workdir, "resumed"), epochs=2)
    resumed = run_one(
        "GLINTRU", data, os.path.join(workdir, "resumed"), epochs=3, resume_file=first["saved_model_file"]
    )
    same = dict(straight["test_result"]) == dict(resumed["test_result"])
    device = "cuda" if torch.cuda.is_available() else "cpu"
    rec = Recommender(resumed["saved_model_file"], device=device)
    history = rec.item_tokens[1:6]
    top = rec.recommend(history, k=10)
    ok = len(top) == 10 and all(math.isfinite(score) for _, score in top)
    detail = (
        f"resumed == uninterrupted test metrics: {same} (resumed {fmt(resumed['test_result'])}; "
        f"uninterrupted {fmt(straight['test_result'])}); recommend on {device}: "
        f"{[item for item, _ in top[:5]]}..."
    )
    return ok, detail, {"resume_equal": same, "recommend_device": device}


def check_data_parallel(data: Dict, workdir: str) -> Tuple[bool, str, Dict]:
    """One epoch as rank 0 of a one-rank data-parallel group (NCCL on a GPU, gloo on a CPU: the
    DDP wrapper, the gathers and the broadcast checkpoint load on this device), against a
    one-process evaluation of its checkpoint (valid full ranking, test pop100 shared)."""
    from recbole_ext.distributed import free_port

    modes = {
        "split": {"LS": "valid_and_test"},
        "order": "TO",
        "mode": {"valid": "full", "test": "pop100"},
        "group_by": "user",
    }
    keys = {"eval_args": modes, "metric_decimal_place": 8}
    res = run_one(
        "SASRec",
        data,
        os.path.join(workdir, "ddp"),
        epochs=1,
        local_rank=0,
        world_size=1,
        nproc=1,
        ip="localhost",
        port=free_port(),
        **keys,
    )
    run = suite_run(
        "SASRec", data["dataset"], data.get("data_path"), {**data.get("keys", {}), **MODEL_KEYS["SASRec"], **keys}
    )
    run.attach_device()
    loaders = run.build_loaders(run.prepare_data())
    valid, test = loaders.valid, loaders.test
    trainer = run.build_trainer(run.build_model(valid._dataset))
    got = {
        name: {k: float(v) for k, v in trainer.evaluate(loader, model_file=res["saved_model_file"]).items()}
        for name, loader in (("valid", valid), ("test", test))
    }
    want = {
        "valid": {k: float(v) for k, v in res["best_valid_result"].items()},
        "test": {k: float(v) for k, v in res["test_result"].items()},
    }
    ok = got == want
    return ok, f"data-parallel == one-process evaluation: {ok}; test {fmt(want['test'])}", {"equal": ok}


def check_sampled_eval(data: Dict, models=("GLINTRU", "SASRec")) -> List[Tuple[str, bool, str, Dict]]:
    """pop100 metrics through our loader and encode-once scoring == RecBole's loader and path."""
    from recbole.utils import init_seed

    rows = []
    eval_args = {"split": {"LS": "valid_and_test"}, "order": "TO", "mode": "pop100", "group_by": "user"}
    for model in models:
        keys = {
            **data.get("keys", {}),
            **MODEL_KEYS.get(model, {}),
            "eval_args": eval_args,
            "metrics": ["Recall", "MRR", "NDCG"],
            "topk": [10],
            "eval_batch_size": 256,
            "eval_candidates": "per_epoch",
        }
        run = suite_run(model, data["dataset"], data.get("data_path"), keys)
        run.attach_device()
        config = run.config
        valid = run.build_loaders(run.prepare_data()).valid
        trainer = run.build_trainer(run.build_model(valid._dataset))
        config["eval_batch_size"] = 256 * 101
        theirs = run.recbole_eval_loader(valid)
        got = {}
        for name, loader, fast in (("ours", valid, True), ("recbole", theirs, False)):
            trainer.fast_sampled_eval = fast
            init_seed(7, True)
            start = time.perf_counter()
            got[name] = {k: float(v) for k, v in trainer.evaluate(loader, load_best_model=False).items()}
            got[name + "_s"] = time.perf_counter() - start
        equal = got["ours"] == got["recbole"]
        gap = max(abs(got["ours"][k] - got["recbole"][k]) for k in got["ours"])
        detail = (
            f"equal: {equal} (largest gap {gap:.2e}); ours {got['ours_s']:.2f} s, RecBole's "
            f"{got['recbole_s']:.2f} s; {fmt(got['ours'])}"
        )
        rows.append((model, equal, detail, got))
    return rows


def check_mlstm(device: str) -> List[Tuple[str, bool, str, Dict]]:
    """Each mLSTM recurrence usable on ``device`` against the tests' step-by-step reference."""
    from recbole_ext.model.mlstm import MLSTM_IMPLS, MultiplicativeLSTM

    from mlstm_reference import naive_mlstm  # the tests' reference, written from the equations

    # the C++ loop is CPU-only; the Triton kernels need CUDA (hidden 16: a size they take)
    impls = [i for i in MLSTM_IMPLS if i != ("native" if device == "cuda" else "triton")]
    rows = []
    for impl in impls:
        torch.manual_seed(0)
        b, n, d, hid, layers = 21, 9, 6, 16, 2
        net = MultiplicativeLSTM(d, hid, num_layers=layers, impl=impl).double().to(device)
        x = torch.randn(b, n, d, dtype=torch.double, device=device, requires_grad=True)
        leaves = [x, *net.parameters()]
        h, c = net(x)
        (h.sum() + c.tanh().sum()).backward()
        fast = [h.detach(), c.detach()] + [t.grad.clone() for t in leaves]
        for t in leaves:
            t.grad = None
        h_ref, c_ref = naive_mlstm(x, list(net.layers))
        (h_ref.sum() + c_ref.tanh().sum()).backward()
        ref = [h_ref.detach(), c_ref.detach()] + [t.grad.clone() for t in leaves]
        gap = max(float((a - r).abs().max()) for a, r in zip(fast, ref))
        ok = all(torch.allclose(a, r, rtol=1e-9, atol=1e-10) for a, r in zip(fast, ref))
        ran = net.layers[0].last_impl
        rows.append(
            (
                impl,
                ok,
                f"ran {ran}: outputs and {len(leaves)} gradients, largest gap {gap:.1e}",
                {"gap": gap, "ran": ran},
            )
        )
    return rows
