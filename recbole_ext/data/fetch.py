"""Fetch a registry data set (:mod:`recbole_ext.data.sources`) from its publisher, verify it,
convert it to atomic files, and say what was done.

Downloading, checksums and retries are pooch's (``pooch.create(...).fetch``): it writes to a
temporary file and moves it into ``<data root>/.downloads/`` only once the checksum passes.
Archives are unpacked and converted in a temporary folder beside the target, which is renamed to
``<data root>/<name>/`` at the end, with ``<name>.meta.json`` (source URL, checksums, converter
version, counts). Any failure (network, HTTP status, checksum, format, disk) is one
:class:`~recbole_ext.errors.DataFetchError` line naming the URL and how to place the file by
hand; the data folder is left as it was.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import shutil
import tempfile
import zipfile
from typing import Dict, Optional

from recbole_ext.data.raw import CONVERTERS
from recbole_ext.data.sources import Source, registry
from recbole_ext.errors import DataFetchError, DataFormatError
from recbole_ext.fileio import atomic_write_text

#: bump when a converter's output changes (recorded in the metadata)
CONVERTER_VERSION = 1
DOWNLOADS = ".downloads"


def fetch_dataset(name: str, root: str, sources: Optional[str] = None, retries: int = 2,
                  progress: bool = False) -> str:
    """Fetch, verify and convert the registry data set ``name`` into ``root/name``; returns that
    folder. Does nothing but return it when ``root/name/name.inter`` exists."""
    target = os.path.join(root, name)
    if os.path.isfile(os.path.join(target, f"{name}.inter")):
        return target
    source = registry(sources).get(name)
    if source is None or not source.fetchable:
        how = source.terms if source else f"'{name}' is not in the data-set registry ('recbole-ext data list')"
        raise DataFetchError(f"data set '{name}' cannot be fetched: {how}")
    made = [d for d in (root, os.path.join(root, DOWNLOADS)) if not os.path.isdir(d)]
    try:
        os.makedirs(root, exist_ok=True)
        raw_file = _download(source, os.path.join(root, DOWNLOADS), retries, progress)
        _convert(source, raw_file, root, target)
    except BaseException:
        for d in reversed(made):  # leave the data folder as it was
            if os.path.isdir(d) and not os.listdir(d):
                os.rmdir(d)
        raise
    return target


def _download(source: Source, cache: str, retries: int, progress: bool) -> str:
    import pooch
    import requests

    fname = os.path.basename(source.url)
    hand = f"or download {source.url} yourself and put it at {os.path.join(cache, fname)}"
    try:
        fetcher = pooch.create(path=cache, base_url="", registry={fname: source.hash},
                               urls={fname: source.url}, retry_if_failed=retries)
        return fetcher.fetch(fname, progressbar=progress)
    except ValueError as e:  # pooch: the checksum does not match
        raise DataFetchError(f"{source.url}: {str(e).splitlines()[0]}; the file was not kept ({hand})") from None
    except requests.exceptions.RequestException as e:
        raise DataFetchError(f"{source.url}: download failed ({_reason(e)}); check the network, {hand}") from None
    except OSError as e:
        raise DataFetchError(f"{source.url}: cannot write {cache}: {e.strerror or e} ({hand})") from None


def _reason(e: Exception) -> str:
    response = getattr(e, "response", None)
    if response is not None and getattr(response, "status_code", None):
        return f"HTTP {response.status_code}"
    return type(e).__name__


def _convert(source: Source, raw_file: str, root: str, target: str) -> None:
    work = tempfile.mkdtemp(prefix=f".{source.name}-", dir=root)
    try:
        raw = os.path.join(work, "raw")
        out = os.path.join(work, source.name)
        os.makedirs(raw)
        os.makedirs(out)
        if zipfile.is_zipfile(raw_file):
            with zipfile.ZipFile(raw_file) as z:
                z.extractall(raw)
        else:
            shutil.copy(raw_file, os.path.join(raw, os.path.basename(raw_file)))
        counts = CONVERTERS[source.format](raw, out, source.name, k_core=source.k_core)
        _write_meta(out, source, raw_file, counts)
        os.replace(out, target)
    except (DataFormatError, KeyError) as e:
        raise DataFetchError(f"{source.url}: cannot convert the downloaded file: {e}") from None
    except OSError as e:
        raise DataFetchError(f"cannot write the converted data set into {root}: {e.strerror or e}") from None
    finally:
        shutil.rmtree(work, ignore_errors=True)


def file_sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _write_meta(out: str, source: Source, raw_file: str, counts: Dict[str, int]) -> None:
    meta = {
        "name": source.name, "url": source.url, "published_hash": source.hash,
        "sha256": file_sha256(raw_file), "format": source.format, "converter_version": CONVERTER_VERSION,
        "k_core": source.k_core if source.format == "amazon-reviews" else None, "counts": counts,
        "atomic_files_sha256": {f: file_sha256(os.path.join(out, f)) for f in sorted(os.listdir(out))},
        "fetched_at": datetime.datetime.now().isoformat(timespec="seconds"), "terms": source.terms,
    }
    atomic_write_text(os.path.join(out, f"{source.name}.meta.json"), json.dumps(meta, indent=1))
