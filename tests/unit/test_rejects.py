"""Rejects files: private from the first byte, atomic, formula cells neutralised, bounded.

Before the fix a rejects file was created 0666 & ~umask, cells starting with ``=`` and
friends were written as they came (a spreadsheet runs them), and an over-long cell was
copied whole (a 1 KB Parquet file made a 1.25 GB rejects file).
"""

from __future__ import annotations

import csv
import errno
import io
import os
import stat
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from provisioner.errors import OutputError
from provisioner.inputs import REJECTS_COLUMNS, ReadLimits, read_devices, rejects, write_rejects
from provisioner.output import _atomic
from provisioner.output.spreadsheet import FORMULA_STARTS, excel_safe, excel_safe_csv

_SETTINGS = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
_cells = st.one_of(
    st.none(),
    st.text(alphabet=st.sampled_from("=+-@\t\r\n'\",a1 温"), max_size=8),
    st.text(max_size=8).filter(lambda t: "\x00" not in t),
)


def _frame(rows: list[tuple[int, str | None, str | None, str]]) -> pl.DataFrame:
    return pl.DataFrame(
        rows,
        schema={
            "line": pl.Int64,
            "DeviceName": pl.String,
            "Nickname": pl.String,
            "reason": pl.String,
        },
        orient="row",
    )


def _read_back(path: Path) -> list[list[str]]:
    with path.open(encoding="utf-8", newline="") as fh:
        return list(csv.reader(fh))


@_SETTINGS
@given(st.lists(st.tuples(st.integers(2, 10**6), _cells, _cells, _cells), max_size=10))
def test_every_cell_is_neutralised_and_read_back_exactly(
    tmp_path: Path, rows: list[tuple[int, str | None, str | None, str | None]]
) -> None:
    out = tmp_path / "r.csv"
    write_rejects(_frame([(n, a, b, c or "r") for n, a, b, c in rows]), out)
    back = _read_back(out)
    assert back[0] == list(REJECTS_COLUMNS)
    assert len(back) == len(rows) + 1
    for (line, name, nick, reason), got in zip(rows, back[1:], strict=True):
        assert got == [
            str(line),
            excel_safe(name or ""),
            excel_safe(nick or ""),
            excel_safe(reason or "r"),
        ]
        assert not any(cell.startswith(FORMULA_STARTS) for cell in got)


