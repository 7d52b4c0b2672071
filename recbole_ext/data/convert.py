"""Raw interaction files to RecBole atomic files: the one registry of raw formats, the one
writer, and :func:`convert`, which ``recbole-ext convert`` and the fetcher
(:mod:`recbole_ext.data.fetch`) both call.

Formats (:data:`FORMATS`; the readers are in :mod:`recbole_ext.data.readers`):

- ``movielens``: a MovieLens ``ratings.dat`` (``UserID::MovieID::Rating::Timestamp``);
- ``sequences``: one user per line, ``user item item ...`` in time order (positions become times);
- ``csv``: ``user,item[,rating[,timestamp]]``, with or without a header line;
- ``movielens-100k``, ``movielens-1m``, ``movielens-10m``, ``movielens-20m``: GroupLens's zip
  (or its unpacked folder), with users and items where the archive has them;
- ``amazon-reviews``: a 2014 Amazon review file (JSON lines, gzipped), kept as a k-core
  (``k_core``, default 5); with the category's metadata file (``meta=PATH``, or a folder input
  holding the review file and one ``meta_*.json.gz``), an ``.item`` file of the k-core's products
  too (:mod:`recbole_ext.data.amazon_meta`).

Every table is written to a temporary folder beside the output and moved into
``<out>/<name>/`` only when all of them are whole, so a failed conversion leaves nothing behind:
not a file, nor the folders made for it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import tempfile
import zipfile
from typing import Callable, Dict, Iterable, NamedTuple, Optional, Sequence

from recbole_ext.data import readers
from recbole_ext.data.sources import NAME
from recbole_ext.errors import DataFormatError, UserError
from recbole_ext.fileio import atomic_open

HEADER_4 = ("user_id:token", "item_id:token", "rating:float", "timestamp:float")
HEADER_3 = ("user_id:token", "item_id:token", "timestamp:float")


@dataclasses.dataclass(frozen=True)
class Format:
    """One raw format: its reader (input path -> tables) and a line of help."""

    read: Callable[..., readers.Tables]
    help: str


#: raw format name -> its reader; the command line's ``convert FORMAT`` and ``sources.yaml``'s
#: ``format`` name the same entries
FORMATS: Dict[str, Format] = {
    "movielens": Format(lambda src, **o: readers.read_ratings_dat(src), "a MovieLens ratings.dat"),
    "sequences": Format(lambda src, **o: readers.read_sequences(src), "user item item ... lines, in time order"),
    "csv": Format(lambda src, **o: readers.read_csv(src), "user,item[,rating[,timestamp]] lines"),
    "movielens-100k": Format(lambda src, **o: readers.read_movielens_100k(src), "GroupLens's ml-100k.zip"),
    "movielens-1m": Format(lambda src, **o: readers.read_movielens_dat(src), "GroupLens's ml-1m.zip"),
    "movielens-10m": Format(lambda src, **o: readers.read_movielens_dat(src, users=False), "GroupLens's ml-10m.zip"),
    "movielens-20m": Format(lambda src, **o: readers.read_movielens_20m(src), "GroupLens's ml-20m.zip"),
    "amazon-reviews": Format(
        lambda src, k_core=5, meta=None, **o: readers.read_amazon(src, int(k_core), meta),
        "a 2014 Amazon review file (reviews_*.json.gz), or a folder of it and its meta_*.json.gz",
    ),
}


class Converted(NamedTuple):
    """What :func:`convert` wrote: the ``.inter`` file, its rows, and the rows of every table."""

    path: str
    interactions: int
    counts: Dict[str, int]


def write_table(path: str, header: Optional[Sequence[str]], rows: Iterable[Sequence]) -> int:
    """Write one atomic file (tab-separated, RecBole's typed header) atomically; returns its rows.
    ``header=None``: :data:`HEADER_4` or :data:`HEADER_3` by the first row's width."""
    n = 0
    with atomic_open(path, "w") as f:
        for row in rows:
            if n == 0:
                f.write("\t".join(header or (HEADER_4 if len(row) == 4 else HEADER_3)) + "\n")
            f.write("\t".join(str(v).replace("\t", " ") for v in row) + "\n")
            n += 1
        if n == 0:
            what = "interactions" if path.endswith(".inter") else f"rows for {os.path.basename(path)}"
            raise DataFormatError(f"the input holds no {what}")
    return n


def check_output(out_dir: str, name: str, force: bool = False) -> str:
    """The output file ``out_dir/name/name.inter``, after checking the name (a plain name, not a
    path), the output root (a folder, or nothing yet) and that no output is overwritten unless
    ``force``.

    Raises:
        UserError: one of those does not hold.
    """
    if not NAME.match(name or "") or name.endswith("."):
        raise UserError(f"--name '{name}' is not a data-set name: letters, digits, '.', '_', '-', no '/'")
    for folder in (out_dir, os.path.join(out_dir, name)):
        if os.path.exists(folder) and not os.path.isdir(folder):
            raise UserError(f"output folder {folder} is a file")
    path = os.path.join(out_dir, name, f"{name}.inter")
    if os.path.exists(path) and not force:
        raise UserError(f"{path} exists; pass --force to overwrite it")
    return path


def convert(fmt: str, src: str, name: str, out_dir: str = "datasets", force: bool = False, **options) -> Converted:
    """Convert ``src`` (a file, a folder, or a zip of either) in format ``fmt`` into
    ``out_dir/name/name.<suffix>``; see the module docstring.

    Args:
        fmt: a key of :data:`FORMATS`.
        src: the input.
        name: the data set's name (folder and file stem).
        out_dir: the data root the folder goes in.
        force: replace the files of an existing output.
        options: passed to the reader (``k_core`` and ``meta``, the metadata file, for
            ``amazon-reviews``).

    Raises:
        UserError: unknown format, missing input, bad name or output (:func:`check_output`).
        DataFormatError: malformed input, naming its file and line.
    """
    if fmt not in FORMATS:
        raise UserError(f"unknown format '{fmt}': choose one of {', '.join(FORMATS)}")
    if not os.path.exists(src):
        raise UserError(f"input not found: {src}")
    inter = check_output(out_dir, name, force)
    target = os.path.dirname(inter)
    made = [d for d in (out_dir, target) if not os.path.exists(d)]
    os.makedirs(out_dir, exist_ok=True)
    work = tempfile.mkdtemp(prefix=f".{name}-", dir=out_dir)
    try:
        counts = _write_tables(fmt, src, name, work, options)
        os.makedirs(target, exist_ok=True)
        for f in sorted(os.listdir(os.path.join(work, name))):
            os.replace(os.path.join(work, name, f), os.path.join(target, f))
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        for folder in reversed(made):
            shutil.rmtree(folder, ignore_errors=True) if folder == target else _rmdir(folder)
        raise
    shutil.rmtree(work, ignore_errors=True)
    return Converted(inter, counts["interactions"], counts)


def _write_tables(fmt: str, src: str, name: str, work: str, options: dict) -> Dict[str, int]:
    """Unpack ``src`` if it is a zip, read it, and write its tables into ``work/name/``."""
    if zipfile.is_zipfile(src):
        unpacked = os.path.join(work, "raw")
        with zipfile.ZipFile(src) as z:
            z.extractall(unpacked)
        src = unpacked
    out = os.path.join(work, name)
    os.makedirs(out)
    counts: Dict[str, int] = {}
    for suffix, (header, rows) in FORMATS[fmt].read(src, **options).items():
        key = {"inter": "interactions", "user": "users_with_features", "item": "items_with_features"}[suffix]
        counts[key] = write_table(os.path.join(out, f"{name}.{suffix}"), header, rows)
    return counts


def _rmdir(folder: str) -> None:
    with contextlib.suppress(OSError):
        os.rmdir(folder)
