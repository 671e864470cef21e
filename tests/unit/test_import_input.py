"""``read_import``: every record accounted for, and no cell that failed a rule repeated.

Every generated cell that must never be repeated (secrets, invalid names, invalid
nicknames and serials) carries the marker ``Z9``, which no reason contains; valid
DeviceNames and Nicknames never do. So "``Z9`` appears nowhere in the rejected rows or
their reasons" is the rule "rejects of an import copy no cell that failed" in one check.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pyrage
import pytest
from csv_gen import CsvFile, csv_files
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from provisioner.errors import InputError
from provisioner.inputs import ImportTable, read_import, write_rejects
from provisioner.naming import (
    device_name_problem,
    device_secret_problem,
    nickname_problem,
    sn_problem,
)

MARK = "Z9"
_SETTINGS = settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
_KEY = pyrage.x25519.Identity.generate()

_names = st.one_of(
    st.sampled_from(["dev-0001", "dev-0002", "SN:0003"]),  # valid, often duplicated
    st.text(alphabet="ab12 ,\"'=", max_size=6).map(lambda t: MARK + "~" + t),  # invalid
    st.just(""),
    st.none(),
)
_secrets = st.one_of(
    st.text(alphabet="abcXYZ019-_@.: ,\"'", max_size=40).map(lambda t: MARK + t),
    st.just(""),
    st.none(),
)
_nicks = st.one_of(
    st.sampled_from(["nick_ok", "温度_1", "n"]),
    st.text(alphabet=' -,"', min_size=1, max_size=4).map(lambda t: MARK + t),  # invalid
    st.just(""),
    st.none(),
)
_sns = st.one_of(
    st.sampled_from(["SN01", "x_9"]),
    st.text(alphabet="-. ,", min_size=1, max_size=4).map(lambda t: MARK + t),  # invalid
    st.just(""),
    st.none(),
)
_notes = st.one_of(st.none(), st.text(alphabet='ab,"\r\n', max_size=8))
_CELLS = {
    "DeviceName": _names,
    "DeviceSecret": _secrets,
    "Nickname": _nicks,
    "Sn": _sns,
    "Notes": _notes,
}


def _text(value: str | None) -> str | None:
    return None if value in (None, "") else value


def _is_valid(name: str | None, cells: dict[str, str | None]) -> bool:
    nick, sn = _text(cells.get("Nickname")), _text(cells.get("Sn"))
    return (
        name is not None
        and device_name_problem(name) is None
        and device_secret_problem(_text(cells.get("DeviceSecret")) or "") is None
        and (nick is None or nickname_problem(nick, min_length=1) is None)
        and (sn is None or sn_problem(sn) is None)
    )


def _reason(cells: dict[str, str | None], first_line: int | None) -> str:
    """The reason by naming.py's checkers on the whole cells, never quoting a character."""
    name, secret, nick, sn = (
        _text(cells.get(c)) for c in ("DeviceName", "DeviceSecret", "Nickname", "Sn")
    )
    if name is None and secret is None and nick is None and sn is None:
        return "empty row: no DeviceName"
    problems = [
        device_name_problem(name or "", quote=False),
        device_secret_problem(secret or ""),
        nickname_problem(nick, min_length=1, quote=False) if nick is not None else None,
        sn_problem(sn) if sn is not None else None,
        f"duplicate of line {first_line}" if first_line is not None else None,
    ]
    return "; ".join(p for p in problems if p)


def _check(table: ImportTable, records: list[tuple[int, dict[str, str | None]]]) -> None:
    seen: dict[str, int] = {}
    valid: list[tuple[object, ...]] = []
    rejected: list[int] = []
    reasons: dict[int, str] = {}
    for line, cells in records:
        name = _text(cells.get("DeviceName"))
        if _is_valid(name, cells) and name not in seen:
            valid.append(
                (line, name, *(_text(cells.get(c)) for c in ("DeviceSecret", "Nickname", "Sn")))
            )
        else:
            rejected.append(line)
            reasons[line] = _reason(cells, seen.get(name) if name is not None else None)
        if name is not None:
            seen.setdefault(name, line)
    assert table.total == len(records) == table.valid.height + table.rejected.height
    assert table.valid.rows() == valid
    assert table.rejected.columns == ["line", "DeviceName", "Nickname", "reason"]
    assert table.rejected.get_column("line").to_list() == rejected
    by_line = dict(records)
    for line, name, nick, reason in table.rejected.iter_rows():
        assert reason == reasons[line]
        assert MARK not in reason
        cells = by_line[line]
        # Repeated only when valid: then it is the cell itself, and never marked.
        assert name is None or (name == cells["DeviceName"] and MARK not in name)
        assert nick is None or (nick == cells.get("Nickname") and MARK not in nick)
        if all(
            _text(cells.get(c)) is None for c in ("DeviceName", "DeviceSecret", "Nickname", "Sn")
        ):
            assert reason == "empty row: no DeviceName"


