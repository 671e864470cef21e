"""The SQLite journal itself: where it is, its file and schema, a journal written before
the redesign, and the names of before the protocol.

What every store must do is the contract in ``tests/unit/journal/``; file modes and
symbolic links are in ``test_journal_files.py``.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from provisioner.errors import JournalError, UsageError
from provisioner.journal import (
    SCHEMA_VERSION,
    DeviceRow,
    Journal,
    JournalStore,
    RejectedRow,
    SqliteJournal,
    default_journal_path,
    open_journal,
    resolve_journal_path,
)
from provisioner.journal.schema import MIGRATIONS

LEGACY = Path(__file__).parent.parent / "fixtures" / "journal_before_redesign" / "journal.sqlite3"


class FakeClock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def journal(tmp_path: Path, clock: FakeClock) -> Iterator[SqliteJournal]:
    with Journal(tmp_path / "state" / "journal.sqlite3", clock=clock) as j:
        yield j


def new_run(journal: JournalStore, n: int = 6, chunk: int = 3, key: str = "k1") -> str:
    devices = [DeviceRow(i + 2, f"dev{i:05d}", None) for i in range(n)]
    run = journal.plan_run(
        run_key=key,
        kind="check_create",
        product_key="a1PK",
        params={"out": "/tmp/x.age", "chunk_size": chunk},
        chunks=[devices[i : i + chunk] for i in range(0, n, chunk)],
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


# --- open_journal ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "env", "where"),
    [
        ("{tmp}/a.sqlite3", {}, "a.sqlite3"),
        ("sqlite:///{tmp}/b.sqlite3", {}, "b.sqlite3"),
        (None, {"PROVISIONER_JOURNAL": "{tmp}/c.sqlite3"}, "c.sqlite3"),
        (None, {"XDG_STATE_HOME": "{tmp}"}, "provisioner/journal.sqlite3"),
        # --journal wins over the environment.
        ("{tmp}/d.sqlite3", {"PROVISIONER_JOURNAL": "{tmp}/c.sqlite3"}, "d.sqlite3"),
    ],
)
def test_open_journal_resolves_like_resolve_journal_path(
    tmp_path: Path, given: str | None, env: dict[str, str], where: str
) -> None:
    location = given.format(tmp=tmp_path) if given is not None else None
    env = {k: v.format(tmp=tmp_path) for k, v in env.items()}
    with open_journal(location, env) as store:
        assert isinstance(store, SqliteJournal)
        assert store.location == str(tmp_path / where)
        assert Path(store.location) == resolve_journal_path(location, env)
    assert (tmp_path / where).is_file()


def test_open_journal_takes_a_path_and_test_identities(tmp_path: Path, clock: FakeClock) -> None:
    with open_journal(tmp_path / "j.sqlite3", {}, clock=clock, hostname="h", pid=7) as store:
        run_id = new_run(store)
        lease = store.acquire_lease(run_id)
        assert (lease.pid, lease.host, lease.since) == (7, "h", clock.now)


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://user:hunter2@db/provisioner",
        "postgres://user:hunter2@db/provisioner",
        "PostgreSQL+psycopg://user:hunter2@db/provisioner",
    ],
)
def test_open_journal_refuses_postgresql_for_now(tmp_path: Path, url: str) -> None:
    for location, env in ((url, {}), (None, {"PROVISIONER_JOURNAL": url})):
        with pytest.raises(UsageError, match="PostgreSQL journals come in a later version") as info:
            open_journal(location, env)
        assert "hunter2" not in str(info.value)  # a URL may carry a password
    assert list(tmp_path.iterdir()) == []


def test_open_journal_refuses_other_schemes() -> None:
    with pytest.raises(UsageError, match="only sqlite journals are supported"):
        open_journal("mysql://db/provisioner", {})


# --- the class ------------------------------------------------------------------------


def test_journal_is_the_sqlite_store_and_has_every_protocol_method() -> None:
    assert Journal is SqliteJournal
    wanted = {
        name
        for name in vars(JournalStore)
        if not name.startswith("_") or name in ("__enter__", "__exit__")
    }
    assert {"plan_run", "intend_check", "start_run", "reopen_existing"} <= wanted
    assert [name for name in sorted(wanted) if not hasattr(SqliteJournal, name)] == []


# --- file and schema ----------------------------------------------------------------


def test_file_is_private_and_in_wal_mode(journal: SqliteJournal) -> None:
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


def test_no_column_can_hold_a_secret(journal: SqliteJournal) -> None:
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


def test_a_statement_that_fails_rolls_back_the_whole_method(journal: SqliteJournal) -> None:
    twice = [DeviceRow(2, "a", None), DeviceRow(2, "b", None)]  # one line, two devices
    with pytest.raises(JournalError, match="UNIQUE"):
        journal.plan_run(
            run_key="k", kind="check_create", product_key="p", params={}, chunks=[twice]
        )
    assert journal.find_run("k") is None
    conn = sqlite3.connect(journal.path)
    try:
        counts = [
            conn.execute(sql).fetchone()[0]
            for sql in (
                "SELECT COUNT(*) FROM runs",
                "SELECT COUNT(*) FROM applications",
                "SELECT COUNT(*) FROM devices",
                "SELECT COUNT(*) FROM transitions",
            )
        ]
    finally:
        conn.close()
    assert counts == [0, 0, 0, 0]


# --- a journal written before the redesign ------------------------------------------------


def test_a_journal_of_before_the_redesign_opens_and_works(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite3"
    shutil.copy(LEGACY, path)
    with open_journal(path, {}) as probe:
        (run,) = probe.list_runs()
        assert run.lease is not None
        heartbeat = run.lease.heartbeat
    clock = FakeClock(heartbeat + 3600)  # its holder (another host) long silent
    with open_journal(path, {}, clock=clock, hostname="here", pid=1) as store:
        assert store.schema_version() == SCHEMA_VERSION == 3
        assert run.status == "running"
        apps = store.applications(run.run_id)
        assert sorted(a.state for a in apps) == [
            "CREATE",
            "CREATE",
            "CREATE_SUCCESS",
            "CREATE_SUCCESS",
        ]
        assert all(a.apply_id for a in apps)
        assert store.find_run(run.run_key) == run
        assert store.get_run(run.run_id[:6]) == run
        lease = store.acquire_lease(run.run_id)
        taken = store.transitions(run.run_id, "lease")[-1]
        assert taken.detail == f"taken over from pid {run.lease.pid} on {run.lease.host}"
        store.start_run(run.run_id)  # left running by a killed process
        creating = next(a for a in apps if a.state == "CREATE")
        created = next(a for a in apps if a.state == "CREATE_SUCCESS")
        assert store.record_create_result(creating.app_id, (), retry=False, reason="") is None
        store.mark_exported(created.app_id, detail="exported")
        store.commit_run(run.run_id, {"counts": {}})
        store.complete_run(run.run_id, None)
        store.release_lease(run.run_id, lease)
        done = store.get_run(run.run_id)
        assert (done.status, done.lease) == ("completed", None)
        assert store.application(creating.app_id).state == "CREATE_SUCCESS"
        assert store.device_counts(run.run_id)["created"] >= creating.size
        history = [(t.from_state, t.to_state) for t in store.transitions(run.run_id, "run")]
        assert history[-3:] == [
            ("planned", "running"),
            ("running", "committing"),
            ("committing", "completed"),
        ]
    conn = sqlite3.connect(path)
    try:
        versions = [r[0] for r in conn.execute("SELECT version FROM schema_version ORDER BY 1")]
    finally:
        conn.close()
    assert versions == [1, 2, 3]  # nothing to migrate: the schema is the same
