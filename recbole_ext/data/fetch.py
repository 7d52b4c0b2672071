"""Fetch a registry data set (:mod:`recbole_ext.data.sources`) from its publisher, verify it,
convert it to atomic files, and say what was done.

Downloading, checksums and retries are pooch's (``pooch.create(...).fetch``): it writes to a
temporary file and moves it into ``<data root>/.downloads/`` only once the checksum passes.
The file is converted by :func:`recbole_ext.data.convert.convert` (the code of ``recbole-ext
convert``: unpacked and written in a temporary folder, moved to ``<data root>/<name>/`` when
whole), then ``<name>.meta.json`` records the source URL, checksums, converter version and
counts. A source with ``meta_url`` (the Amazon sets: the products' metadata) has that file
downloaded and checked the same way and joined into ``<name>.item``; a data set this fetcher
converted before, without it, gets it from the next :func:`fetch_dataset` (``recbole-ext data
fetch NAME``; :func:`add_items`). :func:`find_or_fetch` is the rule a run follows: the data set
on disk, else fetched when it is in the registry and ``download`` is not ``never``. Any failure (network, HTTP
status, checksum, format, disk) is one :class:`~recbole_ext.errors.DataFetchError` line naming
the URL and how to place the file by hand; the data folder is left as it was.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import json
import os
import sys
from typing import Dict, Iterator, List, Optional

from recbole_ext.data.amazon_meta import ITEM_HEADER, Row, read_amazon_meta
from recbole_ext.data.convert import convert, write_table
from recbole_ext.data.download import download
from recbole_ext.data.locate import locate_dataset
from recbole_ext.data.sources import Source, registry
from recbole_ext.errors import DataFetchError, DatasetNotFoundError, UserError
from recbole_ext.fileio import atomic_write_text, folder_problem, missing_folders, remove_empty_folders

#: bump when a converter's output changes (recorded in the metadata)
CONVERTER_VERSION = 1
DOWNLOADS = ".downloads"


def fetch_dataset(name: str, root: str, sources: Optional[str] = None, retries: int = 2, progress: bool = False) -> str:
    """Fetch, verify and convert the registry data set ``name`` into ``root/name``; returns that
    folder. When ``root/name/name.inter`` exists, it is only returned, after adding the ``.item``
    file of a source with ``meta_url`` to a copy this fetcher made without it (:func:`add_items`)."""
    target = os.path.join(root, name)
    if os.path.isfile(os.path.join(target, f"{name}.inter")):
        add_items(name, root, sources, retries, progress)
        return target
    source = registry(sources).get(name)
    if source is None or not source.fetchable:
        how = source.terms if source else f"'{name}' is not in the data-set registry ('recbole-ext data list')"
        raise DataFetchError(f"data set '{name}' cannot be fetched: {how}")
    problem = folder_problem(root)
    if problem:
        raise DataFetchError(f"data set '{name}' cannot be fetched: {problem}")
    urls = [source.url] + ([source.meta_url] if source.meta_url else [])
    with _undone_on_failure(root, urls):
        raw_file = download(source.url, source.hash, os.path.join(root, DOWNLOADS), retries, progress)
        meta_file = None
        if source.meta_url:
            meta_file = download(source.meta_url, source.meta_hash, os.path.join(root, DOWNLOADS), retries, progress)
        _write_meta(target, source, raw_file, meta_file, _convert(source, raw_file, meta_file, root))
    if not progress:  # one line a file where no progress bar shows
        for url, path in zip(urls, (raw_file, meta_file)):
            size = os.path.getsize(path) / 2**20
            print(f"recbole_ext: fetched {url} ({size:.1f} MB) into {target}", file=sys.stderr)
    return target


@contextlib.contextmanager
def _undone_on_failure(root: str, urls: List[str]) -> Iterator[None]:
    """On any exception, remove the downloads of ``urls`` this call made and the folders it made
    (``root``, its ``.downloads``, those above ``root``) when they are empty: the data folder is
    left as it was."""
    made = missing_folders(os.path.join(root, DOWNLOADS))  # with every folder above root it makes
    cached = [os.path.join(root, DOWNLOADS, os.path.basename(u)) for u in urls]
    fresh = [c for c in cached if not os.path.isfile(c)]
    try:
        os.makedirs(root, exist_ok=True)
        yield
    except BaseException:
        for path in fresh:  # what this call fetched goes with it
            if os.path.isfile(path):
                os.unlink(path)
        remove_empty_folders(made)
        raise


def _convert(source: Source, raw_file: str, meta_file: Optional[str], root: str) -> Dict[str, int]:
    try:
        return convert(source.format, raw_file, source.name, root, k_core=source.k_core, meta=meta_file).counts
    except UserError as e:  # malformed or unknown format, unpacking: the download is not what it should be
        url = source.meta_url if meta_file and str(e).startswith(meta_file) else source.url
        raise DataFetchError(f"{url}: cannot convert the downloaded file: {e}") from None
    except OSError as e:
        raise DataFetchError(f"cannot write the converted data set into {root}: {e.strerror or e}") from None


def file_sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def atomic_files_sha256(out: str) -> Dict[str, str]:
    """The sha256 of every file of the data-set folder ``out`` but its metadata."""
    return {f: file_sha256(os.path.join(out, f)) for f in sorted(os.listdir(out)) if not f.endswith(".meta.json")}


def _meta_keys(source: Source, meta_file: Optional[str]) -> Dict[str, Optional[str]]:
    """What the metadata records of the products' file (nothing for a source without one)."""
    if not meta_file:
        return {}
    return {"meta_url": source.meta_url, "meta_published_hash": source.meta_hash, "meta_sha256": file_sha256(meta_file)}


