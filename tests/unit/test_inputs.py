"""provisioner.inputs: reading, vectorised validation, rejects file and fingerprint."""

from __future__ import annotations

import errno
import hashlib
import stat
from pathlib import Path

import polars as pl
import polars.exceptions as pl_exc
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from structlog.testing import capture_logs

from provisioner.errors import InputError, OutputError
from provisioner.inputs import (
    REJECTS_COLUMNS,
    InputTable,
    fingerprint,
    read_devices,
    validate_frame,
    write_rejects,
)
from provisioner.inputs import digest as inputs_digest
from provisioner.inputs import files as input_files
from provisioner.naming import device_name_problem, nickname_problem

SAMPLE = Path(__file__).resolve().parents[2] / "sample_data"


def _write(tmp_path: Path, name: str, data: bytes | str) -> Path:
    path = tmp_path / name
    path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    return path


def _frame(names: list[str | None], nicks: list[str | None] | None = None) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "line": list(range(2, len(names) + 2)),
            "DeviceName": names,
            "Nickname": nicks if nicks is not None else [None] * len(names),
        },
        schema={"line": pl.Int64, "DeviceName": pl.String, "Nickname": pl.String},
    )


def _reasons(table: InputTable) -> dict[int, str]:
    return dict(table.rejected.select("line", "reason").iter_rows())


# --------------------------------------------------------------------------- properties

_NAME_CHARS = "ABCXYZabcxyz0189-_@.:"
_ODD_CHARS = " \t\n\r#,\"'/é温０٣ßK\u00a0\u3000😀"
_NICK_CHARS = "ABCxyz019_温度一鿿"
_NICK_ODD = "-. \t\n#é㐀豈０٣😀\u3000"
_no_surrogates = st.characters(exclude_categories=("Cs",))


def _mixed(allowed: str, odd: str, max_size: int) -> st.SearchStrategy[str]:
    return st.one_of(
        st.text(alphabet=allowed, max_size=max_size),
        st.text(alphabet=st.sampled_from(allowed + odd), max_size=max_size),
        st.text(alphabet=st.one_of(st.sampled_from(allowed), _no_surrogates), max_size=max_size),
    )


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_mixed(_NAME_CHARS, _ODD_CHARS, 40), min_size=1, max_size=12, unique=True))
@example(["abcd", "abc", "a" * 32, "a" * 33, "ab cd", "abcd\n", "", "温度计温度"])
def test_device_name_vectorised_agrees_with_naming(names: list[str]) -> None:
    table = validate_frame(_frame(list(names), ["nick_ok"] * len(names)))
    accepted = set(table.valid.get_column("DeviceName").to_list())
    reasons = _reasons(table)
    for line, name in enumerate(names, start=2):
        problem = device_name_problem(name)
        assert (name in accepted) == (problem is None), (name, problem)
        if problem is not None:
            assert reasons[line] == problem
    assert table.total == len(names)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_mixed(_NICK_CHARS, _NICK_ODD, 70), min_size=1, max_size=12))
@example(["abc", "abcd", "温度", "温", "a" * 64, "a" * 65, "温" * 32, "温" * 31 + "ab", "   "])
@example(["ab\n\n", "abcd\n", "㐀㐀㐀㐀", "豈豈豈豈"])
def test_nickname_vectorised_agrees_with_naming(nicks: list[str]) -> None:
    names = [f"dev-{i:04d}" for i in range(len(nicks))]
    table = validate_frame(_frame(names, list(nicks)))
    valid = dict(table.valid.select("DeviceName", "Nickname").iter_rows())
    reasons = _reasons(table)
    for line, (name, nick) in enumerate(zip(names, nicks, strict=True), start=2):
        if nick == "":
            assert valid[name] is None  # an empty cell is "no nickname", not an error
            continue
        problem = nickname_problem(nick)
        assert (name in valid) == (problem is None), (nick, problem)
        if problem is None:
            assert valid[name] == nick
        elif nick.isspace():
            assert reasons[line].startswith("Nickname is only whitespace")
        else:
            assert reasons[line] == problem


def test_trailing_newline_is_rejected_with_a_reason() -> None:
    table = validate_frame(_frame(["abcd\n", "abce"], [None, "abcd\n"]))
    assert table.valid.height == 0
    assert _reasons(table) == {
        2: "DeviceName has a character outside A-Z a-z 0-9 - _ @ . : ('\\n')",
        3: "Nickname may hold only letters, digits, _ and Chinese characters "
        "('\\n' is not allowed)",
    }


