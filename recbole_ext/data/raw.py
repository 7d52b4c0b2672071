"""Raw files of public data sets to RecBole atomic files, as the registry
(:mod:`recbole_ext.data.sources`) names them:

- ``movielens-100k``: ``u.data`` (tab), ``u.user`` and ``u.item`` (``|``, latin-1);
- ``movielens-1m`` (also 10M with ``::`` ratings and movies, no users): ``ratings.dat``,
  ``users.dat``, ``movies.dat`` (``::``, latin-1);
- ``movielens-20m``: ``ratings.csv``, ``movies.csv``;
- ``amazon-reviews``: the 2014 Amazon review files (one JSON object a line, gzipped:
  ``reviewerID``, ``asin``, ``overall``, ``unixReviewTime``), filtered to a k-core.

Fields follow RecBole's own atomic files of these data sets, so configs written for them work:
``.inter`` ``user_id, item_id, rating, timestamp``; MovieLens ``.user`` ``age, gender,
occupation, zip_code``; ``.item`` ``movie_title`` (token_seq), ``release_year``, ``genre``
(token_seq). Each converter writes into a folder it is given and returns the counts.
"""

from __future__ import annotations

import ast
import csv
import gzip
import json
import os
import re
from collections import Counter
from typing import Callable, Dict, Iterable, Iterator, List, Sequence, Tuple

from recbole_ext.data.convert import split_lines
from recbole_ext.errors import DataFormatError

INTER_HEADER = ("user_id:token", "item_id:token", "rating:float", "timestamp:float")
USER_HEADER = ("user_id:token", "age:token", "gender:token", "occupation:token", "zip_code:token")
ITEM_HEADER = ("item_id:token", "movie_title:token_seq", "release_year:token", "genre:token_seq")
_YEAR = re.compile(r"\s*\((\d{4})\)\s*$")


def write_atomic(folder: str, name: str, suffix: str, header: Sequence[str], rows: Iterable[Sequence]) -> int:
    """Write ``folder/name.suffix`` (tab-separated, with RecBole's typed header); returns the rows."""
    n = 0
    with open(os.path.join(folder, f"{name}.{suffix}"), "w", encoding="utf-8", newline="") as f:
        f.write("\t".join(header) + "\n")
        for row in rows:
            f.write("\t".join(str(v).replace("\t", " ") for v in row) + "\n")
            n += 1
    return n


def _lines(path: str, sep: str) -> Iterator[List[str]]:
    """The fields of every non-blank line of a MovieLens file (latin-1)."""
    return (parts for _, _, parts in split_lines(path, "latin-1", sep))


def _title_and_year(title: str) -> Tuple[str, str]:
    m = _YEAR.search(title)
    return (title[: m.start()], m.group(1)) if m else (title, "")


def _find(root: str, name: str) -> str:
    """The file ``name`` anywhere under ``root`` (the zips hold one top folder)."""
    for folder, _, files in os.walk(root):
        if name in files:
            return os.path.join(folder, name)
    raise DataFormatError(f"the archive holds no {name}")


def convert_movielens(raw: str, out: str, name: str, variant: str) -> Dict[str, int]:
    """MovieLens 100K / 1M / 10M / 20M into ``out`` (see the module docstring)."""
    if variant == "100k":
        inter = ((u, i, r, t) for u, i, r, t in _lines(_find(raw, "u.data"), "\t"))
        users = ((u, a, g, o, z) for u, a, g, o, z in _lines(_find(raw, "u.user"), "|"))
        items = ((row[0], *_title_and_year(row[1]), " ".join(g for g, flag in zip(GENRES_100K, row[5:]) if flag == "1"))
                 for row in _lines(_find(raw, "u.item"), "|"))
        items = ((i, title, year or "", genre) for i, title, year, genre in items)
    elif variant in ("1m", "10m"):
        inter = _lines(_find(raw, "ratings.dat"), "::")
        users = ((u, a, g, o, z) for u, g, a, o, z in _lines(_find(raw, "users.dat"), "::")) if variant == "1m" else None
        items = ((i, *_title_and_year(t), g.replace("|", " ")) for i, t, g in _lines(_find(raw, "movies.dat"), "::"))
    elif variant == "20m":
        inter = _csv_rows(_find(raw, "ratings.csv"))
        users = None
        items = ((i, *_title_and_year(t), g.replace("|", " ")) for i, t, g in _csv_rows(_find(raw, "movies.csv")))
    else:
        raise DataFormatError(f"unknown MovieLens variant '{variant}'")
    counts = {"interactions": write_atomic(out, name, "inter", INTER_HEADER, inter)}
    if users is not None:
        counts["users_with_features"] = write_atomic(out, name, "user", USER_HEADER, users)
    counts["items_with_features"] = write_atomic(out, name, "item", ITEM_HEADER, items)
    return counts


GENRES_100K = ("unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary",
               "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller",
               "War", "Western")


def _csv_rows(path: str) -> Iterator[List[str]]:
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.reader(f)
        next(reader, None)  # header
        yield from reader


def read_amazon_reviews(path: str) -> List[Tuple[str, str, float, int]]:
    """``(user, item, rating, time)`` of a gzipped Amazon review file (JSON lines; the older
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


def convert_amazon(raw: str, out: str, name: str, k: int = 5) -> Dict[str, int]:
    """An Amazon review file into ``out``: k-core, then each user's reviews in time order (a
    stable sort: reviews of the same second keep the file's order), users in order of first
    appearance; the timestamp column holds the review time."""
    files = [os.path.join(raw, f) for f in sorted(os.listdir(raw)) if not f.startswith(".")]
    rows = k_core(read_amazon_reviews(files[0]), k)
    by_user: Dict[str, List[Tuple]] = {}
    for r in rows:
        by_user.setdefault(r[0], []).append(r)
    ordered = [r for user_rows in by_user.values() for r in sorted(user_rows, key=lambda r: r[3])]
    return {"interactions": write_atomic(out, name, "inter", INTER_HEADER, ordered)}


#: raw format name -> converter(raw folder, out folder, data set name, **options)
CONVERTERS: Dict[str, Callable[..., Dict[str, int]]] = {
    "movielens-100k": lambda raw, out, name, **o: convert_movielens(raw, out, name, "100k"),
    "movielens-1m": lambda raw, out, name, **o: convert_movielens(raw, out, name, "1m"),
    "movielens-10m": lambda raw, out, name, **o: convert_movielens(raw, out, name, "10m"),
    "movielens-20m": lambda raw, out, name, **o: convert_movielens(raw, out, name, "20m"),
    "amazon-reviews": lambda raw, out, name, **o: convert_amazon(raw, out, name, int(o.get("k_core", 5))),
}

__all__ = ["CONVERTERS", "convert_amazon", "convert_movielens", "k_core", "read_amazon_reviews", "write_atomic"]
