"""``run_recbole_ext``: RecBole's ``run_recbole`` on recbole_ext's resolvers.

Builds the data set, trains with early stopping, evaluates the best checkpoint on the test split,
logs through RecBole's format (file + console, TensorBoard as RecBole's trainer does) and returns
the same dict as ``run_recbole`` plus a few extra keys (``model``, ``dataset``, ``log_file``,
``saved_model_file``, ``timings``). Nothing here imports ``recbole.quick_start`` (which imports
ray).
"""

from __future__ import annotations

import os
import sys
from logging import getLogger
from typing import Iterable, List, Optional

import torch
from recbole.utils import init_seed, set_color

from recbole_ext.config import Config
from recbole_ext.data.utils import create_dataset, data_preparation
from recbole_ext.errors import Interrupted, UserError
from recbole_ext.distributed import broadcast, is_distributed, rank, shutdown
from recbole_ext.logger import close_logger, init_logger, new_run_id
from recbole_ext.registry import get_model, get_trainer
from recbole_ext.trainer.checkpoint import check_resume


def count_parameters(model) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def build_data(config):
    """Build and split the data set for ``config``: ``(dataset, train_data, valid_data, test_data)``."""
    logger = getLogger()
    data = create_dataset(config)
    logger.info(data)
    train_data, valid_data, test_data = data_preparation(config, data)
    return data, train_data, valid_data, test_data


def train_and_test(
    config,
    train_data,
    valid_data,
    test_data,
    saved: bool = True,
    resume_file: Optional[str] = None,
    trust_checkpoint: bool = False,
):
    """Build the model and its trainer, train with early stopping, test the best checkpoint.

    Returns:
        ``(result, trainer)``: ``result`` as :func:`run_recbole_ext` documents (without
        ``log_file``), ``trainer`` the trainer used (its ``model``, ``timings``,
        ``saved_model_file``).
    """
    logger = getLogger()
    init_seed(config["seed"] + rank(), config["reproducibility"])  # each data-parallel rank its own dropout
    net = get_model(config["model"])(config, train_data._dataset).to(config["device"])
    logger.info(torch.nn.Module.__repr__(net))  # RecBole's str() adds the parameter count: logged once below
    n_params = count_parameters(net)
    logger.info(set_color("Trainable parameters", "blue") + f": {n_params}")

    trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, net)
    if resume_file:
        trainer.resume_checkpoint(resume_file, trust_checkpoint=trust_checkpoint)
    show_progress = bool(config["show_progress"]) and sys.stderr.isatty()
    try:
        best_valid_score, best_valid_result = trainer.fit(
            train_data, valid_data, saved=saved, show_progress=show_progress
        )
    except KeyboardInterrupt as stop:  # SIGINT, or SIGTERM through the command line's handler
        raise _interrupted(stop, trainer, saved) from None
    test_result = trainer.evaluate(test_data, load_best_model=saved, show_progress=show_progress)

    logger.info("The running environment of this training is as follows:\n" + environment(config))
    logger.info(set_color("best valid ", "yellow") + f": {plain_metrics(best_valid_result)}")
    logger.info(set_color("test result", "yellow") + f": {plain_metrics(test_result)}")
    result = {
        "best_valid_score": best_valid_score,
        "valid_score_bigger": config["valid_metric_bigger"],
        "best_valid_result": best_valid_result,
        "test_result": test_result,
        "model": config["model"],
        "dataset": config["dataset"],
        "saved_model_file": trainer.saved_model_file if saved else None,
        "n_params": n_params,
        "timings": dict(trainer.timings),
    }
    return result, trainer


def run_recbole_ext(
    model: Optional[str] = None,
    dataset: Optional[str] = None,
    config_file_list: Optional[List[str]] = None,
    config_dict: Optional[dict] = None,
    cmd_args: Optional[Iterable[str]] = None,
    saved: bool = True,
    log_dir: str = "./log",
    resume_file: Optional[str] = None,
    trust_checkpoint: bool = False,
) -> dict:
    """Train and test one model on one data set; see the module docstring.

    Args:
        model: model name (ours or RecBole's), or ``None`` to read it from the config.
        dataset: data-set name, or ``None`` to read it from the config.
        config_file_list: YAML files, later ones win.
        config_dict: parameters, winning over the files.
        cmd_args: ``--key=value`` strings, winning over everything.
        saved: write the best checkpoint and test it (RecBole's ``saved``).
        log_dir: folder for the log file.
        resume_file: a checkpoint of ours to continue training from (it is updated in place).
        trust_checkpoint: allow ``resume_file`` to be a legacy RecBole checkpoint, which is
            unpickled (this can run code: only for files you trust).

    Returns:
        ``best_valid_score``, ``valid_score_bigger``, ``best_valid_result``, ``test_result`` as
        ``run_recbole`` returns them, and ``model``, ``dataset``, ``log_file``,
        ``saved_model_file``, ``n_params``, ``timings``, and ``rank`` (0 in one process; a
        data-parallel run returns on every rank, rank 0's result being the one to report).

    With ``nproc > 1`` (RecBole's spawn form) it starts ``nproc`` data-parallel processes on this
    machine and returns rank 0's result; under ``torchrun`` each process is one rank.
    """
    config = Config(model, dataset, config_file_list, config_dict, cmd_args)
    if int(config["nproc"] or 1) > 1 and not is_distributed(config):  # RecBole's spawn form
        return spawn_ranks(int(config["nproc"]), int(config["port"]), dict(
            model=model, dataset=dataset, config_file_list=config_file_list, config_dict=config_dict,
            cmd_args=cmd_args, saved=saved, log_dir=log_dir, resume_file=resume_file,
            trust_checkpoint=trust_checkpoint))
    try:
        result = _run(config, saved, log_dir, resume_file, trust_checkpoint)
    finally:
        shutdown()
    result["rank"] = config["local_rank"] + int(config["offset"] or 0)
    return result


