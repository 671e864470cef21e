"""Records and physical lines of CSV bytes, for the line numbers and errors a person reads.

Pure functions over the bytes of a CSV file (no I/O), used by
:mod:`provisioner.inputs.loading` and :mod:`provisioner.inputs.files`:

* :func:`scan_lines`: one pass over the chunks of a file: how many physical lines, and which
  are empty (nothing, or a lone CR). Enough for the line numbers of a file in which every
  record is one line.
* :func:`records` / :func:`record_lines`: where each record starts when a quoted field
  holds a newline. A newline ends a record when the record so far holds an even number
  of quotes (a doubled quote inside a quoted field toggles twice): RFC 4180 for a
  well-formed file, and how polars splits records for the others.
* :func:`locate_problem`: for a file the parser refused, the first line with an unclosed
  quote, more fields than the header, text after a closing quote or a quote inside an
  unquoted cell, worded without quoting the file.

Line endings: LF or CRLF (a CR before the LF belongs to the line ending). The bytes are
UTF-8, in which a newline or a quote byte is always that character.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Final

__all__ = ["LineScan", "is_empty", "locate_problem", "record_lines", "records", "scan_lines"]


def _physical_lines(data: bytes) -> list[bytes]:
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()  # nothing after the final newline
    return lines


def records(data: bytes) -> Iterator[tuple[int, list[bytes]]]:
    """(start line, physical lines) of each record, from the first line (empty lines too:
    see :func:`is_empty`). A newline ends a record when the record so far holds an even number of
    quotes: a doubled quote inside a quoted field toggles twice. This is RFC 4180 for a
    well-formed file and how the CSV parser splits records for the others."""
    inside = False
    current: list[bytes] = []
    start = 0
    for number, line in enumerate(_physical_lines(data), start=1):
        if not inside:
            if current:
                yield start, current
            current, start = [], number
        current.append(line)
        if line.count(b'"') % 2:
            inside = not inside
    if current:
        yield start, current


def is_empty(lines: list[bytes]) -> bool:
    """Whether a record is an empty physical line (nothing, a lone CR, or a lone BOM)."""
    return len(lines) == 1 and lines[0] in (b"", b"\r", codecs.BOM_UTF8)


_QUOTED: Final = re.compile(rb'"[^"]*"')
_AFTER_CLOSING_QUOTE: Final = re.compile(rb'(?:^|,)"(?:[^"]|"")*"(?=[^,\r\n])')
_QUOTE_IN_FIELD: Final = re.compile(rb'(?:^|,)[^,"\r\n]+"')
_QUOTING_FIX: Final = (
    "a cell holding a comma, a quote or a line break must be quoted as a whole, with "
    'each quote inside it doubled ("")'
)


def locate_problem(data: bytes) -> str | None:
    """Where and what the first quoting or field-count problem is (the error path only)."""
    header_fields: int | None = None
    for start, lines in records(data):
        if header_fields is None and is_empty(lines):
            continue
        text = b"\n".join(lines)
        if text.count(b'"') % 2:
            return (
                f"the quote opened on line {start} is never closed (a stray quote in a "
                f"cell?); {_QUOTING_FIX}"
            )
        fields = _QUOTED.sub(b"", text).count(b",") + 1
        if header_fields is None:
            header_fields = fields
            continue
        if fields > header_fields and not is_empty(lines):
            return (
                f"line {start} has {fields} fields but the header has {header_fields}; "
                "quote the cells that hold a comma, or remove the extra fields"
            )
        if _AFTER_CLOSING_QUOTE.search(text):
            return f"line {start} has text after the closing quote of a cell; {_QUOTING_FIX}"
        if _QUOTE_IN_FIELD.search(text):
            return f"line {start} has a quote inside an unquoted cell; {_QUOTING_FIX}"
        if len(lines) > 1 and not _WELL_FORMED.fullmatch(text):
            return f"the record starting on line {start} is not well quoted; {_QUOTING_FIX}"
    return None


@dataclass(frozen=True, slots=True)
class LineScan:
    """What :func:`scan_lines` found."""

    lines: int  # physical lines, a last line without a newline included
    empty: list[int]  # physical lines that are empty (or a lone CR)


def scan_lines(chunks: Iterable[bytes]) -> LineScan:
    """Count the lines and find the empty ones in one pass, a chunk at a time."""
    newlines = 0
    empty: list[int] = []
    pending = b""
    at_start = True
    for chunk in chunks:
        piece = pending + chunk
        cut = piece.rfind(b"\n") + 1
        pending, piece = piece[cut:], piece[:cut]
        if piece:
            _find_empty(piece, newlines, at_start, empty)
            newlines += piece.count(b"\n")
            at_start = False
    if pending:
        if pending == b"\r" or (at_start and pending == codecs.BOM_UTF8):
            empty.append(newlines + 1)
        return LineScan(newlines + 1, empty)
    return LineScan(newlines, empty)


_EMPTY_AFTER: Final = re.compile(rb"\n(?=\r?\n)")


def _find_empty(piece: bytes, base: int, at_start: bool, out: list[int]) -> None:
    # ``piece`` holds whole lines (it ends with a newline); its first line is base + 1.
    # A regex, not bytes.find: memmem is slow on a pattern starting with a frequent byte.
    if piece.startswith((b"\n", b"\r\n")) or (at_start and piece.startswith(b"\xef\xbb\xbf\n")):
        out.append(base + 1)
    count, last = base, 0
    for match in _EMPTY_AFTER.finditer(piece):
        pos = match.end()  # where the empty line starts
        count += piece.count(b"\n", last, pos)
        last = pos
        out.append(count + 1)


# A record of RFC 4180 fields; a CR may end it (CRLF) or sit inside a quoted field.
_WELL_FORMED: Final = re.compile(
    rb'(?:"(?:[^"]|"")*"|[^",\r\n]*)(?:,(?:"(?:[^"]|"")*"|[^",\r\n]*))*\r?'
)


def record_lines(data: bytes, height: int) -> tuple[list[int], list[bool]] | None:
    """Start line and emptiness of each record after the header, or None when there are
    not ``height`` of them (the parser read another number: the file is malformed) or a
    record spanning lines is not well formed. The parser accepts a quote inside an
    unquoted cell of a column it does not return, and the lines up to the next quote then
    vanish into that cell: a record may span lines only through a properly quoted cell."""
    starts: list[int] = []
    empty: list[bool] = []
    header = True
    for start, lines in records(data):
        if header:
            header = is_empty(lines)  # the parser skips empty lines before the header
            continue
        if len(starts) > height:
            return None
        if len(lines) > 1 and not _WELL_FORMED.fullmatch(b"\n".join(lines)):
            return None
        starts.append(start)
        empty.append(is_empty(lines))
    return (starts, empty) if len(starts) == height else None
