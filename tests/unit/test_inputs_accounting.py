"""Every record is accounted for: rows read = valid + rejected, each at its physical line.

Generated CSV files (LF/CRLF, BOM, quoting, empty lines, quoted line breaks in ignored
columns, UTF-8 or UTF-16) and Parquet files (null and empty cells) are read with
``read_devices`` and compared with what the generator wrote. Before the fix, empty
records vanished without a word and a quoted line break shifted the lines after it.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
from csv_gen import CsvFile, csv_files
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from provisioner.errors import InputError
from provisioner.inputs import InputTable, read_devices
from provisioner.naming import device_name_problem, nickname_problem

_SETTINGS = settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
_POOL = ["dev-0001", "dev-0002", "SN:0003", "gw_0004"]  # drawn often: duplicates
_names = st.one_of(
    st.sampled_from(_POOL),
    st.text(alphabet="ABCabc019-_@.:", min_size=4, max_size=12),
    st.text(alphabet="abc1 ,\"'温=+@\t\r", max_size=8),  # invalid, some need quoting
    st.just(""),
    st.none(),
)
_nicks = st.one_of(
    st.none(),
    st.just(""),
    st.text(alphabet="abcXYZ_19温度", min_size=1, max_size=10),
    st.text(alphabet='ab -,"\t', min_size=1, max_size=6),
)
_notes = st.one_of(
    st.none(),
    st.text(alphabet='ab,"\r\n \t', max_size=10),  # quoted line breaks, quotes, commas
)


def _text(value: str | None) -> str | None:
    return None if value in (None, "") else value


def _expected(
    records: list[tuple[int, dict[str, str | None]]],
) -> tuple[list[tuple[int, str, str | None]], dict[int, str | None]]:
    """(valid rows, {line: DeviceName} of rejected rows) by the documented rules."""
    seen: set[str] = set()
    valid: list[tuple[int, str, str | None]] = []
    rejected: dict[int, str | None] = {}
    for line, cells in records:
        name, nick = _text(cells.get("DeviceName")), _text(cells.get("Nickname"))
        ok = (
            name is not None
            and device_name_problem(name) is None
            and (nick is None or nickname_problem(nick) is None)
            and name not in seen
        )
        if name is not None:
            seen.add(name)
        if ok:
            assert name is not None
            valid.append((line, name, nick))
        else:
            rejected[line] = name
    return valid, rejected


def _check(table: InputTable, records: list[tuple[int, dict[str, str | None]]]) -> None:
    valid, rejected = _expected(records)
    assert table.total == len(records) == table.valid.height + table.rejected.height
    assert table.valid.rows() == valid
    got = table.rejected.select("line", "DeviceName", "reason").rows()
    assert [line for line, _, _ in got] == list(rejected)
    for line, name, reason in got:
        assert isinstance(reason, str)
        assert reason
        expected = rejected[line]
        if expected is None:
            assert name is None
        else:
            shown = expected if len(expected) <= 40 else expected[:40] + "…"
            assert name == shown
        cells = dict(records)[line]
        if _text(cells.get("DeviceName")) is None and _text(cells.get("Nickname")) is None:
            assert reason == "empty row: no DeviceName"


_COLUMN_SETS = [
    ["DeviceName"],
    ["DeviceName", "Nickname"],
    ["DeviceName", "Notes"],
    ["DeviceName", "Nickname", "Notes"],
]
_CELLS = {"DeviceName": _names, "Nickname": _nicks, "Notes": _notes}


@_SETTINGS
@given(
    st.sampled_from(_COLUMN_SETS).flatmap(lambda cols: csv_files(cols, _CELLS)),
    st.sampled_from(["utf-8", "utf-16-le", "utf-16-be"]),
)
def test_csv_rows_are_all_accounted_for_at_their_physical_line(
    tmp_path: Path, file: CsvFile, encoding: str
) -> None:
    data = file.data
    if encoding != "utf-8":
        text = data.decode("utf-8").removeprefix("\ufeff")
        data = "\ufeff".encode(encoding) + text.encode(encoding)
    path = tmp_path / "d.csv"
    path.write_bytes(data)
    table = read_devices(path)
    _check(table, [(line, r.cells) for line, r in file.records])
    assert table.empty_lines == len(file.empty_lines)
    assert table.first_empty_lines == tuple(file.empty_lines[:5])


@_SETTINGS
@given(
    st.lists(st.tuples(_names, _nicks), max_size=15),
    st.booleans(),
    st.sampled_from([pl.String, pl.Categorical]),
)
@example(rows=[("dev-0001", None), (None, None), ("", "")], with_nick=True, dtype=pl.String)
def test_parquet_rows_are_all_accounted_for(
    tmp_path: Path,
    rows: list[tuple[str | None, str | None]],
    with_nick: bool,
    dtype: pl.DataType,
) -> None:
    columns: dict[str, list[str | None]] = {"DeviceName": [r[0] for r in rows]}
    if with_nick:
        columns["Nickname"] = [r[1] for r in rows]
    columns["Extra"] = ["x"] * len(rows)
    path = tmp_path / "d.parquet"
    pl.DataFrame(columns, schema={c: dtype for c in columns}).write_parquet(path)
    table = read_devices(path)
    records = [
        (i + 2, {"DeviceName": r[0], "Nickname": r[1] if with_nick else None})
        for i, r in enumerate(rows)
    ]
    _check(table, records)
    assert table.empty_lines == 0


def _write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


@pytest.mark.parametrize(
    ("data", "rejected"),
    [
        # The cases: 3 rows in, "2 rows, 2 valid, 0 rejected" before the fix.
        (b"DeviceName,Nickname,Site\nabcd,,x\n,\nabce,,x\n", {3: "empty row: no DeviceName"}),
        (b"DeviceName,Nickname,Site\nabcd,,x\n,,x\nabce,,y\n", {3: "empty row: no DeviceName"}),
        (b'DeviceName\nabcd\n""\nabce\n', {3: "empty row: no DeviceName"}),
    ],
)
def test_empty_records_are_rejected_not_dropped(
    tmp_path: Path, data: bytes, rejected: dict[int, str]
) -> None:
    table = read_devices(_write(tmp_path, "d.csv", data))
    assert (table.total, table.valid.height) == (3, 2)
    assert dict(table.rejected.select("line", "reason").iter_rows()) == rejected


def test_null_and_empty_parquet_names_are_rejected(tmp_path: Path) -> None:
    path = tmp_path / "d.parquet"
    pl.DataFrame({"DeviceName": ["abcd", None, "", "abce"]}).write_parquet(path)
    table = read_devices(path)
    assert table.total == 4
    assert dict(table.rejected.select("line", "reason").iter_rows()) == {
        3: "empty row: no DeviceName",
        4: "empty row: no DeviceName",
    }


def test_empty_lines_are_counted_and_do_not_shift_lines(tmp_path: Path) -> None:
    data = b'DeviceName,Notes\r\n\r\nabcd,"two\r\nlines"\r\n\r\nab,\r\n\r\n'
    table = read_devices(_write(tmp_path, "d.csv", data))
    assert table.valid.rows() == [(3, "abcd", None)]
    assert table.rejected.get_column("line").to_list() == [6]
    assert (table.empty_lines, table.first_empty_lines) == (3, (2, 5, 7))


def test_a_stray_quote_in_an_ignored_column_cannot_swallow_rows(tmp_path: Path) -> None:
    # Polars reads this without error when it does not return the Notes column, and the
    # rows of lines 3-4 vanished into that cell.
    data = b'DeviceName,Notes\nabcd,x"y\nefgh,z\nijkl,w"v\nmnop,q\n'
    with pytest.raises(InputError) as info:
        read_devices(_write(tmp_path, "d.csv", data))
    assert "line 2 has a quote inside an unquoted cell" in str(info.value)


@_SETTINGS
@given(
    csv_files(
        ["DeviceName", "Nickname"],
        {"DeviceName": st.sampled_from(_POOL), "Nickname": st.sampled_from(["", "nick_1"])},
        max_records=8,
    ).filter(lambda f: len(f.records) >= 1),
    st.data(),
    st.sampled_from(["DeviceName", "Nickname"]),
)
def test_a_line_break_in_a_needed_cell_names_the_record_line(
    tmp_path: Path, file: CsvFile, data: st.DataObject, role: str
) -> None:
    # A stray quote that swallows the following lines puts a line break in a cell: the
    # file is refused, naming the line of the record that holds it.
    index = data.draw(st.integers(0, len(file.records) - 1))
    line, record = file.records[index]
    text = file.data.decode("utf-8")
    eol = "\r\n" if "\r\n" in text else "\n"
    header, *_ = text.split(eol, 1)
    columns = header.removeprefix("\ufeff").split(",")
    cells = dict(record.cells)
    cells[role] = "ab" + eol + "cd"
    lines = text.split(eol)
    # Records are single lines here (pool values need no quoting): line N is index N - 1.
    lines[line - 1] = ",".join('"' + (cells[c] or "") + '"' for c in columns)
    path = _write(tmp_path, "d.csv", eol.join(lines).encode("utf-8"))
    with pytest.raises(InputError) as info:
        read_devices(path)
    message = str(info.value)
    assert f"line {line}: a {role} cell holds a line break" in message
    assert "\n" not in message
    assert "ab" + eol not in message
