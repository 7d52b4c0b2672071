"""The requests of the commands that train: ``train``, ``compare``, ``tune``, ``reproduce``."""

from __future__ import annotations

import dataclasses
import os
from typing import List, Optional, Tuple

from recbole_ext.command.options import need, writable_folder
from recbole_ext.errors import UserError


@dataclasses.dataclass(frozen=True)
class RunRequest:
    """What every command that trains shares: models, data set and configuration.

    Attributes:
        models: model names, ours or RecBole's (one for ``train``).
        dataset: the data set's name.
        config_files: YAML files for every model, later ones win.
        config_args: ``--key=value`` config options for every model (win over the files).
        saved: write checkpoints and test the best epoch (``--no-save``: test the last).
    """

    models: Tuple[str, ...]
    dataset: str
    config_files: Tuple[str, ...] = ()
    config_args: Tuple[str, ...] = ()
    saved: bool = True

    def __post_init__(self) -> None:
        need("model", self.models, "pass --model=NAME (see 'recbole-ext models')")
        need("data set", self.dataset, "pass --dataset=NAME (ml-100k is bundled)")
        seen = set()
        for model in self.models:
            if model.lower() in seen:
                raise UserError(f"model '{model}' is listed twice in --model")
            seen.add(model.lower())

    @property
    def files(self) -> Optional[List[str]]:
        """``config_files`` as the list RecBole takes (``None`` when there are none)."""
        return list(self.config_files) or None


@dataclasses.dataclass(frozen=True)
class TrainRequest(RunRequest):
    """``train``: one model, early stopping, the best epoch tested.

    Attributes:
        resume: a checkpoint to continue (updated in place).
        trust_checkpoint: allow ``resume`` to be a legacy (pickled) RecBole checkpoint.
    """

    resume: Optional[str] = None
    trust_checkpoint: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        if len(self.models) != 1:
            raise UserError(f"train takes one model, got {len(self.models)}: use compare for several")

    @property
    def model(self) -> str:
        return self.models[0]


@dataclasses.dataclass(frozen=True)
class CompareRequest(RunRequest):
    """``compare``: every model on the same splits, one table.

    Attributes:
        seeds: seeds to run (``None``: the configured ``seed``, one run each).
        results_dir: the results folder (``None``: ``results/<dataset>-<time>``).
        force: rerun models already in the results folder.
        plot: draw ``comparison.png``.
        jobs: runs of the grid at a time, each its own process (``None``: in this process).
        devices: device indices, one run per device at a time.
        model_configs: a folder of ``<Model>.yaml`` files, each read after the config files
            for its model (the tune command's ``best/``).
    """

    seeds: Optional[Tuple[int, ...]] = None
    results_dir: Optional[str] = None
    force: bool = False
    plot: bool = True
    jobs: Optional[int] = None
    devices: Tuple[str, ...] = ()
    model_configs: Optional[str] = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.seeds is not None and len(set(self.seeds)) != len(self.seeds):
            raise UserError(f"--seeds lists a seed twice: {','.join(map(str, self.seeds))}")
        if self.seeds and any(a.startswith("--seed=") for a in self.config_args):
            raise UserError("give either --seeds=... or --seed=..., not both")
        if self.jobs is not None and self.jobs < 1:
            raise UserError(f"--jobs must be at least 1, got {self.jobs}")
        if self.model_configs and not os.path.isdir(self.model_configs):
            raise UserError(f"--model-configs: {self.model_configs} is not a folder")
        writable_folder("--results-dir", self.results_dir or "results")

    @property
    def parallel(self) -> bool:
        """Whether the grid runs as separate processes (``--jobs`` or ``--devices``)."""
        return self.jobs is not None or bool(self.devices)


@dataclasses.dataclass(frozen=True)
class TuneRequest(RunRequest):
    """``tune``: the same Optuna budget for every model, then the comparison.

    Attributes:
        trials: trials per model.
        space: a search-space YAML (``None``: each model's packaged space).
        jobs: trials (and then comparison runs) at a time, each its own process.
        seeds, results_dir, plot: as :class:`CompareRequest`'s, for the comparison.
        compare: run the comparison with the best settings after tuning.
        storage: an Optuna RDB storage URL (``postgresql://...``, ``sqlite:///...``) that
            several machines share; ``None``: a journal file in the results folder.
    """

    trials: Optional[int] = None
    space: Optional[str] = None
    jobs: int = 1
    storage: Optional[str] = None
    seeds: Optional[Tuple[int, ...]] = None
    results_dir: Optional[str] = None
    compare: bool = True
    plot: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.trials is None:
            raise UserError("pass --trials=T: every model gets T trials")
        if self.trials < 1 or self.jobs < 1:
            raise UserError(f"--trials and --jobs must be at least 1, got {self.trials} and {self.jobs}")
        if self.seeds and any(a.startswith("--seed=") for a in self.config_args):
            raise UserError("give either --seeds=... or --seed=..., not both")
        writable_folder("--results-dir", self.results_dir or "results")


@dataclasses.dataclass(frozen=True)
class ReproduceRequest:
    """``reproduce PAPER``: a paper's models at its preset, on one split, and its tables.

    Attributes:
        paper: the preset's name (``recbole_ext/properties/presets/<paper>.yaml``).
        dataset: one of the preset's data sets.
        models: the rows to run (``()``: every model and variant of the preset).
        seeds: seeds to run (``None``: the preset's).
        budget: at most this many training batches per epoch and, unless ``--epochs`` is given,
            one epoch (``None``: the preset's training to early stopping).
        config_files, config_args: for every run, after the preset (they win).
        results_dir, force, plot, jobs, devices: as :class:`CompareRequest`'s.
        plan: resolve every row and write its settings (``plan.json``), run nothing.
        paper_dataset: the preset's data set whose settings and figures apply (``None``: the
            one named ``dataset``); for a copy of a paper's data set under another name.
    """

    paper: str
    dataset: str
    models: Tuple[str, ...] = ()
    seeds: Optional[Tuple[int, ...]] = None
    budget: Optional[int] = None
    config_files: Tuple[str, ...] = ()
    config_args: Tuple[str, ...] = ()
    results_dir: Optional[str] = None
    force: bool = False
    plot: bool = False
    jobs: Optional[int] = None
    devices: Tuple[str, ...] = ()
    plan: bool = False
    paper_dataset: Optional[str] = None

    def __post_init__(self) -> None:
        need("paper", self.paper, "name one, e.g. 'reproduce glint-ru' (see 'recbole-ext reproduce --help')")
        need("data set", self.dataset, "pass --dataset=NAME, one of the paper's data sets")
        if self.seeds is not None and len(set(self.seeds)) != len(self.seeds):
            raise UserError(f"--seeds lists a seed twice: {','.join(map(str, self.seeds))}")
        if any(a.startswith("--seed=") for a in self.config_args):
            raise UserError("reproduce takes --seeds=1,2,3, not --seed=...")
        if self.budget is not None and self.budget < 1:
            raise UserError(f"--budget must be at least 1 batch, got {self.budget}")
        if self.jobs is not None and self.jobs < 1:
            raise UserError(f"--jobs must be at least 1, got {self.jobs}")
        if self.paper_dataset is not None and not self.paper_dataset.strip():
            raise UserError("--paper-dataset needs the name of one of the preset's data sets, e.g. ml-1m")
        writable_folder("--results-dir", self.results_dir or "results")

    @property
    def section(self) -> str:
        """The preset's data set whose settings and figures apply."""
        return self.paper_dataset or self.dataset
