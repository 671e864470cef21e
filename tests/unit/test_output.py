"""Tests of provisioner.output: encryption settings, the streaming writer, the report.

Everything is local (tmp_path, in-process pyrage); the real ``age`` CLI is exercised in
tests/integration/test_output_age.py.
"""

from __future__ import annotations

import csv
import errno
import gc
import io
import json
import os
import shutil
import stat
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import polars as pl
import pyrage
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from provisioner.errors import InputError, OutputError, UsageError
from provisioner.output import (
    OUTPUT_COLUMNS,
    CredentialWriter,
    Encryption,
    decrypt_to,
    generate_identity,
    load_encryption,
    load_identities,
    remove_stale_partials,
    report_path,
    write_json_atomic,
)
from provisioner.output._atomic import create_partial
from provisioner.output.writer import _encode_csv, _encode_jsonl

# A public key only (from ssh-keygen -t ed25519); safe to keep in the source.
SSH_PUB = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEVXdd64kR1cPY06AmU+ekM3RkuDIYC+gCb8QpBu2inY me@host"
SECRET_MARK = "SeCrEtMaRk"


def rows(count: int, start: int = 0) -> list[tuple[str, ...]]:
    return [
        (
            "a1BwAGV1234",
            f"dev-{i:07d}",
            f"{SECRET_MARK}{i:022d}",
            f"iot{i:016d}",
            f'设备 {i}, "quoted"',
            "4001",
        )
        for i in range(start, start + count)
    ]


@pytest.fixture
def identity() -> Any:
    return pyrage.x25519.Identity.generate()


@pytest.fixture
def encryption(identity: Any) -> Encryption:
    return load_encryption([str(identity.to_public())])


def decrypt(path: Path, identity: Any) -> bytes:
    return bytes(pyrage.decrypt(path.read_bytes(), [identity]))


def expected_csv(data: list[tuple[str, ...]], columns: tuple[str, ...] = OUTPUT_COLUMNS) -> bytes:
    buffer = io.StringIO()
    out = csv.writer(buffer, lineterminator="\n")
    out.writerow(columns)
    out.writerows(data)
    return buffer.getvalue().encode("utf-8")


def partials(directory: Path) -> list[str]:
    return sorted(n for n in os.listdir(directory) if n.endswith(".partial"))


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# --- encryption settings -----------------------------------------------------------------


def test_load_encryption_recipients_and_file(tmp_path: Path, identity: Any) -> None:
    listed = tmp_path / "recipients.txt"
    listed.write_text(f"# team keys\n\n{SSH_PUB}\n  # indented comment\n{identity.to_public()}\n")
    enc = load_encryption([str(identity.to_public())], recipients_file=listed)
    assert len(enc.recipients) == 3
    assert isinstance(enc.recipients[1], pyrage.ssh.Recipient)
    assert enc.passphrase is None
    assert enc.kind == "recipients"


def test_load_encryption_passphrase_from_env() -> None:
    enc = load_encryption(passphrase_env="OUT_PASS", env={"OUT_PASS": "correct horse"})
    assert enc.passphrase == "correct horse"
    assert enc.recipients == ()
    assert "correct horse" not in repr(enc)


@pytest.mark.parametrize("env", [{}, {"OUT_PASS": ""}])
def test_passphrase_env_missing_or_empty_names_the_variable(env: dict[str, str]) -> None:
    with pytest.raises(UsageError, match="OUT_PASS"):
        load_encryption(passphrase_env="OUT_PASS", env=env)


def test_load_encryption_refuses_none_and_both(identity: Any) -> None:
    with pytest.raises(UsageError, match="must be encrypted"):
        load_encryption()
    with pytest.raises(UsageError, match="cannot be combined"):
        load_encryption([str(identity.to_public())], passphrase_env="P", env={"P": "x"})


def test_bad_recipient_says_where(tmp_path: Path, identity: Any) -> None:
    with pytest.raises(UsageError, match=r"--recipient #2 .*'age1nope'"):
        load_encryption([str(identity.to_public()), "age1nope"])
    listed = tmp_path / "r.txt"
    listed.write_text("# c\nssh-dss AAAA\n")
    with pytest.raises(UsageError, match=r"r\.txt line 2 .*not a recipient"):
        load_encryption(recipients_file=listed)
    listed.write_text("# only comments\n\n")
    with pytest.raises(UsageError, match="has no recipients"):
        load_encryption(recipients_file=listed)
    with pytest.raises(UsageError, match="does not exist"):
        load_encryption(recipients_file=tmp_path / "missing.txt")


