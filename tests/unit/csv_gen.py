"""Hypothesis strategies that write CSV files and know the physical line of every record.

Shared by the accounting tests of ``provisioner.inputs.devices`` and ``provisioner.inputs.imports``:
the file is serialised here, independently of the code under test, so the expected line of
each record is counted from the bytes written, not computed the way the reader does.
"""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import strategies as st

__all__ = ["CsvFile", "Record", "csv_files", "quote_cell"]

#: A record that is an empty physical line (nothing between two line ends).
EMPTY_LINE = None


@dataclass(frozen=True)
class Record:
    """One record of the file: its cells by column name (``None``: written as nothing)."""

    cells: dict[str, str | None]


@dataclass(frozen=True)
class CsvFile:
    data: bytes
    columns: list[str]
    # (physical start line, record) for every record that is not an empty line
    records: list[tuple[int, Record]]
    empty_lines: list[int]


def quote_cell(value: str | None, force: bool) -> str:
    if value is None:
        return ""
    if force or any(c in value for c in ',"\r\n') or value == "":
        return '"' + value.replace('"', '""') + '"'
    return value


@st.composite
def csv_files(
    draw: st.DrawFn,
    columns: list[str],
    cells: dict[str, st.SearchStrategy[str | None]],
    *,
    max_records: int = 12,
) -> CsvFile:
    """A CSV file with ``columns`` (in a drawn order) whose cells come from ``cells``.

    Drawn: LF or CRLF, a BOM or not, quoting of every cell or only where needed, empty
    lines anywhere after the header, and whether the last line ends with a line break.
    Cells may hold commas, quotes and line breaks (quoted as RFC 4180 says).
    """
    order = draw(st.permutations(columns))
    eol = draw(st.sampled_from(["\n", "\r\n"]))
    bom = draw(st.booleans())
    quote_all = draw(st.booleans())
    items = draw(
        st.lists(
            st.one_of(
                st.just(EMPTY_LINE),
                st.fixed_dictionaries({c: cells[c] for c in order}).map(Record),
            ),
            max_size=max_records,
        )
    )
    final_eol = draw(st.booleans())
    text = ("\ufeff" if bom else "") + ",".join(order) + eol
    line = 2
    records: list[tuple[int, Record]] = []
    empty: list[int] = []
    for index, item in enumerate(items):
        last = index == len(items) - 1
        if item is EMPTY_LINE:
            if last and not final_eol:
                continue  # nothing written: no line at all
            empty.append(line)
            text += eol
            line += 1
            continue
        body = ",".join(quote_cell(item.cells[c], quote_all) for c in order)
        if body == "":
            # A one-column record with no value, written unquoted, is an empty line.
            if last and not final_eol:
                continue
            empty.append(line)
        else:
            records.append((line, item))
        text += body + ("" if last and not final_eol else eol)
        line += body.count("\n") + 1
    return CsvFile(text.encode("utf-8"), list(order), records, empty)
