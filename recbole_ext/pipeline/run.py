"""The run pipeline: :class:`Run`, the one place a configuration becomes a data set, loaders, a
model, a trainer and a result.

Its steps, each a method with typed inputs and outputs:

==========================  ==========================================================
:meth:`Run.resolve`         the configuration (:class:`~recbole_ext.config.Config`: files
                            and types, nothing else)
:meth:`Run.attach_device`   join the process group (a data-parallel rank) and make the
                            device current: the one step that touches the device
:meth:`Run.locate_data`     the data set's folder, fetched from its publisher when it is a
                            registry data set not on disk: the one step that downloads
:meth:`Run.prepare_data`    the data set, built and split (:class:`Splits`)
:meth:`Run.build_loaders`   train, valid and test loaders over a split (:class:`Loaders`)
:meth:`Run.build_model`     the model, seeded, on its device
:meth:`Run.build_trainer`   the trainer of the model
:meth:`Run.fit`             the model and its trainer, fit with early stopping (:class:`Fitted`)
:meth:`Run.test`            the test of the best epoch (:class:`RunResult`)
:meth:`Run.train_and_test`  :meth:`Run.fit`, then :meth:`Run.test`
:meth:`Run.open_log`        the run's log file (unknown-key warnings, the config dump)
:meth:`Run.execute`         all of the above for one run, leaving no files on a user error
==========================  ==========================================================

``train`` runs :meth:`Run.execute`; ``compare`` shares one :class:`Splits` between the models
of a seed; ``tune`` fits without testing; serving rebuilds a model from a checkpoint with
:meth:`Run.from_saved_config` and :meth:`Run.restore_dataset`.
"""

from __future__ import annotations

import json
import os
import sys
from logging import getLogger
from typing import Any, Dict, Iterable, List, Optional, Union

import torch
from recbole.data.dataloader import NegSampleEvalDataLoader
from recbole.utils import init_seed, set_color
from recbole.utils.argument_list import dataset_arguments

from recbole_ext.config import Config
from recbole_ext.data.fetch import find_or_fetch
from recbole_ext.data.schema import restore_dataset
from recbole_ext.distributed import Group, agree, broadcast, init_group, is_distributed, rank, rank0_first, stalled
from recbole_ext.errors import ConfigError, RunFailed, UserError
from recbole_ext.fileio import folder_problem
from recbole_ext.logger import close_logger, init_logger, new_run_id
from recbole_ext.pipeline import restart
from recbole_ext.pipeline.fits import check_model_fits
from recbole_ext.pipeline.loaders import Loaders, Splits, check_split, create_dataset, make_loaders
from recbole_ext.pipeline.outcome import (
    Fitted,
    RunResult,
    count_parameters,
    environment,
    interrupted,
    plain_metrics,
    remove_empty,
)
from recbole_ext.registry import get_dataset_class, get_trainer
from recbole_ext.trainer.checkpoint import check_resume

#: keys of a checkpoint's saved config that the configurator derives itself
_DERIVED_KEYS = {
    "MODEL_TYPE",
    "MODEL_INPUT_TYPE",
    "eval_type",
    "device",
    "config_files",
    "local_rank",
    "single_spec",
    "world_size",
    "valid_neg_sample_args",
    "test_neg_sample_args",
}