def test_secret_key_as_recipient_is_never_echoed(tmp_path: Path, identity: Any) -> None:
    secret = str(identity)
    with pytest.raises(UsageError) as caught:
        load_encryption([secret])
    assert secret not in str(caught.value)
    assert "secret key" in str(caught.value)
    listed = tmp_path / "r.txt"
    listed.write_text(secret.lower() + "\n")
    with pytest.raises(UsageError) as caught:
        load_encryption(recipients_file=listed)
    assert secret.lower() not in str(caught.value).lower()


def test_encryption_needs_exactly_one_mode(identity: Any) -> None:
    with pytest.raises(ValueError, match="not both"):
        Encryption(recipients=(identity.to_public(),), passphrase="x")
    with pytest.raises(ValueError, match="not both"):
        Encryption(recipients=())


# --- identities ----------------------------------------------------------------------------


def test_generate_identity_is_age_keygen_format_and_private(tmp_path: Path) -> None:
    path = tmp_path / "id.txt"
    recipient = generate_identity(path)
    lines = path.read_text().splitlines()
    assert lines[0].startswith("# created: ")
    assert lines[0].endswith("Z")
    assert lines[1] == f"# public key: {recipient}"
    assert str(pyrage.x25519.Identity.from_str(lines[2]).to_public()) == recipient
    assert mode_of(path) == 0o600
    assert len(load_identities(path)) == 1
    assert partials(tmp_path) == []
    with pytest.raises(OutputError, match="exists; pass --force"):
        generate_identity(path)
    assert generate_identity(path, force=True) != recipient


def test_load_identities_errors_never_quote_the_key(tmp_path: Path) -> None:
    path = tmp_path / "id.txt"
    path.write_text("# comment\nAGE-SECRET-KEY-1NOTAREALKEYATALL\n")
    with pytest.raises(UsageError, match="line 2 is not a valid age secret key") as caught:
        load_identities(path)
    assert "NOTAREALKEY" not in str(caught.value)
    path.write_text("hello\n")
    with pytest.raises(UsageError, match="line 1 is not an age secret key"):
        load_identities(path)
    path.write_text("# nothing\n")
    with pytest.raises(UsageError, match="holds no"):
        load_identities(path)
    with pytest.raises(UsageError, match="does not exist"):
        load_identities(tmp_path / "missing")


@pytest.mark.skipif(shutil.which("ssh-keygen") is None, reason="ssh-keygen not installed")
def test_load_identities_ssh_keys(tmp_path: Path) -> None:
    key = tmp_path / "key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key], check=True)
    assert isinstance(load_identities(key)[0], pyrage.ssh.Identity)
    locked = tmp_path / "locked"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "pw", "-f", locked], check=True)
    with pytest.raises(UsageError, match="passphrase-protected keys are not supported"):
        load_identities(locked)


# --- formats ------------------------------------------------------------------------------


def test_csv_round_trip_rfc4180(tmp_path: Path, identity: Any, encryption: Encryption) -> None:
    tricky = [("pk", "a,b", 'q"uote', "line\nbreak", "cr\rhere", ""), *rows(3)]
    path = tmp_path / "out.csv.age"
    with CredentialWriter(path, encryption) as out:
        out.write(tricky)
        assert out.commit() == path
    text = decrypt(path, identity).decode("utf-8")
    assert text.startswith(",".join(OUTPUT_COLUMNS) + "\n")
    assert '\n"pk","a,b","q""uote","line\nbreak","cr\rhere",""\n' in text
    assert "\r\n" not in text
    parsed = list(csv.reader(io.StringIO(text, newline="")))
    assert parsed == [list(OUTPUT_COLUMNS), *[list(r) for r in tricky]]


def test_jsonl_round_trip_and_columns(
    tmp_path: Path, identity: Any, encryption: Encryption
) -> None:
    columns = ("DeviceName", "DeviceSecret", "Nickname")
    data = [(name, secret, nick) for _, name, secret, _, nick, _ in rows(5)]
    path = tmp_path / "out.jsonl.age"
    with CredentialWriter(path, encryption, fmt="jsonl", columns=columns) as out:
        out.write(data[:2])
        out.write(data[2:])
        out.commit()
        assert out.rows_written == 5
    lines = decrypt(path, identity).decode("utf-8").splitlines()
    assert [json.loads(line) for line in lines] == [
        dict(zip(columns, r, strict=True)) for r in data
    ]
    assert "设备" in lines[0]  # UTF-8, not \\u escapes


