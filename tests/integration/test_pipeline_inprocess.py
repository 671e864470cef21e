"""The whole pipeline against the emulator in-process (httpx.ASGITransport), end to end.

Outputs are decrypted with pyrage and compared with the input. Crashes are injected by
a transport wrapper that raises after a chosen request, before or after the emulator
has acted on it, so the re-run has to reconcile with the server.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import stat
import subprocess
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import anyio
import pyrage
import pytest
import structlog
from inprocess_rig import Crash, World, make_world, names

from provisioner.errors import EXIT_INPUT, EXIT_OK, EXIT_PARTIAL, RunInProgressError, UsageError
from provisioner.journal import Journal
from provisioner.pipeline import (
    RunFailedError,
    export_application,
    resume,
    status,
)

pytestmark = pytest.mark.usefixtures("no_retry_waits")


def assert_complete(world: World, expected: list[str]) -> list[dict[str, str]]:
    rows = world.decrypt()
    got = [r["DeviceName"] for r in rows]
    assert sorted(got) == sorted(expected)
    assert len(set(got)) == len(got)
    assert all(r["DeviceSecret"] for r in rows)
    assert len({r["IotId"] for r in rows}) == len(rows)
    assert all(r["ProductKey"] == world.product_key for r in rows)
    return rows


# --- the main flow ----------------------------------------------------------------------


def test_end_to_end(tmp_path: Path) -> None:
    world = make_world(tmp_path)
    expected = names(2_600)
    outcome = world.run(world.settings(world.write_input(expected), chunk_size=1_000))
    assert outcome.exit_code == EXIT_OK, outcome.message
    rows = assert_complete(world, expected)
    assert {r["Nickname"] for r in rows} == {f"nick_{n}" for n in expected}
    report = json.loads((tmp_path / "out.csv.age.report.json").read_text())
    assert report["counts"] == {
        "input": 2_600,
        "rejected": 0,
        "submitted": 2_600,
        "created": 2_600,
        "exported": 2_600,
        "adopted": 0,
        "failed": 0,
    }
    assert len(report["apply_ids"]) == 3
    assert {r["ApplyId"] for r in rows} == set(report["apply_ids"])
    assert set(report["durations_s"]) >= {"validate", "check", "create", "export"}
    assert stat.S_IMODE((tmp_path / "out.csv.age").stat().st_mode) == 0o600
    assert not (tmp_path / "out.csv.age.rejects.csv").exists()
    assert world.stats()["throttled"] == 0
    # Nothing but the final files beside the output: no plaintext, no leftovers.
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith("journal")) == [
        "in.csv",
        "out.csv.age",
        "out.csv.age.report.json",
    ]


def test_completed_run_makes_no_call(tmp_path: Path) -> None:
    world = make_world(tmp_path)
    settings = world.settings(world.write_input(names(120)))
    assert world.run(settings).exit_code == EXIT_OK
    before = world.stats()["requests_total"]
    again = world.run(settings)
    assert again.exit_code == EXIT_OK
    assert again.already_completed
    assert "already completed" in again.message
    assert world.stats()["requests_total"] == before
    first = {r["DeviceName"]: r["DeviceSecret"] for r in world.decrypt()}
    # --force exports the completed run again: pages only, nothing is created.
    (tmp_path / "out.csv.age").unlink()
    redo = world.run(replace(settings, force=True))
    assert redo.exit_code == EXIT_OK
    assert not redo.already_completed
    assert {r["DeviceName"]: r["DeviceSecret"] for r in world.decrypt()} == first
    requests = world.stats()["requests"]
    assert requests["BatchCheckDeviceNames"] == 1
    assert requests["BatchRegisterDeviceWithApplyId"] == 1


def test_names_failing_the_check_heal(tmp_path: Path) -> None:
    world = make_world(tmp_path, fail_check_names=r"^dev0001[0-4]$")
    expected = names(300)
    outcome = world.run(world.settings(world.write_input(expected)))
    assert outcome.exit_code == EXIT_PARTIAL
    bad = {f"dev0001{i}" for i in range(5)}
    assert_complete(world, [n for n in expected if n not in bad])
    rejects = list(csv.DictReader((tmp_path / "out.csv.age.rejects.csv").open()))
    assert {r["DeviceName"] for r in rejects} == bad
    assert all("rejected by the check" in r["reason"] for r in rejects)
    assert outcome.report is not None
    assert outcome.report["counts"]["rejected"] == 5


@pytest.mark.parametrize("policy", ["fail", "adopt"])
def test_existing_names(tmp_path: Path, policy: str) -> None:
    world = make_world(tmp_path)
    first = world.settings(
        world.write_input(names(60), name="first.csv"), out=tmp_path / "first.age"
    )
    assert world.run(first).exit_code == EXIT_OK
    expected = names(200)
    outcome = world.run(world.settings(world.write_input(expected), existing=policy))
    rows = world.decrypt()
    assert outcome.report is not None
    counts = outcome.report["counts"]
    if policy == "fail":
        assert outcome.exit_code == EXIT_PARTIAL
        assert sorted(r["DeviceName"] for r in rows) == expected[60:]
        rejects = list(csv.DictReader((tmp_path / "out.csv.age.rejects.csv").open()))
        assert sorted(r["DeviceName"] for r in rejects) == expected[:60]
        assert all("already exists" in r["reason"] for r in rejects)
        assert counts["rejected"] == 60
    else:
        assert outcome.exit_code == EXIT_OK
        assert_complete(world, expected)
        adopted = [r for r in rows if r["DeviceName"] in set(expected[:60])]
        assert all(r["ApplyId"] == "" for r in adopted)
        old = {r["DeviceName"]: r["DeviceSecret"] for r in world.decrypt(tmp_path / "first.age")}
        assert all(old[r["DeviceName"]] == r["DeviceSecret"] for r in adopted)
        assert counts["adopted"] == 60
        assert counts["created"] == 140


def test_device_count_exceeded_splits(tmp_path: Path) -> None:
    world = make_world(tmp_path, max_batch=130)
    expected = names(500)
    outcome = world.run(world.settings(world.write_input(expected), chunk_size=500))
    assert outcome.exit_code == EXIT_OK
    assert_complete(world, expected)
    views = status(str(tmp_path / "journal.sqlite3"), outcome.run_id)
    states = Counter(a.state for a in views[0].applications)
    assert states["SPLIT"] >= 3  # 500 -> 250 -> 125
    assert all(a.size <= 130 for a in views[0].applications if a.state == "DONE")


def test_create_failed_is_retried_once(tmp_path: Path) -> None:
    world = make_world(tmp_path, create_failure_rate=0.3, seed=3)
    expected = names(400)
    outcome = world.run(world.settings(world.write_input(expected)))
    assert outcome.report is not None
    counts = outcome.report["counts"]
    rows = world.decrypt()
    failed = set()
    if (tmp_path / "out.csv.age.rejects.csv").exists():
        failed = {
            r["DeviceName"] for r in csv.DictReader((tmp_path / "out.csv.age.rejects.csv").open())
        }
    assert {r["DeviceName"] for r in rows} | failed == set(expected)
    assert counts["created"] + counts["failed"] == 400
    # 30 % fail at first; about 30 % of those fail again and are reported.
    assert 0 < counts["failed"] < 80
    assert outcome.exit_code == EXIT_PARTIAL
    views = status(str(tmp_path / "journal.sqlite3"), outcome.run_id)
    assert any(a.attempt == 1 for a in views[0].applications)
    assert max(a.attempt for a in views[0].applications) == 1


# --- invalid input ----------------------------------------------------------------------


BAD_ROWS = "x\nbad name!,nick_ok\ndev00003,\n"


def test_invalid_rows_without_skip_send_nothing(tmp_path: Path) -> None:
    world = make_world(tmp_path)
    before = world.stats()["requests_total"]
    outcome = world.run(world.settings(world.write_input(names(50), extra=BAD_ROWS)))
    assert outcome.exit_code == EXIT_INPUT
    assert world.stats()["requests_total"] == before
    rejects = list(csv.DictReader((tmp_path / "out.csv.age.rejects.csv").open()))
    assert {r["DeviceName"] for r in rejects} == {"x", "bad name!", "dev00003"}
    assert not (tmp_path / "out.csv.age").exists()
    assert status(str(tmp_path / "journal.sqlite3")) == []


def test_skip_invalid_provisions_the_rest(tmp_path: Path) -> None:
    world = make_world(tmp_path)
    expected = names(50)
    outcome = world.run(
        world.settings(world.write_input(expected, extra=BAD_ROWS), skip_invalid=True)
    )
    assert outcome.exit_code == EXIT_PARTIAL
    assert_complete(world, expected)
    rejects = list(csv.DictReader((tmp_path / "out.csv.age.rejects.csv").open()))
    assert {r["DeviceName"] for r in rejects} == {"x", "bad name!", "dev00003"}
    assert outcome.report is not None
    assert outcome.report["counts"]["input"] == 53
    assert outcome.report["counts"]["rejected"] == 3


def test_existing_output_is_refused_without_force(tmp_path: Path) -> None:
    world = make_world(tmp_path)
    (tmp_path / "out.csv.age").write_bytes(b"precious")
    before = world.stats()["requests_total"]
    with pytest.raises(Exception, match="already exists"):
        world.run(world.settings(world.write_input(names(10))))
    assert world.stats()["requests_total"] == before
    assert (tmp_path / "out.csv.age").read_bytes() == b"precious"
    outcome = world.run(world.settings(world.write_input(names(10)), force=True))
    assert outcome.exit_code == EXIT_OK
    assert_complete(world, names(10))


# --- crashes and resume -----------------------------------------------------------------


def crash_at(action: str, n: int, when: str) -> Callable[[str, int], str | None]:
    return lambda a, count: when if a == action and count == n else None


@pytest.mark.parametrize(
    ("action", "n", "when"),
    [
        ("BatchCheckDeviceNames", 2, "after"),
        ("BatchRegisterDeviceWithApplyId", 1, "after"),
        ("BatchRegisterDeviceWithApplyId", 2, "before"),
        ("QueryPageByApplyId", 7, "before"),
    ],
)
def test_resume_after_a_crash(tmp_path: Path, action: str, n: int, when: str) -> None:
    world = make_world(tmp_path)
    expected = names(1_200)
    settings = world.settings(world.write_input(expected), chunk_size=400)
    world.recorder.crash = crash_at(action, n, when)
    with pytest.raises(Crash):
        world.run(settings)
    assert not (tmp_path / "out.csv.age").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".partial")]
    world.recorder.crash = None
    outcome = world.run(settings)
    assert outcome.exit_code == EXIT_OK, outcome.message
    assert outcome.report is not None
    assert outcome.report["resumed"] is True
    assert_complete(world, expected)
    submits = world.recorder.submits("BatchRegisterDeviceWithApplyId")
    assert submits
    assert max(submits.values()) == 1, submits


def test_failed_run_is_resumed_by_id(tmp_path: Path) -> None:
    world = make_world(tmp_path)
    expected = names(300)
    settings = world.settings(world.write_input(expected))
    world.recorder.crash = crash_at("QueryPageByApplyId", 1, "before")
    with pytest.raises(Crash):
        world.run(settings)
    world.recorder.crash = None
    run_id = status(settings.journal)[0].run.run_id
    assert status(settings.journal)[0].run.status == "failed"
    outcome = anyio.run(
        lambda: resume(
            run_id,
            journal=settings.journal,
            encryption=world.encryption,
            api=world.api,
            transport=world.recorder,
            base=settings,
        )
    )
    assert outcome.exit_code == EXIT_OK
    assert outcome.run_id == run_id
    assert_complete(world, expected)


def test_terminal_error_fails_resumably(tmp_path: Path) -> None:
    world = make_world(tmp_path)
    settings = world.settings(world.write_input(names(20)))

    def product_deleted(action: str, n: int) -> None:
        # The product existed when the run started, then vanished (deleted in the console).
        if action == "BatchCheckDeviceNames":
            world.emulator.world.products.pop(world.product_key, None)

    world.recorder.crash = product_deleted
    with pytest.raises(RunFailedError) as info:
        world.run(settings)
    assert "resume" in str(info.value)
    assert info.value.exit_code == 1
    run = status(settings.journal)[0].run
    assert run.status == "failed"
    assert run.lease is None
    assert not (tmp_path / "out.csv.age").exists()


@pytest.mark.parametrize("typed", ["a1NoSuchProd", "{pk} ", " {pk}", "\t{pk}\n"])
def test_product_key_checked_once_before_the_run(tmp_path: Path, typed: str) -> None:
    world = make_world(tmp_path)
    settings = world.settings(
        world.write_input(names(20)), product_key=typed.format(pk=world.product_key)
    )
    if typed == "a1NoSuchProd":
        with pytest.raises(UsageError, match=r"does not exist.*--product-key") as info:
            world.run(settings)
        assert info.value.exit_code == 2
        assert status(settings.journal) == []  # no failed run left behind
        assert world.recorder.counts["BatchCheckDeviceNames"] == 0
    else:  # stray whitespace from a copy and paste is stripped
        assert world.run(settings).exit_code == 0
        assert status(settings.journal)[0].run.product_key == world.product_key
    assert world.recorder.counts["QueryProduct"] == 1


def test_second_process_is_refused(tmp_path: Path) -> None:
    world = make_world(tmp_path)
    settings = world.settings(world.write_input(names(30)))
    world.recorder.crash = crash_at("BatchCheckDeviceNames", 1, "before")
    with pytest.raises(Crash):
        world.run(settings)
    world.recorder.crash = None
    run_id = status(settings.journal)[0].run.run_id
    # Another live process (our parent stands in for it) holds the run.
    with Journal(tmp_path / "journal.sqlite3", pid=os.getppid()) as other:
        lease = other.acquire_lease(run_id)
        with pytest.raises(RunInProgressError, match=f"run {run_id} is in progress"):
            world.run(settings)
        other.release_lease(run_id, lease)


def test_lease_of_a_killed_process_is_taken_over(tmp_path: Path) -> None:
    world = make_world(tmp_path)
    expected = names(100)
    settings = world.settings(world.write_input(expected))
    world.recorder.crash = crash_at("QueryPageByApplyId", 1, "before")
    with pytest.raises(Crash):
        world.run(settings)
    world.recorder.crash = None
    run_id = status(settings.journal)[0].run.run_id
    # A SIGKILLed process leaves its lease behind: a pid that no longer exists.
    child = subprocess.Popen(["true"])
    child.wait()
    with Journal(tmp_path / "journal.sqlite3", pid=child.pid) as gone:
        gone.acquire_lease(run_id)
    outcome = world.run(settings)
    assert outcome.exit_code == EXIT_OK
    assert_complete(world, expected)


# --- export and secrets -----------------------------------------------------------------


def test_export_application_again(tmp_path: Path) -> None:
    world = make_world(tmp_path)
    expected = names(180)
    outcome = world.run(world.settings(world.write_input(expected), chunk_size=100))
    assert outcome.report is not None
    original = {r["DeviceName"]: r for r in world.decrypt()}
    apply_id = outcome.report["apply_ids"][0]
    again = tmp_path / "again.jsonl.age"
    result = anyio.run(
        lambda: export_application(
            apply_id,
            world.product_key,
            again,
            world.encryption,
            "jsonl",
            world.api,
            transport=world.recorder,
        )
    )
    assert result.rows == 90
    text = pyrage.decrypt(again.read_bytes(), [world.identity]).decode()
    rows = [json.loads(line) for line in text.splitlines()]
    assert len(rows) == 90
    for row in rows:
        assert row["ApplyId"] == apply_id
        assert row["DeviceSecret"] == original[row["DeviceName"]]["DeviceSecret"]
        assert row["IotId"] == original[row["DeviceName"]]["IotId"]


def test_faults_heal_and_no_secret_leaks(tmp_path: Path) -> None:
    world = make_world(tmp_path, fault_503=0.05, fault_system_error=0.05)
    buffer = io.StringIO()
    structlog.configure(
        processors=[structlog.processors.JSONRenderer()],
        wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG),
        logger_factory=structlog.PrintLoggerFactory(file=buffer),
    )
    world.recorder.drop_rate = 0.05
    try:
        outcome = world.run(world.settings(world.write_input(names(1_500)), chunk_size=300))
    finally:
        structlog.reset_defaults()
    assert outcome.exit_code == EXIT_OK
    assert_complete(world, names(1_500))
    assert max(world.recorder.submits("BatchRegisterDeviceWithApplyId").values()) == 1
    assert outcome.report is not None
    assert outcome.report["retries"] > 0
    secrets = {r["DeviceSecret"] for r in world.decrypt()}
    logs = buffer.getvalue()
    assert "run.chunk_checked" in logs
    stored = b"".join(
        p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("journal.sqlite3")
    )
    report = (tmp_path / "out.csv.age.report.json").read_text()
    for secret in [*secrets, "testsecret"]:
        assert secret not in logs
        assert secret.encode() not in stored
        assert secret not in report


def test_adopt_rejects_a_refused_name_that_does_not_exist(tmp_path: Path) -> None:
    world = make_world(tmp_path, fail_check_names=r"^dev0000[0-2]$")
    expected = names(40)
    outcome = world.run(world.settings(world.write_input(expected), existing="adopt"))
    assert outcome.exit_code == EXIT_PARTIAL
    assert_complete(world, expected[3:])
    rejects = list(csv.DictReader((tmp_path / "out.csv.age.rejects.csv").open()))
    assert sorted(r["DeviceName"] for r in rejects) == expected[:3]
    assert all("does not exist" in r["reason"] for r in rejects)
