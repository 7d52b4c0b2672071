"""Fetch a registry data set (:mod:`recbole_ext.data.sources`) from its publisher, verify it,
convert it to atomic files, and say what was done.

Downloading, checksums and retries are pooch's (``pooch.create(...).fetch``): it writes to a
temporary file and moves it into ``<data root>/.downloads/`` only once the checksum passes.
The file is converted by :func:`recbole_ext.data.convert.convert` (the code of ``recbole-ext
convert``: unpacked and written in a temporary folder, moved to ``<data root>/<name>/`` when
whole), then ``<name>.meta.json`` records the source URL, checksums, converter version and
counts. :func:`find_or_fetch` is the rule a run follows: the data set on disk, else fetched
when it is in the registry and ``download`` is not ``never``. Any failure (network, HTTP
status, checksum, format, disk) is one :class:`~recbole_ext.errors.DataFetchError` line naming
the URL and how to place the file by hand; the data folder is left as it was.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import sys
from typing import Dict, Optional

from recbole_ext.data.convert import convert
from recbole_ext.data.download import download
from recbole_ext.data.locate import locate_dataset
from recbole_ext.data.sources import Source, registry
from recbole_ext.errors import DataFetchError, DatasetNotFoundError, UserError
from recbole_ext.fileio import atomic_write_text, folder_problem

#: bump when a converter's output changes (recorded in the metadata)
CONVERTER_VERSION = 1
DOWNLOADS = ".downloads"


def fetch_dataset(name: str, root: str, sources: Optional[str] = None, retries: int = 2, progress: bool = False) -> str:
    """Fetch, verify and convert the registry data set ``name`` into ``root/name``; returns that
    folder. Does nothing but return it when ``root/name/name.inter`` exists."""
    target = os.path.join(root, name)
    if os.path.isfile(os.path.join(target, f"{name}.inter")):
        return target
    source = registry(sources).get(name)
    if source is None or not source.fetchable:
        how = source.terms if source else f"'{name}' is not in the data-set registry ('recbole-ext data list')"
        raise DataFetchError(f"data set '{name}' cannot be fetched: {how}")
    problem = folder_problem(root)
    if problem:
        raise DataFetchError(f"data set '{name}' cannot be fetched: {problem}")
    made = [d for d in (root, os.path.join(root, DOWNLOADS)) if not os.path.isdir(d)]
    cached = os.path.join(root, DOWNLOADS, os.path.basename(source.url))
    had = os.path.isfile(cached)
    try:
        os.makedirs(root, exist_ok=True)
        raw_file = download(source.url, source.hash, os.path.join(root, DOWNLOADS), retries, progress)
        _write_meta(target, source, raw_file, _convert(source, raw_file, root))
    except BaseException:
        if not had and os.path.isfile(cached):
            os.unlink(cached)  # what this call fetched goes with it
        for d in reversed(made):  # leave the data folder as it was
            if os.path.isdir(d) and not os.listdir(d):
                os.rmdir(d)
        raise
    if not progress:  # one line a file where no progress bar shows
        size = os.path.getsize(raw_file) / 2**20
        print(f"recbole_ext: fetched {source.url} ({size:.1f} MB) into {target}", file=sys.stderr)
    return target


def _convert(source: Source, raw_file: str, root: str) -> Dict[str, int]:
    try:
        return convert(source.format, raw_file, source.name, root, k_core=source.k_core).counts
    except UserError as e:  # malformed or unknown format, unpacking: the download is not what it should be
        raise DataFetchError(f"{source.url}: cannot convert the downloaded file: {e}") from None
    except OSError as e:
        raise DataFetchError(f"cannot write the converted data set into {root}: {e.strerror or e}") from None


def file_sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _write_meta(out: str, source: Source, raw_file: str, counts: Dict[str, int]) -> None:
    meta = {
        "name": source.name,
        "url": source.url,
        "published_hash": source.hash,
        "sha256": file_sha256(raw_file),
        "format": source.format,
        "converter_version": CONVERTER_VERSION,
        "k_core": source.k_core if source.format == "amazon-reviews" else None,
        "counts": counts,
        "atomic_files_sha256": {
            f: file_sha256(os.path.join(out, f)) for f in sorted(os.listdir(out)) if not f.endswith(".meta.json")
        },
        "fetched_at": datetime.datetime.now().isoformat(timespec="seconds"),
        "terms": source.terms,
    }
    atomic_write_text(os.path.join(out, f"{source.name}.meta.json"), json.dumps(meta, indent=1))


def find_or_fetch(
    dataset: str,
    data_path: Optional[str],
    sources: Optional[str] = None,
    download: str = "auto",
    progress: bool = False,
    given: bool = False,
) -> str:
    """The folder of ``dataset``: on disk (:func:`recbole_ext.data.locate.locate_dataset`), else
    fetched from its publisher when it is in the registry and ``download`` is not ``never``
    (into ``data_path``, or ``datasets/`` when it is unset or RecBole's default ``dataset/``).

    With ``given`` (the user named ``data_path``), the data set is looked for there only, and
    fetched there when it is in the registry: a typo in the path never trains on another copy.

    Raises:
        DatasetNotFoundError: not on disk, and not fetchable (or ``download: never``).
        DataFetchError: the download, its check or its conversion failed.
    """
    if given and data_path and os.path.exists(data_path) and not os.path.isdir(data_path):
        raise DatasetNotFoundError(f"data_path {data_path} is a file: name the folder that holds {dataset}/")
    try:
        return locate_dataset(dataset, data_path, only_data_path=given)
    except DatasetNotFoundError as missing:
        source = registry(sources).get(dataset)
        if source is None:
            raise
        if not source.fetchable:
            raise DatasetNotFoundError(f"{missing} ({dataset}: {source.terms})") from None
        if str(download or "auto").lower() == "never":
            raise DatasetNotFoundError(
                f"{missing} (it fetches itself from {source.url}, but download is 'never': set "
                f"--download=auto or run 'recbole-ext data fetch {dataset}')"
            ) from None
        root = data_path if data_path and os.path.normpath(data_path) != "dataset" else "datasets"
        return fetch_dataset(dataset, root, sources, progress=progress)
