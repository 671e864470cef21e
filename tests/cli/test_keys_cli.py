"""``keygen`` and ``decrypt`` through Typer, registered on a local app as cli.py does."""

from __future__ import annotations

import csv
import io
import stat
from pathlib import Path

import pyrage
import pytest
import typer
from typer.testing import CliRunner

from provisioner.commands.keys import decrypt_command, keygen_command
from provisioner.output import OUTPUT_COLUMNS, CredentialWriter, load_encryption

SECRET = "S3cr3tDeviceSecretValue000000001"
ROWS = [("a1BwAGV1234", f"dev-{i}", f"{SECRET}{i}", f"iot{i}", "nick", "4001") for i in range(50)]

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
app.command("keygen")(keygen_command)
app.command("decrypt")(decrypt_command)
runner = CliRunner()


def plaintext() -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(OUTPUT_COLUMNS)
    writer.writerows(ROWS)
    return buffer.getvalue().encode()


@pytest.fixture
def keyed_output(tmp_path: Path) -> tuple[Path, Path]:
    """(identity file made by keygen, output file encrypted to it)."""
    identity = tmp_path / "identity.txt"
    result = runner.invoke(app, ["keygen", "--out", str(identity)])
    assert result.exit_code == 0, result.output
    out = tmp_path / "out.csv.age"
    with CredentialWriter(out, load_encryption([result.stdout.strip()])) as writer:
        writer.write(ROWS)
        writer.commit()
    return identity, out


def test_keygen_prints_recipient_and_writes_private_identity(tmp_path: Path) -> None:
    identity = tmp_path / "identity.txt"
    result = runner.invoke(app, ["keygen", "--out", str(identity)])
    assert result.exit_code == 0
    recipient = result.stdout.strip()
    assert recipient.startswith("age1")
    assert "\n" not in recipient
    assert str(identity) in result.stderr
    assert "AGE-SECRET-KEY" not in result.output
    assert stat.S_IMODE(identity.stat().st_mode) == 0o600
    secret_line = identity.read_text().splitlines()[-1]
    assert str(pyrage.x25519.Identity.from_str(secret_line).to_public()) == recipient

    again = runner.invoke(app, ["keygen", "--out", str(identity)])
    assert again.exit_code == 1
    assert again.stderr.startswith("error: ")
    assert "pass --force" in again.stderr
    assert identity.read_text().splitlines()[-1] == secret_line
    forced = runner.invoke(app, ["keygen", "--out", str(identity), "--force"])
    assert forced.exit_code == 0
    assert forced.stdout.strip() != recipient


def test_decrypt_to_stdout(keyed_output: tuple[Path, Path]) -> None:
    identity, out = keyed_output
    result = runner.invoke(app, ["decrypt", str(out), "--identity", str(identity)])
    assert result.exit_code == 0, result.stderr
    assert result.stdout_bytes == plaintext()
    assert result.stderr == ""


def test_decrypt_to_file_is_private_atomic_and_warns(
    tmp_path: Path, keyed_output: tuple[Path, Path]
) -> None:
    identity, out = keyed_output
    target = tmp_path / "plain.csv"
    args = ["decrypt", str(out), "-i", str(identity), "--out", str(target)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.stderr
    assert target.read_bytes() == plaintext()
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert result.stdout == ""
    assert result.stderr.startswith("warning: ")
    assert "plaintext" in result.stderr
    assert SECRET not in result.stderr

    again = runner.invoke(app, args)
    assert again.exit_code == 1
    assert "exists; pass --force" in again.stderr
    assert runner.invoke(app, [*args, "--force"]).exit_code == 0
    for extra in ([], ["--force"]):
        onto_itself = runner.invoke(
            app, ["decrypt", str(out), "-i", str(identity), "--out", str(out), *extra]
        )
        assert onto_itself.exit_code == 2
        assert "must not be the encrypted file" in onto_itself.stderr
    assert out.read_bytes().startswith(b"age-encryption.org/v1\n")


def test_failed_decrypt_to_file_leaves_nothing(
    tmp_path: Path, keyed_output: tuple[Path, Path]
) -> None:
    _, out = keyed_output
    stranger = tmp_path / "stranger.txt"
    assert runner.invoke(app, ["keygen", "--out", str(stranger)]).exit_code == 0
    target = tmp_path / "plain.csv"
    result = runner.invoke(app, ["decrypt", str(out), "-i", str(stranger), "--out", str(target)])
    assert result.exit_code == 2
    assert result.stderr.startswith("error: the --identity keys cannot decrypt")
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "identity.txt",
        "out.csv.age",
        "stranger.txt",
    ]


def test_decrypt_usage_and_input_errors(tmp_path: Path, keyed_output: tuple[Path, Path]) -> None:
    identity, out = keyed_output
    neither = runner.invoke(app, ["decrypt", str(out)])
    assert neither.exit_code == 2
    assert "exactly one" in neither.stderr
    both = runner.invoke(app, ["decrypt", str(out), "-i", str(identity), "--passphrase-env", "P"])
    assert both.exit_code == 2
    unset = runner.invoke(app, ["decrypt", str(out), "--passphrase-env", "NO_SUCH_VAR_X"])
    assert unset.exit_code == 2
    assert "NO_SUCH_VAR_X" in unset.stderr
    wrong_mode = runner.invoke(app, ["decrypt", str(out), "--passphrase-env", "P"], env={"P": "x"})
    assert wrong_mode.exit_code == 2
    assert "pass --identity" in wrong_mode.stderr
    plain = tmp_path / "plain.txt"
    plain.write_text("not encrypted")
    foreign = runner.invoke(app, ["decrypt", str(plain), "-i", str(identity)])
    assert foreign.exit_code == 3
    assert "not an age-encrypted file" in foreign.stderr
    missing_key = runner.invoke(app, ["decrypt", str(out), "-i", str(tmp_path / "nokey")])
    assert missing_key.exit_code == 2
    assert "does not exist" in missing_key.stderr
    for result in (neither, both, unset, wrong_mode, foreign, missing_key):
        assert result.stderr.count("\n") == 1
        assert result.stderr.startswith("error: ")


def test_decrypt_with_passphrase_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Real scrypt costs seconds (pyrage calibrates it); the real passphrase round trip is
    # tests/unit/test_output.py. Here only the command's plumbing is under test.
    encrypted = tmp_path / "out.csv.age"
    encrypted.write_bytes(b"age-encryption.org/v1\n-> scrypt c2FsdA 18\nbody\n--- mac\n\x00")
    seen: list[tuple[bytes, str]] = []

    def fake_decrypt(data: bytes, passphrase: str) -> bytes:
        seen.append((data, passphrase))
        if passphrase != "correct horse":
            raise pyrage.DecryptError("Decryption failed")
        return plaintext()

    monkeypatch.setattr(pyrage.passphrase, "decrypt", fake_decrypt)
    args = ["decrypt", str(encrypted), "--passphrase-env", "OUT_PASS"]
    result = runner.invoke(app, args, env={"OUT_PASS": "correct horse"})
    assert result.exit_code == 0, result.stderr
    assert result.stdout_bytes == plaintext()
    assert seen == [(encrypted.read_bytes(), "correct horse")]
    wrong = runner.invoke(app, args, env={"OUT_PASS": "battery staple"})
    assert wrong.exit_code == 2
    assert "wrong passphrase" in wrong.stderr
    assert "battery staple" not in wrong.output