def _write_meta(out: str, source: Source, raw_file: str, meta_file: Optional[str], counts: Dict[str, int]) -> None:
    meta = {
        "name": source.name,
        "url": source.url,
        "published_hash": source.hash,
        "sha256": file_sha256(raw_file),
        **_meta_keys(source, meta_file),
        "format": source.format,
        "converter_version": CONVERTER_VERSION,
        "k_core": source.k_core if source.format == "amazon-reviews" else None,
        "counts": counts,
        "atomic_files_sha256": atomic_files_sha256(out),
        "fetched_at": datetime.datetime.now().isoformat(timespec="seconds"),
        "terms": source.terms,
    }
    atomic_write_text(os.path.join(out, f"{source.name}.meta.json"), json.dumps(meta, indent=1))


def add_items(
    name: str, root: str, sources: Optional[str] = None, retries: int = 2, progress: bool = False
) -> Optional[str]:
    """Give the data set ``root/name``, converted by this fetcher before its source had a
    ``meta_url``, its ``.item`` file: the products' file is downloaded and joined to the
    ``.inter`` file on disk (left as it is, so splits and results do not move), and the metadata
    records it. Nothing is done where the ``.item`` file exists, the source has no ``meta_url``,
    or the folder's ``name.meta.json`` does not say it was fetched from the source's ``url`` (a
    copy placed by hand: its item ids need not be the publisher's).

    Returns:
        The ``.item`` file written, or ``None``.

    Raises:
        DataFetchError: the download, its check or the join failed (nothing is left of it).
    """
    target = os.path.join(root, name)
    item_file = os.path.join(target, f"{name}.item")
    meta_json = os.path.join(target, f"{name}.meta.json")
    if os.path.exists(item_file) or not os.path.isfile(meta_json):
        return None
    source = registry(sources).get(name)
    recorded = _recorded(meta_json)
    if source is None or not source.meta_url or recorded.get("url") != source.url:
        return None
    with _undone_on_failure(root, [source.meta_url]):
        meta_file = download(source.meta_url, source.meta_hash, os.path.join(root, DOWNLOADS), retries, progress)
        rows = _join_items(source, meta_file, os.path.join(target, f"{name}.inter"))
        try:
            written = write_table(item_file, ITEM_HEADER, rows)
            recorded["counts"] = dict(recorded.get("counts") or {}, items_with_features=written)
            recorded.update(_meta_keys(source, meta_file), atomic_files_sha256=atomic_files_sha256(target))
            atomic_write_text(meta_json, json.dumps(recorded, indent=1))
        except BaseException as e:
            if os.path.isfile(item_file):
                os.unlink(item_file)
            if isinstance(e, OSError):
                raise DataFetchError(f"cannot write {item_file}: {e.strerror or e}") from None
            raise
    if not progress:
        size = os.path.getsize(meta_file) / 2**20
        print(f"recbole_ext: fetched {source.meta_url} ({size:.1f} MB) into {target}", file=sys.stderr)
    return item_file


def _recorded(meta_json: str) -> dict:
    """The metadata of a fetched data set; empty when it does not read as a JSON object."""
    try:
        with open(meta_json, encoding="utf-8") as f:
            recorded = json.load(f)
    except (OSError, ValueError):
        return {}
    return recorded if isinstance(recorded, dict) else {}


def _join_items(source: Source, meta_file: str, inter: str) -> List[Row]:
    """The ``.item`` rows of the products of the ``.inter`` file ``inter``.

    Raises:
        DataFetchError: the ``.inter`` file has no ``item_id`` column, or the products' file is
            malformed.
    """
    with open(inter, encoding="utf-8") as f:
        header = [h.split(":")[0] for h in f.readline().rstrip("\r\n").split("\t")]
        if "item_id" not in header:
            raise DataFetchError(f"{inter}: no item_id column to join the products of {source.meta_url} to")
        col = header.index("item_id")
        rows = (line.rstrip("\r\n").split("\t") for line in f)
        items = list(dict.fromkeys(parts[col] for parts in rows if len(parts) > col and parts[col]))
    try:
        return read_amazon_meta(meta_file, items)
    except UserError as e:
        raise DataFetchError(f"{source.meta_url}: cannot convert the downloaded file: {e}") from None


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
    A ``data_path`` that does not exist is made for the fetch only inside a folder that does
    (a path whose folder is missing too is an error before any download).

    Raises:
        DatasetNotFoundError: not on disk, and not fetchable (or ``download: never``).
        DataFetchError: the download, its check or its conversion failed.
    """
    if given and data_path and os.path.exists(data_path) and not os.path.isdir(data_path):
        raise DatasetNotFoundError(f"data_path {data_path} is a file: name the folder that holds {dataset}/")
    parent = os.path.dirname(os.path.abspath(data_path or "."))
    if given and data_path and not os.path.exists(data_path) and not os.path.isdir(parent):
        raise DatasetNotFoundError(
            f"data_path {data_path} does not exist, nor does the folder above it: check the path, or make it"
        )
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
                f"{missing} (it is downloaded on first use from {source.url}, but download is 'never': set "
                f"--download=auto or run 'recbole-ext data fetch {dataset}')"
            ) from None
        root = data_path if data_path and os.path.normpath(data_path) != "dataset" else "datasets"
        return fetch_dataset(dataset, root, sources, progress=progress)
