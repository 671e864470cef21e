"""What an input file really is, and one-line messages for what goes wrong reading it.

Shared by both readers (:mod:`provisioner.inputs.devices` for ``run`` and ``validate``,
:mod:`provisioner.inputs.imports` for ``import``): :func:`open_source` sniffs a file into a
:class:`Source`, and :func:`reading_errors` turns what polars or the OS raise while reading
one into an :class:`~provisioner.errors.InputError`.

What a file is comes from its first bytes, whatever its name says:

* an Excel workbook (XLSX/ODS: ZIP ``PK\\x03\\x04``; XLS: OLE ``\\xD0\\xCF\\x11\\xE0``), a
  gzip/zstd/bzip2/xz archive or an age-encrypted file is refused with what to do;
* Parquet (``PAR1``) named ``.csv`` is read as Parquet, with the warning
  ``input.parquet_named_csv`` (the content is unambiguous; refusing would only make the
  operator rename it);
* UTF-16 text with a byte order mark (what Excel's "Unicode text" writes) is decoded in
  memory and read like UTF-8; UTF-32 and other text with NUL bytes is refused.

Messages are one line, say what to do, and quote at most
:data:`~provisioner.inputs.limits.ECHO_CHARS` characters of anything from the file; for a
file whose cells may be secrets (``secret=True``, the migration file of ``import``) they
quote no cell and no parser detail at all, and the parser's exception is not chained.
"""

from __future__ import annotations

import codecs
import contextlib
import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

import polars.exceptions as pl_exc
import structlog

from provisioner.errors import InputError
from provisioner.inputs.csv_lines import locate_problem
from provisioner.inputs.limits import ECHO_CHARS, short

__all__ = [
    "CSV_SUFFIXES",
    "PARQUET_SUFFIXES",
    "FileKind",
    "Source",
    "file_kind",
    "open_source",
    "read_file_bytes",
    "reading_errors",
]

CSV_SUFFIXES: tuple[str, ...] = (".csv", ".txt")
PARQUET_SUFFIXES: tuple[str, ...] = (".parquet", ".pq")
FileKind = Literal["csv", "parquet"]

_SNIFF_BYTES: Final = 8192
_CHUNK: Final = 1 << 23
_SHOWN_DETAIL: Final = ECHO_CHARS  # of a parser message, which may quote the file

_log = structlog.get_logger("provisioner.inputs")


@dataclass(frozen=True, slots=True)
class Source:
    """An input, sniffed. ``data`` holds the content when it lives in memory (decrypted, or
    re-encoded from UTF-16); ``secret``: its cells may be secrets, never quote them."""

    path: Path
    kind: FileKind
    data: bytes | None = None
    secret: bool = False

    def polars_input(self) -> Path | io.BytesIO:
        """What polars reads: the path, or the content in memory."""
        return self.path if self.data is None else io.BytesIO(self.data)

    def chunks(self) -> Iterator[bytes]:
        """The content, a few megabytes at a time (OSError if the file cannot be read)."""
        if self.data is not None:
            for start in range(0, len(self.data), _CHUNK):
                yield self.data[start : start + _CHUNK]
            return
        with self.path.open("rb") as fh:
            while chunk := fh.read(_CHUNK):
                yield chunk

    def content(self) -> bytes:
        """The whole content; empty if the file cannot be read (it is only ever needed
        after polars read it, to place records and problems on their lines)."""
        if self.data is not None:
            return self.data
        try:
            return self.path.read_bytes()
        except OSError:
            return b""


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
        found = locate_problem(source.content())
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


def _first_non_utf8_line(source: Source) -> int | None:
    """The 1-based line holding the first byte that is not UTF-8 (an error path only)."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    line = 1
    try:
        for chunk in source.chunks():
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
