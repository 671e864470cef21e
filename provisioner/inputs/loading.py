"""Loading an opened input: its text columns, and the physical line of each record.

Each reader picks its columns by role and applies its own rules on what :func:`load`
returns (:mod:`provisioner.inputs.devices`, :mod:`provisioner.inputs.imports`).

Lines: a record's ``line`` is the physical line of the file on which it starts, the header
being line 1 (for Parquet: row number + 1, as a CSV export of the same table would read).
Polars reads an empty line as a record of nulls; an empty physical line (nothing, or a lone
CR) is not a record, as for Python's ``csv.DictReader`` and pandas: it carries no field at
all, and a trailing blank line is common. Such lines are dropped, counted and reported
(:attr:`Loaded.empty_lines`); a line of empty fields (``,`` or ``,,x``) is a record. The
line numbers come from one pass over the bytes
(:func:`provisioner.inputs.csv_lines.scan_lines`: count the newlines, find the empty
lines): when polars read as many rows as the file has lines after the header, every record
is one line, which is all a plain file needs (the 1,000,000-row benchmark pays about 60 ms
for it). Otherwise (a quoted field holding a newline, empty lines before the header) the
start line of each record is found by following the quotes of each line
(:func:`provisioner.inputs.csv_lines.record_lines`), and a file whose records cannot be
matched with polars' rows is refused as malformed.

Limits (:class:`~provisioner.inputs.limits.ReadLimits`): more rows than ``max_rows`` is
refused before loading (Parquet: from its metadata); a cell longer than ``max_cell_chars``
is dropped in the lazy query, before it is collected, and only its length is kept
(``<role>_chars``) so the reader can reject the row with that length. Polars keeps the
repeated values of a dictionary-encoded Parquet column as views of one buffer; nothing here
copies them (no slicing of cells), so they never multiply.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import polars as pl
import structlog

from provisioner.errors import InputError
from provisioner.inputs.csv_lines import locate_problem, record_lines, scan_lines
from provisioner.inputs.files import Source, reading_errors
from provisioner.inputs.limits import MAX_ROWS_ENV, ReadLimits

__all__ = ["FIRST_LINE", "Loaded", "chars_column", "load", "log_empty_lines", "read_schema"]

#: The first data row: the header (or its notional equivalent for Parquet) is line 1.
FIRST_LINE: Final = 2

_LINE: Final = "line"
_CHARS_SUFFIX: Final = "_chars"
_BREAK_PREFIX: Final = "_break_"
_FIRST_EMPTY_SHOWN: Final = 5

_log = structlog.get_logger("provisioner.inputs")


def chars_column(role: str) -> str:
    """The column :func:`load` fills with the length of a cell of ``role`` it dropped."""
    return role + _CHARS_SUFFIX


def read_schema(source: Source) -> pl.Schema:
    """The column names and types of ``source`` (for CSV, all strings)."""
    with reading_errors(source):
        return _scan(source).collect_schema()


def _scan(source: Source) -> pl.LazyFrame:
    if source.kind == "csv":
        return pl.scan_csv(source.polars_input(), infer_schema=False, encoding="utf8")
    return pl.scan_parquet(source.polars_input())


@dataclass(frozen=True, slots=True)
class Loaded:
    """The records of a file: ``frame`` has ``line`` (Int64), one String column per role
    (null for an empty cell written ``,,``, ``""`` for one written ``""``, null for a cell
    over the limit) and ``<role>_chars`` (UInt32: the length of a cell over the limit,
    else null). ``empty_lines``: physical lines skipped as not records; ``first_empty``:
    the first few of them."""

    frame: pl.DataFrame
    empty_lines: int = 0
    first_empty: tuple[int, ...] = ()


def log_empty_lines(path: Path, loaded: Loaded) -> None:
    """Say which empty lines of ``path`` were skipped, if any (every reader does)."""
    if loaded.empty_lines:
        _log.info(
            "input.empty_lines_skipped",
            path=str(path),
            count=loaded.empty_lines,
            first_lines=list(loaded.first_empty),
        )


def load(
    source: Source,
    columns: Mapping[str, str | None],
    limits: ReadLimits,
    *,
    needed: Sequence[str] = (),
) -> Loaded:
    """Read the columns ``columns`` maps roles to (None: absent, all null) as text.

    For CSV, a cell of a ``needed`` role holding a line break means broken quoting (a
    quote opened and closed rows later has swallowed them): :class:`InputError` naming
    the line the record starts on, without its content.
    """
    cap = limits.max_cell_chars
    exprs: list[pl.Expr] = []
    breaks: list[str] = []
    for role, column in columns.items():
        cell = (pl.col(column) if column is not None else pl.lit(None)).cast(pl.String)
        chars = cell.str.len_chars()
        over = chars > cap
        exprs.append(pl.when(over).then(None).otherwise(cell).alias(role))
        exprs.append(pl.when(over).then(chars).otherwise(None).alias(chars_column(role)))
        if source.kind == "csv" and role in needed and column is not None:
            breaks.append(_BREAK_PREFIX + role)
            exprs.append(cell.str.contains("\n", literal=True).alias(breaks[-1]))
    if source.kind == "parquet":
        return Loaded(_load_parquet(source, exprs, limits))
    scan = scan_lines(source.chunks())
    # Every record takes at least one non-empty line after the header, so this bounds the
    # rows before anything is parsed. (Polars' own row limit, n_rows, is not used: with it,
    # a file with a stray quote reads as no rows at all instead of failing.)
    if scan.lines - 1 - len(scan.empty) > limits.max_rows:
        raise _too_many(source, limits)
    with reading_errors(source):
        frame = _scan(source).select(exprs).collect(engine="streaming")
    if frame.height + 1 == scan.lines:
        # One line per record: row i is on line i + 2, and polars kept the empty lines.
        frame = frame.with_row_index(_LINE, offset=FIRST_LINE)
        empty = [n for n in scan.empty if n >= FIRST_LINE]
        if empty:
            frame = frame.filter(~pl.col(_LINE).is_in(pl.Series(empty, dtype=pl.UInt32).implode()))
    else:
        mapped = record_lines(source.content(), frame.height)
        if mapped is None:
            raise _disagreement(source)
        starts, is_empty = mapped
        flags = pl.Series(is_empty, dtype=pl.Boolean)
        empty = [n for n, e in zip(starts, is_empty, strict=True) if e]
        frame = frame.select(pl.Series(_LINE, starts, dtype=pl.Int64), pl.all()).filter(~flags)
    frame = frame.with_columns(pl.col(_LINE).cast(pl.Int64))
    _check_breaks(source, frame, breaks)
    return Loaded(frame.drop(breaks), len(empty), tuple(empty[:_FIRST_EMPTY_SHOWN]))


def _load_parquet(source: Source, exprs: list[pl.Expr], limits: ReadLimits) -> pl.DataFrame:
    with reading_errors(source):
        # The row count is in the footer: a file of too many rows is refused unread.
        rows = _scan(source).select(pl.len()).collect().item()
        if rows > limits.max_rows:
            raise _too_many(source, limits)
        frame = _scan(source).select(exprs).collect(engine="streaming")
    return frame.with_row_index(_LINE, offset=FIRST_LINE).with_columns(pl.col(_LINE).cast(pl.Int64))


def _too_many(source: Source, limits: ReadLimits) -> InputError:
    return InputError(
        f"{source.path}: more than {limits.max_rows:,} rows, the most one file may hold; "
        f"split the file, or raise the limit with {MAX_ROWS_ENV}=N"
    )


def _disagreement(source: Source) -> InputError:
    found = locate_problem(source.content())
    return InputError(
        f"{source.path}: malformed CSV: "
        + (found or "the records cannot be told apart; check the quoting")
    )


def _check_breaks(source: Source, frame: pl.DataFrame, breaks: list[str]) -> None:
    if not breaks:
        return
    broken = frame.filter(pl.any_horizontal(breaks)).head(1)
    if broken.height == 0:
        return
    row = broken.row(0, named=True)
    role = next(b[len(_BREAK_PREFIX) :] for b in breaks if row[b])
    raise InputError(
        f"{source.path}: line {row[_LINE]}: a {role} cell holds a line break, so the quoting "
        "of the record starting on this line is broken (a quote opened and not closed, which "
        "swallows the lines after it); fix the quoting of that line and try again"
    )
