"""No device we create ends without its credentials in an output file, whatever was killed,
edited or re-run in between (in-process emulator, crashes injected at any call).

An automated operator does what the messages say: it resumes the run a refusal names,
chooses another --out when told to, and re-runs with --existing adopt when the final
line suggests it. After any sequence, every device on the server is in some output
file that still exists, with the server's secret; and the last output holds every
name of the last input.
"""

from __future__ import annotations

import contextlib
import re
import time
from dataclasses import replace
from pathlib import Path

import anyio
import pyrage
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from inprocess_rig import Crash, World, make_world, names

from provisioner.errors import EXIT_OK, EXIT_PARTIAL, OutputError, UnfinishedRunError
from provisioner.pipeline import RunOutcome, RunSettings, resume, status

pytestmark = pytest.mark.usefixtures("no_retry_waits")

_CRASH_POINTS = [
    ("BatchCheckDeviceNames", "after"),
    ("QueryBatchRegisterDeviceStatus", "before"),
    ("BatchRegisterDeviceWithApplyId", "before"),
    ("BatchRegisterDeviceWithApplyId", "after"),
    ("QueryPageByApplyId", "before"),
]


def _decrypt(world: World, path: Path) -> dict[str, str]:
    text = pyrage.decrypt(path.read_bytes(), [world.identity]).decode()
    rows = [line.split(",") for line in text.splitlines()[1:]]
    return {r[1]: r[2] for r in rows}


def _server(world: World) -> dict[str, str]:
    product = world.emulator.world.products[world.product_key]
    return {n: d.device_secret for n, d in product.devices.items()}


def _resume(world: World, settings: RunSettings, run_id: str) -> RunOutcome:
    return anyio.run(
        lambda: resume(
            run_id,
            journal=settings.journal,
            encryption=world.encryption,
            api=world.api,
            transport=world.recorder,
            base=settings,
        )
    )


def operate(world: World, settings: RunSettings) -> tuple[RunOutcome, RunSettings]:
    """Run the command and follow every message until it ends with 0 or 4."""
    for _ in range(8):
        refusal = ""
        try:
            outcome = world.run(settings)
        except (UnfinishedRunError, OutputError) as exc:
            refusal = str(exc)
        if named := re.search(r"provisioner resume (\w+)", refusal):
            done = _resume(world, settings, named.group(1))
            assert done.exit_code in (EXIT_OK, EXIT_PARTIAL), done.message
        elif "choose another --out" in refusal:
            settings = replace(settings, out=settings.out.with_name("next-" + settings.out.name))
        elif refusal:
            raise AssertionError(f"a refusal that says nothing to do: {refusal}")
        elif outcome.exit_code == EXIT_PARTIAL and "--existing adopt" in outcome.message:
            settings = replace(settings, existing="adopt")
        else:
            return outcome, settings
    raise AssertionError("the messages went round in circles")


def assert_nothing_stranded(world: World) -> None:
    """Every device on the server is in an output file on disk, with its secret."""
    on_disk: dict[str, str] = {}
    for path in world.tmp.glob("*.csv.age"):
        on_disk.update(_decrypt(world, path))
    server = _server(world)
    missing = set(server) - set(on_disk)
    assert not missing, f"{len(missing)} devices in no output (first {sorted(missing)[0]})"
    assert all(on_disk[n] == secret for n, secret in server.items())


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    count=st.integers(20, 90),
    chunk=st.integers(8, 40),
    point=st.sampled_from(_CRASH_POINTS),
    nth=st.integers(1, 3),
    added=st.integers(0, 5),
    removed=st.integers(0, 5),
    same_out=st.booleans(),
)
def test_killed_run_then_edited_input_strands_nothing(
    tmp_path_factory: pytest.TempPathFactory,
    count: int,
    chunk: int,
    point: tuple[str, str],
    nth: int,
    added: int,
    removed: int,
    same_out: bool,
) -> None:
    tmp = tmp_path_factory.mktemp("stranded")
    world = make_world(tmp)
    first = names(count)
    settings = world.settings(world.write_input(first), chunk_size=chunk)
    action, when = point
    world.recorder.crash = lambda a, n: when if a == action and n == nth else None
    with contextlib.suppress(Crash):
        world.run(settings)
    world.recorder.crash = None

    # The operator edits the input: lines removed from the end, new ones appended.
    second = first[: count - removed] + names(added, prefix="new")
    edited = world.write_input(second)
    out = settings.out if same_out else tmp / "second.csv.age"
    outcome, final = operate(world, replace(settings, input=edited, out=out))

    assert outcome.exit_code == EXIT_OK, outcome.message
    assert set(_decrypt(world, final.out)) == set(second)
    assert_nothing_stranded(world)