@_SETTINGS
@given(
    st.sampled_from(
        [
            ["DeviceName", "DeviceSecret"],
            ["DeviceName", "DeviceSecret", "Nickname", "Sn"],
            ["DeviceName", "DeviceSecret", "Notes", "Sn"],
        ]
    ).flatmap(lambda cols: csv_files(cols, _CELLS)),
    st.booleans(),
)
def test_csv_import_accounts_for_every_row_and_repeats_no_failed_cell(
    tmp_path: Path, file: CsvFile, encrypted: bool
) -> None:
    path = tmp_path / ("in.csv.age" if encrypted else "in.csv")
    identity = None
    if encrypted:
        path.write_bytes(pyrage.encrypt(file.data, [_KEY.to_public()]))
        identity = tmp_path / "key.txt"
        identity.write_text(f"{_KEY}\n")
        identity.chmod(0o600)
    else:
        path.write_bytes(file.data)
    table = read_import(path, identity)
    _check(table, [(line, r.cells) for line, r in file.records])
    assert table.empty_lines == len(file.empty_lines)
    # The rejects file gets exactly those cells: nothing marked reaches the disk.
    out = tmp_path / "r.csv"
    write_rejects(table.rejected, out)
    assert MARK.encode() not in out.read_bytes()


@_SETTINGS
@given(st.lists(st.tuples(_names, _secrets, _nicks, _sns), max_size=12))
def test_parquet_import_accounts_for_every_row(
    tmp_path: Path, rows: list[tuple[str | None, ...]]
) -> None:
    columns = ("DeviceName", "DeviceSecret", "Nickname", "Sn")
    path = tmp_path / "in.parquet"
    pl.DataFrame(
        {c: [r[i] for r in rows] for i, c in enumerate(columns)},
        schema=dict.fromkeys(columns, pl.String),
    ).write_parquet(path)
    table = read_import(path)
    _check(table, [(i + 2, dict(zip(columns, r, strict=True))) for i, r in enumerate(rows)])


def _write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def _error(path: Path, identity: Path | None = None) -> str:
    with pytest.raises(InputError) as info:
        read_import(path, identity)
    message = str(info.value)
    assert "\n" not in message
    assert info.value.exit_code == 3
    # A parser's exception may quote cells: it must not travel along as the cause.
    assert info.value.__cause__ is None or not str(info.value.__cause__)
    return message


def test_a_stray_quote_that_swallows_secrets_stops_the_import(tmp_path: Path) -> None:
    # Before: one rejected row whose Nickname cell held the next rows' secrets, copied
    # into OUT.rejects.csv and the journal.
    data = (
        b"DeviceName,DeviceSecret,Nickname\n"
        b'dev-0001,Z9secret1,"nick\n'
        b"dev-0002,Z9secret2,n2\n"
        b'dev-0003,Z9secret3,n3"\n'
        b"dev-0004,Z9secret4,n4\n"
    )
    message = _error(_write(tmp_path, "in.csv", data))
    assert "line 2: a Nickname cell holds a line break" in message
    assert "fix the quoting" in message
    assert MARK not in message


def test_an_unclosed_quote_names_its_line_without_cells(tmp_path: Path) -> None:
    data = b'DeviceName,DeviceSecret\ndev-0001,Z9a\ndev-0002,"Z9secret\ndev-0003,Z9c\n'
    message = _error(_write(tmp_path, "in.csv", data))
    assert "the quote opened on line 3 is never closed" in message
    assert MARK not in message


def test_headerless_file_is_described_by_its_column_count(tmp_path: Path) -> None:
    # Before: "columns found: 'dev-1', 'SECRET'": the first row, a secret, in the message.
    message = _error(_write(tmp_path, "in.csv", b"dev-1,Z9SECRET\ndev-2,Z9OTHER\n"))
    assert "no DeviceName column among the 2 columns of the first line" in message
    assert "must be a header naming DeviceName and DeviceSecret" in message
    assert MARK not in message
    assert "dev-1" not in message


def test_encrypted_headerless_file(tmp_path: Path) -> None:
    path = _write(tmp_path, "in.csv.age", pyrage.encrypt(b"dev-1,Z9SECRET\n", [_KEY.to_public()]))
    identity = tmp_path / "key.txt"
    identity.write_text(f"{_KEY}\n")
    identity.chmod(0o600)
    message = _error(path, identity)
    assert "2 columns" in message
    assert MARK not in message


def test_reasons_do_not_quote_even_the_offending_character(tmp_path: Path) -> None:
    path = tmp_path / "in.parquet"
    pl.DataFrame(
        {
            "DeviceName": ["Z9~abc", "dev\n0001", "dev-0003"],
            "DeviceSecret": ["ok", "ok", "Z9 secret"],
            "Nickname": ["Z9~", None, "n-x"],
        }
    ).write_parquet(path)
    table = read_import(path)
    reasons = table.rejected.get_column("reason").to_list()
    assert reasons == [
        "DeviceName has a character outside A-Z a-z 0-9 - _ @ . :; "
        "Nickname may hold only letters, digits, _ and Chinese characters",
        "DeviceName has a character outside A-Z a-z 0-9 - _ @ . :",
        "DeviceSecret has a character outside A-Z a-z 0-9 - _ @ . :; "
        "Nickname may hold only letters, digits, _ and Chinese characters",
    ]
    assert table.rejected.get_column("DeviceName").to_list() == [None, None, "dev-0003"]
    assert table.rejected.get_column("Nickname").to_list() == [None, None, None]