def test_nickname_checker_crash_still_gives_a_reason() -> None:
    # A control character in a nickname once crashed the checker; one odd cell
    # must never crash the whole read.
    table = validate_frame(_frame(["abcd"], ["ab\n\n"]))
    assert "'\\n'" in _reasons(table)[2]


def test_naming_rejects_trailing_newline() -> None:
    assert device_name_problem("abcd\n") is not None
    assert nickname_problem("abcd\n") is not None


# --------------------------------------------------------------------------- validation rules


def test_empty_cells_blank_rows_and_several_reasons() -> None:
    table = validate_frame(
        _frame(
            ["abcd", "", None, "abce", None, "ab", "abcf"],
            ["", "", None, None, "nick_only", "x", "   "],
        )
    )
    assert table.valid.rows() == [(2, "abcd", None), (5, "abce", None)]
    # Lines 3 and 4 are records with no value at all: rejected, not dropped (they were
    # skipped without a word before), so rows read = valid + rejected.
    assert table.total == 7 == table.valid.height + table.rejected.height
    assert _reasons(table) == {
        3: "empty row: no DeviceName",
        4: "empty row: no DeviceName",
        6: "DeviceName is empty",
        7: "DeviceName must be 4-32 characters, got 2; "
        "Nickname must be 4-64 characters (Chinese count 2), got 1",
        8: "Nickname is only whitespace; leave the cell empty for no nickname",
    }
    assert table.rejected.get_column("DeviceName").to_list() == [None, None, None, "ab", "abcf"]


def test_duplicates_name_the_first_line() -> None:
    names = ["dev-1", "dev-2", "dev-1", "dev-3", "dev-2", "dev-1", "Dev-1"]
    table = validate_frame(_frame(names))
    assert table.valid.get_column("line").to_list() == [2, 3, 5, 8]
    assert _reasons(table) == {
        4: "duplicate of line 2",
        6: "duplicate of line 3",
        7: "duplicate of line 2",
    }


def test_duplicate_of_a_rejected_row_is_still_a_duplicate() -> None:
    table = validate_frame(_frame(["dev-1", "dev-1", "ab", "ab"], ["x", "good_nick", None, None]))
    assert table.valid.height == 0
    reasons = _reasons(table)
    assert reasons[3] == "duplicate of line 2"
    assert reasons[5] == reasons[4] == "DeviceName must be 4-32 characters, got 2"


def test_chinese_counts_two() -> None:
    nicks = ["温度", "温度_1", "温" * 32, "温" * 33, "温度传感器_12"]
    table = validate_frame(_frame([f"dev-{i}" for i in range(5)], nicks))
    assert table.valid.get_column("Nickname").to_list() == [
        "温度",
        "温度_1",
        "温" * 32,
        "温度传感器_12",
    ]
    assert _reasons(table) == {5: "Nickname must be 4-64 characters (Chinese count 2), got 66"}


def test_output_schemas_even_when_empty() -> None:
    table = validate_frame(_frame([]))
    assert table.valid.schema == pl.Schema(
        {"line": pl.Int64, "DeviceName": pl.String, "Nickname": pl.String}
    )
    assert table.rejected.columns == list(REJECTS_COLUMNS)
    assert table.rejected.schema["reason"] == pl.String
    assert table.rejected.schema["line"] == pl.Int64
    assert table.total == 0


# --------------------------------------------------------------------------- reading CSV


def test_csv_with_bom_crlf_and_quotes(tmp_path: Path) -> None:
    data = (
        "\ufeffDeviceName,Nickname,Notes\r\n"
        '"SN-0001","line3_sensor_0001",\r\n'
        'SN-0002,"",\r\n'
        '"SN,0003",温度传感器_12,\r\n'
        'SN-0004,x,"two\r\nlines"\r\n'
        "SN-0005,温度传感器_12,\r\n"
    )
    table = read_devices(_write(tmp_path, "d.csv", data))
    assert table.valid.rows() == [
        (2, "SN-0001", "line3_sensor_0001"),
        (3, "SN-0002", None),
        # The quoted newline above does not shift the lines after it (it once made this
        # physical line 7 read as line 6).
        (7, "SN-0005", "温度传感器_12"),
    ]
    reasons = _reasons(table)
    assert reasons[4] == "DeviceName has a character outside A-Z a-z 0-9 - _ @ . : (',')"
    assert reasons[5].startswith("Nickname must be 4-64")
    assert table.total == 5
    assert table.ignored_columns == ("Notes",)