def test_refusal_names_the_unfinished_run_and_the_command(tmp_path: Path) -> None:
    world = make_world(tmp_path)
    first = names(60)
    settings = world.settings(world.write_input(first), chunk_size=20)
    world.recorder.crash = lambda a, n: "after" if a == "BatchRegisterDeviceWithApplyId" else None
    with pytest.raises(Crash):
        world.run(settings)
    world.recorder.crash = None
    run_id = status(settings.journal)[0].run.run_id
    calls = sum(world.recorder.counts.values())

    edited = world.write_input([*first, "late-00001"])
    with pytest.raises(UnfinishedRunError) as info:
        world.run(replace(settings, input=edited))
    message = str(info.value)
    assert f"provisioner resume {run_id} --journal {settings.journal}" in message
    assert str(settings.out) in message
    assert "\n" not in message
    # Refused before any call: the journal and the server know enough.
    assert sum(world.recorder.counts.values()) == calls
    assert [v.run.run_id for v in status(settings.journal)] == [run_id]


def test_resume_reads_the_journal_not_the_edited_input(tmp_path: Path) -> None:
    world = make_world(tmp_path)
    first = names(50)
    path = world.write_input(first)
    settings = world.settings(path, chunk_size=20)
    world.recorder.crash = lambda a, n: "before" if a == "QueryPageByApplyId" else None
    with pytest.raises(Crash):
        world.run(settings)
    world.recorder.crash = None
    run_id = status(settings.journal)[0].run.run_id
    path.write_text("DeviceName\nsomething-else\n")  # edited, or gone: resume does not care

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
    assert outcome.exit_code == EXIT_OK, outcome.message
    assert set(_decrypt(world, settings.out)) == set(first)
    assert outcome.report is not None
    assert outcome.report["counts"]["input"] == 50


def test_existing_adopt_after_a_run_that_reported_them(tmp_path: Path) -> None:
    world = make_world(tmp_path)
    for name in ("dev00003", "dev00007"):
        world.emulator.world.register_device(time.time(), world.product_key, name)
    wanted = names(30)
    settings = world.settings(world.write_input(wanted), chunk_size=10)
    outcome = world.run(settings)
    assert outcome.exit_code == EXIT_PARTIAL
    assert "--existing adopt" in outcome.message
    assert set(_decrypt(world, settings.out)) == set(wanted) - {"dev00003", "dev00007"}

    before = dict(world.recorder.counts)
    # The documented remedy: the same command with --existing adopt; its own output is
    # replaced without --force (it held a subset of what comes).
    outcome = world.run(replace(settings, existing="adopt"))
    assert outcome.exit_code == EXIT_OK, outcome.message
    got = _decrypt(world, settings.out)
    assert set(got) == set(wanted)
    assert got == {n: s for n, s in _server(world).items() if n in got}
    # Only the two were looked up; nothing was checked or created again.
    assert world.recorder.counts["QueryDeviceDetail"] - before.get("QueryDeviceDetail", 0) == 2
    assert world.recorder.counts["BatchCheckDeviceNames"] == before["BatchCheckDeviceNames"]
    # A third run makes no call.
    calls = sum(world.recorder.counts.values())
    assert world.run(replace(settings, existing="adopt")).already_completed
    assert sum(world.recorder.counts.values()) == calls


def test_completed_run_with_a_new_out_writes_it(tmp_path: Path) -> None:
    world = make_world(tmp_path)
    wanted = names(120)
    settings = world.settings(world.write_input(wanted), chunk_size=50)
    assert world.run(settings).exit_code == EXIT_OK
    before = dict(world.recorder.counts)
    second = tmp_path / "copy.csv.age"
    outcome = world.run(replace(settings, out=second))
    assert outcome.exit_code == EXIT_OK, outcome.message
    assert _decrypt(world, second) == _decrypt(world, settings.out)
    assert set(_decrypt(world, second)) == set(wanted)
    for action in ("BatchCheckDeviceNames", "BatchRegisterDeviceWithApplyId"):
        assert world.recorder.counts[action] == before[action]  # exported, not created again


def test_replacing_another_runs_output_is_refused_when_it_would_lose_devices(
    tmp_path: Path,
) -> None:
    world = make_world(tmp_path)
    settings = world.settings(world.write_input(names(30)), chunk_size=10)
    assert world.run(settings).exit_code == EXIT_OK
    other = world.settings(world.write_input(names(10, prefix="oth"), name="b.csv"), force=True)
    with pytest.raises(OutputError, match="holds the credentials of run"):
        world.run(other)
    assert set(_decrypt(world, settings.out)) == set(names(30))  # untouched
