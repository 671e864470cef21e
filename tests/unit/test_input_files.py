"""What a file really is, limits, and messages that quote nothing long (inputs.files).

Before: an Excel workbook, a gzip file or UTF-16 text gave a one-liner of escaped bytes
("not UTF-8" or "malformed CSV (could not parse `PK\\x03...`)"), a header of any length was
quoted whole, a CSV quoting error did not say where, and nothing capped rows or cells.
"""

from __future__ import annotations

import codecs
import gzip
import io
import re
from collections.abc import Callable
from pathlib import Path

import polars as pl
import pyrage
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from structlog.testing import capture_logs

from provisioner.errors import InputError, UsageError
from provisioner.inputs import ReadLimits, read_devices, read_import

_SETTINGS = settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
_CSV = b"DeviceName,Nickname\r\nabcd,nick_1\r\nabce,\r\n"


def _xlsx() -> bytes:
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("xl/workbook.xml", "<workbook/>")
    return buffer.getvalue()


def _message(path: Path, *, reader: str = "run") -> str:
    read: Callable[[Path], object] = read_devices if reader == "run" else read_import
    with pytest.raises(InputError) as info:
        read(path)
    message = str(info.value)
    assert "\n" not in message
    assert "\\x" not in message  # no escaped bytes
    assert message.startswith(f"{path}: ")
    return message


@pytest.mark.parametrize("reader", ["run", "import"])
@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        (_xlsx(), "this is an Excel workbook (or another ZIP file), not CSV; save it as CSV UTF-8"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 100, "an old Excel workbook (.xls)"),
        (gzip.compress(_CSV), "compressed with gzip; decompress it first (gunzip FILE)"),
        (b"\x28\xb5\x2f\xfd" + b"\x00" * 10, "compressed with zstd"),
        (codecs.BOM_UTF32_LE + _CSV.decode().encode("utf-32-le"), "UTF-32 text; save it as UTF-8"),
        (b"DeviceName\nab\x00cd\x00\n", "not a text CSV file (it holds NUL bytes"),
        (b"age-encryption.org/v1\n-> X25519 abc\n", "the file is age-encrypted"),
    ],
)
def test_what_the_file_really_is(tmp_path: Path, data: bytes, fragment: str, reader: str) -> None:
    path = tmp_path / "devices.csv"
    path.write_bytes(data)
    assert fragment in _message(path, reader=reader)


def test_xlsx_named_parquet_says_so_too(tmp_path: Path) -> None:
    path = tmp_path / "d.parquet"
    path.write_bytes(_xlsx())
    assert "Excel workbook" in _message(path)


@pytest.mark.parametrize("encoding", ["utf-16-le", "utf-16-be"])
def test_utf16_with_bom_is_decoded(tmp_path: Path, encoding: str) -> None:
    plain = tmp_path / "plain.csv"
    plain.write_bytes(_CSV)
    wide = tmp_path / "wide.csv"
    wide.write_bytes("\ufeff".encode(encoding) + _CSV.decode().encode(encoding))
    got, expected = read_devices(wide), read_devices(plain)
    assert got.valid.rows() == expected.valid.rows() == [(2, "abcd", "nick_1"), (3, "abce", None)]


def test_broken_utf16_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_bytes(codecs.BOM_UTF16_LE + "DeviceName\n".encode("utf-16-le") + b"\x00\xd8A")
    assert "not valid UTF-16; save it as UTF-8" in _message(path)


def test_parquet_named_csv_is_read_as_parquet_with_a_warning(tmp_path: Path) -> None:
    path = tmp_path / "devices.csv"
    pl.DataFrame({"DeviceName": ["abcd", "ab"]}).write_parquet(path)
    with capture_logs() as logs:
        table = read_devices(path)
    assert table.valid.rows() == [(2, "abcd", None)]
    assert {"event": "input.parquet_named_csv", "log_level": "warning", "path": str(path)} in logs


