"""The journal: schema and migrations, the state machine, intents, leases, file safety."""

from __future__ import annotations

import os
import sqlite3
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from provisioner.errors import JournalError, RunInProgressError, UsageError
from provisioner.journal import (
    SCHEMA_VERSION,
    DeviceRow,
    ImportResult,
    Journal,
    RejectedRow,
    can_transition,
    default_journal_path,
    resolve_journal_path,
)
from provisioner.journal.schema import MIGRATIONS


class FakeClock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def rows(n: int, prefix: str = "dev") -> list[DeviceRow]:
    return [
        DeviceRow(i + 2, f"{prefix}{i:05d}", f"nick{i:05d}" if i % 2 else None) for i in range(n)
    ]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def journal(tmp_path: Path, clock: FakeClock) -> Iterator[Journal]:
    with Journal(tmp_path / "state" / "journal.sqlite3", clock=clock) as j:
        yield j


def new_run(journal: Journal, n: int = 6, chunk: int = 3, key: str = "k1") -> str:
    devices = rows(n)
    chunks = [devices[i : i + chunk] for i in range(0, n, chunk)]
    run = journal.create_run(
        run_key=key,
        kind="check_create",
        product_key="a1PK",
        params={"out": "/tmp/x.age", "chunk_size": chunk},
        chunks=chunks,
        rejected=[RejectedRow(99, "", None, "DeviceName is empty")],
    )
    return run.run_id


# --- locations ----------------------------------------------------------------------


def test_default_path_follows_xdg_state_home(tmp_path: Path) -> None:
    assert default_journal_path({"XDG_STATE_HOME": str(tmp_path)}) == (
        tmp_path / "provisioner" / "journal.sqlite3"
    )
    assert default_journal_path({}).parts[-4:] == (
        ".local",
        "state",
        "provisioner",
        "journal.sqlite3",
    )


def test_resolve_accepts_paths_and_sqlite_urls(tmp_path: Path) -> None:
    env = {"XDG_STATE_HOME": str(tmp_path)}
    assert resolve_journal_path("/a/b.db", env) == Path("/a/b.db")
    assert resolve_journal_path("sqlite:///a/b.db", env) == Path("/a/b.db")
    assert resolve_journal_path("sqlite:////a/b.db", env) == Path("/a/b.db")
    assert resolve_journal_path(None, {**env, "PROVISIONER_JOURNAL": "/x/j.db"}) == Path("/x/j.db")
    assert resolve_journal_path(None, env) == default_journal_path(env)


def test_other_schemes_are_a_usage_error() -> None:
    with pytest.raises(UsageError, match="only sqlite journals are supported"):
        resolve_journal_path("postgresql://db/provisioner", {})


# --- file and schema ----------------------------------------------------------------


def test_file_is_private_and_in_wal_mode(journal: Journal) -> None:
    new_run(journal)
    files = list(journal.path.parent.glob(journal.path.name + "*"))
    assert len(files) == 3  # the database, its -wal and -shm
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path.name
    assert stat.S_IMODE(journal.path.parent.stat().st_mode) == 0o700
    conn = sqlite3.connect(journal.path)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        conn.close()