def test_parquet_round_trip(tmp_path: Path, identity: Any, encryption: Encryption) -> None:
    data = rows(2500)
    path = tmp_path / "out.parquet.age"
    with CredentialWriter(path, encryption, fmt="parquet") as out:
        for start in range(0, len(data), 1000):
            out.write(data[start : start + 1000])
        # Parquet is written at commit: no ciphertext before, not even a header.
        temp = out.temp_path
        assert temp is not None
        assert temp.stat().st_size == 0
        out.commit()
    frame = pl.read_parquet(io.BytesIO(decrypt(path, identity)))
    assert frame.columns == list(OUTPUT_COLUMNS)
    assert frame.rows() == data


def test_empty_outputs(tmp_path: Path, identity: Any, encryption: Encryption) -> None:
    for fmt in ("csv", "jsonl", "parquet"):
        path = tmp_path / f"empty.{fmt}.age"
        with CredentialWriter(path, encryption, fmt=fmt) as out:
            out.commit()
        plain = decrypt(path, identity)
        if fmt == "csv":
            assert plain == expected_csv([])
        elif fmt == "jsonl":
            assert plain == b""
        else:
            assert pl.read_parquet(io.BytesIO(plain)).shape == (0, len(OUTPUT_COLUMNS))


values = st.text(max_size=12)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(values, values, values), max_size=6))
def test_encoders_round_trip_any_text(data: list[tuple[str, str, str]]) -> None:
    text = _encode_csv(data).decode("utf-8")
    assert [tuple(r) for r in csv.reader(io.StringIO(text, newline=""))] == data
    columns = ("a", "b", "c")
    lines = _encode_jsonl(data, columns).decode("utf-8").split("\n")
    assert lines[-1] == ""
    assert [tuple(json.loads(x).values()) for x in lines[:-1]] == data


def test_bad_rows_and_columns(tmp_path: Path, encryption: Encryption) -> None:
    with pytest.raises(UsageError, match="unknown output column 'Secret'"):
        CredentialWriter(tmp_path / "x", encryption, columns=("DeviceName", "Secret"))
    with pytest.raises(UsageError, match="twice"):
        CredentialWriter(tmp_path / "x", encryption, columns=("DeviceName", "DeviceName"))
    with CredentialWriter(tmp_path / "x", encryption) as out:
        with pytest.raises(ValueError, match="row 1 of the batch has 2 values") as caught:
            out.write([rows(1)[0], ("dev", f"{SECRET_MARK}x")])
        assert SECRET_MARK not in str(caught.value)
        with pytest.raises(ValueError, match="not encodable text") as caught:
            out.write([("pk", "dev", f"{SECRET_MARK}\udc80", "", "", "")])
        assert caught.value.__cause__ is None
        assert caught.value.__context__ is None
        assert SECRET_MARK not in repr(caught.value)
        assert out.rows_written == 0
    assert os.listdir(tmp_path) == []


# --- atomicity ----------------------------------------------------------------------------


def test_final_file_appears_only_at_commit(tmp_path: Path, encryption: Encryption) -> None:
    path = tmp_path / "out.csv.age"
    out = CredentialWriter(path, encryption)
    out.open()
    out.write(rows(100))
    listing = os.listdir(tmp_path)
    assert len(listing) == 1
    assert listing[0].startswith(".out.csv.age.")
    assert listing[0].endswith(".partial")
    assert not path.exists()
    temp = out.temp_path
    assert temp is not None
    assert mode_of(temp) == 0o600
    out.commit()
    assert os.listdir(tmp_path) == ["out.csv.age"]
    assert mode_of(path) == 0o600
    out.abort()  # a no-op after commit
    assert path.exists()


def test_umask_does_not_widen_or_narrow_the_mode(tmp_path: Path, encryption: Encryption) -> None:
    old = os.umask(0o000)
    try:
        path = tmp_path / "out.csv.age"
        with CredentialWriter(path, encryption) as out:
            out.commit()
    finally:
        os.umask(old)
    assert mode_of(path) == 0o600


