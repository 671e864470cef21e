"""The real ``age`` CLI reads what provisioner writes, and provisioner reads what age writes.

Operators must be able to decrypt the output with standard tools, without provisioner.
The tests skip when ``age`` is not installed, except in CI (``CI`` set), where they fail:
install it with ``apt-get install -y age``.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import subprocess
from pathlib import Path

import polars as pl
import pytest

from provisioner.output import (
    OUTPUT_COLUMNS,
    CredentialWriter,
    decrypt_to,
    generate_identity,
    load_encryption,
    load_identities,
)

ROWS = [
    (
        "a1BwAGV1234",
        f"dev-{i:05d}",
        f"Secret{i:026d}",
        f"iot{i:016d}",
        f"设备,{i}",
        "4001",
    )
    for i in range(3000)
]


@pytest.fixture
def age() -> str:
    found = shutil.which("age")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("the age CLI is required in CI: apt-get install -y age")
        pytest.skip("the age CLI is not installed (apt-get install -y age)")
    return found


def age_decrypt(age: str, identity: Path, encrypted: Path) -> bytes:
    done = subprocess.run(
        [age, "--decrypt", "-i", str(identity), str(encrypted)],
        capture_output=True,
        check=False,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr.decode()
    return done.stdout


def expected_csv() -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(OUTPUT_COLUMNS)
    writer.writerows(ROWS)
    return buffer.getvalue().encode()


def test_age_decrypts_x25519_csv(age: str, tmp_path: Path) -> None:
    identity = tmp_path / "identity.txt"
    recipient = generate_identity(identity)
    out = tmp_path / "out.csv.age"
    with CredentialWriter(out, load_encryption([recipient])) as writer:
        for start in range(0, len(ROWS), 500):
            writer.write(ROWS[start : start + 500])
        writer.commit()
    assert age_decrypt(age, identity, out) == expected_csv()


def test_age_decrypts_jsonl_for_an_age_keygen_identity(age: str, tmp_path: Path) -> None:
    keygen = shutil.which("age-keygen")
    if keygen is None:
        pytest.skip("age-keygen is not installed")
    identity = tmp_path / "identity.txt"
    subprocess.run([keygen, "-o", str(identity)], check=True, capture_output=True, timeout=30)
    recipient = subprocess.run(
        [keygen, "-y", str(identity)], check=True, capture_output=True, text=True, timeout=30
    ).stdout.strip()
    out = tmp_path / "out.jsonl.age"
    with CredentialWriter(out, load_encryption([recipient]), fmt="jsonl") as writer:
        writer.write(ROWS)
        writer.commit()
    lines = age_decrypt(age, identity, out).decode().splitlines()
    assert [json.loads(line) for line in lines] == [
        dict(zip(OUTPUT_COLUMNS, r, strict=True)) for r in ROWS
    ]


def test_age_decrypts_parquet_for_an_ssh_recipient(age: str, tmp_path: Path) -> None:
    ssh_keygen = shutil.which("ssh-keygen")
    if ssh_keygen is None:
        pytest.skip("ssh-keygen is not installed")
    key = tmp_path / "id_ed25519"
    subprocess.run(
        [ssh_keygen, "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True, timeout=30
    )
    recipients = tmp_path / "recipients.txt"
    recipients.write_text("# the operator's SSH key\n" + key.with_suffix(".pub").read_text())
    out = tmp_path / "out.parquet.age"
    with CredentialWriter(out, load_encryption(recipients_file=recipients), fmt="parquet") as w:
        w.write(ROWS)
        w.commit()
    frame = pl.read_parquet(io.BytesIO(age_decrypt(age, key, out)))
    assert frame.rows() == ROWS
    # And provisioner's own decrypt reads it with the SSH private key.
    plain = io.BytesIO()
    decrypt_to(out, plain, identities=load_identities(key))
    assert pl.read_parquet(io.BytesIO(plain.getvalue())).rows() == ROWS


def test_provisioner_decrypts_what_age_encrypts(age: str, tmp_path: Path) -> None:
    identity = tmp_path / "identity.txt"
    recipient = generate_identity(identity)
    encrypted = tmp_path / "from-age.age"
    subprocess.run(
        [age, "-r", recipient, "-o", str(encrypted)],
        input=expected_csv(),
        check=True,
        timeout=30,
    )
    plain = io.BytesIO()
    decrypt_to(encrypted, plain, identities=load_identities(identity))
    assert plain.getvalue() == expected_csv()