def test_existing_file_is_made_private(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite3"
    path.touch(mode=0o644)
    os.chmod(path, 0o644)
    Journal(path).close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_migrations_are_idempotent(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite3"
    for _ in range(3):
        with Journal(path) as j:
            assert j.migrate() == SCHEMA_VERSION
            assert j.schema_version() == SCHEMA_VERSION
    conn = sqlite3.connect(path)
    try:
        versions = [r[0] for r in conn.execute("SELECT version FROM schema_version")]
    finally:
        conn.close()
    assert versions == list(range(1, len(MIGRATIONS) + 1))


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite3"
    Journal(path).close()
    conn = sqlite3.connect(path)
    conn.execute("INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION + 1,))
    conn.commit()
    conn.close()
    with pytest.raises(JournalError, match="newer"):
        Journal(path)


def test_no_column_can_hold_a_secret(journal: Journal) -> None:
    conn = sqlite3.connect(journal.path)
    try:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        columns = [
            col[1].lower() for t in tables for col in conn.execute(f"PRAGMA table_info({t})")
        ]
    finally:
        conn.close()
    assert columns
    assert not [c for c in columns if "secret" in c or "passphrase" in c or "password" in c]


def test_unreadable_location_is_a_journal_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(JournalError, match="cannot open the journal"):
        Journal(blocker / "sub" / "j.sqlite3")


# --- runs -----------------------------------------------------------------------------


def test_create_run_stores_devices_chunks_and_rejects(journal: Journal) -> None:
    run_id = new_run(journal, n=7, chunk=3)
    run = journal.get_run(run_id)
    assert run.status == "planned"
    assert run.params["chunk_size"] == 3
    assert journal.find_run("k1") == run
    apps = journal.applications(run_id)
    assert [(a.chunk_no, a.size, a.state, a.attempt) for a in apps] == [
        (0, 3, "PLANNED", 0),
        (1, 3, "PLANNED", 0),
        (2, 1, "PLANNED", 0),
    ]
    assert journal.device_counts(run_id) == {"pending": 7, "rejected": 1}
    assert [d.device_name for d in journal.app_devices(apps[0].app_id)] == [
        "dev00000",
        "dev00001",
        "dev00002",
    ]


def test_same_key_returns_the_existing_run(journal: Journal) -> None:
    first = new_run(journal)
    assert new_run(journal) == first
    assert len(journal.list_runs()) == 1


def test_get_run_by_prefix_and_unknown(journal: Journal) -> None:
    run_id = new_run(journal)
    assert journal.get_run(run_id[:5]).run_id == run_id
    with pytest.raises(JournalError, match="no run"):
        journal.get_run("ffffffffffff" if not run_id.startswith("f") else "000000000000")
    with pytest.raises(JournalError):
        journal.get_run("")


def test_run_status_and_report(journal: Journal) -> None:
    run_id = new_run(journal)
    journal.set_status(run_id, "running")
    journal.set_status(run_id, "completed", report={"counts": {"created": 6}})
    run = journal.get_run(run_id)
    assert run.status == "completed"
    assert run.report == {"counts": {"created": 6}}
    states = [t.to_state for t in journal.transitions(run_id, "run")]
    assert states == ["planned", "running", "completed"]


# --- state machine --------------------------------------------------------------------


def test_transition_table() -> None:
    assert can_transition("PLANNED", "INTENT_CHECK")
    assert can_transition("INTENT_CREATE", "CREATE_SUCCESS")
    assert not can_transition("PLANNED", "CREATE")
    assert not can_transition("DONE", "CHECK")
    assert not can_transition("CHECK_FAILED", "CHECK_SUCCESS")


def test_happy_path_with_intents(journal: Journal, clock: FakeClock) -> None:
    run_id = new_run(journal)
    app = journal.applications(run_id)[0]
    journal.set_state(app.app_id, "INTENT_CHECK")
    clock.now += 1
    journal.record_check_submitted(app.app_id, "1001")
    assert journal.application(app.app_id).apply_id == "1001"
    journal.set_state(app.app_id, "CHECK_SUCCESS")
    journal.set_state(app.app_id, "INTENT_CREATE")
    journal.set_state(app.app_id, "CREATE")
    assert journal.record_create_result(app.app_id, (), retry=True, reason="") is None
    journal.set_state(app.app_id, "DONE")
    assert journal.application(app.app_id).state == "DONE"
    assert {d.state for d in journal.app_devices(app.app_id, None)} == {"created"}
    path = [(t.from_state, t.to_state) for t in journal.transitions(run_id, f"app:{app.app_id}")]
    assert path == [
        (None, "PLANNED"),
        ("PLANNED", "INTENT_CHECK"),
        ("INTENT_CHECK", "CHECK"),
        ("CHECK", "CHECK_SUCCESS"),
        ("CHECK_SUCCESS", "INTENT_CREATE"),
        ("INTENT_CREATE", "CREATE"),
        ("CREATE", "CREATE_SUCCESS"),
        ("CREATE_SUCCESS", "DONE"),
    ]


def test_illegal_transition_is_refused(journal: Journal) -> None:
    run_id = new_run(journal)
    app = journal.applications(run_id)[0]
    with pytest.raises(JournalError, match="not allowed"):
        journal.set_state(app.app_id, "CREATE")
    assert journal.application(app.app_id).state == "PLANNED"


def test_check_failed_rejects_and_moves_the_rest(journal: Journal) -> None:
    run_id = new_run(journal, n=6, chunk=6)
    app = journal.applications(run_id)[0]
    journal.set_state(app.app_id, "INTENT_CHECK")
    journal.record_check_submitted(app.app_id, "1")
    child = journal.record_check_failed(
        app.app_id, {"dev00001": "already exists", "nobody": "not ours"}
    )
    assert child is not None
    assert child.size == 5
    assert child.parent_id == app.app_id
    assert child.state == "PLANNED"
    assert journal.application(app.app_id).state == "CHECK_FAILED"
    rejected = journal.devices(run_id, ("rejected",))
    assert ("dev00001", "already exists") in [(d.device_name, d.reason) for d in rejected]
    assert len(journal.app_devices(child.app_id)) == 5


def test_check_failed_adopts_when_asked(journal: Journal) -> None:
    run_id = new_run(journal, n=3, chunk=3)
    app = journal.applications(run_id)[0]
    journal.set_state(app.app_id, "INTENT_CHECK")
    journal.record_check_submitted(app.app_id, "1")
    names = {d.device_name: "exists" for d in journal.app_devices(app.app_id)}
    assert journal.record_check_failed(app.app_id, names, adopt=names.keys()) is None
    assert journal.device_counts(run_id) == {"adopted": 3, "rejected": 1}


def test_split_halves_the_application(journal: Journal) -> None:
    run_id = new_run(journal, n=5, chunk=5)
    app = journal.applications(run_id)[0]
    journal.set_state(app.app_id, "INTENT_CHECK")
    children = journal.record_split(app.app_id)
    assert [c.size for c in children] == [3, 2]
    assert journal.application(app.app_id).state == "SPLIT"
    assert sum(len(journal.app_devices(c.app_id)) for c in children) == 5
    assert journal.app_devices(app.app_id) == []


def test_create_failed_is_retried_once_then_failed(journal: Journal) -> None:
    run_id = new_run(journal, n=4, chunk=4)
    app = journal.applications(run_id)[0]
    for state in ("INTENT_CHECK", "CHECK_SUCCESS"):
        if state == "CHECK_SUCCESS":
            journal.record_check_submitted(app.app_id, "7")
        journal.set_state(app.app_id, state)
    journal.set_state(app.app_id, "INTENT_CREATE")
    retry = journal.record_create_result(
        app.app_id, {"dev00000", "dev00003"}, retry=True, reason="boom"
    )
    assert retry is not None
    assert retry.attempt == 1
    assert retry.size == 2
    assert journal.application(app.app_id).state == "CREATE_FAILED"
    assert journal.device_counts(run_id)["created"] == 2
    journal.set_state(retry.app_id, "INTENT_CHECK")
    journal.record_check_submitted(retry.app_id, "8")
    journal.set_state(retry.app_id, "CHECK_SUCCESS")
    journal.set_state(retry.app_id, "INTENT_CREATE")
    journal.set_state(retry.app_id, "CREATE")
    again = journal.record_create_result(retry.app_id, {"dev00003"}, retry=False, reason="boom")
    assert again is None
    assert journal.device_counts(run_id) == {"created": 3, "failed": 1, "rejected": 1}
    failed = journal.devices(run_id, ("failed",))
    assert [(d.device_name, d.reason) for d in failed] == [("dev00003", "boom")]


def test_failed_transaction_changes_nothing(journal: Journal) -> None:
    run_id = new_run(journal, n=3, chunk=3)
    app = journal.applications(run_id)[0]
    # CHECK_FAILED is not reachable from PLANNED: nothing of the batch may be written.
    with pytest.raises(JournalError):
        journal.record_check_failed(app.app_id, {"dev00000": "x"})
    assert journal.device_counts(run_id) == {"pending": 3, "rejected": 1}
    assert len(journal.applications(run_id)) == 1


# --- lease ----------------------------------------------------------------------------


def other(journal: Journal, clock: FakeClock, **kw: object) -> Journal:
    return Journal(journal.path, clock=clock, **kw)  # type: ignore[arg-type]


def test_live_holder_on_same_host_blocks(journal: Journal, clock: FakeClock) -> None:
    run_id = new_run(journal)
    holder = other(journal, clock, pid=4242, hostname=journal.hostname, is_alive=lambda p: True)
    holder.acquire_lease(run_id)
    probe = other(journal, clock, is_alive=lambda p: p == 4242)
    with pytest.raises(RunInProgressError) as info:
        probe.acquire_lease(run_id)
    probe.close()
    message = str(info.value)
    assert f"run {run_id} is in progress" in message
    assert "pid 4242" in message
    assert journal.hostname in message
    assert "2023-11-14T22:13:20Z" in message  # the lease's since, in UTC
    holder.close()


def test_dead_holder_is_taken_over_at_once(journal: Journal, clock: FakeClock) -> None:
    run_id = new_run(journal)
    dead = other(journal, clock, pid=4242, hostname=journal.hostname, is_alive=lambda p: False)
    dead.acquire_lease(run_id)
    dead.close()
    probe = other(journal, clock, is_alive=lambda p: False)
    lease = probe.acquire_lease(run_id)
    assert lease.pid == probe.pid
    details = [t.detail for t in probe.transitions(run_id, "lease")]
    assert "taken over from pid 4242" in (details[-1] or "")
    probe.close()


def test_real_pid_probe(journal: Journal, clock: FakeClock) -> None:
    run_id = new_run(journal)
    parent = other(journal, clock, pid=os.getppid(), hostname=journal.hostname)
    parent.acquire_lease(run_id)
    with pytest.raises(RunInProgressError):
        journal.acquire_lease(run_id)
    parent.close()


def test_other_host_blocks_until_heartbeat_is_stale(journal: Journal, clock: FakeClock) -> None:
    run_id = new_run(journal)
    remote = other(journal, clock, pid=1, hostname="elsewhere")
    lease = remote.acquire_lease(run_id)
    clock.now += 30
    remote.heartbeat(run_id, lease)
    clock.now += 59
    with pytest.raises(RunInProgressError, match="elsewhere"):
        journal.acquire_lease(run_id)
    clock.now += 2
    mine = journal.acquire_lease(run_id)
    # The old holder finds out at its next heartbeat.
    with pytest.raises(RunInProgressError, match="taken over"):
        remote.heartbeat(run_id, lease)
    journal.heartbeat(run_id, mine)
    remote.close()


def test_release_lets_the_next_process_in(journal: Journal, clock: FakeClock) -> None:
    run_id = new_run(journal)
    holder = other(journal, clock, pid=4242, hostname=journal.hostname, is_alive=lambda p: True)
    lease = holder.acquire_lease(run_id)
    holder.release_lease(run_id, lease)
    holder.close()
    assert journal.acquire_lease(run_id).pid == journal.pid
    assert journal.get_run(run_id).lease is not None


# --- random names and imports -------------------------------------------------------------


def test_random_application_machine_and_names(journal: Journal) -> None:
    run = journal.create_run(
        run_key="r", kind="random", product_key="a1PK", params={}, sizes=[3, 2]
    )
    first, second = journal.applications(run.run_id)
    assert (first.size, second.size, first.state) == (3, 2, "PLANNED")
    assert journal.devices(run.run_id) == []
    journal.set_state(first.app_id, "INTENT_REGISTER")
    journal.record_registered(first.app_id, "777")
    assert journal.application(first.app_id).apply_id == "777"
    child = journal.record_random_result(first.app_id, {"zzz": "failed"}, retry=True)
    assert child is not None
    assert (child.size, child.attempt, child.parent_id) == (1, 1, first.app_id)
    assert journal.random_expected(journal.application(first.app_id)) == 2
    journal.record_random_names(first.app_id, ["b", "a"])
    journal.record_random_names(first.app_id, ["a", "b"])  # a re-export: nothing twice
    names = [d.device_name for d in journal.devices(run.run_id)]
    assert names == ["a", "b"]
    # A lost answer: only the operator's decision moves it on.
    journal.set_state(second.app_id, "INTENT_REGISTER")
    journal.set_state(second.app_id, "LOST")
    with pytest.raises(JournalError):
        journal.set_state(second.app_id, "CREATE")
    journal.set_state(second.app_id, "ABANDONED")
    assert can_transition("LOST", "INTENT_REGISTER")


def test_import_devices_intents_results_and_reopen(journal: Journal) -> None:
    run = journal.create_run(
        run_key="i", kind="import", product_key="a1PK", params={}, devices=rows(4)
    )
    assert journal.applications(run.run_id) == []
    lines = [d.line for d in journal.devices(run.run_id)]
    journal.mark_importing(run.run_id, lines[:3])
    assert journal.device_counts(run.run_id) == {"importing": 3, "pending": 1}
    journal.record_import_results(
        run.run_id,
        [
            ImportResult(lines[0], "created", None, "iot-0"),
            ImportResult(lines[1], "rejected", "already exists in product a1PK (...)"),
            ImportResult(lines[2], "rejected", "exists with a different DeviceSecret"),
        ],
    )
    assert journal.devices(run.run_id, ("created",))[0].iot_id == "iot-0"
    journal.set_status(run.run_id, "completed")
    assert journal.reopen_devices(run.run_id, "already exists in product") == 1
    assert journal.get_run(run.run_id).status == "failed"
    assert journal.device_counts(run.run_id) == {
        "created": 1,
        "pending": 2,
        "rejected": 1,
    }