def test_line_break_in_a_needed_cell_is_broken_quoting(tmp_path: Path) -> None:
    # It used to be one rejected row holding "SN-\r\n0004" (and whatever lines a stray
    # quote swallowed): now the file is refused, naming the line the record starts on.
    data = 'DeviceName,Nickname\r\nSN-0001,\r\n"SN-\r\n0004",x\r\nSN-0005,\r\n'
    message = _input_error(_write(tmp_path, "d.csv", data))
    assert "line 3: a DeviceName cell holds a line break" in message
    assert "fix the quoting" in message
    assert "0004" not in message


def test_lf_without_bom_and_blank_lines_keep_physical_lines(tmp_path: Path) -> None:
    path = _write(tmp_path, "d.csv", "DeviceName\nabcd\n\nabce\n\n\nab\n")
    table = read_devices(path)
    assert table.valid.rows() == [(2, "abcd", None), (4, "abce", None)]
    assert _reasons(table) == {7: "DeviceName must be 4-32 characters, got 2"}
    assert table.total == 3


@pytest.mark.parametrize(
    ("header", "expected_nick"),
    [
        ("DeviceName,Nickname", "nick_1"),
        ("device_name,nickname", "nick_1"),
        ("device_name,DeviceNickname", "nick_1"),
        ("DeviceName , Nickname", "nick_1"),  # spaces around header names are forgiven
        ("DeviceName,Other", None),
    ],
)
def test_column_aliases(tmp_path: Path, header: str, expected_nick: str | None) -> None:
    table = read_devices(_write(tmp_path, "d.csv", f"{header}\nabcd,nick_1\n"))
    assert table.valid.rows() == [(2, "abcd", expected_nick)]


def test_ignored_columns_are_logged_and_returned(tmp_path: Path) -> None:
    path = _write(tmp_path, "d.csv", "Site,DeviceName,Batch,Nickname\nsz,abcd,7,nick_1\n")
    with capture_logs() as logs:
        table = read_devices(path)
    assert table.ignored_columns == ("Site", "Batch")
    assert logs == [
        {
            "event": "input.columns_ignored",
            "log_level": "warning",
            "path": str(path),
            "columns": ["Site", "Batch"],
        }
    ]
    assert table.valid.columns == ["line", "DeviceName", "Nickname"]


def test_no_event_without_ignored_columns(tmp_path: Path) -> None:
    with capture_logs() as logs:
        read_devices(_write(tmp_path, "d.csv", "DeviceName\nabcd\n"))
    assert logs == []


def test_txt_and_upper_case_extension(tmp_path: Path) -> None:
    assert read_devices(_write(tmp_path, "d.txt", "DeviceName\nabcd\n")).valid.height == 1
    assert read_devices(_write(tmp_path, "D.CSV", "DeviceName\nabcd\n")).valid.height == 1


def test_header_only_is_zero_rows(tmp_path: Path) -> None:
    table = read_devices(_write(tmp_path, "d.csv", "DeviceName,Nickname\n"))
    assert (table.total, table.valid.height, table.rejected.height) == (0, 0, 0)


def test_large_file_keeps_file_order(tmp_path: Path) -> None:
    n = 120_000
    rows = "".join(f"dev-{i:07d},{'' if i % 3 else 'n_' + str(i).zfill(4)}\n" for i in range(n))
    bad = "ab,\n"
    table = read_devices(_write(tmp_path, "d.csv", "DeviceName,Nickname\n" + rows + bad))
    lines = table.valid.get_column("line")
    assert lines.to_list() == list(range(2, n + 2))
    assert table.valid.get_column("DeviceName").head(3).to_list() == [
        "dev-0000000",
        "dev-0000001",
        "dev-0000002",
    ]
    assert _reasons(table) == {n + 2: "DeviceName must be 4-32 characters, got 2"}


