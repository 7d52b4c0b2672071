"""Where a configuration's values come from, and how each is read: the YAML files (the package's
own, the data set's on its search path, the shipped evaluation protocols), one YAML file read
into a dict, a command-line value read as Python, a data set's name checked.

:class:`recbole_ext.config.Config` loads them in RecBole's order; a file that cannot be read is
one :class:`~recbole_ext.errors.ConfigError` line.
"""

from __future__ import annotations

import ast
import os
from typing import List, Optional

import yaml

from recbole_ext._paths import OWN_DATASET_YAML_DIR, PROPERTIES_DIR, PROTOCOL_YAML_DIR
from recbole_ext.errors import ConfigError

#: our base for every sequential model (loaded after the model's own defaults)
SEQUENTIAL_BASE_YAML = os.path.join(PROPERTIES_DIR, "sequential.yaml")
#: keys of recbole_ext's trainer, for every model (loaded after RecBole's own defaults)
OVERALL_YAML = os.path.join(PROPERTIES_DIR, "overall.yaml")


def dataset_yaml_dirs() -> List[str]:
    """Folders searched for ``<dataset>.yaml``: ``$RECBOLE_EXT_YAML_DIR``, ``./yaml``, then the
    package's own ``properties/dataset/`` (installed with it)."""
    dirs = []
    env = os.environ.get("RECBOLE_EXT_YAML_DIR")
    if env:
        dirs.append(env)
    dirs.append(os.path.join(os.getcwd(), "yaml"))
    dirs.append(OWN_DATASET_YAML_DIR)
    seen, out = set(), []
    for d in dirs:
        real = os.path.realpath(d)
        if real not in seen:
            seen.add(real)
            out.append(d)
    return out


def find_dataset_yaml(dataset: str) -> Optional[str]:
    for d in dataset_yaml_dirs():
        path = os.path.join(d, f"{dataset}.yaml")
        if os.path.isfile(path):
            return path
    return None


def resolve_config_file(path: str) -> str:
    """``path`` itself when it is a file, else the shipped protocol of that name, else ``path``
    (which then fails to load with a one-line error)."""
    if os.path.isfile(path):
        return path
    shipped = os.path.join(PROTOCOL_YAML_DIR, os.path.basename(path))
    return shipped if os.path.isfile(shipped) else path


def protocol_settings(name: str) -> dict:
    """The settings of a shipped evaluation protocol (``protocol-rating.yaml``, ...) without its
    ``load_col`` (the columns of the data set it was written for)."""
    settings = dict(load_yaml_file(resolve_config_file(name), yaml.SafeLoader))
    settings.pop("load_col", None)
    return settings


def check_dataset_name(dataset) -> None:
    """A data set is named, not given as a path: ``--dataset=NAME`` with ``--data_path=FOLDER``."""
    text = str(dataset)
    if not isinstance(dataset, str) or not text or "/" in text or "\\" in text or text in (".", ".."):
        parent, name = os.path.split(os.path.normpath(text))
        hint = f": use --dataset={name} --data_path={parent or '.'}" if name and name not in (".", "..") else ""
        raise ConfigError(f"--dataset is a data set's name, not a path (got {text!r}){hint}")


def load_yaml_file(path: str, loader) -> dict:
    """Read one YAML file into a dict; a syntax error or a non-mapping is a ConfigError."""
    try:
        with open(path, "r", encoding="utf-8") as f:
            data = yaml.load(f.read(), Loader=loader)
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except IsADirectoryError:
        raise ConfigError(f"config file {path} is a folder: name a YAML file") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"config file {path} is not UTF-8 text (byte {e.start})") from None
    except PermissionError:
        raise ConfigError(f"config file {path} cannot be read (permission denied)") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ConfigError(f"invalid YAML in {path}{where}: {problem}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"invalid YAML in {path}: expected 'key: value' pairs, got {type(data).__name__}")
    return data


def convert_cli_value(text: str):
    """A command-line value as Python: a literal (``3``, ``1e-3``, ``[10, 20]``, ``None``),
    ``true``/``false`` in any case, a YAML flow list or map (``[Recall,NDCG]``), else the text.
    RecBole ``eval``s it instead, which runs code and ends ``--epochs=1/0`` in a traceback."""
    try:
        value = ast.literal_eval(text)
        if value is None or isinstance(value, (str, int, float, list, tuple, dict, bool)):
            return value
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        pass
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    if text.startswith(("[", "{")):
        try:
            return yaml.safe_load(text)
        except (yaml.YAMLError, RecursionError):
            pass
    return text
