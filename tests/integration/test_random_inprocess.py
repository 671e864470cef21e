"""``register-random`` against the emulator in-process: split into calls, exported, and
never a second set of devices, whatever dies when."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from inprocess_rig import FAST, Crash, World, make_world

from provisioner.errors import EXIT_OK, EXIT_PARTIAL, UsageError
from provisioner.journal import Journal
from provisioner.pipeline import (
    LostApplicationsError,
    RandomSettings,
    RunOutcome,
    register_random,
    resume,
)

REGISTER = "BatchRegisterDevice"
PAGE = "QueryPageByApplyId"

pytestmark = pytest.mark.usefixtures("no_retry_waits")


def settings(world: World, count: int, **kw: Any) -> RandomSettings:
    base: dict[str, Any] = {
        "count": count,
        "product_key": world.product_key,
        "out": world.tmp / "out.csv.age",
        "encryption": world.encryption,
        "api": world.api,
        "journal": str(world.tmp / "journal.sqlite3"),
        "progress": "none",
        "per_call": 1_000,
        "tuning": FAST,
    }
    base.update(kw)
    return RandomSettings(**base)


def run(world: World, s: RandomSettings) -> RunOutcome:
    return anyio.run(lambda: register_random(s, transport=world.recorder))


def registered(world: World) -> int:
    """Devices that exist in the product on the emulator."""
    return len(world.emulator.world.products[world.product_key].devices)


def check_output(world: World, count: int) -> list[dict[str, str]]:
    rows = world.decrypt()
    assert len(rows) == count
    assert len({r["DeviceName"] for r in rows}) == count
    assert len({r["IotId"] for r in rows}) == count
    assert all(len(r["DeviceSecret"]) == 32 for r in rows)
    assert {r["Nickname"] for r in rows} == {""}
    assert {r["ProductKey"] for r in rows} == {world.product_key}
    devices = world.emulator.world.products[world.product_key].devices
    assert all(devices[r["DeviceName"]].device_secret == r["DeviceSecret"] for r in rows)
    return rows


def test_count_is_split_into_calls_and_exported(tmp_path: Path) -> None:
    world = make_world(tmp_path)
    outcome = run(world, settings(world, 2_500))
    assert outcome.exit_code == EXIT_OK, outcome.message
    check_output(world, 2_500)
    assert registered(world) == 2_500
    assert world.recorder.counts[REGISTER] == 3
    report = json.loads((tmp_path / "out.csv.age.report.json").read_text())
    assert report["counts"]["created"] == report["counts"]["exported"] == 2_500
    assert len(report["apply_ids"]) == 3
    assert oct((tmp_path / "out.csv.age").stat().st_mode & 0o777) == "0o600"

    # The same command again: complete, nothing called.
    before = sum(world.recorder.counts.values())
    again = run(world, settings(world, 2_500))
    assert again.already_completed
    assert sum(world.recorder.counts.values()) == before


def test_crash_during_export_then_rerun_registers_nothing_new(tmp_path: Path) -> None:
    world = make_world(tmp_path)
    world.recorder.crash = lambda action, n: (
        "after" if action == "QueryPageByApplyId" and n == 7 else None
    )
    with pytest.raises(Crash):
        run(world, settings(world, 2_500))
    assert not (tmp_path / "out.csv.age").exists()
    world.recorder.crash = None
    outcome = run(world, settings(world, 2_500))
    assert outcome.exit_code == EXIT_OK, outcome.message
    check_output(world, 2_500)
    assert registered(world) == 2_500
    assert world.recorder.counts[REGISTER] == 3


def _lose_second_call(world: World, when: str) -> None:
    world.recorder.crash = lambda action, n: when if action == REGISTER and n == 2 else None


@pytest.mark.parametrize("when", ["before", "after"])
def test_crash_around_a_call_leaves_it_lost_until_the_operator_decides(
    tmp_path: Path, when: str
) -> None:
    world = make_world(tmp_path)
    _lose_second_call(world, when)
    with pytest.raises(Crash):
        run(world, settings(world, 2_500))
    world.recorder.crash = None
    created_by_crash = registered(world)

    # Re-run: the journal has an intent without an answer; nothing is sent again.
    with pytest.raises(LostApplicationsError, match="--lost resubmit"):
        run(world, settings(world, 2_500))
    assert not (tmp_path / "out.csv.age").exists()
    sent = world.recorder.counts[REGISTER]
    assert registered(world) >= created_by_crash
    with Journal(tmp_path / "journal.sqlite3") as journal:
        (record,) = journal.list_runs()
        lost = journal.applications(record.run_id, ("LOST",))
    assert len(lost) == 1
    assert lost[0].apply_id is None

    if when == "before":
        # The call never arrived: the operator resubmits, and the batch completes once.
        outcome = run(world, settings(world, 2_500, lost="resubmit"))
        assert outcome.exit_code == EXIT_OK, outcome.message
        check_output(world, 2_500)
        assert registered(world) == 2_500
        assert world.recorder.counts[REGISTER] == sent + 1
    else:
        # It did arrive (its devices exist): the operator abandons it; the rest is
        # delivered and the run says what is missing.
        outcome = run(world, settings(world, 2_500, lost="abandon"))
        assert outcome.exit_code == EXIT_PARTIAL, outcome.message
        assert "abandoned" in outcome.message
        rows = world.decrypt()
        assert len(rows) == 2_500 - lost[0].size
        assert world.recorder.counts[REGISTER] == sent
        report = json.loads((tmp_path / "out.csv.age.report.json").read_text())
        assert report["counts"]["failed"] == lost[0].size


def test_lost_answer_in_flight_is_not_resent(tmp_path: Path) -> None:
    world = make_world(tmp_path)
    world.recorder.crash = None
    world.recorder.drop_rate = 0.0
    original = world.recorder.handle_async_request
    seen = {"n": 0}

    async def drop_second(request: Any) -> Any:
        response = await original(request)
        if b"Action=BatchRegisterDevice&" in bytes(request.url.query) + b"&":
            seen["n"] += 1
            if seen["n"] == 2:
                raise httpx.ReadError("answer lost", request=request)
        return response

    world.recorder.handle_async_request = drop_second  # type: ignore[method-assign]
    with pytest.raises(LostApplicationsError):
        run(world, settings(world, 3_000))
    assert seen["n"] == 3  # the lost one was not sent again
    assert registered(world) == 3_000  # it had taken effect


def test_create_failures_are_retried_once_with_a_new_call(tmp_path: Path) -> None:
    world = make_world(tmp_path, create_failure_rate=0.05)
    outcome = run(world, settings(world, 2_000))
    report = json.loads((tmp_path / "out.csv.age.report.json").read_text())
    counts = report["counts"]
    rows = world.decrypt()
    assert counts["exported"] == len(rows) == registered(world)
    assert counts["exported"] + counts["failed"] == 2_000
    assert world.recorder.counts[REGISTER] > 2  # the failed devices were asked for again
    assert outcome.exit_code == (EXIT_OK if counts["failed"] == 0 else EXIT_PARTIAL)


def test_an_unfinished_batch_blocks_a_new_one_unless_asked(tmp_path: Path) -> None:
    world = make_world(tmp_path)
    _lose_second_call(world, "before")
    with pytest.raises(Crash):
        run(world, settings(world, 2_000))
    world.recorder.crash = None
    with pytest.raises(UsageError, match="--new-batch"):
        run(world, settings(world, 500, out=tmp_path / "other.csv.age"))
    outcome = run(world, settings(world, 500, out=tmp_path / "other.csv.age", new_batch=True))
    assert outcome.exit_code == EXIT_OK


def test_resume_by_run_id(tmp_path: Path) -> None:
    world = make_world(tmp_path)
    world.recorder.crash = lambda action, n: (
        "before" if action == "QueryPageByApplyId" and n == 3 else None
    )
    with pytest.raises(Crash):
        run(world, settings(world, 1_500))
    world.recorder.crash = None
    with Journal(tmp_path / "journal.sqlite3") as journal:
        (record,) = journal.list_runs()
    assert record.kind == "random"
    outcome = anyio.run(
        lambda: resume(
            record.run_id[:6],
            journal=str(tmp_path / "journal.sqlite3"),
            encryption=world.encryption,
            api=world.api,
            transport=world.recorder,
        )
    )
    assert outcome.exit_code == EXIT_OK, outcome.message
    check_output(world, 1_500)
    assert world.recorder.counts[REGISTER] == 2


def test_settings_refuse_bad_values(tmp_path: Path) -> None:
    world = make_world(tmp_path)
    with pytest.raises(UsageError, match="--count"):
        settings(world, 0)
    with pytest.raises(UsageError, match="--per-call"):
        settings(world, 10, per_call=10_001)