def test_sample_files() -> None:
    devices = read_devices(SAMPLE / "devices.csv")
    assert devices.rejected.height == 0
    assert devices.total == devices.valid.height >= 3000
    nicks = devices.valid.get_column("Nickname")
    assert 0.4 < 1 - nicks.null_count() / nicks.len() < 0.6
    assert nicks.str.contains("[\u4e00-\u9fff]").any()
    errors = read_devices(SAMPLE / "devices_with_errors.csv")
    assert errors.total == 50
    reasons = errors.rejected.get_column("reason").to_list()
    for fragment in (
        "DeviceName is empty",
        "DeviceName must be 4-32",
        "DeviceName has a character outside",
        "Nickname may hold only",
        "Nickname must be 4-64",
        "Nickname is only whitespace",
        "duplicate of line 2",
    ):
        assert any(fragment in r for r in reasons), fragment


# --------------------------------------------------------------------------- reading Parquet


@pytest.mark.parametrize("suffix", [".parquet", ".pq"])
def test_parquet(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"d{suffix}"
    pl.DataFrame(
        {
            "device_name": ["abcd", "ab", "abcd", "温度计"],
            "DeviceNickname": [None, "nick_1", "", "x"],
            "extra": [1, 2, 3, 4],
        }
    ).write_parquet(path)
    table = read_devices(path)
    assert table.valid.rows() == [(2, "abcd", None)]  # row 1 is line 2, like a CSV export
    assert sorted(_reasons(table)) == [3, 4, 5]
    assert _reasons(table)[4] == "duplicate of line 2"
    assert table.ignored_columns == ("extra",)


def test_parquet_integer_and_categorical_columns_read_as_text(tmp_path: Path) -> None:
    path = tmp_path / "d.parquet"
    pl.DataFrame(
        {"DeviceName": [12345678, 87654321], "Nickname": ["nick_1", "nick_2"]},
        schema={"DeviceName": pl.Int64, "Nickname": pl.Categorical},
    ).write_parquet(path)
    assert read_devices(path).valid.rows() == [(2, "12345678", "nick_1"), (3, "87654321", "nick_2")]


def test_csv_and_parquet_of_the_same_rows_have_the_same_fingerprint(tmp_path: Path) -> None:
    csv = read_devices(SAMPLE / "devices.csv")
    pq = tmp_path / "d.parquet"
    csv.valid.select("DeviceName", "Nickname").write_parquet(pq)
    assert fingerprint(read_devices(pq).valid) == fingerprint(csv.valid)


# --------------------------------------------------------------------------- errors


def _input_error(path: Path) -> str:
    with pytest.raises(InputError) as info:
        read_devices(path)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: ")
    assert info.value.exit_code == 3
    return message


@pytest.mark.parametrize(
    ("name", "data", "fragment"),
    [
        ("empty.csv", b"", "the file is empty"),
        ("bom_only.csv", b"\xef\xbb\xbf", "the file is empty"),
        ("newlines.csv", b"\n\n", "the file is empty"),
        (
            "not_utf8.csv",
            b"DeviceName\nabcd\nab\xffcd\n",
            "not UTF-8 text (first bad byte on line 3)",
        ),
        ("latin1.csv", "DeviceName,Nickname\nabcd,Müller\n".encode("latin-1"), "not UTF-8"),
        ("truncated.csv", b"DeviceName\nabcd\n\xe6", "first bad byte on line 3"),
        ("more_fields.csv", b"DeviceName,Nickname\nabcd,x,y\n", "malformed CSV"),
        ("unterminated.csv", b'DeviceName,Nickname\nabcd,"xy\nabce,z\n', "malformed CSV"),
        ("stray_quote.csv", b'DeviceName,Nickname\nab"cd,x\n', "malformed CSV"),
        (
            "no_column.csv",
            b"Name,Nickname\nabcd,x\n",
            "no DeviceName column (columns found: 'Name'",
        ),
        ("cr_only.csv", b"DeviceName\rabcd\r", "carriage return"),
        ("two.csv", b"DeviceName,device_name\nabcd,abce\n", "several DeviceName columns"),
        ("dup.csv", b"DeviceName,DeviceName\nabcd,abce\n", "several DeviceName columns"),
        ("nicks.csv", b"DeviceName,Nickname,nickname\nabcd,x,y\n", "several Nickname columns"),
        ("devices.json", b"[]", "unknown file type .json; name the file with one of .csv"),
        ("devices", b"DeviceName\n", "unknown file type (no extension)"),
        ("empty.parquet", b"", "the file is empty; export the Parquet file again"),
        ("garbage.parquet", b"DeviceName\nabcd\n", "not a readable Parquet file"),
    ],
)
def test_input_errors(tmp_path: Path, name: str, data: bytes, fragment: str) -> None:
    assert fragment in _input_error(_write(tmp_path, name, data))


def test_missing_file_and_directory(tmp_path: Path) -> None:
    assert "no such file; check the path" in _input_error(tmp_path / "nope.csv")
    (tmp_path / "dir.csv").mkdir()
    assert "is a directory" in _input_error(tmp_path / "dir.csv")


@pytest.mark.parametrize(
    ("exc", "fragment"),
    [
        (PermissionError(errno.EACCES, "Permission denied"), "permission denied"),
        (OSError(errno.EIO, "Input/output error"), "cannot be read (Input/output error)"),
    ],
)
def test_unreadable_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, exc: OSError, fragment: str
) -> None:
    # Tests may run as root, where chmod 000 does not stop a read: fake the refusal.
    path = _write(tmp_path, "d.csv", "DeviceName\nabcd\n")

    def refuse(*_args: object, **_kwargs: object) -> object:
        raise exc

    monkeypatch.setattr(Path, "open", refuse)
    assert fragment in _input_error(path)


