"""Find a data set's atomic files offline, or say clearly where they were looked for.

RecBole downloads a missing data set after asking on stdin, from links that no longer work.
recbole_ext looks in these places, in order, and uses the first folder that holds
``<dataset>.inter``:

1. ``<data_path>/<dataset>/`` with the ``data_path`` the user configured;
2. ``datasets/<dataset>/`` in the current folder (where ``recbole-ext data fetch`` puts it);
3. ``$RECBOLE_EXT_DATA/<dataset>/`` (a data root of the user's, e.g. shared by several projects);
4. RecBole's bundled example data (``recbole/dataset_example/<dataset>``, ml-100k only).

If none has it, :class:`~recbole_ext.errors.DatasetNotFoundError` lists every path tried, the
close names of the registry and the search path, and where to look next;
:func:`recbole_ext.data.fetch.find_or_fetch` then fetches a registry data set.
"""

from __future__ import annotations

import difflib
import os
from typing import List, Optional

from recbole_ext._paths import RECBOLE_DIR
from recbole_ext.data.sources import registry
from recbole_ext.errors import DatasetNotFoundError, UserError

#: a data root the user keeps data sets in (searched after ``data_path`` and ``datasets/``)
DATA_ENV = "RECBOLE_EXT_DATA"


def candidate_dirs(dataset: str, data_path: Optional[str], only_data_path: bool = False) -> List[str]:
    """The folders searched for ``<dataset>.inter``, in order (see the module docstring); only
    ``<data_path>/<dataset>`` with ``only_data_path`` (the user named the folder)."""
    if only_data_path and data_path:
        return [os.path.normpath(os.path.join(data_path, dataset))]
    roots = [data_path] if data_path else []
    roots.append(os.path.join(os.getcwd(), "datasets"))
    if os.environ.get(DATA_ENV):
        roots.append(os.environ[DATA_ENV])
    roots.append(os.path.join(RECBOLE_DIR, "dataset_example"))
    seen, dirs = set(), []
    for root in roots:
        d = os.path.normpath(os.path.join(root, dataset))
        if d not in seen:
            seen.add(d)
            dirs.append(d)
    return dirs


def locate_dataset(dataset: str, data_path: Optional[str], only_data_path: bool = False) -> str:
    """Return the folder holding ``<dataset>.inter`` (see the module docstring for the order)."""
    tried = candidate_dirs(dataset, data_path, only_data_path)
    for d in tried:
        if os.path.isfile(os.path.join(d, f"{dataset}.inter")):
            return d
    close = difflib.get_close_matches(dataset, known_names(data_path), n=3)
    hint = f" Did you mean: {', '.join(close)}?" if close else ""
    raise DatasetNotFoundError(
        f"data set '{dataset}' not found: no {dataset}.inter in {', '.join(map(short_path, tried))}.{hint} "
        "See 'recbole-ext data list' and datasets/README.md"
    )


def known_names(data_path: Optional[str]) -> List[str]:
    """The data sets a name may be meant as: the registry's and the folders of the search path."""
    try:
        names = set(registry(None))
    except UserError:  # a broken sources file is said where it is read
        names = set()
    for root in {os.path.dirname(d) for d in candidate_dirs("_", data_path)}:
        if os.path.isdir(root):
            names.update(n for n in os.listdir(root) if os.path.isfile(os.path.join(root, n, f"{n}.inter")))
    return sorted(names)


def short_path(path: str) -> str:
    """``path`` as a reader takes it in: ``<recbole>/...`` inside RecBole's package, relative to
    the current folder inside it, ``~/...`` under the home folder, else whole."""
    full = os.path.abspath(path)
    cwd, home = os.getcwd(), os.path.expanduser("~")
    if full.startswith(RECBOLE_DIR + os.sep):
        return "<recbole>" + full[len(RECBOLE_DIR) :]
    if full.startswith(cwd + os.sep):
        return os.path.relpath(full, cwd)
    if home not in ("", "/") and full.startswith(home + os.sep):
        return "~" + full[len(home) :]
    return full