@_SETTINGS
@given(
    st.one_of(
        st.binary(min_size=1, max_size=300),
        st.text(alphabet='ab",\n\r\x00é', max_size=300).map(lambda t: t.encode("utf-8")),
    )
)
@example(data=b'"' + b"y" * 100 + b",x\nabce,z\n")  # the parser's detail quoted 100 y's
def test_any_bytes_give_a_table_or_one_short_line(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "d.csv"
    path.write_bytes(b"DeviceName,Notes\n" + data)
    try:
        table = read_devices(path)
    except InputError as exc:
        message = str(exc).removeprefix(f"{path}: ")
        assert "\n" not in message
        assert "\\x" not in message
        assert len(message) < 320
        text = data.decode("utf-8", errors="ignore")
        for start in range(max(0, len(text) - 40)):
            assert text[start : start + 41] not in message  # never more than 40 characters
    else:
        assert table.total == table.valid.height + table.rejected.height


# --------------------------------------------------------------------------- quoting errors


@_SETTINGS
@given(
    st.lists(st.sampled_from(["dev-0001,n_1", "dev-0002,", "SN:0003,n_3"]), min_size=1, max_size=8),
    st.data(),
    st.sampled_from(['ab"cd,x', '"abcd,x', 'abcd,"x', 'abcd,x"']),
    st.sampled_from(["\n", "\r\n"]),
    st.sampled_from(["run", "import"]),
)
def test_a_stray_quote_is_reported_at_its_line(
    tmp_path: Path, rows: list[str], data: st.DataObject, stray: str, eol: str, reader: str
) -> None:
    index = data.draw(st.integers(0, len(rows) - 1))
    lines = list(rows)
    lines[index] = stray
    header = "DeviceName,Nickname" if reader == "run" else "DeviceName,DeviceSecret"
    path = tmp_path / "d.csv"
    path.write_text(eol.join([header, *lines]) + eol, newline="")
    message = _message(path, reader=reader)
    line = index + 2
    assert re.search(rf"\bline {line}\b", message), message
    assert "quot" in message  # says what to fix: the quoting


def test_more_fields_than_the_header_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_text("DeviceName,Nickname\nabcd,x\nabce,y,z\n")
    assert "line 3 has 3 fields but the header has 2" in _message(path)


# --------------------------------------------------------------------------- headers


def test_run_headers_are_quoted_short(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    long_name = "N" * 500
    path.write_text(f"{long_name},Other\nabcd,x\n")
    message = _message(path)
    assert f"'{'N' * 40}…'" in message
    assert "N" * 41 not in message


# --------------------------------------------------------------------------- limits


def test_too_many_rows_is_refused_with_how_to_raise_the_limit(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_text("DeviceName\nabcd\nabce\nabcf\n\n\n")  # empty lines are not rows
    assert read_devices(path, ReadLimits(max_rows=3)).total == 3
    path.write_text("DeviceName\nabcd\nabce\nabcf\nabcg\n")
    message = _message_with(path, ReadLimits(max_rows=3))
    assert "more than 3 rows" in message
    assert "PROVISIONER_MAX_ROWS=N" in message


def _message_with(path: Path, limits: ReadLimits) -> str:
    with pytest.raises(InputError) as info:
        read_devices(path, limits)
    assert "\n" not in str(info.value)
    return str(info.value)


def test_parquet_row_count_is_checked_before_loading(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "d.parquet"
    pl.DataFrame({"DeviceName": [f"dev-{i:04d}" for i in range(10)]}).write_parquet(path)
    engines: list[object] = []
    real = pl.LazyFrame.collect

    def spy(self: pl.LazyFrame, *args: object, **kwargs: object) -> pl.DataFrame:
        engines.append(kwargs.get("engine"))
        return real(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(pl.LazyFrame, "collect", spy)
    assert "more than 5 rows" in _message_with(path, ReadLimits(max_rows=5))
    assert "streaming" not in engines  # the rows were never loaded


def test_limits_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert ReadLimits() == ReadLimits(max_rows=10_000_000, max_cell_chars=1_024)
    monkeypatch.setenv("PROVISIONER_MAX_ROWS", "5")
    monkeypatch.setenv("PROVISIONER_MAX_CELL", "100")
    assert ReadLimits() == ReadLimits(max_rows=5, max_cell_chars=100)
    for name, value in [
        ("PROVISIONER_MAX_ROWS", "0"),
        ("PROVISIONER_MAX_ROWS", "many"),
        ("PROVISIONER_MAX_CELL", "10"),  # below the longest valid cell (64)
    ]:
        monkeypatch.setenv(name, value)
        with pytest.raises(UsageError, match=f"{name} must be a whole number"):
            ReadLimits()
        monkeypatch.delenv(name)


@_SETTINGS
@given(st.integers(64, 300), st.integers(0, 400))
def test_a_cell_over_the_limit_is_rejected_with_its_length(
    tmp_path: Path, cap: int, length: int
) -> None:
    path = tmp_path / "d.csv"
    path.write_text("DeviceName,Nickname\nabcd," + "n" * length + "\n")
    table = read_devices(path, ReadLimits(max_cell_chars=cap))
    assert table.total == 1
    if 4 <= length <= 64:
        assert table.valid.height == 1
        return
    if length == 0:
        assert table.valid.rows() == [(2, "abcd", None)]
        return
    (reason,) = table.rejected.get_column("reason").to_list()
    if length > cap:
        assert reason == f"Nickname is {length} characters long; at most 64 are allowed"
        assert table.rejected.get_column("Nickname").to_list() == [None]
    else:
        assert reason.endswith(f"got {length}")
        shown = table.rejected.get_column("Nickname")[0]
        assert shown == ("n" * length if length <= 40 else "n" * 40 + "…")


def test_import_limits(tmp_path: Path) -> None:
    path = tmp_path / "m.csv"
    path.write_text("DeviceName,DeviceSecret\nabcd," + "s" * 100 + "\nabce,s\nabcf,s\n")
    table = read_import(path, None, ReadLimits(max_cell_chars=64))
    assert table.rejected.get_column("reason").to_list() == [
        "DeviceSecret is 100 characters long; at most 32 are allowed"
    ]
    with pytest.raises(InputError, match="more than 2 rows"):
        read_import(path, None, ReadLimits(max_rows=2))


def test_encrypted_import_is_sniffed_after_decryption(tmp_path: Path) -> None:
    key = pyrage.x25519.Identity.generate()
    path = tmp_path / "m.csv.age"
    path.write_bytes(pyrage.encrypt(gzip.compress(b"DeviceName,DeviceSecret\n"), [key.to_public()]))
    identity = tmp_path / "k.txt"
    identity.write_text(f"{key}\n")
    identity.chmod(0o600)
    with pytest.raises(InputError, match="compressed with gzip"):
        read_import(path, identity)
