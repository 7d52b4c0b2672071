"""What each command is asked to do: typed requests, checked once when they are made.

The command line (:mod:`recbole_ext.cli`) parses ``argv`` into one of these and hands it to the
command; a library caller makes one directly. Every check of a request is written here, in its
``__post_init__``, so a request that exists is valid: a mistake is a one-line
:class:`~recbole_ext.errors.UserError` before any work starts.
"""

from __future__ import annotations

import dataclasses
import os
from typing import List, Optional, Tuple

from recbole_ext.devices import check_device, check_device_indices
from recbole_ext.errors import UserError
from recbole_ext.fileio import folder_problem


def split_list(value: Optional[str]) -> List[str]:
    """``"a, b,c"`` -> ``["a", "b", "c"]`` (empty entries dropped)."""
    return [v.strip() for v in (value or "").split(",") if v.strip()]


def option_key(arg: str) -> Optional[str]:
    """The key of a ``--key=value`` string, or ``None`` for any other form."""
    return arg[2:].split("=", 1)[0] if arg.startswith("--") and "=" in arg else None


def parse_seeds(value: Optional[str]) -> Optional[Tuple[int, ...]]:
    """``"1,2,3"`` -> ``(1, 2, 3)``; ``None`` for no value."""
    if not value:
        return None
    try:
        return tuple(int(s) for s in split_list(value))
    except ValueError:
        raise UserError(f"--seeds takes integers separated by commas, got '{value}'") from None


def parse_devices(value: Optional[str]) -> Tuple[str, ...]:
    """``"0,1"`` -> ``("0", "1")``; each a device index (what ``CUDA_VISIBLE_DEVICES`` takes)."""
    devices = tuple(split_list(value))
    if any(not d.isdigit() for d in devices) or len(set(devices)) != len(devices):
        raise UserError(f"--devices takes distinct device indices separated by commas, got '{value}'")
    check_device_indices(value, devices)
    return devices


def _writable(option: str, folder: Optional[str]) -> None:
    """``folder`` (an output folder an option names) is a folder or can be made, and takes files."""
    problem = folder_problem(folder) if folder else None
    if problem:
        raise UserError(f"{option}: {problem}")


def _need(what: str, value, hint: str) -> None:
    if not value:
        raise UserError(f"no {what} given: {hint}")


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
        _need("model", self.models, "pass --model=NAME (see 'recbole-ext models')")
        _need("data set", self.dataset, "pass --dataset=NAME (ml-100k is bundled)")
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
        _writable("--results-dir", self.results_dir or "results")

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
        _writable("--results-dir", self.results_dir or "results")


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
        _need("paper", self.paper, "name one, e.g. 'reproduce glint-ru' (see 'recbole-ext reproduce --help')")
        _need("data set", self.dataset, "pass --dataset=NAME, one of the paper's data sets")
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
        _writable("--results-dir", self.results_dir or "results")

    @property
    def section(self) -> str:
        """The preset's data set whose settings and figures apply."""
        return self.paper_dataset or self.dataset


#: The keys ``evaluate`` may change; every other key is the checkpoint's.
EVAL_KEYS = frozenset(
    {
        "eval_args",
        "eval_neg_exclude",
        "eval_candidates",
        "metrics",
        "topk",
        "valid_metric",
        "eval_batch_size",
        "metric_decimal_place",
        "fast_sampled_eval",
        "data_path",
        "precision",
        "show_progress",
        "state",
    }
)


