"""Downloading one publisher file: pooch keeps the cache, checks the published hash and moves the
file into place only when it is whole; this module gives it the transfer and the words.

- :func:`download`: the file at ``url`` into ``cache`` (``file://`` URLs are copied), retried
  only where a retry can help (a 5xx answer, a transfer cut short, a timeout), never after a
  refused connection or a 4xx answer; pooch's own log lines are kept off the console. A failure is
  one :class:`~recbole_ext.errors.DataFetchError` line: the URL, what happened ("connection closed
  after N of M bytes", "HTTP 404", "connection refused") and where to put the file by hand.
- :func:`check_whole`: a zip's CRCs or a gzip stream read to its end, for files without a
  published hash (and cached copies of earlier runs); a damaged file is removed, not reused.
"""

from __future__ import annotations

import gzip
import os
import shutil
import time
import urllib.parse
import urllib.request
import zipfile
import zlib
from typing import Optional

import pooch
import requests
from tqdm import tqdm

from recbole_ext.errors import DataFetchError

CHUNK = 1 << 20


class _Transient(Exception):
    """A failure a second attempt may not meet."""


class _Final(Exception):
    """A failure that would repeat."""


def _transfer(url: str, output_file: str, progress: bool) -> None:
    """Write ``url`` into ``output_file`` (pooch's temporary file), or raise what went wrong."""
    if urllib.parse.urlparse(url).scheme == "file":
        local = urllib.request.url2pathname(urllib.parse.urlparse(url).path)
        if not os.path.isfile(local):
            raise _Final(f"no file at {local}")
        shutil.copyfile(local, output_file)
        return

    try:
        response = requests.get(url, stream=True, timeout=60)
    except requests.exceptions.ConnectionError as e:
        raise _Final("connection refused" if "refused" in str(e).lower() else "cannot connect") from None
    except requests.exceptions.Timeout:
        raise _Transient("the connection timed out") from None
    with response:
        if response.status_code >= 400:
            raise (_Transient if response.status_code >= 500 else _Final)(f"HTTP {response.status_code}")
        total = int(response.headers.get("Content-Length") or 0)
        got = _stream(response, output_file, total, progress)
    if total and got != total:
        raise _Transient(f"connection closed after {got} of {total} bytes")


def _stream(response, output_file: str, total: int, progress: bool) -> int:
    """The body into ``output_file`` (a progress bar on a terminal); returns the bytes received."""
    bar = None
    if progress:
        bar = tqdm(total=total or None, unit="B", unit_scale=True, desc=os.path.basename(output_file), leave=False)
    got = 0
    try:
        with open(output_file, "wb") as f:
            for block in response.iter_content(CHUNK):
                f.write(block)
                got += len(block)
                if bar is not None:
                    bar.update(len(block))
    except (requests.exceptions.ChunkedEncodingError, requests.exceptions.ConnectionError):
        raise _Transient(f"connection closed after {got} of {total or '?'} bytes") from None
    finally:
        if bar is not None:
            bar.close()
    return got


def download(url: str, known_hash: Optional[str], cache: str, retries: int = 2, progress: bool = False) -> str:
    """The file at ``url`` in ``cache`` (kept only whole and, with ``known_hash``, verified).

    Raises:
        DataFetchError: one line (see the module docstring).
    """
    fname = os.path.basename(urllib.parse.urlparse(url).path) or "download"
    hand = f"or download {url} yourself and put it at {os.path.join(cache, fname)}"
    logger = pooch.get_logger()
    level = logger.level
    logger.setLevel("ERROR")
    try:
        fetcher = pooch.create(path=cache, base_url="", registry={fname: known_hash}, urls={fname: url})
        for attempt in range(retries + 1):
            try:
                path = fetcher.fetch(fname, downloader=lambda u, out, _: _transfer(u, out, progress))
                break
            except _Transient as e:
                if attempt == retries:
                    raise DataFetchError(f"{url}: {e} (tried {retries + 1} times); {hand}") from None
                time.sleep(1.0 + attempt)
    except _Final as e:
        raise DataFetchError(f"{url}: {e}; check the address and the network, {hand}") from None
    except ValueError as e:  # pooch: the checksum does not match
        raise DataFetchError(f"{url}: {str(e).splitlines()[0]}; the file was not kept ({hand})") from None
    except OSError as e:
        raise DataFetchError(f"{url}: cannot write {cache}: {e.strerror or e} ({hand})") from None
    finally:
        logger.setLevel(level)
    check_whole(path, url, hand)
    return path


def check_whole(path: str, url: str, hand: str) -> None:
    """A zip whose members pass their CRC, a gzip file that reads to its end; otherwise the file
    is removed and a DataFetchError says so."""
    why = None
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as z:
                bad = z.testzip()
            why = f"member {bad} fails its CRC" if bad else None
        elif path.lower().endswith(".zip"):
            why = "not a whole zip archive"
        elif path.endswith(".gz"):
            with gzip.open(path, "rb") as f:
                while f.read(CHUNK):
                    pass
    except (OSError, EOFError, zlib.error, zipfile.BadZipFile) as e:
        why = str(e).splitlines()[0] if str(e) else type(e).__name__
    if why:
        os.unlink(path)
        raise DataFetchError(f"{url}: the downloaded file is incomplete or damaged ({why}); it was not kept ({hand})")