def _run(config, saved: bool, log_dir: str, resume_file: Optional[str], trust_checkpoint: bool) -> dict:
    """:func:`run_recbole_ext` for a built ``config`` (one process, or one data-parallel rank)."""
    checkpoint_dir_existed = os.path.isdir(config["checkpoint_dir"])
    init_seed(config["seed"], config["reproducibility"])
    model_log_dir = os.path.join(log_dir, config["model"])
    new_dirs = [d for d in (model_log_dir, log_dir) if not os.path.isdir(d)] if rank() == 0 else []
    run_id = broadcast(new_run_id(config)) if is_distributed(config) else None  # one name for all ranks
    log_file = init_logger(config, log_dir=log_dir, run_id=run_id, main=rank() == 0)
    logger = getLogger()
    try:
        for msg in getattr(config, "unknown_key_warnings", []):
            logger.warning(msg)
        logger.info(config, extra={"file_only": not config["verbose"]})  # the dump: console only with --verbose
        if resume_file:  # a wrong or unreadable checkpoint stops the run before the data set is built
            check_resume(resume_file, config, trust_checkpoint)
        _, train_data, valid_data, test_data = build_data(config)
        result, _ = train_and_test(
            config, train_data, valid_data, test_data, saved, resume_file, trust_checkpoint
        )
    except UserError:
        # a user error leaves nothing half-written: the user errors (data, config, untrusted
        # checkpoint) all arise before the first checkpoint is written, so only the log remains
        close_logger()
        _remove_empty([log_file], new_dirs)
        raise
    finally:
        # RecBole's trainer makes the checkpoint folder up front: --no-save leaves none behind
        if not saved and not checkpoint_dir_existed:
            _remove_empty([], [config["checkpoint_dir"]])
    result["log_file"] = log_file
    return result


def spawn_ranks(nproc: int, port: int, kwargs: dict) -> dict:
    """Run :func:`run_recbole_ext` as ``nproc`` data-parallel processes (RecBole's ``--nproc=N``
    form, rendezvous on ``localhost``); returns rank 0's result. A user error in the ranks is
    raised here as the same one-line error."""
    import torch.multiprocessing as mp

    from recbole_ext.distributed import free_port

    ranks = {"world_size": nproc, "nproc": nproc, "offset": 0, "ip": "localhost",
             "port": port if port != 29500 else free_port()}
    kwargs = dict(kwargs, config_dict={**(kwargs.get("config_dict") or {}), **ranks})
    queue = mp.get_context("spawn").SimpleQueue()
    mp.start_processes(_rank_main, args=(queue, kwargs), nprocs=nproc, start_method="spawn")
    status, value = queue.get()
    if status == "error":
        raise value
    return value


def _rank_main(local_rank: int, queue, kwargs: dict) -> None:
    kwargs = dict(kwargs, config_dict={**kwargs["config_dict"], "local_rank": local_rank})
    try:
        result = run_recbole_ext(**kwargs)
    except UserError as e:
        if local_rank == 0:
            queue.put(("error", e))
        return
    if local_rank == 0:
        queue.put(("ok", result))


def plain_metrics(result) -> dict:
    """Metrics as plain floats (RecBole's are numpy scalars, printed ``np.float64(...)``)."""
    return {k: float(v) for k, v in (result or {}).items()}


def environment(config) -> str:
    """The device the run used and the process's memory (RecBole's table waits a second to
    sample the CPU load and shows a GPU line on machines without one)."""
    import psutil

    device = torch.device(config["device"])
    if device.type == "cuda":
        used = f"{torch.cuda.max_memory_allocated(device) / 2**30:.2f} G peak allocated"
        where = f"{device} ({torch.cuda.get_device_name(device)}), {used}"
    else:
        where = f"cpu ({torch.get_num_threads()} torch threads)"
    rss, total = psutil.Process().memory_info().rss / 2**30, psutil.virtual_memory().total / 2**30
    return f"device: {where}; process memory: {rss:.2f} G of {total:.2f} G"


def _interrupted(stop: KeyboardInterrupt, trainer, saved: bool) -> Interrupted:
    """The interrupt, with the last finished epoch's checkpoint (written atomically after every
    epoch, so it is whole) attached and logged."""
    if not isinstance(stop, Interrupted):
        stop = Interrupted("SIGINT", 130)
    path = trainer.saved_model_file
    stop.checkpoint = path if saved and os.path.isfile(path) else None
    where = f"the last finished epoch's checkpoint is {path}" if stop.checkpoint else "no epoch had finished"
    getLogger().warning(f"Run interrupted by {stop.signal_name}; {where}")
    return stop


def _remove_empty(files: List[str], folders: List[str]) -> None:
    """Delete ``files``, then each of ``folders`` that is left empty."""
    for path in files:
        if os.path.exists(path):
            os.unlink(path)
    for folder in folders:
        if os.path.isdir(folder) and not os.listdir(folder):
            os.rmdir(folder)