@dataclasses.dataclass(frozen=True)
class EvaluateRequest:
    """``evaluate``: a checkpoint's validation and test metrics, under its own evaluation
    settings or other ones (:mod:`recbole_ext.serving.evaluate`).

    Attributes:
        checkpoint: the checkpoint a run wrote.
        config_args: ``--key=value`` strings, evaluation keys only.
        trust_checkpoint: allow a legacy RecBole checkpoint (a pickle).
        device: where to evaluate (``None``: a GPU when one is visible).
    """

    checkpoint: Optional[str]
    config_args: Tuple[str, ...] = ()
    trust_checkpoint: bool = False
    device: Optional[str] = None

    def __post_init__(self) -> None:
        _need("checkpoint", self.checkpoint, "pass --checkpoint=PATH, a file a run wrote")
        if not os.path.isfile(self.checkpoint):
            raise UserError(f"--checkpoint {self.checkpoint} is not a file")
        for arg in self.config_args:
            key = option_key(arg)
            if key is None:
                raise UserError(f"evaluate takes its keys as --key=value, got '{arg}'")
            if key not in EVAL_KEYS:
                raise UserError(
                    f"evaluate changes evaluation keys only ({', '.join(sorted(EVAL_KEYS))}); got {arg}: "
                    "the model and data keys are the checkpoint's"
                )
        if self.device is not None:
            check_device(self.device)


@dataclasses.dataclass(frozen=True)
class RecommendRequest:
    """``recommend``: top-k items from a checkpoint, for one history or a file of them."""

    checkpoint: Optional[str]
    items: Optional[str] = None
    items_file: Optional[str] = None
    output: Optional[str] = None
    k: int = 10
    exclude_seen: bool = False
    trust_checkpoint: bool = False
    force: bool = False

    def __post_init__(self) -> None:
        if not self.checkpoint:
            raise UserError("recommend needs --checkpoint=PATH")
        if bool(self.items) == bool(self.items_file):
            raise UserError("recommend needs exactly one of --items=ID,ID,... or --items-file=PATH")
        if self.items_file and not self.output:
            raise UserError("--items-file needs --output=PATH")
        if self.items_file and not os.path.isfile(self.items_file):
            raise UserError(f"--items-file {self.items_file} is not a file")
        if self.output and os.path.isdir(self.output):
            raise UserError(f"--output {self.output} is a folder: name the TSV file to write")
        if self.output and os.path.exists(self.output) and not self.force:
            raise UserError(f"--output {self.output} exists; pass --force to overwrite it")
        if self.output:
            _writable("--output", os.path.dirname(os.path.abspath(self.output)))
        if self.k < 1:
            raise UserError(f"--k must be at least 1, got {self.k}")


@dataclasses.dataclass(frozen=True)
class ReportRequest:
    """``report``: the comparison table from existing log files."""

    logs: Tuple[str, ...]
    out: Optional[str] = None
    plot: bool = True
    force: bool = False

    def __post_init__(self) -> None:
        if self.out and os.path.exists(self.out) and not os.path.isdir(self.out):
            raise UserError(f"--out {self.out} is a file: name a folder for the tables")
        if self.out and os.path.isfile(os.path.join(self.out, "comparison.md")) and not self.force:
            raise UserError(f"--out {self.out} holds a comparison table; pass --force to overwrite it")
        _writable("--out", self.out)


@dataclasses.dataclass(frozen=True)
class ConvertRequest:
    """``convert``: raw files to atomic files (:func:`recbole_ext.data.convert.convert`)."""

    format: str
    input: str
    name: str
    out: str = "datasets"
    force: bool = False

    def __post_init__(self) -> None:
        _writable("--out", self.out)


@dataclasses.dataclass(frozen=True)
class DataRequest:
    """``data list | fetch NAME | stats NAME``."""

    action: str
    name: Optional[str] = None
    data_path: Optional[str] = None  # None: not given (datasets/ and the search path)
    data_sources: Optional[str] = None

    def __post_init__(self) -> None:
        if self.action != "list" and not self.name:
            raise UserError(f"'data {self.action}' needs a data-set name")
        if self.action == "fetch":
            _writable("--data_path", self.root)

    @property
    def root(self) -> str:
        """The data root a fetch writes into: ``data_path``, or ``datasets/``."""
        return self.data_path or "datasets"


@dataclasses.dataclass(frozen=True)
class ModelsRequest:
    """``models``: every model name, ours and RecBole's."""
