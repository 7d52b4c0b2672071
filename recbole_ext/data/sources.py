"""The registry of public data sets: where each one's raw file is published, its checksum, its
terms and how it converts (``recbole_ext/properties/sources.yaml``, plus the user's own file of
the same shape named by the ``data_sources`` config key or ``$RECBOLE_EXT_SOURCES``)."""

from __future__ import annotations

import dataclasses
import os
import re
from typing import Dict, Optional

import yaml

from recbole_ext._paths import PROPERTIES_DIR
from recbole_ext.errors import ConfigError

SOURCES_YAML = os.path.join(PROPERTIES_DIR, "sources.yaml")
#: what a data set's name may be (it names a folder and its files)
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
ENV = "RECBOLE_EXT_SOURCES"


@dataclasses.dataclass
class Source:
    """One registry entry (see ``sources.yaml`` for the meaning of each field)."""

    name: str
    url: Optional[str]
    hash: Optional[str]
    format: Optional[str]
    terms: str = ""
    k_core: int = 5
    #: the products' metadata file, joined into the ``.item`` file (``amazon-reviews`` only)
    meta_url: Optional[str] = None
    meta_hash: Optional[str] = None

    @property
    def fetchable(self) -> bool:
        return bool(self.url and self.format)


def _read(path: str) -> Dict[str, dict]:
    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f) or {}
    except OSError as e:
        raise ConfigError(f"cannot read data-source file {path}: {e.strerror}") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"invalid YAML in data-source file {path}: {str(e).splitlines()[0]}") from None
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise ConfigError(f"data-source file {path}: expected 'name: {{url: ..., hash: ..., format: ...}}' entries")
    return data


def registry(user_file: Optional[str] = None) -> Dict[str, Source]:
    """Every known data set: ours, then the user's (``user_file``, else ``$RECBOLE_EXT_SOURCES``)."""
    entries = _read(SOURCES_YAML)
    extra = user_file or os.environ.get(ENV)
    if extra:
        entries.update(_read(extra))
    fields = {f.name for f in dataclasses.fields(Source)} - {"name"}
    out = {}
    for name, entry in entries.items():
        if not isinstance(name, str) or not NAME.match(name) or name.endswith("."):
            where = extra if extra and name not in _read(SOURCES_YAML) else SOURCES_YAML
            raise ConfigError(
                f"data source {name!r} in {where}: a data-set name is letters, digits, '.', '_', '-', no '/'"
            )
        unknown = set(entry) - fields
        if unknown:
            raise ConfigError(f"data source '{name}': unknown keys {sorted(unknown)} (known: {sorted(fields)})")
        out[name] = Source(name=name, **entry)
        _check_meta(out[name])
    return out


def _check_meta(source: Source) -> None:
    """A metadata file only where the format reads one, and a hash only with its file.

    Raises:
        ConfigError: ``meta_url`` with another format, or ``meta_hash`` without ``meta_url``.
    """
    if source.meta_url and source.format != "amazon-reviews":
        raise ConfigError(
            f"data source '{source.name}': meta_url is read by format amazon-reviews only, not {source.format}"
        )
    if source.meta_hash and not source.meta_url:
        raise ConfigError(f"data source '{source.name}': meta_hash without meta_url")
