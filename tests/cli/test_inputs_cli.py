"""Input-file hardening as an operator meets it: ``validate``, ``decrypt --excel-safe``, ``import``.

One line on stderr, the documented exit code, no traceback, no cell of a migration file.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import stat
from pathlib import Path

import pyrage
import pytest
import typer
from structlog.testing import capture_logs
from typer.testing import CliRunner

from provisioner.commands.keys import decrypt_command
from provisioner.commands.validate import validate_command
from provisioner.output import OUTPUT_COLUMNS, CredentialWriter, load_encryption

_KEY = pyrage.x25519.Identity.generate()
_RECIPIENT = str(_KEY.to_public())


def _app() -> typer.Typer:
    app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    app.command("validate")(validate_command)
    app.command("decrypt")(decrypt_command)

    @app.callback()
    def _root() -> None:
        """Root, so that the commands stay named sub-commands as in provisioner.cli."""

    return app


def _run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(_app(), list(args), env=env)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def _write(tmp_path: Path, name: str, data: bytes | str) -> Path:
    path = tmp_path / name
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


# --------------------------------------------------------------------------- validate


def test_rows_that_used_to_vanish_are_counted(tmp_path: Path) -> None:
    path = _write(tmp_path, "d.csv", "DeviceName,Nickname\nabcd,\n,\nabce,\n\n")
    # Logging already configured (here: capturing) is left alone by a command without
    # --log-format (provisioner.log.setup_logging); here the events are captured.
    with capture_logs() as logs:
        code, out, _err = _run("validate", str(path))
    assert code == 3
    lines = out.splitlines()
    assert lines[0] == f"{path}: 3 rows, 2 valid, 1 rejected"  # was "2 rows, 2 valid, 0"
    assert lines[1] == "skipped 1 empty line (not rows): 5"
    assert "  line 3: '': empty row: no DeviceName" in lines
    assert [e["event"] for e in logs] == ["input.empty_lines_skipped"]


def test_existing_rejects_file_is_refused_without_force(tmp_path: Path) -> None:
    path = _write(tmp_path, "d.csv", "DeviceName\nab\n")
    rejects = _write(tmp_path, "r.csv", "precious\n")
    code, out, err = _run("validate", str(path), "--rejects", str(rejects))
    assert code == 2
    assert out == ""
    assert err == (
        f"error: {rejects} exists; pass --force to replace it or choose another --rejects path\n"
    )
    assert rejects.read_text() == "precious\n"
    code, _out, err = _run("validate", str(path), "--rejects", str(rejects), "--force")
    assert code == 3
    assert rejects.read_text().startswith("line,DeviceName,Nickname,reason\n2,ab,")
    assert stat.S_IMODE(rejects.stat().st_mode) == 0o600


def test_rejects_file_cannot_be_the_input(tmp_path: Path) -> None:
    path = _write(tmp_path, "d.csv", "DeviceName\nab\n")
    code, _out, err = _run("validate", str(path), "--rejects", str(path), "--force")
    assert code == 2
    assert "--rejects must not be the input file" in err
    assert path.read_text() == "DeviceName\nab\n"


def test_rejects_file_neutralises_formulas(tmp_path: Path) -> None:
    path = _write(tmp_path, "d.csv", 'DeviceName,Nickname\n"=1+2",@x\n-abc,+nick\n')
    rejects = tmp_path / "r.csv"
    code, _out, _err = _run("validate", str(path), "--rejects", str(rejects))
    assert code == 3
    rows = list(csv.reader(io.StringIO(rejects.read_text(encoding="utf-8"))))[1:]
    assert [r[1:3] for r in rows] == [["'=1+2", "'@x"], ["'-abc", "'+nick"]]


@pytest.mark.parametrize(
    ("name", "data", "fragment"),
    [
        ("d.csv", b"PK\x03\x04" + b"\x00" * 40, "Excel workbook"),
        ("d.csv", gzip.compress(b"DeviceName\nabcd\n"), "decompress it first"),
        ("d.csv", b"DeviceName\x00\x00\x01\x02", "not a text CSV file"),
        ("d.csv", b'DeviceName,Nickname\nabcd,x\nabce,"y\nabcf,z\n', "line 3"),
    ],
)
def test_unreadable_files_are_one_line_exit_3(
    tmp_path: Path, name: str, data: bytes, fragment: str
) -> None:
    path = _write(tmp_path, name, data)
    code, out, err = _run("validate", str(path))
    assert code == 3
    assert out == ""
    assert err.count("\n") == 1
    assert fragment in err
    assert "Traceback" not in err


def test_row_limit_from_the_environment(tmp_path: Path) -> None:
    path = _write(tmp_path, "d.csv", "DeviceName\nabcd\nabce\nabcf\n")
    code, _out, err = _run("validate", str(path), env={"PROVISIONER_MAX_ROWS": "2"})
    assert code == 3
    assert "more than 2 rows" in err
    assert "PROVISIONER_MAX_ROWS=N" in err
    code, _out, err = _run("validate", str(path), env={"PROVISIONER_MAX_ROWS": "lots"})
    assert code == 2
    assert err.count("\n") == 1
    assert "PROVISIONER_MAX_ROWS must be a whole number" in err


# --------------------------------------------------------------------------- decrypt


def _identity(tmp_path: Path) -> Path:
    identity = tmp_path / "id.txt"
    identity.write_text(f"{_KEY}\n")
    identity.chmod(0o600)
    return identity


def _encrypted(tmp_path: Path, fmt: str = "csv") -> Path:
    out = tmp_path / f"out.{fmt}.age"
    rows = [
        ("a1PK", "-dev-1", "S1", "iot1", "=HYPERLINK(1)", ""),
        ("a1PK", "@dev-2", "S2", "iot2", "", ""),
        ("a1PK", "dev-3", "S3", "iot3", "plain", "42"),
    ]
    with CredentialWriter(out, load_encryption([_RECIPIENT]), fmt=fmt) as writer:  # type: ignore[arg-type]
        writer.write(rows)
        writer.commit()
    return out


def test_decrypt_excel_safe_to_stdout_and_to_a_file(tmp_path: Path) -> None:
    source, identity = _encrypted(tmp_path), _identity(tmp_path)
    code, plain, _err = _run("decrypt", str(source), "--identity", str(identity))
    assert code == 0
    assert "a1PK,-dev-1,S1,iot1,=HYPERLINK(1)," in plain  # without the option: unchanged
    code, safe, _err = _run("decrypt", str(source), "--identity", str(identity), "--excel-safe")
    assert code == 0
    rows = list(csv.reader(io.StringIO(safe)))
    assert rows[0] == list(OUTPUT_COLUMNS)
    assert [r[1] for r in rows[1:]] == ["'-dev-1", "'@dev-2", "dev-3"]
    assert rows[1][4] == "'=HYPERLINK(1)"
    out = tmp_path / "creds.csv"
    code, _out, _err = _run(
        "decrypt", str(source), "--identity", str(identity), "--excel-safe", "--out", str(out)
    )
    assert code == 0
    assert out.read_text() == safe
    assert stat.S_IMODE(out.stat().st_mode) == 0o600


def test_decrypt_excel_safe_refuses_what_is_not_csv(tmp_path: Path) -> None:
    source, identity = _encrypted(tmp_path, "jsonl"), _identity(tmp_path)
    out = tmp_path / "creds.csv"
    code, _out, err = _run(
        "decrypt", str(source), "--identity", str(identity), "--excel-safe", "--out", str(out)
    )
    assert code == 2
    assert err.count("\n") == 1
    assert "--excel-safe works on CSV" in err
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    code, plain, _err = _run("decrypt", str(source), "--identity", str(identity))
    assert code == 0
    assert json.loads(plain.splitlines()[0])["DeviceName"] == "-dev-1"


# --------------------------------------------------------------------------- import


def _import(tmp_path: Path, source: Path) -> tuple[int, str]:
    try:
        from provisioner.cli import app
    except ImportError as exc:  # another engineer's module may be in progress
        pytest.skip(f"provisioner.cli does not import yet: {exc}")
    env = {
        "ALIBABA_CLOUD_ACCESS_KEY_ID": "id",
        "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "secret-not-to-be-printed",
        "PROVISIONER_ENDPOINT": "http://127.0.0.1:9",  # nothing listens: a call would fail
    }
    result = CliRunner().invoke(
        app,
        ["import", str(source), "--product-key", "a1PK", "--out", str(tmp_path / "o.csv.age"),
         "--recipient", _RECIPIENT, "--journal", str(tmp_path / "j.sqlite3")],
        env=env,
    )  # fmt: skip
    return result.exit_code, result.output


def test_import_of_a_headerless_file_quotes_no_cell(tmp_path: Path) -> None:
    source = _write(tmp_path, "in.csv", "dev-0001,Z9SECRETVALUE\ndev-0002,Z9OTHER\n")
    code, output = _import(tmp_path, source)
    assert code == 3
    assert "2 columns" in output
    assert "the first line must be a header naming DeviceName and DeviceSecret" in output
    assert "Z9" not in output
    assert "dev-0001" not in output


def test_import_with_a_stray_quote_stops_before_anything(tmp_path: Path) -> None:
    source = _write(
        tmp_path,
        "in.csv",
        'DeviceName,DeviceSecret,Nickname\ndev-0001,Z9s1,"n1\ndev-0002,Z9s2,n2\n'
        'dev-0003,Z9s3,n3"\ndev-0004,Z9s4,n4\n',
    )
    code, output = _import(tmp_path, source)
    assert code == 3
    assert "line 2: a Nickname cell holds a line break" in output
    assert "Z9" not in output
    assert not (tmp_path / "o.csv.age.rejects.csv").exists()
    for path in tmp_path.iterdir():
        if path != source:
            assert b"Z9" not in path.read_bytes(), path.name