def test_parquet_column_types(tmp_path: Path) -> None:
    nested = tmp_path / "nested.parquet"
    pl.DataFrame({"DeviceName": [[1, 2]]}).write_parquet(nested)
    assert "column DeviceName has type List(Int64); store it as a string" in _input_error(nested)
    floats = tmp_path / "floats.parquet"
    pl.DataFrame({"DeviceName": ["abcd"], "Nickname": [1.5]}).write_parquet(floats)
    assert "column Nickname has type Float64" in _input_error(floats)
    nocol = tmp_path / "nocol.parquet"
    pl.DataFrame({"name": ["abcd"]}).write_parquet(nocol)
    assert "no DeviceName column (columns found: 'name'); add a DeviceName column" in (
        _input_error(nocol)
    )


@pytest.mark.parametrize(
    ("suffix", "exc", "fragment"),
    [
        (".csv", FileNotFoundError(errno.ENOENT, "gone"), "no such file"),
        (".csv", PermissionError(errno.EACCES, "Permission denied"), "permission denied"),
        (".csv", OSError(errno.EIO, "Input/output error"), "cannot be read (Input/output error)"),
        (".csv", pl_exc.ColumnNotFoundError('"DeviceName" not found\nhint'), "needed column"),
        (".csv", pl_exc.PanicException("boom\nbacktrace"), "malformed CSV (boom)"),
        (".parquet", pl_exc.ComputeError("invalid utf-8 sequence"), "not UTF-8 text; save"),
        # At most a short prefix of the parser's detail: it may quote the file.
        (".csv", pl_exc.ComputeError("x" * 300 + "\nmore"), "(" + "x" * 40 + "…)"),
    ],
)
def test_errors_while_reading_are_translated(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    suffix: str,
    exc: BaseException,
    fragment: str,
) -> None:
    # The file can vanish or fail between the checks and the read: polars then raises.
    path = tmp_path / f"d{suffix}"
    if suffix == ".csv":
        path.write_text("DeviceName\nabcd\n")
    else:
        pl.DataFrame({"DeviceName": ["abcd"]}).write_parquet(path)

    def failing_collect(*_args: object, **_kwargs: object) -> pl.DataFrame:
        raise exc

    monkeypatch.setattr(pl.LazyFrame, "collect", failing_collect)
    message = _input_error(path)
    assert fragment in message
    assert "hint" not in message
    assert "backtrace" not in message


def test_input_error_chains_the_cause(tmp_path: Path) -> None:
    with pytest.raises(InputError) as info:
        read_devices(_write(tmp_path, "d.csv", b"DeviceName\nab\xff\n"))
    assert isinstance(info.value.__cause__, pl_exc.ComputeError)


def test_utf8_locator_survives_a_vanished_file(tmp_path: Path) -> None:
    # The locator lives in provisioner.inputs.files with the rest of the file handling.
    locate = input_files._first_non_utf8_line
    assert locate(input_files.Source(tmp_path / "gone.csv", "csv")) is None
    ok = _write(tmp_path, "ok.csv", "DeviceName\n")
    assert locate(input_files.Source(ok, "csv")) is None


