"""Readers of raw interaction files: each turns one publisher's or user's format into the rows
of RecBole atomic files. :mod:`recbole_ext.data.convert` holds the registry that names them and
the one writer.

A reader takes the input (a file, or a folder holding the files it needs) and returns its
tables, ``{suffix: (header, rows)}``: ``inter`` always, ``user`` and ``item`` where the format
has them. A header of ``None`` means "by the rows' width" (three fields: ``user, item, time``;
four: ``user, item, rating, time``). Fields follow RecBole's own atomic files of these data sets,
so configs written for them work. Malformed input raises
:class:`~recbole_ext.errors.DataFormatError` naming the file and line.
"""

from __future__ import annotations

import ast
import contextlib
import csv
import gzip
import json
import math
import os
import re
from collections import Counter
from typing import Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

from recbole_ext.data import amazon_meta
from recbole_ext.errors import DataFormatError
from recbole_ext.fileio import line_of_bad_byte

Row = Tuple[str, ...]
Tables = Dict[str, Tuple[Optional[Sequence[str]], Iterable[Sequence]]]
INTER_HEADER = ("user_id:token", "item_id:token", "rating:float", "timestamp:float")
USER_HEADER = ("user_id:token", "age:token", "gender:token", "occupation:token", "zip_code:token")
ITEM_HEADER = ("item_id:token", "movie_title:token_seq", "release_year:token", "genre:token_seq")
_YEAR = re.compile(r"\s*\((\d{4})\)\s*$")
GENRES_100K = (
    "unknown",
    "Action",
    "Adventure",
    "Animation",
    "Children's",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
)


# ---------------------------------------------------------------- lines and fields
def split_lines(path: str, encoding: str, sep: Optional[str] = None) -> Iterator[Tuple[int, str, List[str]]]:
    """``(line number, stripped line, its fields split at sep)`` of every non-blank line.

    Raises:
        DataFormatError: a line does not decode, or a field holds a TAB (the atomic files'
            separator).
    """
    with _decoding(path, encoding), open(path, encoding=encoding) as f:
        for lineno, line in enumerate(f, 1):
            line = line.strip()
            if line:
                yield lineno, line, [check_field(p, path, lineno) for p in line.split(sep)]


@contextlib.contextmanager
def _decoding(path: str, encoding: str) -> Iterator[None]:
    """Turn a decode error while reading ``path`` into a DataFormatError naming its line."""
    try:
        yield
    except UnicodeDecodeError:
        raise DataFormatError(f"{path}, line {line_of_bad_byte(path, encoding)}: not {encoding} text") from None


def check_field(value: str, path: str, lineno: int) -> str:
    """``value``, when it can be a field of an atomic file (no TAB, no line break)."""
    if "\t" in value or "\n" in value or "\r" in value:
        shown = value[:40].replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")
        raise DataFormatError(
            f"{path}, line {lineno}: field '{shown}' holds a TAB or a line break, which atomic files "
            "cannot store; remove it from the input"
        )
    return value


def _number(value: str, what: str, path: str, lineno: int) -> str:
    try:
        number = float(value)
    except ValueError:
        raise DataFormatError(f"{path}, line {lineno}: {what} '{value}' is not a number") from None
    if not math.isfinite(number):
        raise DataFormatError(f"{path}, line {lineno}: {what} '{value}' is not a finite number")
    return value


def find_file(src: str, name: str) -> str:
    """The file ``name``: ``src`` itself, or anywhere under the folder ``src`` (or the folder of
    the file ``src``; archives hold one top folder)."""
    if os.path.isfile(src) and os.path.basename(src) == name:
        return src
    root = src if os.path.isdir(src) else os.path.dirname(os.path.abspath(src))
    for folder, _, files in os.walk(root):
        if name in files:
            return os.path.join(folder, name)
    raise DataFormatError(f"{src} holds no {name}")


# ---------------------------------------------------------------- one file of interactions
def read_ratings_dat(src: str) -> Tables:
    """MovieLens ``ratings.dat`` lines ``UserID::MovieID::Rating::Timestamp``."""

    def rows() -> Iterator[Row]:
        for lineno, line, parts in split_lines(src, "latin-1", "::"):
            if len(parts) != 4:
                raise DataFormatError(
                    f"{src}, line {lineno}: expected UserID::MovieID::Rating::Timestamp, got '{line[:60]}'"
                )
            user, item, rating, ts = parts
            yield (user, item, _number(rating, "rating", src, lineno), _number(ts, "timestamp", src, lineno))

    return {"inter": (INTER_HEADER, rows())}


def read_sequences(src: str) -> Tables:
    """One user per line, ``user item item ...`` in time order; each item's position is its time."""

    def rows() -> Iterator[Row]:
        for lineno, _, parts in split_lines(src, "utf-8"):
            if len(parts) < 2:
                raise DataFormatError(f"{src}, line {lineno}: user '{parts[0]}' has no items")
            for pos, item in enumerate(parts[1:]):
                yield (parts[0], item, str(pos))

    return {"inter": (None, rows())}


def read_csv(src: str) -> Tables:
    """``user,item[,rating[,timestamp]]`` with or without a header line; without a timestamp,
    each user's rows are in time order and positions become times."""
    return {"inter": (None, _csv_rows(src))}


