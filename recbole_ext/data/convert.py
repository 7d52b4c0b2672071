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

import contextlib
import csv
import re
import os
import sys
from typing import Iterable, Iterator, List, Optional, Tuple

from recbole_ext.errors import ArgumentParser, DataFormatError, UserError
from recbole_ext.fileio import atomic_open, line_of_bad_byte

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
    """``(line number, stripped line, its fields split at sep)`` of every non-blank line.

    Raises:
        DataFormatError: a line does not decode, or a field holds a TAB (the atomic files'
            separator).
    """
    with _decoding(path, encoding), open(path, encoding=encoding) as f:
        for lineno, line in enumerate(f, 1):
            line = line.strip()
            if line:
                parts = line.split(sep)
                yield lineno, line, [check_field(p, path, lineno) for p in parts]


@contextlib.contextmanager
def _decoding(path: str, encoding: str) -> Iterator[None]:
    """Turn a decode error while reading ``path`` into a DataFormatError naming its line."""
    try:
        yield
    except UnicodeDecodeError:
        raise DataFormatError(
            f"{path}, line {line_of_bad_byte(path, encoding)}: not {encoding} text") from None


def check_field(value: str, path: str, lineno: int) -> str:
    """``value``, when it can be a field of an atomic file (no TAB, no line break)."""
    if "\t" in value or "\n" in value or "\r" in value:
        shown = value[:40].replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")
        raise DataFormatError(
            f"{path}, line {lineno}: field '{shown}' holds a TAB or a line break, which atomic files "
            "cannot store; remove it from the input")
    return value


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
    with _decoding(path, "utf-8"), open(path, encoding="utf-8", newline="") as f:
        reader = csv.reader(f)
        width: Optional[int] = None
        positions = {}
        for parts in reader:
            lineno = reader.line_num
            parts = [check_field(p.strip(), path, lineno) for p in parts]
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


NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


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


def convert(fmt: str, src: str, name: str, out_dir: str = "datasets", force: bool = False) -> Tuple[str, int]:
    """Convert ``src`` in format ``fmt`` to RecBole atomic files; returns ``(path, n_rows)``.

    Nothing is written when it fails: not the file, nor the folders made for it.
    """
    if fmt not in READERS:
        raise UserError(f"unknown format '{fmt}': choose one of {', '.join(READERS)}")
    if not os.path.isfile(src):
        raise UserError(f"input file not found: {src}")
    check_output(out_dir, name, force)
    made = [d for d in (out_dir, os.path.join(out_dir, name)) if not os.path.exists(d)]
    try:
        return write_atomic_inter(READERS[fmt](src), out_dir, name)
    except BaseException:
        for folder in reversed(made):
            with contextlib.suppress(OSError):
                os.rmdir(folder)
        raise


def main(argv: Optional[List[str]] = None) -> int:
    parser = ArgumentParser(
        prog="recbole-ext convert",
        description="Convert raw interaction files into RecBole atomic files.",
    )
    parser.add_argument("format", choices=sorted(READERS), help="input format")
    parser.add_argument("input", help="input file")
    parser.add_argument("--name", required=True, help="data set name (folder and file stem)")
    parser.add_argument("--out", default="datasets", help="output root folder (default: datasets)")
    parser.add_argument("--force", action="store_true", help="overwrite an existing output")
    try:
        args = parser.parse_args(argv)
        path, n = convert(args.format, args.input, args.name, args.out, args.force)
    except UserError as e:
        print(f"recbole_ext: error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {n} interactions to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
