"""``import`` against the emulator in-process: secrets arrive as given, a crash or a lost
answer never loses or doubles a device, existing devices follow ``--existing``."""

from __future__ import annotations

import csv
import io
import json
import time
from pathlib import Path
from typing import Any

import anyio
import pyrage
import pytest
from inprocess_rig import FAST, Crash, World, make_world

from provisioner.errors import EXIT_INPUT, EXIT_OK, EXIT_PARTIAL, InputError, UsageError
from provisioner.journal import Journal
from provisioner.pipeline import ImportSettings, RunOutcome, import_devices, resume

IMPORT = "ImportDevice"
HEADER = ["ProductKey", "DeviceName", "DeviceSecret", "IotId", "Nickname", "ApplyId", "Sn"]

pytestmark = pytest.mark.usefixtures("no_retry_waits")


def rows(n: int, prefix: str = "mig") -> list[dict[str, str]]:
    return [
        {
            "DeviceName": f"{prefix}-{i:05d}",
            "DeviceSecret": f"S{i:05d}x{prefix}Secret{i * 7919 % 100000:05d}",
            "Nickname": f"n_{i}" if i % 3 else "",
            "Sn": f"SN{i:06d}" if i % 2 else "",
        }
        for i in range(n)
    ]


def write_csv(path: Path, data: list[dict[str, str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=["DeviceName", "DeviceSecret", "Nickname", "Sn"])
        writer.writeheader()
        writer.writerows(data)
    return path


def settings(world: World, input_path: Path, **kw: Any) -> ImportSettings:
    base: dict[str, Any] = {
        "input": input_path,
        "product_key": world.product_key,
        "out": world.tmp / "out.csv.age",
        "encryption": world.encryption,
        "api": world.api,
        "journal": str(world.tmp / "journal.sqlite3"),
        "progress": "none",
        "tuning": FAST,
    }
    base.update(kw)
    return ImportSettings(**base)


def run(world: World, s: ImportSettings) -> RunOutcome:
    return anyio.run(lambda: import_devices(s, transport=world.recorder))


def output(world: World) -> list[dict[str, str]]:
    text = pyrage.decrypt((world.tmp / "out.csv.age").read_bytes(), [world.identity]).decode()
    reader = csv.DictReader(io.StringIO(text))
    assert reader.fieldnames == HEADER
    return list(reader)


def server_devices(world: World) -> dict[str, Any]:
    return dict(world.emulator.world.products[world.product_key].devices)


def assert_imported(world: World, data: list[dict[str, str]]) -> None:
    """The output and the server both hold exactly the input's devices and secrets."""
    got = {r["DeviceName"]: r for r in output(world)}
    assert len(got) == len(output(world)) == len(data)
    server = server_devices(world)
    for row in data:
        out = got[row["DeviceName"]]
        assert out["DeviceSecret"] == row["DeviceSecret"]
        assert out["Sn"] == row["Sn"]
        assert out["Nickname"] == row["Nickname"]
        assert out["ApplyId"] == ""
        device = server[row["DeviceName"]]
        assert device.device_secret == row["DeviceSecret"]
        assert device.iot_id == out["IotId"]


def assert_no_secret_on_disk(world: World, data: list[dict[str, str]]) -> None:
    """Journal, report and rejects: no secret from the input (the input itself aside)."""
    needles = [r["DeviceSecret"].encode() for r in data]
    for path in world.tmp.rglob("*"):
        if path.is_file() and not path.name.startswith("in"):
            blob = path.read_bytes()
            assert not any(n in blob for n in needles), f"a secret is in {path.name}"


def test_import_gives_devices_with_the_input_secrets(tmp_path: Path) -> None:
    world = make_world(tmp_path)
    data = rows(1_200)
    outcome = run(world, settings(world, write_csv(tmp_path / "in.csv", data)))
    assert outcome.exit_code == EXIT_OK, outcome.message
    assert_imported(world, data)
    assert world.recorder.counts[IMPORT] == 1_200
    report = json.loads((tmp_path / "out.csv.age.report.json").read_text())
    assert report["counts"]["created"] == report["counts"]["exported"] == 1_200
    assert_no_secret_on_disk(world, data)

    before = sum(world.recorder.counts.values())
    again = run(world, settings(world, tmp_path / "in.csv"))
    assert again.already_completed
    assert sum(world.recorder.counts.values()) == before


def test_crash_then_rerun_imports_only_the_missing(tmp_path: Path) -> None:
    world = make_world(tmp_path)
    data = rows(1_000)
    source = write_csv(tmp_path / "in.csv", data)
    world.recorder.crash = lambda action, n: "after" if (action, n) == (IMPORT, 400) else None
    with pytest.raises(Crash):
        run(world, settings(world, source))
    assert not (tmp_path / "out.csv.age").exists()
    done_before = len(server_devices(world))
    assert 400 <= done_before < 1_000
    with Journal(tmp_path / "journal.sqlite3") as journal:
        (record,) = journal.list_runs()
        counts = journal.device_counts(record.run_id)
    assert counts.get("importing", 0) > 0  # intents of the devices in flight

    world.recorder.crash = None
    sent_before = world.recorder.counts[IMPORT]
    outcome = run(world, settings(world, source))
    assert outcome.exit_code == EXIT_OK, outcome.message
    assert_imported(world, data)
    resent = world.recorder.counts[IMPORT] - sent_before
    # Only the missing devices, and those whose answer the crash lost, are sent again.
    assert resent <= 1_000 - done_before + counts["importing"]
    assert resent >= 1_000 - done_before
    report = json.loads((tmp_path / "out.csv.age.report.json").read_text())
    assert report["counts"]["created"] == 1_000
    assert report["counts"]["adopted"] == 0
    assert_no_secret_on_disk(world, data)


def test_lost_answers_are_reconciled_not_doubled(tmp_path: Path) -> None:
    world = make_world(tmp_path)
    world.recorder.drop_rate = 0.05
    data = rows(800)
    outcome = run(world, settings(world, write_csv(tmp_path / "in.csv", data)))
    assert outcome.exit_code == EXIT_OK, outcome.message
    assert_imported(world, data)
    assert world.stats()["codes"].get("iot.device.AlreadyExistedDeviceName", 0) > 0


def _preexisting(world: World, data: list[dict[str, str]]) -> None:
    now = time.time()
    same, other = data[0], data[1]
    world.emulator.world.import_device(
        now, world.product_key, same["DeviceName"], same["DeviceSecret"]
    )
    world.emulator.world.import_device(now, world.product_key, other["DeviceName"], "another-one")


def test_existing_devices_fail_by_default(tmp_path: Path) -> None:
    world = make_world(tmp_path)
    data = rows(50)
    _preexisting(world, data)
    outcome = run(world, settings(world, write_csv(tmp_path / "in.csv", data)))
    assert outcome.exit_code == EXIT_PARTIAL
    assert {r["DeviceName"] for r in output(world)} == {r["DeviceName"] for r in data[2:]}
    with (tmp_path / "out.csv.age.rejects.csv").open(encoding="utf-8") as fh:
        rejected = {r["DeviceName"]: r["reason"] for r in csv.DictReader(fh)}
    assert set(rejected) == {data[0]["DeviceName"], data[1]["DeviceName"]}
    assert all("--existing adopt" in reason for reason in rejected.values())
    assert world.stats()["requests"].get("QueryDeviceDetail", 0) == 0
    assert_no_secret_on_disk(world, data)


def test_existing_adopt_includes_matching_secrets_and_reports_conflicts(tmp_path: Path) -> None:
    world = make_world(tmp_path)
    data = rows(50)
    _preexisting(world, data)
    source = write_csv(tmp_path / "in.csv", data)
    outcome = run(world, settings(world, source, existing="adopt"))
    assert outcome.exit_code == EXIT_PARTIAL
    got = {r["DeviceName"]: r for r in output(world)}
    assert set(got) == {r["DeviceName"] for r in data if r is not data[1]}
    assert got[data[0]["DeviceName"]]["DeviceSecret"] == data[0]["DeviceSecret"]
    with (tmp_path / "out.csv.age.rejects.csv").open(encoding="utf-8") as fh:
        (conflict,) = list(csv.DictReader(fh))
    assert conflict["DeviceName"] == data[1]["DeviceName"]
    assert "different DeviceSecret" in conflict["reason"]
    report = json.loads((tmp_path / "out.csv.age.report.json").read_text())
    assert report["counts"]["adopted"] == 1
    assert report["counts"]["created"] == 48
    assert server_devices(world)[data[1]["DeviceName"]].device_secret == "another-one"


def test_invalid_rows_stop_before_any_call(tmp_path: Path) -> None:
    world = make_world(tmp_path)
    data = rows(5)
    data[1]["DeviceSecret"] = "has space"
    data[2]["Sn"] = "bad-sn"
    data[3]["Nickname"] = "x" * 65
    data[4]["DeviceName"] = data[0]["DeviceName"]
    before = sum(world.recorder.counts.values())  # the product's creation
    outcome = run(world, settings(world, write_csv(tmp_path / "in.csv", data)))
    assert outcome.exit_code == EXIT_INPUT
    assert sum(world.recorder.counts.values()) == before
    text = (tmp_path / "out.csv.age.rejects.csv").read_text(encoding="utf-8")
    assert "DeviceSecret" in text
    assert "has space" not in text
    assert "Sn may hold only" in text
    assert "duplicate of line 2" in text
    assert len(text.strip().splitlines()) == 5  # header + 4 rejected


def test_encrypted_input_needs_its_identity(tmp_path: Path) -> None:
    world = make_world(tmp_path)
    data = rows(60)
    plain = write_csv(tmp_path / "plain.csv", data).read_bytes()
    (tmp_path / "plain.csv").unlink()
    key = pyrage.x25519.Identity.generate()
    encrypted = tmp_path / "in.csv.age"
    encrypted.write_bytes(pyrage.encrypt(plain, [key.to_public()]))
    identity = tmp_path / "in.key"
    identity.write_text(str(key) + "\n")
    identity.chmod(0o600)

    with pytest.raises(UsageError, match="--identity"):
        run(world, settings(world, encrypted))
    wrong = tmp_path / "wrong.key"
    wrong.write_text(str(pyrage.x25519.Identity.generate()) + "\n")
    wrong.chmod(0o600)
    with pytest.raises(InputError, match="cannot decrypt"):
        run(world, settings(world, encrypted, identity=wrong))
    outcome = run(world, settings(world, encrypted, identity=identity))
    assert outcome.exit_code == EXIT_OK, outcome.message
    assert_imported(world, data)
    assert_no_secret_on_disk(world, data)


def test_resume_by_run_id(tmp_path: Path) -> None:
    world = make_world(tmp_path)
    data = rows(300)
    source = write_csv(tmp_path / "in.csv", data)
    world.recorder.crash = lambda action, n: "before" if (action, n) == (IMPORT, 100) else None
    with pytest.raises(Crash):
        run(world, settings(world, source))
    world.recorder.crash = None
    with Journal(tmp_path / "journal.sqlite3") as journal:
        (record,) = journal.list_runs()
    assert record.kind == "import"
    outcome = anyio.run(
        lambda: resume(
            record.run_id,
            journal=str(tmp_path / "journal.sqlite3"),
            encryption=world.encryption,
            api=world.api,
            transport=world.recorder,
        )
    )
    assert outcome.exit_code == EXIT_OK, outcome.message
    assert_imported(world, data)


def test_a_malformed_file_is_reported_without_its_cells(tmp_path: Path) -> None:
    world = make_world(tmp_path)
    source = tmp_path / "in.csv"
    source.write_text('DeviceName,DeviceSecret\nabcd,"unclosed-secret-value\nefgh,x,y,z\n')
    with pytest.raises(InputError) as caught:
        run(world, settings(world, source))
    assert "withheld" in str(caught.value)
    assert "unclosed-secret-value" not in str(caught.value)
    assert caught.value.__cause__ is None
