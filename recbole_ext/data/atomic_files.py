"""Reading RecBole atomic files: the header, ``float`` and ``float_seq`` values, and the
sequence columns, with :class:`~recbole_ext.errors.DataFormatError` (file, line, column,
problem) for malformed input instead of a traceback."""

from __future__ import annotations

from typing import Dict, List, Optional, Tuple

import numpy as np
import pandas as pd
from recbole.utils import FeatureType

from recbole_ext.errors import DataFormatError
from recbole_ext.fileio import line_of_bad_byte

FEATURE_TYPES = ", ".join(t.value for t in FeatureType)


def row_lengths(column: pd.Series) -> np.ndarray:
    """Length of each row of a sequence column (what ``column.agg(len)`` gave before pandas 3)."""
    return np.fromiter((len(x) for x in column.values), dtype=np.int64, count=len(column))


def split_points(column: pd.Series) -> np.ndarray:
    """Where to split the concatenated rows of a sequence column back into rows."""
    return np.cumsum(row_lengths(column))[:-1]


def concat_rows(column: pd.Series, dtype=None) -> np.ndarray:
    """All rows of a sequence column, concatenated (empty columns and rows allowed)."""
    parts = [np.asarray(x) for x in column.values]
    if not parts:
        return np.array([], dtype=dtype or np.float64)
    out = np.concatenate(parts)
    return out.astype(dtype) if dtype is not None else out


def read_header(filepath: str, field_separator: str, encoding: str):
    """``[(column_header, field, FeatureType)]`` of an atomic file's first line.

    Raises:
        DataFormatError: a column is not ``name:type`` or names an unknown type.
    """
    encoding = encoding or "utf-8"
    with open(filepath, "rb") as f:
        raw = f.readline()
    try:
        head = raw.decode("utf-8-sig" if encoding.lower().replace("_", "-") in ("utf-8", "utf8") else encoding)
    except UnicodeDecodeError as e:
        raise DataFormatError(
            f"{filepath}, line 1: not {encoding} text (byte {e.start}); set encoding: to the file's"
        ) from None
    except LookupError:
        raise DataFormatError(f"{filepath}: unknown encoding '{encoding}' (the encoding: key)") from None
    head = head.rstrip("\r\n")
    if not head.strip():
        raise DataFormatError(f"{filepath}, line 1: no header (the file is empty or starts with a blank line)")
    fields = []
    for position, field_type in enumerate(head.split(field_separator), start=1):
        parts = field_type.split(":")
        if len(parts) != 2 or not parts[0] or not parts[1]:
            raise DataFormatError(
                f"{filepath}, line 1, column {position}: header '{field_type}' is not 'name:type' "
                f"(types: {FEATURE_TYPES})"
            )
        try:
            ftype = FeatureType(parts[1])
        except ValueError:
            raise DataFormatError(
                f"{filepath}, line 1, column {position}: field '{parts[0]}' has unknown type "
                f"'{parts[1]}' (types: {FEATURE_TYPES})"
            ) from None
        fields.append((field_type, parts[0], ftype))
    seen = {}
    for position, (_, name, _) in enumerate(fields, start=1):
        if name in seen:
            raise DataFormatError(
                f"{filepath}, line 1, columns {seen[name]} and {position}: field '{name}' appears twice"
            )
        seen[name] = position
    return fields


def parse_float_column(values: pd.Series, filepath: str, position: int, field: str) -> pd.Series:
    """A ``float`` column read as text, as float64 (blank cells stay NaN).

    Raises:
        DataFormatError: a cell is not a number (names the first such line).
    """
    numbers = pd.to_numeric(values, errors="coerce").astype(np.float64)
    bad = numbers.isna().to_numpy() & values.notna().to_numpy()
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise DataFormatError(
            f"{filepath}, line {row + 2}, column {position} ('{field}'): '{values.iloc[row]}' is not a number"
        )
    return numbers


def parse_float_seq(cell: str, separator: str, row: int, filepath: str, position: int, field: str) -> np.ndarray:
    """One ``float_seq`` cell as an array of floats.

    Raises:
        DataFormatError: an element is not a number.
    """
    items = list(filter(None, cell.split(separator)))
    try:
        return np.array([float(x) for x in items], dtype=np.float64)
    except ValueError:
        bad = next(x for x in items if not _is_number(x))
        raise DataFormatError(
            f"{filepath}, line {row + 2}, column {position} ('{field}'): '{bad}' is not a number"
        ) from None


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def check_field_counts(filepath: str, field_separator: str, encoding: str, width: int) -> None:
    """Every non-blank line after the header has ``width`` fields (pandas would silently take an
    extra field for an index, or fill a missing one with NaN).

    Raises:
        DataFormatError: naming the first line that has another number of fields.
    """
    with open(filepath, "r", encoding=encoding or "utf-8", newline="") as f:
        f.readline()
        for lineno, line in enumerate(f, start=2):
            line = line.rstrip("\r\n")
            if line and line.count(field_separator) != width - 1:
                raise DataFormatError(
                    f"{filepath}, line {lineno}: {line.count(field_separator) + 1} fields, the header has {width}"
                )


