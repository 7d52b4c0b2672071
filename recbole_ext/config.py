"""``Config``: RecBole's configurator, taught about recbole_ext's models, YAML and today's numpy.

Loading order (later wins), as RecBole's precedence:

1. RecBole's defaults (``overall.yaml``, RecBole's model and data-set YAML, its quick-start YAML);
2. our per-model defaults ``recbole_ext/properties/model/<Model>.yaml``;
3. for sequential models, our sequential base ``recbole_ext/properties/sequential.yaml``;
4. the data set's YAML ``<dataset>.yaml`` when one exists: the user's own (``./yaml/`` or
   ``$RECBOLE_EXT_YAML_DIR``), else the one shipped in ``recbole_ext/properties/dataset/``
   (where files are found and how one is read: :mod:`recbole_ext.config_sources`);
5. the user's ``config_file_list``, then ``config_dict``, then command-line ``--key=value``. A
   file name that is no path to a file is looked up among the shipped evaluation protocols
   (``recbole_ext/properties/quick_start_config/``: ``protocol-pop100.yaml``, ...).

It also fixes RecBole 1.2.1's ``compatibility_settings`` for numpy 2, resolves model names
through :func:`recbole_ext.registry.get_model` (once: the class is ``config.model_class``),
checks every key's type before anything else (:mod:`recbole_ext.config_schema`), and turns the
errors RecBole's own checks of the settings raise into :class:`~recbole_ext.errors.ConfigError`
(:func:`recbole_checks`); any other error raised while a Config is built is a bug and stays a
traceback.

Building a ``Config`` reads files and checks types, nothing else: it does not look for the data
set, fetch it, or join a process group (RecBole's does the last). ``data_path`` stays the
user's until :meth:`recbole_ext.pipeline.Run.locate_data` resolves it, and ``device`` names the
device the run will use (:func:`recbole_ext.distributed.device_for`) until
:meth:`recbole_ext.pipeline.Run.attach_device` joins the group and makes it current.
"""

from __future__ import annotations

import contextlib
import difflib
import os
from typing import Iterable, Iterator, List, Optional

import torch.distributed as dist
from recbole.config import Config as RecBoleConfig
from recbole.utils import ModelType

from recbole_ext._paths import OWN_MODEL_YAML_DIR
from recbole_ext.compat.numpy import restore_numpy_aliases
from recbole_ext.config_schema import Schema, check_rules
from recbole_ext.config_sources import (
    OVERALL_YAML,
    SEQUENTIAL_BASE_YAML,
    check_dataset_name,
    convert_cli_value,
    find_dataset_yaml,
    load_yaml_file,
    resolve_config_file,
)
from recbole_ext.distributed import device_for, launch_settings, rank
from recbole_ext.errors import ConfigError, UserError
from recbole_ext.registry import get_model, own_model_names
from recbole_ext.trainer.fast_path import check_precision


@contextlib.contextmanager
def recbole_checks() -> Iterator[None]:
    """Around RecBole's own checks of the settings (``_set_default_parameters`` and the
    negative-sampling arguments): the ``ValueError``, ``KeyError``, ``TypeError``,
    ``NotImplementedError`` or ``RuntimeError`` one of them raises judges the user's settings,
    and becomes a one-line ConfigError. An error raised anywhere else while a Config is built is
    not the user's and stays what it is (a traceback)."""
    try:
        yield
    except UserError:
        raise
    except (ValueError, KeyError, TypeError, NotImplementedError, RuntimeError) as e:
        msg = e.args[0] if e.args else str(e)
        raise ConfigError(f"invalid configuration: {msg}") from None