class Run:
    """One run of one model on one data set; see the module docstring.

    Args:
        config: the run's configuration (:meth:`resolve` makes one).
    """

    def __init__(self, config: Config) -> None:
        self.config = config
        self._data_folder: Optional[str] = None
        self._resume: tuple = ()  # (path, Checkpoint) the run continues, read once
        self._model_checked = False
        #: the process group this run joined or created (:meth:`attach_device`), left by :meth:`execute`
        self.group: Optional[Group] = None

    # ------------------------------------------------------------ configuration
    @classmethod
    def resolve(
        cls,
        model: Union[str, type, None] = None,
        dataset: Optional[str] = None,
        config_files: Optional[List[str]] = None,
        config_dict: Optional[Dict[str, Any]] = None,
        cmd_args: Optional[Iterable[str]] = None,
        lenient_keys: Iterable[str] = (),
    ) -> "Run":
        """Step 1: the configuration (RecBole's precedence: files, then ``config_dict``, then
        ``--key=value`` strings); ``model`` is a name, or a model class (a reference
        implementation a benchmark measures, under its class's name). Reads files and checks
        types; a mistake is a UserError (an
        unknown command-line key too, unless it is one of ``lenient_keys``: see
        :func:`resolve_all`)."""
        return cls(Config(model, dataset, config_files, config_dict, cmd_args, lenient_keys))

    @classmethod
    def from_saved_config(cls, plain: Dict[str, Any], device: str = "cpu", cmd_args: Iterable[str] = ()) -> "Run":
        """The run a checkpoint's plain config describes, on ``device`` (serving, evaluation),
        with ``--key=value`` strings over it. The keys the configurator derives are left to it;
        ``data_path`` goes back to its data root."""
        cfg = {k: v for k, v in plain.items() if k not in _DERIVED_KEYS}
        neg = cfg.get("train_neg_sample_args")
        if isinstance(neg, dict) and neg.get("distribution") in (None, "none", "None"):
            cfg["train_neg_sample_args"] = None
        cfg["use_gpu"] = False
        if cfg.get("data_path"):  # the resolved path is the data set's own folder
            cfg["data_path"] = os.path.dirname(os.path.normpath(cfg["data_path"]))
        run = cls(Config(plain["model"], plain["dataset"], config_dict=cfg, cmd_args=list(cmd_args)))
        run.config["device"] = torch.device(device)
        return run

    @property
    def is_rank(self) -> bool:
        """Whether this process is one rank of a data-parallel run."""
        return self.config["single_spec"] is False

    # ------------------------------------------------------------ explicit side effects
    def attach_device(self) -> torch.device:
        """Join (or create) the process group on a data-parallel rank and make the run's device
        the current one; returns it."""
        cfg = self.config
        if self.is_rank:
            self.group = init_group(cfg.final_config_dict)
            cfg["device"] = self.group.device
        elif torch.device(cfg["device"]).type == "cuda":
            torch.cuda.set_device(cfg["device"])
        return cfg["device"]

    def locate_data(self) -> str:
        """The data set's folder (:func:`recbole_ext.data.fetch.find_or_fetch`: on disk, or
        fetched), set as ``data_path``. On a data-parallel rank, rank 0 looks (and fetches)
        first and the others after it, with rank 0's error if it failed."""
        if self._data_folder is None:
            cfg = self.config

            def find() -> str:
                return find_or_fetch(
                    cfg["dataset"],
                    self.config.requested_data_path,
                    cfg["data_sources"],
                    cfg["download"],
                    progress=sys.stderr.isatty(),
                    given=getattr(self.config, "data_path_given", False),
                )

            self._data_folder = rank0_first(find) if is_distributed(cfg) else find()
            cfg["data_path"] = self._data_folder
        return self._data_folder

    def check_outputs(self, log_dir: str, saved: bool = True) -> None:
        """Before any work: every folder the run writes into (log, checkpoints, TensorBoard) is a
        folder, or can be made, and takes files; a one-line ConfigError otherwise."""
        cfg = self.config
        folders = [("log folder", log_dir), ("tensorboard_dir", cfg["tensorboard_dir"] or "log_tensorboard")]
        if saved:
            folders.append(("checkpoint_dir", cfg["checkpoint_dir"]))
        for what, folder in folders:
            problem = folder_problem(folder)
            if problem:
                raise ConfigError(f"{what}: {problem}")

    # ------------------------------------------------------------ data
    def load_dataset(self, log: bool = True):
        """The data set, built (RecBole's class for the model, with our fixes), not split."""
        self.locate_data()
        init_seed(self.config["seed"], self.config["reproducibility"])
        dataset = create_dataset(self.config)
        if log:
            getLogger().info(dataset)
        return dataset

    def prepare_data(self) -> Splits:
        """The data set, built and split (RecBole's split of the configured ``eval_args``); a
        split that cannot be evaluated is one line before the data set's summary is logged."""
        dataset = self.load_dataset(log=False)
        parts = tuple(dataset.build())
        check_split(self.config, dataset, parts)
        self.check_model(dataset)
        getLogger().info(dataset)
        splits = Splits.of(dataset, parts)
        splits.log_leakage()
        return splits

    def split_key(self) -> str:
        """Runs with equal keys build the same :class:`Splits` and can share one: the same
        data-set class, data settings, ``eval_args`` and seed."""
        cfg, dataset_class = self.config, get_dataset_class(self.config)
        keys = sorted(set(dataset_arguments) | set(cfg.parameters.get("Dataset", [])))
        values = {k: cfg.final_config_dict.get(k) for k in keys}
        values.update(
            dataset=cfg["dataset"],
            data_path=cfg["data_path"],
            eval_args=cfg["eval_args"],
            seed=cfg["seed"],
            reproducibility=cfg["reproducibility"],
            dataset_class=f"{dataset_class.__module__}.{dataset_class.__qualname__}",
        )
        return json.dumps(values, sort_keys=True, default=str)

    def build_loaders(self, splits: Splits) -> Loaders:
        """This model's loaders over ``splits`` (which other models may share)."""
        return Loaders(*make_loaders(self.config, splits.dataset, splits.parts))

    def recbole_eval_loader(self, loader):
        """RecBole's own sampled-evaluation loader over the split and sampler of ``loader`` (one
        of ours): the path the fast one is checked and timed against."""
        return NegSampleEvalDataLoader(self.config, loader._dataset, loader._sampler, shuffle=False)

    def restore_dataset(self, schema: Dict[str, Any]):
        """The run's data-set class holding a checkpoint's schema and no interactions
        (:func:`recbole_ext.data.schema.restore_dataset`)."""
        return restore_dataset(get_dataset_class(self.config), self.config, schema)

    # ------------------------------------------------------------ model and trainer
    def check_model(self, dataset) -> None:
        """Once per run, before its weights exist: the model fits the device's memory and the
        checkpoint it continues (:func:`recbole_ext.pipeline.fits.check_model_fits`)."""
        if not self._model_checked:
            check_model_fits(self.config.model_class, self.config, dataset, *self._resume)
            self._model_checked, self._resume = True, ()  # the checkpoint read is not kept

    def build_model(self, train_set) -> torch.nn.Module:
        """The model (``config.model_class``, the class the configuration resolved) on
        ``train_set`` (:attr:`Loaders.train_set`, or a whole data set), seeded (each
        data-parallel rank its own dropout) and on the run's device."""
        cfg = self.config
        self.check_model(train_set)
        init_seed(cfg["seed"] + rank(), cfg["reproducibility"])
        net = cfg.model_class(cfg, train_set).to(cfg["device"])
        # the model's printout goes to the log file (the console with verbose); the count below to both
        getLogger().info(torch.nn.Module.__repr__(net), extra={"file_only": not cfg["verbose"]})
        getLogger().info(set_color("Trainable parameters", "blue") + f": {count_parameters(net)}")
        return net

    def build_trainer(self, model: torch.nn.Module):
        """The trainer for ``model`` (ours for the model, else RecBole's with our fixes)."""
        return get_trainer(self.config["MODEL_TYPE"], self.config["model"])(self.config, model)

    @property
    def _show_progress(self) -> bool:
        return bool(self.config["show_progress"]) and sys.stderr.isatty()

    def fit(
        self,
        loaders: Loaders,
        saved: bool = True,
        resume_file: Optional[str] = None,
        trust_checkpoint: bool = False,
    ) -> Fitted:
        """Build the model and its trainer and fit with early stopping on the validation split
        (the test split is not touched: tuning stops here).

        Args:
            loaders: from :meth:`build_loaders`.
            saved: write the checkpoint after every epoch (the best epoch's weights are the ones
                :meth:`test` evaluates; else the last epoch's).
            resume_file: a checkpoint to continue (it is updated in place).
            trust_checkpoint: allow ``resume_file`` to be a legacy RecBole checkpoint.
        """
        trainer = self.build_trainer(self.build_model(loaders.train_set))
        if resume_file:
            trainer.resume_checkpoint(resume_file, trust_checkpoint=trust_checkpoint)
        show = self._show_progress
        try:
            score, valid_result = trainer.fit(loaders.train, loaders.valid, saved=saved, show_progress=show)
        except KeyboardInterrupt as stop:  # SIGINT, or SIGTERM through the command line's handler
            raise interrupted(stop, trainer.saved_model_file, saved) from None
        except RunFailed as failed:  # the log keeps why; what finished stays
            getLogger().error(str(failed))
            raise
        trainer.tensorboard.close()
        logger = getLogger()
        logger.info("The running environment of this training is as follows:\n" + environment(self.config))
        logger.info(set_color("best valid ", "yellow") + f": {plain_metrics(valid_result)}")
        return Fitted(trainer, score, valid_result, saved)

    def test(self, fitted: Fitted, loaders: Loaders) -> RunResult:
        """Evaluate the fitted model on the test split (the best epoch's weights when they were
        saved) and gather the run's result."""
        cfg, trainer = self.config, fitted.trainer
        test_result = trainer.evaluate(loaders.test, load_best_model=fitted.saved, show_progress=self._show_progress)
        getLogger().info(set_color("test result", "yellow") + f": {plain_metrics(test_result)}")
        return RunResult(
            best_valid_score=fitted.best_valid_score,
            valid_score_bigger=cfg["valid_metric_bigger"],
            best_valid_result=fitted.best_valid_result,
            test_result=test_result,
            model=cfg["model"],
            dataset=cfg["dataset"],
            saved_model_file=trainer.saved_model_file if fitted.saved else None,
            n_params=count_parameters(trainer.model),
            timings=dict(trainer.timings),
            per_user={k: [round(float(x), 6) for x in v] for k, v in trainer.per_user_result().items()},
            rank=rank(cfg),
        )

    def train_and_test(
        self,
        loaders: Loaders,
        saved: bool = True,
        resume_file: Optional[str] = None,
        trust_checkpoint: bool = False,
    ) -> RunResult:
        """:meth:`fit`, then :meth:`test` (the arguments are :meth:`fit`'s)."""
        return self.test(self.fit(loaders, saved, resume_file, trust_checkpoint), loaders)

    # ------------------------------------------------------------ the whole run
    def open_log(self, log_dir: str, console: bool = True, run_id: Optional[str] = None) -> str:
        """Open the run's log file ``<log_dir>/<model>/<run id>.log`` (rank 0 only), then log
        the unknown-key warnings and the resolved config (on the console with ``verbose``)."""
        me = rank()
        extra = me if me != 0 and self.config["rank_log"] else None
        path = init_logger(self.config, log_dir=log_dir, console=console, run_id=run_id, main=me == 0, rank_log=extra)
        logger = getLogger()
        for msg in getattr(self.config, "unknown_key_warnings", []):
            logger.warning(msg)
        logger.info(self.config, extra={"file_only": not self.config["verbose"]})
        return path

    def _data_to_result(self, saved: bool, resume_file: Optional[str], trust_checkpoint: bool) -> RunResult:
        """Data, loaders, training and test; a data-parallel peer that stops answering (killed,
        stopped, its machine gone) ends this rank within ``dist_timeout_s`` in one line."""
        try:
            return self.train_and_test(self.build_loaders(self.prepare_data()), saved, resume_file, trust_checkpoint)
        except RuntimeError as e:
            why = stalled(e)
            if why is None:
                raise
            raise RunFailed(
                f"rank {rank()}: another rank stopped answering ({why}); the last finished epoch is in the checkpoint"
            ) from None

    def execute(
        self,
        saved: bool = True,
        log_dir: str = "./log",
        resume_file: Optional[str] = None,
        trust_checkpoint: bool = False,
    ) -> RunResult:
        """Every step for one run (one process, or one rank of a data-parallel run).

        A user error (data, config, an untrusted or foreign checkpoint) arises before the first
        checkpoint is written; it leaves no files behind: not the log, nor the folders made for
        it. Without ``saved``, the checkpoint folder RecBole's trainer makes is removed again.
        """
        cfg = self.config
        existed = os.path.isdir(cfg["checkpoint_dir"])
        try:
            self.attach_device()
            agree(lambda: self.check_outputs(log_dir, saved), "its output folders")
            self.locate_data()
            model_log_dir = os.path.join(log_dir, cfg["model"])
            new_dirs = [d for d in (model_log_dir, log_dir) if not os.path.isdir(d)] if rank() == 0 else []
            run_id = broadcast(new_run_id(cfg)) if is_distributed(cfg) else None  # one name for all ranks
            log_file = self.open_log(log_dir, run_id=run_id)
            try:
                resume_file = restart.restart_point(cfg, resume_file, saved)
                if resume_file:  # a wrong or unreadable checkpoint stops the run before the data set is built
                    world = int(cfg["world_size"]) if is_distributed(cfg) else 1
                    # rank 0 reads the file and sends it to the others: only its machine needs it
                    read = agree(
                        lambda: check_resume(resume_file, cfg, trust_checkpoint, world) if rank() == 0 else None
                    )
                    self._resume = () if is_distributed(cfg) else (resume_file, read)  # rank 0's file
                result = self._data_to_result(saved, resume_file, trust_checkpoint)
                restart.forget(cfg, saved)
            except UserError:
                close_logger()
                remove_empty([log_file], new_dirs)
                raise
            finally:
                if not saved and not existed:
                    remove_empty([], [cfg["checkpoint_dir"]])
        finally:
            if self.group is not None:
                self.group.leave()
        result.log_file = log_file
        return result
