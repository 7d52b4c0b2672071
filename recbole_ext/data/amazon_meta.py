"""The 2014 Amazon product metadata (McAuley et al., ``meta_<Category>.json.gz``) as the rows of
a RecBole ``.item`` file, joined to the items of the review file's k-core.

Each line of a metadata file is one product, a Python dict literal (single quotes; read with
``ast.literal_eval``, else as JSON) with ``asin`` and, where the publisher has them, ``title``,
``price``, ``brand``, ``categories`` (a list of category paths, each a list of names),
``imUrl``, ``related`` and ``salesRank``. The ``.item`` file (:data:`ITEM_HEADER`) keeps:

- ``item_id:token``: the ``asin``, as in the ``.inter`` file;
- ``title:token_seq``: the title's words (blank where there is none);
- ``categories:token_seq``: every category name of every path, once each in first-seen order,
  a name's spaces written as ``_`` so that it stays one token (``Skin Care`` -> ``Skin_Care``);
- ``brand:token``: the brand, blank where there is none (RecBole reads it as ``[PAD]``);
- ``price:float``: the price, blank where there is none (RecBole fills the column's mean).

Every item of the ``.inter`` file gets one row, in the order the ``.inter`` file first names
them, blank but for its id where the metadata has no record of it (RecBole drops the
interactions of items without a row when it loads the ``.item`` file, so its rows never change
the data set); the first record of an ``asin`` wins. A line whose leading ``'asin': '...'``
names a product outside the ``.inter`` file is skipped unread, so a malformed record of a
product outside the k-core does not stop the conversion. A malformed line of a kept product is
a :class:`~recbole_ext.errors.DataFormatError` naming the file and line.
"""

from __future__ import annotations

import ast
import gzip
import json
import math
import os
import re
import zlib
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

from recbole_ext.errors import DataFormatError

ITEM_HEADER = ("item_id:token", "title:token_seq", "categories:token_seq", "brand:token", "price:float")
#: the ``asin`` a metadata line starts with (every line of the 2014 files does)
_LEADING_ASIN = re.compile(r"""\s*\{\s*['"]asin['"]\s*:\s*['"]([^'"\\]*)['"]""")
Row = Tuple[str, str, str, str, str]


def amazon_inputs(src: str, meta: Optional[str] = None) -> Tuple[str, Optional[str]]:
    """The review file and the metadata file (or ``None``) of ``src``: a review file, or a folder
    holding one (its first file, by name, whose name does not start with ``meta``) and at most one
    ``meta*`` file. ``meta``, when given, is the metadata file.

    Args:
        src: a review file, or a folder of the raw files.
        meta: a metadata file, or ``None``.

    Returns:
        ``(reviews, metadata or None)``.

    Raises:
        DataFormatError: the folder holds no review file or several metadata files, or ``meta``
            is not a file.
    """
    if meta is not None and not os.path.isfile(meta):
        raise DataFormatError(f"metadata file not found: {meta}")
    if os.path.isfile(src):
        return src, meta
    names = sorted(f for f in os.listdir(src) if not f.startswith(".") and os.path.isfile(os.path.join(src, f)))
    reviews = [f for f in names if not f.startswith("meta")]
    metas = [f for f in names if f.startswith("meta")]
    if not reviews:
        raise DataFormatError(f"{src} holds no review file (only {', '.join(metas) or 'nothing'})")
    if meta is None and len(metas) > 1:
        raise DataFormatError(f"{src} holds several metadata files ({', '.join(metas)}); keep one")
    if meta is None and metas:
        meta = os.path.join(src, metas[0])
    return os.path.join(src, reviews[0]), meta


