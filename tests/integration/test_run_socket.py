"""`provisioner run` as a real process against the emulator over a socket.

End to end at 25,000 devices, healing of names that fail the check, faults injected at
5 %, and crash safety: the run is SIGKILLed while checking, creating and exporting, then
run again. Every test also checks that the emulator counted no throttled response and
that no DeviceSecret or AccessKey secret is anywhere in the working directory or logs.
"""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyrage
import pytest

from provisioner.emulator.app import create_app
from provisioner.emulator.config import EmulatorConfig
from provisioner.emulator.serve import running_emulator

AK_ID, AK_SECRET = "socket-key", "socket-secret-value-0123456789"
HEADER = ["ProductKey", "DeviceName", "DeviceSecret", "IotId", "Nickname", "ApplyId"]


@dataclass
class Rig:
    emulator: Any
    url: str
    tmp: Path
    identity: Any
    recipient: str
    product_key: str

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "ALIBABA_CLOUD_ACCESS_KEY_ID": AK_ID,
            "ALIBABA_CLOUD_ACCESS_KEY_SECRET": AK_SECRET,
            "PROVISIONER_ENDPOINT": self.url,
            "PROVISIONER_JOURNAL": str(self.tmp / "journal.sqlite3"),
            "XDG_STATE_HOME": str(self.tmp / "state"),
            "TMPDIR": str(self.tmp / "tmp"),
        }

    def secrets(self) -> list[str]:
        world = self.emulator.world
        devices = [d.device_secret for d in world.devices_by_iot_id.values()]
        return [*devices, *(p.product_secret for p in world.products.values()), AK_SECRET]


def _write_input(path: Path, names: list[str]) -> None:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["DeviceName", "Nickname"])
        for i, name in enumerate(names):
            writer.writerow([name, f"nick_{i:06d}" if i % 2 else ""])


@pytest.fixture
def rig_factory(tmp_path: Path) -> Iterator[Any]:
    stack: list[Any] = []

    def make(**config: Any) -> Rig:
        cfg = EmulatorConfig(accounts={AK_ID: AK_SECRET}, seed=3, **config)
        app = create_app(cfg)
        ctx = running_emulator(cfg, app=app)
        url = ctx.__enter__()
        stack.append(ctx)
        emu = app.state.emulator
        pk = emu.world.create_product(time.time(), "socket_product", 0).product_key
        ident = pyrage.x25519.Identity.generate()
        (tmp_path / "tmp").mkdir(exist_ok=True)
        return Rig(emu, url, tmp_path, ident, str(ident.to_public()), pk)

    yield make
    for ctx in reversed(stack):
        ctx.__exit__(None, None, None)


def _run(
    rig: Rig, input_path: Path, out: Path, *extra: str, kill_on: str | None = None
) -> tuple[int, list[dict[str, Any]]]:
    """Run the CLI; with ``kill_on``, SIGKILL it when that event appears in its log."""
    args = [
        sys.executable, "-m", "provisioner", "run", str(input_path),
        "--product-key", rig.product_key, "--out", str(out),
        "--recipient", rig.recipient, "--log-format", "json", *extra,
    ]  # fmt: skip
    log_path = rig.tmp / "run.log"
    events: list[dict[str, Any]] = []
    with log_path.open("a", encoding="utf-8") as log, subprocess.Popen(
        args, env=rig.env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        cwd=rig.tmp,
    ) as proc:  # fmt: skip
        assert proc.stderr is not None
        for line in proc.stderr:
            log.write(line)
            try:
                event = json.loads(line)
            except ValueError:
                continue
            events.append(event)
            if kill_on is not None and event.get("event") == kill_on:
                proc.send_signal(signal.SIGKILL)
                break
        return proc.wait(timeout=600), events


def _decrypt(rig: Rig, out: Path) -> list[dict[str, str]]:
    plain = pyrage.decrypt(out.read_bytes(), [rig.identity]).decode("utf-8")
    reader = csv.DictReader(io.StringIO(plain))
    assert reader.fieldnames == HEADER
    return list(reader)


def _assert_complete(rows: list[dict[str, str]], names: list[str], pk: str) -> None:
    got = [r["DeviceName"] for r in rows]
    assert len(got) == len(set(got)), "a device appears twice"
    assert set(got) == set(names)
    assert all(len(r["DeviceSecret"]) == 32 for r in rows)
    assert len({r["IotId"] for r in rows}) == len(rows)
    assert {r["ProductKey"] for r in rows} == {pk}


def _assert_no_plaintext(rig: Rig) -> None:
    """No secret in any file under the working directory (journal, logs, temp files)."""
    needles = [s.encode() for s in rig.secrets()]
    for path in rig.tmp.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            for needle in needles:
                assert needle not in data, f"a secret is in {path.name}"


def _assert_never_throttled(rig: Rig) -> None:
    assert rig.emulator.stats()["throttled"] == 0


