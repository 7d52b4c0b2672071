"""The requests of the commands on files and names: ``report``, ``convert``, ``data``, ``models``."""

from __future__ import annotations

import dataclasses
import os
from typing import Optional, Tuple

from recbole_ext.command.options import writable_folder
from recbole_ext.errors import UserError


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
        writable_folder("--out", self.out)


@dataclasses.dataclass(frozen=True)
class ConvertRequest:
    """``convert``: raw files to atomic files (:func:`recbole_ext.data.convert.convert`)."""

    format: str
    input: str
    name: str
    out: str = "datasets"
    force: bool = False

    def __post_init__(self) -> None:
        writable_folder("--out", self.out)


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
            writable_folder("--data_path", self.root)

    @property
    def root(self) -> str:
        """The data root a fetch writes into: ``data_path``, or ``datasets/``."""
        return self.data_path or "datasets"


@dataclasses.dataclass(frozen=True)
class ModelsRequest:
    """``models``: every model name, ours and RecBole's."""