@pytest.mark.parametrize(
    ("cell", "written"),
    [
        ('=HYPERLINK("http://x")', '\'=HYPERLINK("http://x")'),
        ("+1", "'+1"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\t=1", "'\t=1"),
        ("\r=1", "'\r=1"),
        ("a=1", "a=1"),
        ("'=1", "'=1"),
    ],
)
def test_formula_starts(cell: str, written: str) -> None:
    assert excel_safe(cell) == written


@_SETTINGS
@given(st.lists(st.lists(_cells.map(lambda c: c or ""), min_size=1, max_size=4), max_size=6))
def test_excel_safe_csv_is_the_same_function_on_a_document(rows: list[list[str]]) -> None:
    buffer = io.StringIO(newline="")
    csv.writer(buffer, lineterminator="\n", quoting=csv.QUOTE_ALL).writerows(rows)
    out = excel_safe_csv(buffer.getvalue().encode("utf-8")).decode("utf-8")
    back = list(csv.reader(io.StringIO(out, newline="")))
    assert back == [[excel_safe(c) for c in row] for row in rows]


@pytest.mark.parametrize("umask", [0o000, 0o022, 0o077])
def test_private_from_the_first_byte(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, umask: int
) -> None:
    opened: list[tuple[str, int, int]] = []
    real_open = os.open

    def spy(path: str | os.PathLike[str], flags: int, mode: int = 0o777, **kw: object) -> int:
        opened.append((os.fspath(path), flags, mode))
        return real_open(path, flags, mode)

    monkeypatch.setattr(_atomic.os, "open", spy)
    old = os.umask(umask)
    try:
        write_rejects(_frame([(2, "ab", None, "short")]), tmp_path / "r.csv")
    finally:
        os.umask(old)
    created = [(p, f, m) for p, f, m in opened if f & os.O_CREAT]
    assert len(created) == 1
    path, flags, mode = created[0]
    assert Path(path).parent == tmp_path
    assert Path(path).name != "r.csv"
    assert flags & os.O_EXCL
    assert mode == 0o600
    assert stat.S_IMODE((tmp_path / "r.csv").stat().st_mode) == 0o600


def test_a_failed_write_leaves_the_old_file_and_no_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "r.csv"
    out.write_text("old\n")

    def full(*_args: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(rejects, "write_csv_rows", full)
    with pytest.raises(OutputError, match="No space left on device"):
        write_rejects(_frame([(2, "ab", None, "short")]), out)
    assert out.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["r.csv"]


def test_written_through_fsync_rename_and_directory_fsync(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The rename is made durable too (the directory is fsynced): before, it was not.
    calls: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        calls.append("fsync dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "fsync file")
        real_fsync(fd)

    def replace(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        calls.append("rename")
        real_replace(src, dst)

    monkeypatch.setattr(_atomic.os, "fsync", fsync)
    monkeypatch.setattr(_atomic.os, "replace", replace)
    write_rejects(_frame([(2, "ab", None, "short")]), tmp_path / "r.csv")
    assert calls == ["fsync file", "rename", "fsync dir"]


def test_replace_false_refuses_an_existing_path(tmp_path: Path) -> None:
    out = tmp_path / "r.csv"
    out.write_text("keep\n")
    link = tmp_path / "dangling.csv"
    link.symlink_to(tmp_path / "nowhere")
    for target in (out, link):
        with pytest.raises(OutputError, match="exists; pass --force"):
            write_rejects(_frame([]), target, replace=False)
    assert out.read_text() == "keep\n"
    write_rejects(_frame([]), out)  # the pipeline's own rejects are replaced on purpose
    assert out.read_text() == "line,DeviceName,Nickname,reason\n"


def test_a_huge_cell_is_not_copied_into_the_rejects_file(tmp_path: Path) -> None:
    # A dictionary-encoded column repeats one long string: tiny file, huge cells.
    path = tmp_path / "bomb.parquet"
    big = "A" * 200_000
    pl.DataFrame(
        {"DeviceName": pl.Series([big] * 50, dtype=pl.Categorical), "Nickname": ["n" * 70] * 50}
    ).write_parquet(path)
    assert path.stat().st_size < 10_000
    table = read_devices(path, ReadLimits(max_cell_chars=1024))
    assert table.rejected.height == 50
    reason = table.rejected.get_column("reason")[0]
    assert reason == (
        "DeviceName is 200000 characters long; at most 32 are allowed; "
        "Nickname must be 4-64 characters (Chinese count 2), got 70"
    )
    out = tmp_path / "r.csv"
    write_rejects(table.rejected, out)
    assert out.stat().st_size < 50 * 200
    rows = _read_back(out)[1:]
    assert {r[1] for r in rows} == {""}  # a cell over the limit is not read at all
    assert {r[2] for r in rows} == {"n" * 40 + "…"}  # at most 40 characters repeated


def test_a_long_cell_is_echoed_as_a_short_prefix(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_text("DeviceName\n" + "=" + "x" * 99 + "\n")
    table = read_devices(path)
    (name,) = table.rejected.get_column("DeviceName").to_list()
    assert name == "=" + "x" * 39 + "…"
    assert table.rejected.get_column("reason")[0] == ("DeviceName must be 4-32 characters, got 100")
    out = tmp_path / "r.csv"
    write_rejects(table.rejected, out)
    assert _read_back(out)[1][1] == "'=" + "x" * 39 + "…"