@pytest.mark.slow
def test_25000_devices_end_to_end(rig_factory: Any) -> None:
    rig = rig_factory(check_seconds=0.3, create_seconds=0.5)
    names = [f"SN-{i:07d}" for i in range(25_000)]
    _write_input(rig.tmp / "devices.csv", names)
    out = rig.tmp / "creds.csv.age"
    code, events = _run(rig, rig.tmp / "devices.csv", out)
    assert code == 0, events[-3:]
    _assert_complete(_decrypt(rig, out), names, rig.product_key)
    assert oct(out.stat().st_mode & 0o777) == "0o600"
    report = json.loads(Path(f"{out}.report.json").read_text())
    assert report["counts"]["exported"] == 25_000
    assert not Path(f"{out}.rejects.csv").exists()
    _assert_never_throttled(rig)
    _assert_no_plaintext(rig)


def test_names_failing_the_check_heal(rig_factory: Any) -> None:
    rig = rig_factory(check_seconds=0.05, create_seconds=0.05, fail_check_names=r"^BAD-")
    rig.emulator.world.register_device(time.time(), rig.product_key, "SN-0000007")
    names = [f"SN-{i:07d}" for i in range(600)] + [f"BAD-{i:04d}" for i in range(5)]
    _write_input(rig.tmp / "devices.csv", names)
    out = rig.tmp / "creds.csv.age"
    code, _ = _run(rig, rig.tmp / "devices.csv", out, "--chunk-size", "200")
    assert code == 4  # finished, some devices not provisioned
    failed = {f"BAD-{i:04d}" for i in range(5)} | {"SN-0000007"}
    rows = _decrypt(rig, out)
    _assert_complete(rows, [n for n in names if n not in failed], rig.product_key)
    with Path(f"{out}.rejects.csv").open(encoding="utf-8") as fh:
        rejected = {r["DeviceName"]: r["reason"] for r in csv.DictReader(fh)}
    assert set(rejected) == failed
    assert all(rejected.values())
    _assert_never_throttled(rig)
    _assert_no_plaintext(rig)


def test_faults_at_five_percent_still_complete(rig_factory: Any) -> None:
    rig = rig_factory(
        check_seconds=0.05, create_seconds=0.05,
        fault_503=0.05, fault_system_error=0.05, fault_drop=0.05,
    )  # fmt: skip
    names = [f"FLT-{i:06d}" for i in range(5_000)]
    _write_input(rig.tmp / "devices.csv", names)
    out = rig.tmp / "creds.csv.age"
    code, _ = _run(rig, rig.tmp / "devices.csv", out, "--chunk-size", "1000")
    assert code == 0
    _assert_complete(_decrypt(rig, out), names, rig.product_key)
    faults = rig.emulator.stats()["faults"]
    assert min(faults["unavailable"], faults["system_error"], faults["drop"]) > 0
    report = json.loads(Path(f"{out}.report.json").read_text())
    # Some failed status polls are simply polled again, so not every fault is a retry.
    assert report["retries"] > 0
    _assert_never_throttled(rig)
    _assert_no_plaintext(rig)


@pytest.mark.parametrize(
    "kill_on",
    ["run.chunk_check_submitted", "run.chunk_create_submitted", "run.chunk_exported"],
    ids=["checking", "creating", "exporting"],
)
def test_sigkill_then_rerun_gives_each_device_once(rig_factory: Any, kill_on: str) -> None:
    rig = rig_factory(check_seconds=0.4, create_seconds=0.6)
    names = [f"CR-{i:06d}" for i in range(6_000)]
    _write_input(rig.tmp / "devices.csv", names)
    out = rig.tmp / "creds.csv.age"
    code, _ = _run(rig, rig.tmp / "devices.csv", out, "--chunk-size", "1500", kill_on=kill_on)
    assert code == -signal.SIGKILL, "the run finished before it could be killed"
    assert not out.exists(), "nothing may appear under the final name before completion"
    _assert_no_plaintext(rig)

    code, _ = _run(rig, rig.tmp / "devices.csv", out, "--chunk-size", "1500")
    assert code == 0
    _assert_complete(_decrypt(rig, out), names, rig.product_key)
    stats = rig.emulator.stats()
    # Never submitted twice: a second BatchRegisterDeviceWithApplyId for one ApplyId
    # would have been answered CreateDeviceTaskIsRunning.
    assert "iot.device.CreateDeviceTaskIsRunning" not in stats["codes"]
    report = json.loads(Path(f"{out}.report.json").read_text())
    assert stats["requests"]["BatchRegisterDeviceWithApplyId"] == len(report["apply_ids"])
    assert not list(rig.tmp.glob(".creds.csv.age.*.partial"))
    _assert_never_throttled(rig)
    _assert_no_plaintext(rig)

    # A third run finds the run complete and calls nothing.
    before = stats["requests_total"]
    code, _ = _run(rig, rig.tmp / "devices.csv", out, "--chunk-size", "1500")
    assert code == 0
    assert rig.emulator.stats()["requests_total"] == before