def read_amazon_meta(path: str, items: Sequence[str]) -> List[Row]:
    """The ``.item`` rows (:data:`ITEM_HEADER`) of ``items`` from the metadata file ``path``
    (gzipped or not): one per item, in the order of ``items``, blank for an item without a record.

    Args:
        path: the metadata file.
        items: the item ids of the ``.inter`` file, each once, in order of first appearance.

    Returns:
        One row per item of ``items``.

    Raises:
        DataFormatError: a line of a kept product is malformed (file and line), the file is not
            whole or not UTF-8, or no record is of an item of ``items``.
    """
    wanted = set(items)
    found: Dict[str, Row] = {}
    for lineno, line in _lines(path):
        leading = _LEADING_ASIN.match(line)
        if leading and leading.group(1) not in wanted:
            continue  # a product outside the k-core: not parsed
        record = parse_record(line, path, lineno)
        if record["asin"] in wanted and record["asin"] not in found:
            found[record["asin"]] = item_row(record, path, lineno)
    if not found:
        raise DataFormatError(
            f"{path}: no record is of an item of the reviews (after the k-core); is it the same category's metadata?"
        )
    return [found.get(item, (item, "", "", "", "")) for item in items]


def _lines(path: str) -> Iterator[Tuple[int, str]]:
    """``(line number, line)`` of every non-blank line, read errors as one DataFormatError."""
    lineno = 0
    opener = gzip.open if path.endswith(".gz") else open
    try:
        with opener(path, "rt", encoding="utf-8") as f:
            for lineno, line in enumerate(f, 1):
                if line.strip():
                    yield lineno, line
    except UnicodeDecodeError:
        raise DataFormatError(f"{path}, line {lineno + 1}: not utf-8 text") from None
    except (EOFError, zlib.error, gzip.BadGzipFile) as e:
        raise DataFormatError(f"{path}: not a whole gzip file ({str(e) or type(e).__name__})") from None


def parse_record(line: str, path: str, lineno: int) -> dict:
    """One metadata line as a dict with a non-blank string ``asin``.

    Raises:
        DataFormatError: the line is neither a Python dict literal nor a JSON object, or has no
            ``asin``.
    """
    try:
        record = ast.literal_eval(line.strip())
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        try:
            record = json.loads(line)
        except ValueError:
            raise DataFormatError(
                f"{path}, line {lineno}: not a metadata record (a Python dict literal or a JSON object)"
            ) from None
    if not isinstance(record, dict):
        raise DataFormatError(f"{path}, line {lineno}: not a metadata record (a dict), got a {type(record).__name__}")
    asin = record.get("asin")
    if not isinstance(asin, str) or not asin or asin != "".join(asin.split()):
        raise DataFormatError(f"{path}, line {lineno}: the record has no 'asin' (a string without spaces)")
    return record


def item_row(record: dict, path: str, lineno: int) -> Row:
    """The ``.item`` row of one record (see the module docstring for each field)."""
    return (
        record["asin"],
        _words(record.get("title")),
        " ".join(_categories(record.get("categories"), path, lineno)),
        _words(record.get("brand")),
        _price(record.get("price"), path, lineno),
    )


def _words(value) -> str:
    """A text field with its whitespace (TABs and line breaks too) made single spaces."""
    return " ".join(str(value).split()) if value is not None else ""


def _categories(value, path: str, lineno: int) -> List[str]:
    """Every category name of the paths in ``value``, once each, spaces as ``_``."""
    if value is None:
        return []
    if not isinstance(value, (list, tuple)) or not all(
        isinstance(p, (list, tuple)) and all(isinstance(c, str) for c in p) for p in value
    ):
        raise DataFormatError(f"{path}, line {lineno}: 'categories' is not a list of lists of strings")
    names = dict.fromkeys("_".join(name.split()) for category_path in value for name in category_path)
    return [name for name in names if name]


def _price(value, path: str, lineno: int) -> str:
    """The price as text, blank when there is none."""
    if value is None or value == "":
        return ""
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if isinstance(value, bool) or not math.isfinite(number):
        raise DataFormatError(f"{path}, line {lineno}: price {str(value)[:40]!r} is not a number")
    return str(value).strip()
