"""`provisioner run` as a real process against the emulator over a socket.

End to end at 25,000 devices, healing of names that fail the check, faults injected at
5 %, and crash safety: the run is SIGKILLed while checking, creating and exporting, then
run again. Every test also checks that the emulator counted no throttled response and
that no DeviceSecret or AccessKey secret is anywhere in the working directory or logs.
"""

from __future__ import annotations

import csv
import json
import signal
import time
from pathlib import Path
from typing import Any

import pytest
from socket_rig import (
    Rig,
    assert_complete,
    assert_never_throttled,
    assert_no_plaintext,
    decrypt,
    run_cli,
    write_input,
)


def _run(
    rig: Rig, input_path: Path, out: Path, *extra: str, kill_on: str | None = None
) -> tuple[int, list[dict[str, Any]]]:
    args = (
        "run", str(input_path), "--product-key", rig.product_key, "--out", str(out),
        "--recipient", rig.recipient, *extra,
    )  # fmt: skip
    code, events, _ = run_cli(rig, *args, kill_on=kill_on)
    return code, events


@pytest.mark.slow
def test_25000_devices_end_to_end(rig_factory: Any) -> None:
    rig = rig_factory(check_seconds=0.3, create_seconds=0.5)
    names = [f"SN-{i:07d}" for i in range(25_000)]
    write_input(rig.tmp / "devices.csv", names)
    out = rig.tmp / "creds.csv.age"
    code, events = _run(rig, rig.tmp / "devices.csv", out)
    assert code == 0, events[-3:]
    assert_complete(decrypt(rig, out), names, rig.product_key)
    assert oct(out.stat().st_mode & 0o777) == "0o600"
    report = json.loads(Path(f"{out}.report.json").read_text())
    assert report["counts"]["exported"] == 25_000
    assert not Path(f"{out}.rejects.csv").exists()
    assert_never_throttled(rig)
    assert_no_plaintext(rig)


def test_names_failing_the_check_heal(rig_factory: Any) -> None:
    rig = rig_factory(check_seconds=0.05, create_seconds=0.05, fail_check_names=r"^BAD-")
    rig.emulator.world.register_device(time.time(), rig.product_key, "SN-0000007")
    names = [f"SN-{i:07d}" for i in range(600)] + [f"BAD-{i:04d}" for i in range(5)]
    write_input(rig.tmp / "devices.csv", names)
    out = rig.tmp / "creds.csv.age"
    code, _ = _run(rig, rig.tmp / "devices.csv", out, "--chunk-size", "200")
    assert code == 4  # finished, some devices not provisioned
    failed = {f"BAD-{i:04d}" for i in range(5)} | {"SN-0000007"}
    rows = decrypt(rig, out)
    assert_complete(rows, [n for n in names if n not in failed], rig.product_key)
    with Path(f"{out}.rejects.csv").open(encoding="utf-8") as fh:
        rejected = {r["DeviceName"]: r["reason"] for r in csv.DictReader(fh)}
    assert set(rejected) == failed
    assert all(rejected.values())
    assert_never_throttled(rig)
    assert_no_plaintext(rig)


@pytest.mark.slow
def test_faults_at_five_percent_still_complete(rig_factory: Any) -> None:
    rig = rig_factory(
        check_seconds=0.05, create_seconds=0.05,
        fault_503=0.05, fault_system_error=0.05, fault_drop=0.05,
    )  # fmt: skip
    names = [f"FLT-{i:06d}" for i in range(5_000)]
    write_input(rig.tmp / "devices.csv", names)
    out = rig.tmp / "creds.csv.age"
    code, _ = _run(rig, rig.tmp / "devices.csv", out, "--chunk-size", "1000")
    assert code == 0
    assert_complete(decrypt(rig, out), names, rig.product_key)
    faults = rig.emulator.stats()["faults"]
    assert min(faults["unavailable"], faults["system_error"], faults["drop"]) > 0
    report = json.loads(Path(f"{out}.report.json").read_text())
    # Some failed status polls are simply polled again, so not every fault is a retry.
    assert report["retries"] > 0
    assert_never_throttled(rig)
    assert_no_plaintext(rig)


@pytest.mark.slow
@pytest.mark.parametrize(
    "kill_on",
    ["run.chunk_check_submitted", "run.chunk_create_submitted", "run.chunk_exported"],
    ids=["checking", "creating", "exporting"],
)
def test_sigkill_then_rerun_gives_each_device_once(rig_factory: Any, kill_on: str) -> None:
    rig = rig_factory(check_seconds=0.4, create_seconds=0.6)
    names = [f"CR-{i:06d}" for i in range(6_000)]
    write_input(rig.tmp / "devices.csv", names)
    out = rig.tmp / "creds.csv.age"
    code, _ = _run(rig, rig.tmp / "devices.csv", out, "--chunk-size", "1500", kill_on=kill_on)
    assert code == -signal.SIGKILL, "the run finished before it could be killed"
    assert not out.exists(), "nothing may appear under the final name before completion"
    assert_no_plaintext(rig)

    code, _ = _run(rig, rig.tmp / "devices.csv", out, "--chunk-size", "1500")
    assert code == 0
    assert_complete(decrypt(rig, out), names, rig.product_key)
    stats = rig.emulator.stats()
    # Never submitted twice: a second BatchRegisterDeviceWithApplyId for one ApplyId
    # would have been answered CreateDeviceTaskIsRunning.
    assert "iot.device.CreateDeviceTaskIsRunning" not in stats["codes"]
    report = json.loads(Path(f"{out}.report.json").read_text())
    assert stats["requests"]["BatchRegisterDeviceWithApplyId"] == len(report["apply_ids"])
    assert not list(rig.tmp.glob(".creds.csv.age.*.partial"))
    assert_never_throttled(rig)
    assert_no_plaintext(rig)

    # A third run finds the run complete and calls nothing.
    before = stats["requests_total"]
    code, _ = _run(rig, rig.tmp / "devices.csv", out, "--chunk-size", "1500")
    assert code == 0
    assert rig.emulator.stats()["requests_total"] == before
