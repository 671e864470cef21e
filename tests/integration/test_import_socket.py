"""``provisioner import`` as a real process against the emulator over a socket.

5,000 devices from an age-encrypted input: every device's QueryDeviceDetail secret
equals the input's; a SIGKILL mid-way and a re-run that imports only what is missing;
existing devices per ``--existing``. No throttled response, no secret in any file.
"""

from __future__ import annotations

import csv
import io
import signal
import time
from pathlib import Path
from typing import Any

import anyio
import pyrage
import pytest
from socket_rig import (
    AK_ID,
    AK_SECRET,
    Rig,
    assert_never_throttled,
    assert_no_plaintext,
    decrypt,
    run_cli,
)

from provisioner.api import IotClient, SlidingWindowLimiter
from provisioner.config import ApiSettings, Credentials

SCALE = 10  # the emulator and the CLI at 10x the real QPS: 500 ImportDevice calls a second
HEADER = ["ProductKey", "DeviceName", "DeviceSecret", "IotId", "Nickname", "ApplyId", "Sn"]


def migration(n: int) -> list[dict[str, str]]:
    return [
        {
            "DeviceName": f"old-{i:05d}",
            "DeviceSecret": f"kept{i:05d}secret{(i * 48271) % 99991:05d}",
            "Nickname": f"lamp_{i}" if i % 2 else "",
            "Sn": f"QC{i:07d}",
        }
        for i in range(n)
    ]


def encrypted_input(rig: Rig, data: list[dict[str, str]]) -> tuple[Path, Path]:
    """The migration file, age-encrypted (it holds secrets), and its identity file."""
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=["DeviceName", "DeviceSecret", "Nickname", "Sn"])
    writer.writeheader()
    writer.writerows(data)
    key = pyrage.x25519.Identity.generate()
    path = rig.tmp / "migration.csv.age"
    path.write_bytes(pyrage.encrypt(text.getvalue().encode(), [key.to_public()]))
    identity = rig.tmp / "migration.key"
    identity.write_text(f"{key}\n")
    identity.chmod(0o600)
    return path, identity


def do_import(
    rig: Rig, source: Path, identity: Path, out: Path, *extra: str, kill_on: str | None = None
) -> tuple[int, str]:
    args = (
        "import", str(source), "--identity", str(identity), "--product-key", rig.product_key,
        "--out", str(out), "--recipient", rig.recipient, "--qps-scale", str(SCALE), *extra,
    )  # fmt: skip
    code, _, message = run_cli(rig, *args, kill_on=kill_on)
    return code, message


def server_secrets(rig: Rig, names: list[str]) -> dict[str, str]:
    """QueryDeviceDetail over the socket for every name, as a client would check."""
    api = ApiSettings(Credentials(AK_ID, AK_SECRET), endpoint=rig.url, qps_scale=SCALE)
    found: dict[str, str] = {}

    async def main() -> None:
        limiter = SlidingWindowLimiter(AK_ID, scale=SCALE, margin=0.05)
        async with IotClient(api, limiter=limiter) as client, anyio.create_task_group() as tg:
            for worker in range(16):
                tg.start_soon(check, client, names[worker::16])

    async def check(client: IotClient, mine: list[str]) -> None:
        for name in mine:
            detail = await client.query_device_detail(product_key=rig.product_key, device_name=name)
            found[name] = detail.device_secret

    anyio.run(main)
    return found


@pytest.mark.slow
def test_5000_devices_then_sigkill_rerun_imports_only_the_missing(rig_factory: Any) -> None:
    rig = rig_factory(qps_scale=SCALE)
    data = migration(5_000)
    source, identity = encrypted_input(rig, data)
    out = rig.tmp / "migrated.csv.age"
    code, _ = do_import(rig, source, identity, out, kill_on="import.results_recorded")
    assert code == -signal.SIGKILL
    assert not out.exists()
    before = rig.emulator.stats()["requests"]["ImportDevice"]
    done = len(rig.emulator.world.products[rig.product_key].devices)
    assert 0 < done < 5_000
    assert_no_plaintext(rig)

    code, message = do_import(rig, source, identity, out)
    assert code == 0, message
    resent = rig.emulator.stats()["requests"]["ImportDevice"] - before
    assert 5_000 - done <= resent <= 5_000 - done + 16  # the missing, and those in flight
    rows = decrypt(rig, out, HEADER)
    assert sorted((r["DeviceName"], r["DeviceSecret"], r["Nickname"], r["Sn"]) for r in rows) == [
        (d["DeviceName"], d["DeviceSecret"], d["Nickname"], d["Sn"]) for d in data
    ]
    assert oct(out.stat().st_mode & 0o777) == "0o600"
    names = [d["DeviceName"] for d in data]
    assert server_secrets(rig, names) == {d["DeviceName"]: d["DeviceSecret"] for d in data}
    assert_never_throttled(rig)
    assert_no_plaintext(rig)


def test_existing_devices_per_policy(rig_factory: Any) -> None:
    rig = rig_factory(qps_scale=SCALE)
    data = migration(200)
    world = rig.emulator.world
    world.import_device(time.time(), rig.product_key, "old-00000", data[0]["DeviceSecret"])
    world.import_device(time.time(), rig.product_key, "old-00001", "someone-elses")
    source, identity = encrypted_input(rig, data)

    out = rig.tmp / "fail.csv.age"
    code, message = do_import(rig, source, identity, out)
    assert code == 4, message
    assert len(decrypt(rig, out, HEADER)) == 198
    rejects = Path(f"{out}.rejects.csv").read_text(encoding="utf-8")
    assert "old-00000" in rejects
    assert "old-00001" in rejects

    out = rig.tmp / "adopt.csv.age"
    code, message = do_import(rig, source, identity, out, "--existing", "adopt", "--force")
    assert code == 4, message
    rows = {r["DeviceName"]: r for r in decrypt(rig, out, HEADER)}
    assert len(rows) == 199
    assert rows["old-00000"]["DeviceSecret"] == data[0]["DeviceSecret"]
    assert "old-00001" not in rows
    assert "different DeviceSecret" in Path(f"{out}.rejects.csv").read_text(encoding="utf-8")
    assert_never_throttled(rig)
    assert_no_plaintext(rig)