class Config(RecBoleConfig):
    """RecBole's ``Config`` with recbole_ext's models, YAML defaults and compatibility fixes."""

    def __init__(
        self,
        model=None,
        dataset=None,
        config_file_list=None,
        config_dict=None,
        cmd_args: Optional[Iterable[str]] = None,
        lenient_keys: Iterable[str] = (),
    ):
        """Same arguments as RecBole's ``Config``, plus ``cmd_args``: ``--key=value`` strings,
        and ``lenient_keys``: command-line keys that may be unknown to this model (keys of
        another model of a comparison); they are warned about instead.

        Unlike RecBole, ``sys.argv`` is never read here: the command line passes its
        ``--key=value`` pairs explicitly, so a library call or a test is not affected by the
        arguments of the process that hosts it. A command-line key no default knows is an error
        (a typo there would change the run in silence); one in a file or ``config_dict`` a
        warning.
        """
        self._cmd_args = list(cmd_args or [])
        self._lenient_keys = set(lenient_keys)
        #: command-line keys this model's defaults do not know (only the lenient ones get here)
        self.unknown_cmd_keys: set = set()
        #: every key no default knows (files, ``config_dict``, the command line): it changes nothing
        self.unknown_keys: set = set()
        #: the warnings of those a file or ``config_dict`` set (a comparison says them before any run)
        self.file_key_warnings: list = []
        super().__init__(model, dataset, config_file_list, config_dict)
        self._warn_unknown_model_keys()

    def _init_parameters_category(self):
        """RecBole's key categories, as lists of this config's own: RecBole 1.2.1 stores its
        module-level lists here and extends the data-set one in place, so every ``Config`` made
        grew the list every later one starts from (a data set's keys then showed up as data-set
        keys of all later configs)."""
        super()._init_parameters_category()
        self.parameters = {category: list(keys) for category, keys in self.parameters.items()}

    # ------------------------------------------------------------- numpy 2
    def compatibility_settings(self):
        restore_numpy_aliases()

    # ------------------------------------------------------------- files
    def _load_config_files(self, file_list):
        """The files in order, a later file's key winning; ``eval_args`` merged field by field, as
        between layers (:meth:`_get_final_config_dict`): ``protocol-pop100.yaml protocol-gt.yaml``
        is the global temporal split with pop100 candidates."""
        config: dict = {}
        for path in file_list or []:
            data = load_yaml_file(resolve_config_file(path), self.yaml_loader)
            if isinstance(data.get("eval_args"), dict) and isinstance(config.get("eval_args"), dict):
                data = {**data, "eval_args": {**config["eval_args"], **data["eval_args"]}}
            config.update(data)
        return config

    def _load_cmd_line(self):
        cmd = {}
        for arg in self._cmd_args:
            if not arg.startswith("--") or "=" not in arg:
                raise ConfigError(f"cannot read option '{arg}': expected --key=value")
            key, value = arg[2:].split("=", 1)
            if key in cmd and value != cmd[key]:
                raise ConfigError(f"option --{key} given twice with different values")
            cmd[key] = convert_cli_value(value)
        return cmd

    def _get_model_and_dataset(self, model, dataset):
        if model is None:
            model = self.external_config_dict.get("model")
            if model is None:
                raise ConfigError("no model given: pass --model=NAME")
        if isinstance(model, str):
            final_model_class = get_model(model)
            final_model = final_model_class.__name__
        else:
            final_model_class, final_model = model, model.__name__
        if dataset is None:
            dataset = self.external_config_dict.get("dataset")
            if dataset is None:
                raise ConfigError("no data set given: pass --dataset=NAME")
        check_dataset_name(dataset)
        return final_model, final_model_class, dataset

    def _get_final_config_dict(self):
        """RecBole's merge (defaults, then files, then ``config_dict``, then the command line),
        with ``eval_args`` merged field by field: ``--eval_args="{'mode': 'full'}"`` changes the
        mode and keeps the protocol's split and order (RecBole replaces the whole dict, and fills
        the rest with its own defaults, which contradict a sequential protocol)."""
        final = super()._get_final_config_dict()
        layers = (self.internal_config_dict, self.file_config_dict, self.variable_config_dict, self.cmd_config_dict)
        merged: dict = {}
        for layer in layers:
            value = layer.get("eval_args")
            if isinstance(value, dict):
                merged.update(value)
            elif value is not None:
                merged = value  # not a dict: RecBole's own check says so
        if merged:
            final["eval_args"] = merged
        return final

    def _update_internal_config_dict(self, file):
        """RecBole's loading of one of its default files, remembering the file (its comments
        give the keys' types: :mod:`recbole_ext.config_schema`) and, for the model's own YAML,
        its keys."""
        self.default_files.append(file)
        data = super()._update_internal_config_dict(file)
        if os.path.basename(os.path.dirname(file)) == "model":
            self.model_keys += list(data or {})
        return data

    def _load_default_file(self, path: str) -> dict:
        self.default_files.append(path)
        data = load_yaml_file(path, self.yaml_loader)
        self.internal_config_dict.update(data)
        return data

    def _load_internal_config_dict(self, model, model_class, dataset):
        self.default_files: List[str] = []
        #: keys of the model's own defaults (RecBole's model YAML, then ours)
        self.model_keys: List[str] = []
        super()._load_internal_config_dict(model, model_class, dataset)
        self._load_default_file(OVERALL_YAML)
        own_yaml = os.path.join(OWN_MODEL_YAML_DIR, f"{model}.yaml")
        self.own_model_keys: List[str] = []
        if model in own_model_names() and os.path.isfile(own_yaml):
            self.own_model_keys = list(self._load_default_file(own_yaml))
            self.model_keys += self.own_model_keys
        if self.internal_config_dict.get("MODEL_TYPE") == ModelType.SEQUENTIAL:
            self._load_default_file(SEQUENTIAL_BASE_YAML)
        self.dataset_yaml = find_dataset_yaml(dataset)
        if self.dataset_yaml:
            data_cfg = self._load_default_file(self.dataset_yaml)
            self.parameters["Dataset"] += [k for k in data_cfg if k not in self.parameters["Dataset"]]

    def _set_default_parameters(self):
        check_precision(self.final_config_dict.get("precision"))
        cfg = self.final_config_dict
        #: the ``data_path`` the user set (``None``: RecBole's default), where the run's data
        #: search starts (:func:`recbole_ext.data.locate.locate_dataset`)
        self.requested_data_path: Optional[str] = cfg.get("data_path")
        #: whether the user named ``data_path`` (a file, ``config_dict`` or the command line):
        #: then the data set must be there (or be fetched there), with no fallback
        self.data_path_given: bool = self.external_config_dict.get("data_path") is not None
        Schema.from_files(self.default_files).check(cfg)
        check_rules(cfg, self.model_keys, cfg.get("MODEL_TYPE") == ModelType.SEQUENTIAL)
        model_rules = getattr(self.model_class, "check_config", None)  # a model's own cross-key rules
        if callable(model_rules):
            model_rules(cfg)
        with recbole_checks():
            super()._set_default_parameters()
        self._load_time_field_for_time_order()

    def _set_train_neg_sample_args(self):
        with recbole_checks():
            super()._set_train_neg_sample_args()

    def _set_eval_neg_sample_args(self, phase):
        with recbole_checks():
            super()._set_eval_neg_sample_args(phase)

    def _load_time_field_for_time_order(self):
        """RecBole's default ``load_col`` for a data set without its own YAML is
        ``{inter: [user_id, item_id]}``: a model evaluated in time order (``order: TO``, every
        sequential model) then crashes with "[timestamp] is not exist". When ``load_col`` lists
        the interaction columns without the time field, add it."""
        cfg = self.final_config_dict
        order = (cfg.get("eval_args") or {}).get("order")
        load_col = cfg.get("load_col")
        time_field = cfg.get("TIME_FIELD")
        if order != "TO" or not time_field or not isinstance(load_col, dict):
            return
        inter = load_col.get("inter")
        if isinstance(inter, list) and time_field not in inter:
            cfg["load_col"] = {**load_col, "inter": inter + [time_field]}

    # ------------------------------------------------------------- device
    def _init_device(self):
        """The device and the data-parallel keys, from the configuration and torchrun's
        environment alone (RecBole's sets ``CUDA_VISIBLE_DEVICES`` and joins the process
        group here). A rank is a process with ``local_rank`` (torchrun, RecBole's spawn keys,
        or a process group that exists); every rank but 0 is silenced."""
        cfg = self.final_config_dict
        cfg.update(launch_settings())
        if "local_rank" not in cfg and dist.is_initialized() and dist.get_world_size() > 1:
            cfg["local_rank"] = int(os.environ.get("LOCAL_RANK", rank()))
        gpu_id = cfg["gpu_id"]
        cfg["gpu_id"] = ",".join(map(str, gpu_id)) if isinstance(gpu_id, (tuple, list)) else str(gpu_id)
        cfg["device"] = device_for(cfg)
        if "local_rank" not in cfg:
            cfg.update(single_spec=True, local_rank=0)
            return
        cfg["single_spec"] = False
        if rank(cfg) != 0:
            cfg.update(state="error", show_progress=False, verbose=False)

    # ------------------------------------------------------------- checks
    def _warn_unknown_model_keys(self):
        """Warn once about each config key no default knows (RecBole's, the model's, the data
        set's, ours), for every model, with close matches: a typo such as ``--epoch=1`` would
        otherwise be ignored in silence."""
        known = set(self.internal_config_dict) | {p for params in self.parameters.values() for p in params}
        known |= {"model", "dataset", "config_files", "local_rank"}
        own = getattr(self, "own_model_keys", None) or []
        for key in self.external_config_dict:
            if key in known:
                continue
            self.unknown_keys.add(key)
            close = difflib.get_close_matches(key, own, n=3, cutoff=0.6) or difflib.get_close_matches(
                key, sorted(known), n=3, cutoff=0.75
            )
            hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
            msg = f"config key '{key}' is not a key of {self.model}, of its data set or of RecBole{hint}"
            if own and close and close[0] in own:
                msg += f" Known keys of {self.model}: {', '.join(own)}"
            if key in self.cmd_config_dict:
                if key not in self._lenient_keys:
                    raise ConfigError(f"--{key}: {msg}")
                self.unknown_cmd_keys.add(key)
            else:
                self.file_key_warnings.append(msg)
            # logged by the runner once its log file is open (quick_start, compare)
            self.unknown_key_warnings = getattr(self, "unknown_key_warnings", []) + [msg]