def _csv_rows(path: str) -> Iterator[Row]:
    with _decoding(path, "utf-8"), open(path, encoding="utf-8", newline="") as f:
        reader = csv.reader(f)
        width: Optional[int] = None
        positions: Dict[str, int] = {}
        for parts in reader:
            lineno = reader.line_num
            parts = [check_field(p.strip(), path, lineno) for p in parts]
            if not any(parts) or (lineno == 1 and parts[0].lower() in ("user", "user_id", "userid")):
                continue  # blank line, or the header
            if width is None:
                width = len(parts)
                if width not in (2, 3, 4):
                    raise DataFormatError(
                        f"{path}, line {lineno}: expected user,item[,rating[,timestamp]], got {width} columns"
                    )
            if len(parts) != width:
                raise DataFormatError(f"{path}, line {lineno}: expected {width} columns, got {len(parts)}")
            if width == 4:
                user, item, rating, ts = parts
                yield (user, item, _number(rating, "rating", path, lineno), _number(ts, "timestamp", path, lineno))
                continue
            pos = positions.get(parts[0], 0)
            positions[parts[0]] = pos + 1
            rating = (_number(parts[2], "rating", path, lineno),) if width == 3 else ()
            yield (parts[0], parts[1], *rating, str(pos))


# ---------------------------------------------------------------- MovieLens archives
def _dat(path: str, sep: str) -> Iterator[List[str]]:
    """The fields of every non-blank line of a MovieLens file (latin-1)."""
    return (parts for _, _, parts in split_lines(path, "latin-1", sep))


def _title_and_year(title: str) -> Tuple[str, str]:
    m = _YEAR.search(title)
    return (title[: m.start()], m.group(1)) if m else (title, "")


def _movielens_csv(path: str) -> Iterator[List[str]]:
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.reader(f)
        next(reader, None)  # header
        yield from reader


def read_movielens_100k(src: str) -> Tables:
    """``u.data`` (tab), ``u.user`` and ``u.item`` (``|``, latin-1)."""
    items = (
        (row[0], *_title_and_year(row[1]), " ".join(g for g, flag in zip(GENRES_100K, row[5:]) if flag == "1"))
        for row in _dat(find_file(src, "u.item"), "|")
    )
    return {
        "inter": (INTER_HEADER, _dat(find_file(src, "u.data"), "\t")),
        "user": (USER_HEADER, _dat(find_file(src, "u.user"), "|")),
        "item": (ITEM_HEADER, items),
    }


def read_movielens_dat(src: str, users: bool = True) -> Tables:
    """ML-1M (and ML-10M without users): ``ratings.dat``, ``users.dat``, ``movies.dat`` (``::``)."""
    tables: Tables = {"inter": (INTER_HEADER, _dat(find_file(src, "ratings.dat"), "::"))}
    if users:  # users.dat: UserID::Gender::Age::Occupation::Zip-code
        tables["user"] = (USER_HEADER, ((u, a, g, o, z) for u, g, a, o, z in _dat(find_file(src, "users.dat"), "::")))
    movies = _dat(find_file(src, "movies.dat"), "::")
    tables["item"] = (ITEM_HEADER, ((i, *_title_and_year(t), g.replace("|", " ")) for i, t, g in movies))
    return tables


def read_movielens_20m(src: str) -> Tables:
    """``ratings.csv`` and ``movies.csv``."""
    movies = _movielens_csv(find_file(src, "movies.csv"))
    return {
        "inter": (INTER_HEADER, _movielens_csv(find_file(src, "ratings.csv"))),
        "item": (ITEM_HEADER, ((i, *_title_and_year(t), g.replace("|", " ")) for i, t, g in movies)),
    }


# ---------------------------------------------------------------- Amazon reviews
def read_amazon_reviews(path: str) -> List[Tuple[str, str, float, int]]:
    """``(user, item, rating, time)`` of a (gzipped) Amazon review file (JSON lines; the older
    files are Python literals, which ``ast.literal_eval`` reads)."""
    rows = []
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                r = json.loads(line)
            except ValueError:
                try:
                    r = ast.literal_eval(line)
                except (ValueError, SyntaxError):
                    raise DataFormatError(f"{path}, line {lineno}: not a review record") from None
            try:
                rows.append((r["reviewerID"], r["asin"], float(r.get("overall", 0)), int(r["unixReviewTime"])))
            except (KeyError, TypeError, ValueError):
                raise DataFormatError(f"{path}, line {lineno}: needs reviewerID, asin, unixReviewTime") from None
    return rows


def k_core(rows: List[Tuple], k: int) -> List[Tuple]:
    """Drop users and items with fewer than ``k`` interactions until none is left (rows keep
    their order)."""
    while k > 1:
        users = Counter(r[0] for r in rows)
        items = Counter(r[1] for r in rows)
        kept = [r for r in rows if users[r[0]] >= k and items[r[1]] >= k]
        if len(kept) == len(rows):
            break
        rows = kept
    return rows


def read_amazon(src: str, k_core_size: int = 5, meta: Optional[str] = None) -> Tables:
    """An Amazon review file (or the review file of the folder ``src``): a ``k_core_size``-core,
    then each user's reviews in time order (a stable sort: reviews of the same second keep the
    file's order), users in order of first appearance; the timestamp column holds the review time.

    With a metadata file (``meta``, or the ``meta*`` file of the folder ``src``), the ``item``
    table too: every item of the k-core with its title, categories, brand and price
    (:mod:`recbole_ext.data.amazon_meta`)."""
    path, meta = amazon_meta.amazon_inputs(src, meta)
    by_user: Dict[str, List[Tuple]] = {}
    for r in k_core(read_amazon_reviews(path), k_core_size):
        by_user.setdefault(r[0], []).append(r)
    inter = [r for rows in by_user.values() for r in sorted(rows, key=lambda r: r[3])]
    tables: Tables = {"inter": (INTER_HEADER, inter)}
    if meta:
        items = list(dict.fromkeys(r[1] for r in inter))
        tables["item"] = (amazon_meta.ITEM_HEADER, amazon_meta.read_amazon_meta(meta, items))
    return tables
