"""Opening an input file: what it really is, its text columns, and the line of each record.

Shared by :mod:`provisioner.inputs` (``run``, ``validate``) and :mod:`provisioner.import_input`
(``import``); each reader picks its columns and applies its own rules on what this returns.

What a file is comes from its first bytes, whatever its name says:

* an Excel workbook (XLSX/ODS: ZIP ``PK\\x03\\x04``; XLS: OLE ``\\xD0\\xCF\\x11\\xE0``), a
  gzip/zstd/bzip2/xz archive or an age-encrypted file is refused with what to do;
* Parquet (``PAR1``) named ``.csv`` is read as Parquet, with the warning
  ``input.parquet_named_csv`` (the content is unambiguous; refusing would only make the
  operator rename it);
* UTF-16 text with a byte order mark (what Excel's "Unicode text" writes) is decoded in
  memory and read like UTF-8; UTF-32 and other text with NUL bytes is refused.

Lines: a record's ``line`` is the physical line of the file on which it starts, the header
being line 1 (for Parquet: row number + 1, as a CSV export of the same table would read).
Polars reads an empty line as a record of nulls; an empty physical line (nothing, or a lone
CR) is not a record, as for Python's ``csv.DictReader`` and pandas: it carries no field at
all, and a trailing blank line is common. Such lines are dropped, counted and reported
(:attr:`Loaded.empty_lines`); a line of empty fields (``,`` or ``,,x``) is a record. The
line numbers come from one pass over the bytes (:func:`provisioner.csv_records.scan_lines`:
count the newlines, find the empty lines): when polars read as many rows as the file has
lines after the header, every record is one line, which is all a plain file needs (the
1,000,000-row benchmark pays about 60 ms for it). Otherwise (a quoted field holding a
newline, empty lines before the header) the start line of each record is found by following
the quotes of each line (:func:`provisioner.csv_records.record_lines`), and a file whose
records cannot be matched with polars' rows is refused as malformed.

Limits (:class:`ReadLimits`, from ``PROVISIONER_MAX_ROWS`` and ``PROVISIONER_MAX_CELL``):
more rows than ``max_rows`` is refused before loading (Parquet: from its metadata); a cell
longer than ``max_cell_chars`` is dropped in the lazy query, before it is collected, and only
its length is kept (``<role>_chars``) so the reader can reject the row with that length.
Polars keeps the repeated values of a dictionary-encoded Parquet column as views of one
buffer; nothing here copies them (no slicing of cells), so they never multiply.

Messages are one line, say what to do, and quote at most :data:`ECHO_CHARS` characters of
anything from the file; for a file whose cells may be secrets (``secret=True``, the
migration file of ``import``) they quote no cell and no parser detail at all, and the
parser's exception is not chained.
"""

from __future__ import annotations

import codecs
import contextlib
import io
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Final, Literal

import polars as pl
import polars.exceptions as pl_exc
import structlog

from provisioner.csv_records import locate_problem, record_lines, scan_lines
from provisioner.errors import InputError, UsageError

__all__ = [
    "CSV_SUFFIXES",
    "DEFAULT_MAX_CELL",
    "DEFAULT_MAX_ROWS",
    "ECHO_CHARS",
    "FIRST_LINE",
    "MAX_CELL_ENV",
    "MAX_ROWS_ENV",
    "MIN_CELL",
    "PARQUET_SUFFIXES",
    "FileKind",
    "Loaded",
    "ReadLimits",
    "Source",
    "chars_column",
    "file_kind",
    "load",
    "open_source",
    "read_file_bytes",
    "read_schema",
    "reading_errors",
    "short",
]

CSV_SUFFIXES: tuple[str, ...] = (".csv", ".txt")
PARQUET_SUFFIXES: tuple[str, ...] = (".parquet", ".pq")
FileKind = Literal["csv", "parquet"]

#: The most characters of anything from a file that a message or a rejects file repeats.
ECHO_CHARS: Final = 40
#: The first data row: the header (or its notional equivalent for Parquet) is line 1.
FIRST_LINE: Final = 2
MAX_ROWS_ENV: Final = "PROVISIONER_MAX_ROWS"
MAX_CELL_ENV: Final = "PROVISIONER_MAX_CELL"
DEFAULT_MAX_ROWS: Final = 10_000_000
DEFAULT_MAX_CELL: Final = 1_024
#: The longest valid cell (Nickname, Sn: 64): a smaller cell limit would reject valid rows.
MIN_CELL: Final = 64

_LINE: Final = "line"
_SNIFF_BYTES: Final = 8192
_CHUNK: Final = 1 << 23
_CHARS_SUFFIX: Final = "_chars"
_BREAK_PREFIX: Final = "_break_"
_SHOWN_DETAIL: Final = ECHO_CHARS  # of a parser message, which may quote the file

_log = structlog.get_logger("provisioner.inputs")


def short(text: str, limit: int = ECHO_CHARS) -> str:
    """``text``, or its first ``limit`` characters and an ellipsis."""
    return text if len(text) <= limit else text[:limit] + "…"


