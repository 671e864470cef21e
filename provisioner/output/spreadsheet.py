"""Neutralising spreadsheet formulas in the CSV files a person opens (CSV injection).

Excel, LibreOffice and Google Sheets run a cell that starts with ``=``, ``+``, ``-`` or
``@`` as a formula, and a leading TAB or CR can hide such a start. A cell of an input file
(a rejected DeviceName, a Nickname) or a server's message could be built to do that when
the rejects file is opened. :func:`excel_safe` prefixes such a cell with a single quote
``'``, the OWASP recommendation: spreadsheets show the rest as text, and a person reading
the file as text sees what happened.

It is applied to every cell of every rejects file (``OUT.rejects.csv``, ``validate
--rejects``), and to the decrypted CSV of ``provisioner decrypt --excel-safe``. The latter
is opt-in because valid DeviceNames may start with ``-`` or ``@``: a program reading the
plaintext wants them as they are.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from typing import Final, TextIO

__all__ = ["FORMULA_STARTS", "excel_safe", "excel_safe_csv", "write_csv_rows"]

#: First characters that make a spreadsheet read a cell as a formula.
FORMULA_STARTS: Final = ("=", "+", "-", "@", "\t", "\r")


def excel_safe(value: str) -> str:
    """``value`` with a ``'`` in front when it starts like a formula; else unchanged."""
    return "'" + value if value.startswith(FORMULA_STARTS) else value


def write_csv_rows(out: TextIO, rows: Iterable[Sequence[str]]) -> None:
    """Write rows as CSV with LF line ends, every cell through :func:`excel_safe`.

    The csv module only quotes the characters of its line terminator, so a bare CR would
    go out unquoted with ``"\\n"``; RFC 4180 wants it quoted, so such rows are quoted whole
    (as the credentials writer does).
    """
    plain = csv.writer(out, lineterminator="\n")
    quoted = csv.writer(out, lineterminator="\n", quoting=csv.QUOTE_ALL)
    for row in rows:
        safe = [excel_safe(cell) for cell in row]
        (quoted if any("\r" in cell for cell in safe) else plain).writerow(safe)


def excel_safe_csv(data: bytes) -> bytes:
    """A UTF-8 CSV document with every cell through :func:`excel_safe`.

    Raises :class:`ValueError` when ``data`` is not UTF-8 CSV text.
    """
    text = data.decode("utf-8")  # UnicodeDecodeError is a ValueError
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    out = io.StringIO(newline="")
    try:
        write_csv_rows(out, reader)
    except csv.Error as exc:
        raise ValueError(f"not a well-formed CSV document (line {reader.line_num})") from exc
    return out.getvalue().encode("utf-8")