def test_abort_removes_temp_and_is_idempotent(tmp_path: Path, encryption: Encryption) -> None:
    for fmt in ("csv", "parquet"):
        out = CredentialWriter(tmp_path / "out.age", encryption, fmt=fmt)
        out.open()
        out.write(rows(10))
        out.abort()
        out.abort()
        assert os.listdir(tmp_path) == []
        with pytest.raises(RuntimeError, match="aborted"):
            out.write(rows(1))


def test_exception_or_missing_commit_leaves_nothing(tmp_path: Path, encryption: Encryption) -> None:
    def fail_midway() -> None:
        with CredentialWriter(tmp_path / "a.age", encryption) as out:
            out.write(rows(10))
            raise KeyError("boom")

    with pytest.raises(KeyError):
        fail_midway()
    with CredentialWriter(tmp_path / "b.age", encryption) as out:
        out.write(rows(10))
    assert os.listdir(tmp_path) == []


def test_garbage_collected_writer_leaves_nothing(tmp_path: Path, encryption: Encryption) -> None:
    out: CredentialWriter | None = CredentialWriter(tmp_path / "out.age", encryption)
    assert out is not None
    out.open()
    out.write(rows(1000))
    threads = [t for t in threading.enumerate() if t.name == "provisioner-output-encrypt"]
    del out
    gc.collect()
    assert os.listdir(tmp_path) == []
    for thread in threads:
        thread.join(5)
        assert not thread.is_alive()


def test_existing_output_refused_unless_force(tmp_path: Path, encryption: Encryption) -> None:
    path = tmp_path / "out.age"
    path.write_bytes(b"old")
    with pytest.raises(OutputError, match=r"out\.age exists; pass --force to replace it"):
        CredentialWriter(path, encryption).open()
    assert path.read_bytes() == b"old"
    assert partials(tmp_path) == []
    with CredentialWriter(path, encryption, force=True) as out:
        out.write(rows(1))
        assert path.read_bytes() == b"old"
        out.commit()
    assert path.read_bytes().startswith(b"age-encryption.org/v1\n")


def test_output_that_appears_during_the_run_is_not_clobbered(
    tmp_path: Path, identity: Any, encryption: Encryption
) -> None:
    path = tmp_path / "out.age"
    with CredentialWriter(path, encryption) as out:
        out.write(rows(3))
        path.write_bytes(b"someone else's")
        with pytest.raises(OutputError, match="complete output is in") as caught:
            out.commit()
    assert path.read_bytes() == b"someone else's"
    rescued = Path(str(caught.value).split("complete output is in ")[1].split(":")[0])
    assert decrypt(rescued, identity) == expected_csv(rows(3))


def test_missing_directory(tmp_path: Path, encryption: Encryption) -> None:
    with pytest.raises(OutputError, match="does not exist; create it"):
        CredentialWriter(tmp_path / "nope" / "out.age", encryption).open()


def test_remove_stale_partials(tmp_path: Path) -> None:
    path = tmp_path / "out.csv.age"
    stale = [f".out.csv.age.{i:016x}.partial" for i in (1, 2)]
    kept = [".out.csv.age.zz.partial", ".other.age.0000000000000001.partial", "out.csv.age"]
    for name in stale + kept:
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / f".out.csv.age.{3:016x}.partial").mkdir()
    assert remove_stale_partials(path) == 2
    assert sorted(os.listdir(tmp_path)) == sorted([*kept, f".out.csv.age.{3:016x}.partial"])
    assert remove_stale_partials(path) == 0
    assert remove_stale_partials(tmp_path / "missing-dir" / "x") == 0


# --- streaming and secrecy ------------------------------------------------------------------


def test_streams_and_never_writes_plaintext(
    tmp_path: Path, identity: Any, encryption: Encryption
) -> None:
    path = tmp_path / "out.csv.age"
    data = rows(100_000)
    with CredentialWriter(path, encryption) as out:
        temp = out.temp_path
        assert temp is not None
        for batch, start in enumerate(range(0, len(data), 1000)):
            out.write(data[start : start + 1000])
            if batch % 20 == 0:
                assert SECRET_MARK.encode() not in temp.read_bytes()
        deadline = time.monotonic() + 10
        while temp.stat().st_size < 1_000_000 and time.monotonic() < deadline:
            time.sleep(0.01)
        # pyrage writes as it reads: ciphertext is on disk before the end of the stream.
        assert temp.stat().st_size >= 1_000_000
        assert not path.exists()
        assert SECRET_MARK.encode() not in temp.read_bytes()
        out.commit()
    assert decrypt(path, identity) == expected_csv(data)