def chars_column(role: str) -> str:
    """The column :func:`load` fills with the length of a cell of ``role`` it dropped."""
    return role + _CHARS_SUFFIX


# --------------------------------------------------------------------------- limits


def _env_limit(name: str, default: int, minimum: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = minimum - 1
    if value < minimum:
        raise UsageError(
            f"{name} must be a whole number of at least {minimum}, got {short(raw)!r}; "
            "fix or unset it"
        )
    return value


@dataclass(frozen=True, slots=True)
class ReadLimits:
    """How much of an input file is read. The defaults come from the environment when the
    object is made: ``PROVISIONER_MAX_ROWS`` (10,000,000) and ``PROVISIONER_MAX_CELL``
    (1,024 characters, at least 64)."""

    max_rows: int = field(default_factory=partial(_env_limit, MAX_ROWS_ENV, DEFAULT_MAX_ROWS, 1))
    max_cell_chars: int = field(
        default_factory=partial(_env_limit, MAX_CELL_ENV, DEFAULT_MAX_CELL, MIN_CELL)
    )

    def __post_init__(self) -> None:
        if self.max_rows < 1 or self.max_cell_chars < MIN_CELL:
            raise ValueError(f"max_rows must be >= 1 and max_cell_chars >= {MIN_CELL}")


# --------------------------------------------------------------------------- what a file is


@dataclass(frozen=True, slots=True)
class Source:
    """An input, sniffed. ``data`` holds the content when it lives in memory (decrypted, or
    re-encoded from UTF-16); ``secret``: its cells may be secrets, never quote them."""

    path: Path
    kind: FileKind
    data: bytes | None = None
    secret: bool = False

    def polars_input(self) -> Path | io.BytesIO:
        return self.path if self.data is None else io.BytesIO(self.data)


def file_kind(path: Path) -> FileKind:
    """CSV or Parquet from the file name; an unknown suffix is an :class:`InputError`."""
    suffix = path.suffix.lower()
    if suffix in CSV_SUFFIXES:
        return "csv"
    if suffix in PARQUET_SUFFIXES:
        return "parquet"
    accepted = ", ".join(CSV_SUFFIXES + PARQUET_SUFFIXES)
    raise InputError(
        f"{path}: unknown file type {short(suffix) or '(no extension)'}; "
        f"name the file with one of {accepted} (CSV or Parquet)"
    )


def _os_error(path: Path, exc: OSError) -> InputError:
    if isinstance(exc, FileNotFoundError):
        return InputError(f"{path}: no such file; check the path")
    if isinstance(exc, IsADirectoryError):
        return InputError(f"{path}: is a directory; give the path of a CSV or Parquet file")
    if isinstance(exc, PermissionError):
        return InputError(f"{path}: permission denied; make the file readable")
    return InputError(f"{path}: cannot be read ({exc.strerror or exc}); check the file")


def read_file_bytes(path: Path) -> bytes:
    """The whole file, with one-line :class:`InputError` messages for the usual mistakes."""
    try:
        return path.read_bytes()
    except OSError as exc:
        raise _os_error(path, exc) from exc


def _head(path: Path, data: bytes | None) -> bytes:
    if data is not None:
        return data[:_SNIFF_BYTES]
    try:
        with path.open("rb") as fh:
            return fh.read(_SNIFF_BYTES)
    except OSError as exc:
        raise _os_error(path, exc) from exc


_SAVE_AS_CSV: Final = "save it as CSV UTF-8 (Excel: File > Save As > CSV UTF-8) and give that file"
_AGE_MAGIC: Final = b"age-encryption.org/v1"
_ARCHIVES: Final = (
    (b"\x1f\x8b", "gzip", "gunzip"),
    (b"\x28\xb5\x2f\xfd", "zstd", "unzstd"),
    (b"BZh", "bzip2", "bunzip2"),
    (b"\xfd7zXZ\x00", "xz", "unxz"),
)


def open_source(
    path: Path,
    *,
    kind: FileKind | None = None,
    data: bytes | None = None,
    secret: bool = False,
) -> Source:
    """Check that ``path`` (or ``data``, its content) is a CSV or Parquet file we can read.

    ``kind`` defaults to the one of the file name. Raises :class:`InputError` naming what
    the file is and what to do instead; decodes UTF-16 text in memory.
    """
    kind = file_kind(path) if kind is None else kind
    head = _head(path, data)
    # A lone BOM is what Excel writes for an empty sheet.
    if head in (b"", codecs.BOM_UTF8):
        raise _empty(path, kind)
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        raise InputError(
            f"{path}: this is an Excel workbook (or another ZIP file), not {_name(kind)}; "
            + _SAVE_AS_CSV
        )
    if head.startswith(b"\xd0\xcf\x11\xe0"):
        raise InputError(f"{path}: this is an old Excel workbook (.xls), not CSV; " + _SAVE_AS_CSV)
    for magic, name, tool in _ARCHIVES:
        if head.startswith(magic):
            raise InputError(
                f"{path}: the file is compressed with {name}; decompress it first "
                f"({tool} FILE) and give the result"
            )
    if head.startswith(_AGE_MAGIC):
        how = (
            "name it with a .age suffix and pass --identity"
            if secret
            else "decrypt it first (provisioner decrypt FILE --identity KEY --out PLAIN)"
        )
        raise InputError(f"{path}: the file is age-encrypted; {how}")
    if head.startswith(b"PAR1"):
        if kind == "csv":
            _log.warning("input.parquet_named_csv", path=str(path))
        return Source(path, "parquet", data, secret)
    if kind == "parquet":
        raise InputError(
            f"{path}: not a readable Parquet file (it does not start with PAR1); export it "
            "again, or if it is CSV text, name it .csv"
        )
    if head.startswith((codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)):
        raise InputError(f"{path}: the file is UTF-32 text; save it as UTF-8 (CSV UTF-8)")
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return Source(path, "csv", _from_utf16(path, data), secret)
    if b"\x00" in head:
        raise InputError(
            f"{path}: not a text CSV file (it holds NUL bytes: binary data, or UTF-16 "
            "without a byte order mark); " + _SAVE_AS_CSV
        )
    return Source(path, "csv", data, secret)


def _name(kind: FileKind) -> str:
    return "CSV" if kind == "csv" else "Parquet"


def _from_utf16(path: Path, data: bytes | None) -> bytes:
    raw = read_file_bytes(path) if data is None else data
    try:
        # The "utf-16" codec reads the BOM, picks the byte order and drops the BOM.
        return raw.decode("utf-16").encode("utf-8")
    except UnicodeDecodeError:
        raise InputError(
            f"{path}: the file starts as UTF-16 text but is not valid UTF-16; save it as "
            "UTF-8 (CSV UTF-8)"
        ) from None


def _empty(path: Path, kind: FileKind) -> InputError:
    if kind == "csv":
        return InputError(
            f"{path}: the file is empty; expected a header line with a DeviceName column"
        )
    return InputError(f"{path}: the file is empty; export the Parquet file again")


# --------------------------------------------------------------------------- errors


@contextlib.contextmanager
def reading_errors(source: Source) -> Iterator[None]:
    """Turn polars and OS errors into one-line :class:`InputError` messages."""
    try:
        yield
    except InputError:
        raise
    except (OSError, pl_exc.PolarsError, pl_exc.PanicException) as exc:
        error = _describe(exc, source)
        if source.secret:
            # The exception's text may hold a cell; do not carry it along in __cause__.
            raise error from None
        raise error from exc


def _describe(exc: BaseException, source: Source) -> InputError:
    path, kind = source.path, source.kind
    if isinstance(exc, OSError):
        return _os_error(path, exc)
    if isinstance(exc, pl_exc.NoDataError):
        return _empty(path, kind)
    detail = _first_line(exc)
    if isinstance(exc, pl_exc.ColumnNotFoundError):
        shown = "" if source.secret else f" ({short(detail, _SHOWN_DETAIL)})"
        return InputError(f"{path}: a needed column is missing{shown}; check the header line")
    if "utf-8" in detail.lower() or "utf8" in detail.lower():
        where = _first_non_utf8_line(source) if kind == "csv" else None
        at = f" (first bad byte on line {where})" if where else ""
        return InputError(
            f"{path}: the file is not UTF-8 text{at}; save it as UTF-8 (Excel: CSV UTF-8)"
        )
    withheld = " (cells withheld: they may be secrets)" if source.secret else ""
    if kind == "csv":
        found = locate_problem(_content(source))
        if found is not None:
            return InputError(f"{path}: malformed CSV: {found}{withheld}")
        shown = "" if source.secret else f" ({short(detail, _SHOWN_DETAIL)})"
        return InputError(
            f"{path}: malformed CSV{shown}; check the quoting and that no row has more "
            f"fields than the header{withheld}"
        )
    shown = "" if source.secret else f" ({short(detail, _SHOWN_DETAIL)})"
    return InputError(
        f"{path}: not a readable Parquet file{shown}; export it again or use CSV{withheld}"
    )


def _first_line(exc: BaseException) -> str:
    # Polars messages run over several lines of hints; the operator needs the first one.
    lines = str(exc).strip().splitlines()
    return lines[0].strip() if lines else type(exc).__name__


def _content(source: Source) -> bytes:
    if source.data is not None:
        return source.data
    try:
        return source.path.read_bytes()
    except OSError:
        return b""


def _first_non_utf8_line(source: Source) -> int | None:
    """The 1-based line holding the first byte that is not UTF-8 (an error path only)."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    line = 1
    try:
        for chunk in _chunks(source):
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as err:
                return line + chunk[: err.start].count(b"\n")
            line += chunk.count(b"\n")
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return line
    except OSError:
        return None
    return None


def _chunks(source: Source) -> Iterator[bytes]:
    if source.data is not None:
        for start in range(0, len(source.data), _CHUNK):
            yield source.data[start : start + _CHUNK]
        return
    with source.path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            yield chunk


# --------------------------------------------------------------------------- loading


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


_FIRST_EMPTY_SHOWN: Final = 5


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
    scan = scan_lines(_chunks(source))
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
        mapped = record_lines(_content(source), frame.height)
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
    found = locate_problem(_content(source))
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
