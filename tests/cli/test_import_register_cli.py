"""``import`` and ``register-random``: an operator's mistakes give one line and exit 2,
before any call (the endpoint here does not exist)."""

from __future__ import annotations

from pathlib import Path

import pyrage
from typer.testing import CliRunner

from provisioner.cli import app

ENV = {
    "ALIBABA_CLOUD_ACCESS_KEY_ID": "id",
    "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "secret-not-to-be-printed",
    "PROVISIONER_ENDPOINT": "http://127.0.0.1:9",
}
RECIPIENT = str(pyrage.x25519.Identity.generate().to_public())


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args), env=ENV)
    return result.exit_code, result.output


def test_encrypted_import_input_without_identity(tmp_path: Path) -> None:
    source = tmp_path / "migration.csv.age"
    source.write_bytes(pyrage.encrypt(b"DeviceName,DeviceSecret\nabcd,s\n", [
        pyrage.x25519.Recipient.from_str(RECIPIENT)
    ]))  # fmt: skip
    code, output = invoke(
        "import", str(source), "--product-key", "a1PK", "--out", str(tmp_path / "o.age"),
        "--recipient", RECIPIENT, "--journal", str(tmp_path / "j.sqlite3"),
    )  # fmt: skip
    assert code == 2
    assert "pass --identity" in output
    assert "Traceback" not in output
    assert "secret-not-to-be-printed" not in output


def test_import_input_missing_the_secret_column(tmp_path: Path) -> None:
    source = tmp_path / "migration.csv"
    source.write_text("DeviceName,Nickname\nabcd,x\n")
    code, output = invoke(
        "import", str(source), "--product-key", "a1PK", "--out", str(tmp_path / "o.age"),
        "--recipient", RECIPIENT, "--journal", str(tmp_path / "j.sqlite3"),
    )  # fmt: skip
    assert code == 3
    assert "no DeviceSecret column" in output


def test_register_random_refuses_bad_counts(tmp_path: Path) -> None:
    base = ("register-random", "--product-key", "a1PK", "--out", str(tmp_path / "o.age"))
    code, output = invoke(*base, "--count", "0", "--recipient", RECIPIENT)
    assert code == 2
    code, output = invoke(*base, "--count", "5", "--per-call", "10001", "--recipient", RECIPIENT)
    assert code == 2
    code, output = invoke(*base, "--count", "5")
    assert code == 2
    assert "--recipient" in output