class _FullDisk(io.RawIOBase):
    """A temporary file whose disk fills up after ``room`` bytes."""

    def __init__(self, file: Any, room: int) -> None:
        super().__init__()
        self._file = file
        self._room = room

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        if len(data) > self._room:
            raise OSError(errno.ENOSPC, "No space left on device")
        self._room -= len(data)
        return int(self._file.write(data))

    def fileno(self) -> int:
        return int(self._file.fileno())

    def flush(self) -> None:
        if not self._file.closed:
            self._file.flush()

    def close(self) -> None:
        super().close()
        self._file.close()


@pytest.fixture
def full_disk(monkeypatch: pytest.MonkeyPatch) -> None:
    def create(final: Path, mode: int = 0o600) -> tuple[Path, Any]:
        temp, file = create_partial(final, mode)
        return temp, _FullDisk(file, 50_000)

    monkeypatch.setattr("provisioner.output.writer.create_partial", create)


@pytest.mark.usefixtures("full_disk")
@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_disk_full_is_an_output_error(tmp_path: Path, encryption: Encryption, fmt: Any) -> None:
    out = CredentialWriter(tmp_path / "out.age", encryption, fmt=fmt)
    out.open()

    def write_all() -> None:
        for batch in range(100):
            out.write(rows(1000, start=batch * 1000))
            time.sleep(0.001)
        out.commit()

    # Depending on timing the thread's error surfaces in a write() or in commit().
    with pytest.raises(OutputError, match="no space left on device; free space"):
        write_all()
    assert os.listdir(tmp_path) == []


def test_passphrase_round_trip_keeps_plaintext_in_memory(tmp_path: Path) -> None:
    # The only real scrypt in this file: pyrage calibrates it to take seconds.
    enc = load_encryption(passphrase_env="P", env={"P": "correct horse battery"})
    path = tmp_path / "out.csv.age"
    data = rows(2000)
    with CredentialWriter(path, enc) as out:
        out.write(data)
        temp = out.temp_path
        assert temp is not None
        assert temp.stat().st_size == 0
        out.commit()
    assert SECRET_MARK.encode() not in path.read_bytes()
    assert mode_of(path) == 0o600
    with pytest.raises(UsageError, match="encrypted with a passphrase"):
        decrypt_to(path, io.BytesIO(), identities=[pyrage.x25519.Identity.generate()])
    plain = io.BytesIO()
    decrypt_to(path, plain, passphrase="correct horse battery")
    assert plain.getvalue() == expected_csv(data)


def test_decrypt_to_errors(tmp_path: Path, identity: Any, encryption: Encryption) -> None:
    path = tmp_path / "out.age"
    with CredentialWriter(path, encryption) as out:
        out.write(rows(10))
        out.commit()
    stranger = pyrage.x25519.Identity.generate()
    with pytest.raises(UsageError, match="cannot decrypt"):
        decrypt_to(path, io.BytesIO(), identities=[stranger])
    with pytest.raises(UsageError, match="not a passphrase"):
        decrypt_to(path, io.BytesIO(), passphrase="x")
    truncated = tmp_path / "truncated.age"
    truncated.write_bytes(path.read_bytes()[:-20])
    with pytest.raises(InputError, match="damaged or truncated"):
        decrypt_to(truncated, io.BytesIO(), identities=[identity])
    (tmp_path / "plain.txt").write_text("hello")
    with pytest.raises(InputError, match="not an age-encrypted file"):
        decrypt_to(tmp_path / "plain.txt", io.BytesIO(), identities=[identity])
    with pytest.raises(InputError, match="does not exist"):
        decrypt_to(tmp_path / "missing", io.BytesIO(), identities=[identity])


# --- report -------------------------------------------------------------------------------


def test_write_json_atomic(tmp_path: Path) -> None:
    target = report_path(tmp_path / "out.csv.age")
    assert target.name == "out.csv.age.report.json"
    write_json_atomic(target, {"rows": 1, "path": tmp_path})
    write_json_atomic(target, {"rows": 2, "名": "设备"})
    assert json.loads(target.read_text("utf-8")) == {"rows": 2, "名": "设备"}
    assert mode_of(target) == 0o600
    assert os.listdir(tmp_path) == [target.name]
    with pytest.raises(OutputError, match="does not exist"):
        write_json_atomic(tmp_path / "no" / "r.json", {})
