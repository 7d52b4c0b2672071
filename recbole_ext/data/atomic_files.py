"""Reading RecBole atomic files: the header, ``float`` and ``float_seq`` values, and the
sequence columns, with :class:`~recbole_ext.errors.DataFormatError` (file, line, column,
problem) for malformed input instead of a traceback."""

from __future__ import annotations

from typing import List, Tuple

import numpy as np
import pandas as pd
from recbole.utils import FeatureType

from recbole_ext.errors import DataFormatError

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
    with open(filepath, "r", encoding=encoding) as f:
        head = f.readline().rstrip("\r\n")
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
            f"{filepath}, line {row + 2}, column {position} ('{field}'): "
            f"'{values.iloc[row]}' is not a number"
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


def read_columns(filepath: str, field_separator: str, encoding: str, usecols: List[str], columns: List[str]) -> pd.DataFrame:
    """The ``usecols`` columns of an atomic file as strings, renamed to ``columns``."""
    try:
        df = pd.read_csv(filepath, delimiter=field_separator, usecols=usecols, dtype={c: str for c in usecols},
                         encoding=encoding, engine="python")
    except (pd.errors.ParserError, ValueError) as e:
        problem = str(e).strip().splitlines()[-1]
        raise DataFormatError(f"{filepath}: cannot read the file: {problem}") from None
    df.columns = columns
    return df


def parse_sequence_column(df: pd.DataFrame, field: str, ftype: FeatureType, seq_separator: str,
                          where: Tuple[str, int, str]) -> None:
    """Split a ``token_seq``/``float_seq`` column in place; a blank cell is an empty sequence."""
    cells = df[field].fillna("").values
    if ftype == FeatureType.TOKEN_SEQ:
        df[field] = [np.array(list(filter(None, cell.split(seq_separator)))) for cell in cells]
    else:
        df[field] = [parse_float_seq(cell, seq_separator, row, *where) for row, cell in enumerate(cells)]
