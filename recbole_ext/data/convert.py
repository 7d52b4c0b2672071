"""Convert raw interaction files into RecBole atomic files (``<out>/<name>/<name>.inter``).

Formats:

- ``movielens``: MovieLens ``ratings.dat`` lines ``UserID::MovieID::Rating::Timestamp``.
- ``sequences``: one user per line, ``user item item ...`` in chronological order (whitespace
  separated); each item's position becomes its timestamp.
- ``csv``: ``user,item,rating,timestamp`` with or without a header line (rating and timestamp
  optional: two columns give ``user,item`` in chronological order, positions become timestamps).

Command line::

    python -m recbole_ext.data.convert FORMAT INPUT --name NAME [--out datasets/]

The output file is written to a temporary file and renamed, so a failed conversion leaves
nothing behind. Malformed input raises :class:`~recbole_ext.errors.DataFormatError` naming the
line.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
from typing import Iterable, Iterator, List, Optional, Tuple

from recbole_ext.errors import DataFormatError, UserError
from recbole_ext.fileio import atomic_open

Row = Tuple[str, ...]
HEADER_4 = ("user_id:token", "item_id:token", "rating:float", "timestamp:float")
HEADER_3 = ("user_id:token", "item_id:token", "timestamp:float")


def _number(value: str, what: str, path: str, lineno: int) -> str:
    try:
        float(value)
    except ValueError:
        raise DataFormatError(f"{path}, line {lineno}: {what} '{value}' is not a number") from None
    return value


def split_lines(path: str, encoding: str, sep: Optional[str] = None) -> Iterator[Tuple[int, str, List[str]]]:
    """``(line number, stripped line, its fields split at sep)`` of every non-blank line."""
    with open(path, encoding=encoding) as f:
        for lineno, line in enumerate(f, 1):
            line = line.strip()
            if line:
                yield lineno, line, line.split(sep)


def read_movielens(path: str) -> Iterator[Row]:
    """Rows ``(user, item, rating, timestamp)`` from a ``ratings.dat`` file."""
    for lineno, line, parts in split_lines(path, "latin-1", "::"):
        if len(parts) != 4:
            raise DataFormatError(
                f"{path}, line {lineno}: expected UserID::MovieID::Rating::Timestamp, got '{line[:60]}'"
            )
        user, item, rating, ts = parts
        yield (user, item, _number(rating, "rating", path, lineno), _number(ts, "timestamp", path, lineno))


def read_sequences(path: str) -> Iterator[Row]:
    """Rows ``(user, item, position)`` from a ``user item item ...`` file."""
    for lineno, _, parts in split_lines(path, "utf-8"):
        if len(parts) < 2:
            raise DataFormatError(f"{path}, line {lineno}: user '{parts[0]}' has no items")
        for pos, item in enumerate(parts[1:]):
            yield (parts[0], item, str(pos))


def read_csv(path: str) -> Iterator[Row]:
    """Rows ``(user, item, rating, timestamp)`` or ``(user, item, position)`` from a CSV file."""
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.reader(f)
        width: Optional[int] = None
        positions = {}
        for lineno, parts in enumerate(reader, 1):
            parts = [p.strip() for p in parts]
            if not parts or not any(parts):
                continue
            if lineno == 1 and parts[0].lower() in ("user", "user_id", "userid"):
                continue  # header
            if width is None:
                width = len(parts)
                if width not in (2, 3, 4):
                    raise DataFormatError(
                        f"{path}, line {lineno}: expected user,item[,rating[,timestamp]], got {width} columns"
                    )
            if len(parts) != width:
                raise DataFormatError(f"{path}, line {lineno}: expected {width} columns, got {len(parts)}")
            if width == 2:
                user, item = parts
                pos = positions.get(user, 0)
                positions[user] = pos + 1
                yield (user, item, str(pos))
            elif width == 3:
                user, item, rating = parts
                pos = positions.get(user, 0)
                positions[user] = pos + 1
                yield (user, item, _number(rating, "rating", path, lineno), str(pos))
            else:
                user, item, rating, ts = parts
                yield (
                    user, item,
                    _number(rating, "rating", path, lineno),
                    _number(ts, "timestamp", path, lineno),
                )


READERS = {"movielens": read_movielens, "sequences": read_sequences, "csv": read_csv}


def write_atomic_inter(rows: Iterable[Row], out_dir: str, name: str) -> Tuple[str, int]:
    """Write ``rows`` to ``out_dir/name/name.inter`` atomically; returns ``(path, n_rows)``."""
    path = os.path.join(out_dir, name, f"{name}.inter")
    n = 0
    with atomic_open(path, "w") as f:
        for row in rows:
            if n == 0:
                f.write("\t".join(HEADER_4 if len(row) == 4 else HEADER_3) + "\n")
            f.write("\t".join(row) + "\n")
            n += 1
        if n == 0:
            raise DataFormatError("the input holds no interactions")
    return path, n


def convert(fmt: str, src: str, name: str, out_dir: str = "datasets") -> Tuple[str, int]:
    """Convert ``src`` in format ``fmt`` to RecBole atomic files; returns ``(path, n_rows)``."""
    if fmt not in READERS:
        raise UserError(f"unknown format '{fmt}': choose one of {', '.join(READERS)}")
    if not os.path.isfile(src):
        raise UserError(f"input file not found: {src}")
    return write_atomic_inter(READERS[fmt](src), out_dir, name)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m recbole_ext.data.convert",
        description="Convert raw interaction files into RecBole atomic files.",
    )
    parser.add_argument("format", choices=sorted(READERS), help="input format")
    parser.add_argument("input", help="input file")
    parser.add_argument("--name", required=True, help="data set name (folder and file stem)")
    parser.add_argument("--out", default="datasets", help="output root folder (default: datasets)")
    args = parser.parse_args(argv)
    try:
        path, n = convert(args.format, args.input, args.name, args.out)
    except UserError as e:
        print(f"recbole_ext: error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {n} interactions to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
