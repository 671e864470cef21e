"""``provisioner register-random`` as a real process against the emulator over a socket.

25,000 devices in three BatchRegisterDevice calls, complete and equal to what the
server holds; a SIGKILL during the export or right after a call, then a re-run that
registers nothing new. No throttled response, no secret in any file.
"""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path
from typing import Any

import pytest
from socket_rig import Rig, assert_never_throttled, assert_no_plaintext, decrypt, run_cli

COUNT = 25_000
SMALL_COUNT = 6_000
SMALL = ("--per-call", "2000")


def register(
    rig: Rig, out: Path, *extra: str, count: int = COUNT, kill_on: str | None = None
) -> tuple[int, str]:
    args = (
        "register-random", "--count", str(count), "--product-key", rig.product_key,
        "--out", str(out), "--recipient", rig.recipient, *extra,
    )  # fmt: skip
    code, _, message = run_cli(rig, *args, kill_on=kill_on)
    return code, message


def devices(rig: Rig) -> dict[str, Any]:
    """The product's devices on the server, as the console would show them now."""
    world = rig.emulator.world
    world.advance(time.time())
    return dict(world.products[rig.product_key].devices)


def assert_output_matches_server(rig: Rig, out: Path, count: int) -> None:
    rows = decrypt(rig, out)
    server = devices(rig)
    assert len(rows) == count
    assert len({r["DeviceName"] for r in rows}) == count
    assert all(server[r["DeviceName"]].device_secret == r["DeviceSecret"] for r in rows)
    assert all(server[r["DeviceName"]].iot_id == r["IotId"] for r in rows)
    assert {r["Nickname"] for r in rows} == {""}
    assert oct(out.stat().st_mode & 0o777) == "0o600"


@pytest.mark.slow
def test_25000_random_devices_in_three_calls_and_a_rerun_after_sigkill(rig_factory: Any) -> None:
    rig = rig_factory(create_seconds=0.5)
    out = rig.tmp / "random.csv.age"
    code, _ = register(rig, out, kill_on="run.chunk_exported")
    assert code == -signal.SIGKILL, "the run finished before it could be killed"
    assert not out.exists()
    assert len(devices(rig)) == COUNT
    assert_no_plaintext(rig)

    code, message = register(rig, out)
    assert code == 0, message
    assert_output_matches_server(rig, out, COUNT)
    stats = rig.emulator.stats()
    assert stats["requests"]["BatchRegisterDevice"] == 3
    assert len(devices(rig)) == COUNT  # nothing new was registered
    report = json.loads(Path(f"{out}.report.json").read_text())
    assert report["counts"]["exported"] == COUNT
    assert len(report["apply_ids"]) == 3
    assert_never_throttled(rig)
    assert_no_plaintext(rig)

    # Complete: the same command again calls nothing.
    before = stats["requests_total"]
    code, message = register(rig, out)
    assert code == 0
    assert "already completed" in message
    assert rig.emulator.stats()["requests_total"] == before


@pytest.mark.slow
def test_sigkill_right_after_a_call_never_gives_a_second_set(rig_factory: Any) -> None:
    """Killed just after the first call's answer: the next call may be in flight. The
    re-run either completes, or stops on the lost call; the operator then looks at the
    product's devices (here: the emulator's) and says resubmit or abandon."""
    rig = rig_factory(create_seconds=0.3)
    out = rig.tmp / "random.csv.age"
    submitted = "register.application_submitted"
    code, _ = register(rig, out, *SMALL, count=SMALL_COUNT, kill_on=submitted)
    assert code == -signal.SIGKILL

    code, message = register(rig, out, *SMALL, count=SMALL_COUNT)
    if code == 0:
        assert_output_matches_server(rig, out, SMALL_COUNT)
    else:
        assert code == 1, message
        assert "--lost resubmit" in message
        assert not out.exists()
        created = len(devices(rig))
        assert created <= SMALL_COUNT
        decision = "abandon" if created == SMALL_COUNT else "resubmit"
        code, message = register(rig, out, *SMALL, "--lost", decision, count=SMALL_COUNT)
        if decision == "resubmit":
            assert code == 0, message
            assert_output_matches_server(rig, out, SMALL_COUNT)
        else:
            assert code == 4, message
            assert len(decrypt(rig, out)) < SMALL_COUNT
    assert len(devices(rig)) == SMALL_COUNT  # never a second set
    assert_never_throttled(rig)
    assert_no_plaintext(rig)


def test_lost_answers_stop_the_run_and_say_what_to_do(rig_factory: Any) -> None:
    # Every answer is lost after the server acted: the first call is lost, none resent.
    rig = rig_factory(
        create_seconds=0.05,
        fault_drop_after=1.0,
        fault_actions=frozenset({"BatchRegisterDevice"}),
    )
    out = rig.tmp / "random.csv.age"
    args = (
        "register-random", "--count", "100", "--product-key", rig.product_key,
        "--out", str(out), "--recipient", rig.recipient,
    )  # fmt: skip
    code, _, message = run_cli(rig, *args)
    assert code == 1
    assert "--lost resubmit" in message
    assert "Traceback" not in message
    assert rig.emulator.stats()["requests"]["BatchRegisterDevice"] == 1
    assert len(devices(rig)) == 100
    assert not out.exists()
    assert_no_plaintext(rig)
