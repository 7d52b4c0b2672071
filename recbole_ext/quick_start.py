"""``run_recbole_ext``: RecBole's ``run_recbole`` on recbole_ext's pipeline
(:class:`recbole_ext.pipeline.Run`), and RecBole's ``--nproc=N`` spawn form.

Builds the data set, trains with early stopping, evaluates the best checkpoint on the test split,
logs through RecBole's format (file + console, TensorBoard as RecBole's trainer does) and returns
the same dict as ``run_recbole`` plus a few extra keys (``model``, ``dataset``, ``log_file``,
``saved_model_file``, ``n_params``, ``timings``, ``rank``). Nothing here imports
``recbole.quick_start`` (which imports ray).
"""

from __future__ import annotations

from typing import Iterable, List, Optional

import torch.multiprocessing as mp

from recbole_ext.distributed import free_port
from recbole_ext.errors import UserError
from recbole_ext.pipeline import Run


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
    run = Run.resolve(model, dataset, config_file_list, config_dict, cmd_args)
    if int(run.config["nproc"] or 1) > 1 and not run.is_rank:  # RecBole's spawn form
        run.locate_data()  # a registry data set is fetched once, before the ranks start
        return spawn_ranks(
            int(run.config["nproc"]),
            int(run.config["port"]),
            dict(
                model=model,
                dataset=dataset,
                config_file_list=config_file_list,
                config_dict=config_dict,
                cmd_args=cmd_args,
                saved=saved,
                log_dir=log_dir,
                resume_file=resume_file,
                trust_checkpoint=trust_checkpoint,
            ),
        )
    return run.execute(saved, log_dir, resume_file, trust_checkpoint).as_dict()


def spawn_ranks(nproc: int, port: int, kwargs: dict) -> dict:
    """Run :func:`run_recbole_ext` as ``nproc`` data-parallel processes (RecBole's ``--nproc=N``
    form, rendezvous on ``localhost``); returns rank 0's result. A user error in the ranks is
    raised here as the same one-line error."""
    ranks = {
        "world_size": nproc,
        "nproc": nproc,
        "offset": 0,
        "ip": "localhost",
        "port": port if port != 29500 else free_port(),
    }
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