# --------------------------------------------------------------------------- rejects file


def test_write_rejects(tmp_path: Path) -> None:
    table = validate_frame(_frame(["ab", "abcd", "abcd", "a,b"], ["温", None, 'x"y', None]))
    out = tmp_path / "rejects.csv"
    write_rejects(table.rejected, out)
    assert out.read_text(encoding="utf-8").splitlines()[0] == "line,DeviceName,Nickname,reason"
    back = pl.read_csv(out, infer_schema=False)
    assert back.columns == list(REJECTS_COLUMNS)
    assert back.get_column("line").to_list() == ["2", "4", "5"]
    assert back.get_column("DeviceName").to_list() == ["ab", "abcd", "a,b"]
    assert back.get_column("Nickname").to_list() == ["温", 'x"y', None]
    assert back.get_column("reason").to_list() == table.rejected.get_column("reason").to_list()
    assert [p.name for p in tmp_path.iterdir()] == ["rejects.csv"]  # no temp file left


def test_write_rejects_replaces_and_keeps_header_when_empty(tmp_path: Path) -> None:
    out = _write(tmp_path, "rejects.csv", "old content\n")
    write_rejects(validate_frame(_frame(["abcd"])).rejected, out)
    assert out.read_text() == "line,DeviceName,Nickname,reason\n"
    # Private like every file we write (it was 0666 & ~umask before).
    assert stat.S_IMODE(out.stat().st_mode) == 0o600


@pytest.mark.parametrize("target", ["missing/rejects.csv", "adir"])
def test_write_rejects_errors(tmp_path: Path, target: str) -> None:
    (tmp_path / "adir").mkdir()
    (tmp_path / "adir" / "keep").write_text("x")
    rejected = validate_frame(_frame(["ab"])).rejected
    with pytest.raises(OutputError) as info:
        write_rejects(rejected, tmp_path / target)
    assert "\n" not in str(info.value)
    assert "cannot write the rejects file" in str(info.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adir"]  # temp file removed
    assert [p.name for p in (tmp_path / "adir").iterdir()] == ["keep"]


# --------------------------------------------------------------------------- fingerprint


def _reference_fingerprint(pairs: list[tuple[str, str | None]]) -> str:
    # The documented encoding, written out independently of the polars implementation.
    digest = hashlib.sha256(b"provisioner.fingerprint.v1\n")
    for name, nick in pairs:
        part = f"{len(name.encode())}:{name}"
        part += "-" if nick is None else f"+{len(nick.encode())}:{nick}"
        digest.update(part.encode())
    return digest.hexdigest()


def test_fingerprint_matches_the_documented_encoding() -> None:
    pairs: list[tuple[str, str | None]] = [
        ("abcd", None),
        ("SN-1:2", "温度传感器_12"),
        ("x@y.z", ""),
    ]
    frame = pl.DataFrame(
        {"line": [2, 3, 4], "DeviceName": [p[0] for p in pairs], "Nickname": [p[1] for p in pairs]}
    )
    assert fingerprint(frame) == _reference_fingerprint(pairs)
    assert fingerprint(frame.head(0)) == _reference_fingerprint([])


def test_fingerprint_is_stable_and_sensitive() -> None:
    base = _frame(["abcd", "efgh"], ["nick_1", None])
    same_rows_other_lines = base.with_columns(pl.col("line") + 10)
    assert fingerprint(base) == fingerprint(same_rows_other_lines)
    assert fingerprint(base) == fingerprint(base.clone())
    others = [
        _frame(["efgh", "abcd"], [None, "nick_1"]),  # order
        _frame(["abcd", "efgh"], ["nick_1", "nick_2"]),  # a nickname added
        _frame(["abcde", "fgh"], ["nick_1", None]),  # a boundary moved
        _frame(["abcd"], ["nick_1"]),  # a row dropped
    ]
    assert len({fingerprint(f) for f in [base, *others]}) == 5


def test_fingerprint_does_not_depend_on_slicing(monkeypatch: pytest.MonkeyPatch) -> None:
    frame = _frame([f"dev-{i:05d}" for i in range(2500)], [None, "nick_1"] * 1250)
    whole = fingerprint(frame)
    monkeypatch.setattr(inputs_digest, "_FINGERPRINT_SLICE", 7)
    assert fingerprint(frame) == whole