def read_columns(
    filepath: str, field_separator: str, encoding: str, usecols: List[str], columns: List[str], width: int
) -> pd.DataFrame:
    """The ``usecols`` columns of an atomic file of ``width`` columns as strings, renamed to
    ``columns``."""
    try:
        check_field_counts(filepath, field_separator, encoding, width)
        df = pd.read_csv(
            filepath,
            delimiter=field_separator,
            usecols=usecols,
            dtype={c: str for c in usecols},
            encoding=encoding,
            engine="python",
            index_col=False,
        )
    except UnicodeDecodeError as e:
        raise DataFormatError(
            f"{filepath}, line {line_of_bad_byte(filepath, e.encoding)}: not {encoding or 'utf-8'} text; "
            "set encoding: to the file's"
        ) from None
    except (pd.errors.ParserError, ValueError) as e:
        problem = str(e).strip().splitlines()[-1]
        raise DataFormatError(f"{filepath}: cannot read the file: {problem}") from None
    if df.empty:
        raise DataFormatError(f"{filepath}, line 2: no rows after the header")
    df.columns = columns
    return df


def read_atomic_columns(
    filepath: str,
    field_separator: str,
    encoding: str,
    header: List[Tuple[str, str, FeatureType]],
    chosen: List[Tuple[str, str, FeatureType]],
    time_field: Optional[str] = None,
) -> pd.DataFrame:
    """The one reader of an atomic file's rows (training's data set and ``data stats`` both):
    the ``chosen`` entries of its ``header`` (:func:`read_header`), every line's field count
    checked, ``float`` columns as numbers, and ``time_field`` without a blank cell (a split or
    figure in time order). Sequence columns stay text (their parsing needs the data set's
    settings: :func:`parse_sequence_column`).

    Raises:
        DataFormatError: naming the file, line, column and problem.
    """
    usecols, columns = [h for h, _, _ in chosen], [f for _, f, _ in chosen]
    df = read_columns(filepath, field_separator, encoding, usecols, columns, len(header))
    positions = {field: position for position, (_, field, _) in enumerate(header, start=1)}
    for _, field, ftype in chosen:
        if ftype == FeatureType.FLOAT:
            df[field] = parse_float_column(df[field], filepath, positions[field], field)
            if field == time_field:
                why = "the split orders interactions by time (order: TO)"
                check_no_blank(df[field], filepath, positions[field], field, why)
    return df


def check_no_blank(values: pd.Series, filepath: str, position: int, field: str, why: str) -> None:
    """Raise DataFormatError naming the first blank (NaN) cell of ``values``, for ``why``."""
    blank = values.isna().to_numpy()
    if blank.any():
        row = int(np.flatnonzero(blank)[0])
        raise DataFormatError(f"{filepath}, line {row + 2}, column {position} ('{field}'): blank; {why}")


def parse_sequence_column(
    df: pd.DataFrame, field: str, ftype: FeatureType, seq_separator: str, where: Tuple[str, int, str]
) -> None:
    """Split a ``token_seq``/``float_seq`` column in place; a blank cell is an empty sequence."""
    cells = df[field].fillna("").values
    if ftype == FeatureType.TOKEN_SEQ:
        df[field] = [np.array(list(filter(None, cell.split(seq_separator)))) for cell in cells]
    else:
        df[field] = [parse_float_seq(cell, seq_separator, row, *where) for row, cell in enumerate(cells)]


def check_interaction_columns(
    filepath: str, fields: Dict[str, FeatureType], load_col, uid_field: str, iid_field: str, time_field: Optional[str]
) -> None:
    """The interaction file has the user and item columns (``token``), and the time column
    (``float``) when ``time_field`` is given (a split in time order); RecBole fails later with a
    KeyError or a TypeError.

    Raises:
        DataFormatError: a column is missing or of another type.
    """
    required = [
        ("USER_ID_FIELD", uid_field, FeatureType.TOKEN),
        ("ITEM_ID_FIELD", iid_field, FeatureType.TOKEN),
        ("TIME_FIELD", time_field, FeatureType.FLOAT),
    ]
    for key, field, ftype in required:
        if not field or (load_col is not None and field not in load_col):
            continue
        if field not in fields:
            raise DataFormatError(f"{filepath}, line 1: no column '{field}' ({key}); its columns: {', '.join(fields)}")
        if fields[field] != ftype:
            raise DataFormatError(
                f"{filepath}, line 1: '{field}' ({key}) is of type {fields[field].value}; it must be {ftype.value}"
            )


class _Column:
    """What RecBole's ``_dataframe_to_interaction`` reads from a column: ``.values``."""

    def __init__(self, values: np.ndarray):
        self.values = values


def writable_columns(frame: pd.DataFrame) -> Dict[str, _Column]:
    """The frame's columns as writable copies (pandas 3 hands out read-only arrays)."""
    return {k: _Column(frame[k].to_numpy(copy=True)) for k in frame}
