"""The SQLite side of the journal: file, connection, transactions, migrations, rows.

:class:`SqliteDb` opens the file (created 0600 without following a symbolic link, in
a directory made 0700 when it is ours; SQLite gives its ``-wal`` and ``-shm`` files
the same mode), sets WAL mode with ``synchronous=FULL`` (a commit is on disk when it
returns: a reboot loses no intent) and brings the schema up to date. Writes go
through :meth:`SqliteDb.write` (``BEGIN IMMEDIATE``: writers queue at the start,
never fail half-way on a lock); ``sqlite3`` errors become
:class:`~provisioner.errors.JournalError`.

The modules of :class:`~provisioner.journal.store.SqliteJournal` (runs, leases,
applications, devices...) all work through one :class:`SqliteDb`.
"""

from __future__ import annotations

import errno
import json
import os
import sqlite3
import stat
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

from provisioner.errors import JournalError
from provisioner.journal.models import (
    AppRecord,
    AppState,
    DeviceRecord,
    Lease,
    RunRecord,
    RunStatus,
)
from provisioner.journal.schema import MIGRATIONS, SCHEMA_VERSION

__all__ = [
    "APP_SELECT",
    "DEVICE_SELECT",
    "RUN_SELECT",
    "Clock",
    "SqliteDb",
    "app_record",
    "device_record",
    "dumps",
    "iso",
    "run_record",
]

# Constant column lists; every value goes through a ? placeholder.
RUN_SELECT = (
    "SELECT run_id, run_key, kind, product_key, status, params, report, error, created_at, "
    "updated_at, lease_pid, lease_host, lease_since, lease_heartbeat, lease_token FROM runs "
)
APP_SELECT = (
    "SELECT app_id, run_id, chunk_no, parent_id, kind, apply_id, state, attempt, size, "
    "created_at, updated_at FROM applications "
)

DEVICE_SELECT = (
    "SELECT line, device_name, nickname, app_id, state, reason, iot_id, cause FROM devices "
)
_LOG = (
    "INSERT INTO transitions (run_id, entity, from_state, to_state, at, detail) "
    "VALUES (?, ?, ?, ?, ?, ?)"
)

Clock = Callable[[], float]


def run_record(row: Sequence[Any]) -> RunRecord:
    lease = None
    if row[10] is not None:
        lease = Lease(
            pid=int(row[10]),
            host=str(row[11]),
            since=float(row[12]),
            heartbeat=float(row[13]),
            token=str(row[14]),
        )
    return RunRecord(
        run_id=row[0],
        run_key=row[1],
        kind=row[2],
        product_key=row[3],
        status=cast(RunStatus, row[4]),
        params=json.loads(row[5]),
        report=json.loads(row[6]) if row[6] else None,
        error=row[7],
        created_at=row[8],
        updated_at=row[9],
        lease=lease,
    )


def app_record(row: Sequence[Any]) -> AppRecord:
    return AppRecord(
        app_id=row[0],
        run_id=row[1],
        chunk_no=row[2],
        parent_id=row[3],
        kind=row[4],
        apply_id=row[5],
        state=cast(AppState, row[6]),
        attempt=row[7],
        size=row[8],
        created_at=row[9],
        updated_at=row[10],
    )


def device_record(row: Sequence[Any]) -> DeviceRecord:
    return DeviceRecord(
        line=row[0],
        device_name=row[1],
        nickname=row[2],
        app_id=row[3],
        state=row[4],
        reason=row[5],
        iot_id=row[6],
        cause=row[7],
    )


def iso(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def dumps(data: Mapping[str, Any]) -> str:
    return json.dumps(data, sort_keys=True, default=str)


def _why(exc: BaseException) -> str:
    return exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)


def _shared_directory(st: os.stat_result) -> bool:
    """A directory others share on purpose (sticky, like /tmp), or not ours: left alone."""
    return bool(st.st_mode & stat.S_ISVTX) or st.st_uid != os.getuid()


def _prepare_file(path: Path) -> None:
    """Create (or check) the journal file, private, without following a symbolic link.

    The file is opened ``O_NOFOLLOW`` and ``fchmod``-ed through that descriptor, so a
    link planted at the path cannot redirect the mode change (or SQLite) to another
    file. Its directory is made 0700 when it is ours to change: not a shared sticky
    directory like /tmp, not someone else's, not the home directory. SQLite gives
    the ``-wal`` and ``-shm`` files the database file's mode.
    """
    parent = path.parent
    parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    dir_fd = os.open(parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        st = os.fstat(dir_fd)
        home = Path.home()
        if (
            not _shared_directory(st)
            and stat.S_IMODE(st.st_mode) != 0o700
            and not (home.exists() and os.path.samestat(st, home.stat()))
        ):
            os.fchmod(dir_fd, 0o700)
        try:
            fd = os.open(
                path.name,
                os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC,
                0o600,
                dir_fd=dir_fd,
            )
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise JournalError(
                    f"the journal {path} is a symbolic link; give the path of the real file "
                    "with --journal"
                ) from exc
            raise
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise JournalError(f"the journal {path} is not a regular file; check --journal")
            os.fchmod(fd, 0o600)
        finally:
            os.close(fd)
    finally:
        os.close(dir_fd)


# Switching a new file to WAL takes an exclusive lock, and SQLite answers "database is
# locked" at once (its busy handler does not wait for this one) when two processes open
# a new journal together (two factory lines started by one timer).
_WAL_WAIT_SECONDS = 30.0


def _into_wal(conn: sqlite3.Connection) -> None:
    deadline = time.monotonic() + _WAL_WAIT_SECONDS
    delay = 0.01
    while True:
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
        time.sleep(delay)
        delay = min(delay * 2, 0.5)


class SqliteDb:
    """An open journal file with an up-to-date schema, and the clock its rows are stamped
    with (wall-clock seconds: compared across hosts for the lease)."""

    def __init__(self, path: str | Path, clock: Clock) -> None:
        self.path = Path(path)
        self.now = clock
        self.conn = self._connect()
        try:
            self.migrate()
        except BaseException:
            self.conn.close()
            raise

    def _connect(self) -> sqlite3.Connection:
        try:
            _prepare_file(self.path)
            conn = sqlite3.connect(
                self.path, isolation_level=None, timeout=30.0, check_same_thread=False
            )
        except JournalError:
            raise
        except (OSError, sqlite3.Error) as exc:
            raise JournalError(f"cannot open the journal {self.path}: {_why(exc)}") from exc
        try:
            _into_wal(conn)
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA foreign_keys=ON")
        except sqlite3.Error as exc:
            conn.close()
            raise JournalError(f"cannot open the journal {self.path}: {exc}") from exc
        return conn

    def close(self) -> None:
        self.conn.close()

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, taken with BEGIN IMMEDIATE (writers queue up front);
        rolled back if anything in it fails."""
        with self.translate():
            try:
                self.conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise JournalError(f"journal {self.path} is not writable: {exc}") from exc
            try:
                yield self.conn
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
            try:
                self.conn.execute("COMMIT")
            except sqlite3.Error as exc:
                self.conn.execute("ROLLBACK")
                raise JournalError(f"journal {self.path}: commit failed: {exc}") from exc

    @contextmanager
    def translate(self) -> Iterator[None]:
        """``sqlite3`` errors as :class:`JournalError` naming the file."""
        try:
            yield
        except sqlite3.Error as exc:
            raise JournalError(f"journal {self.path}: {exc}") from exc

    def query(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """The rows of one read (outside any write transaction)."""
        with self.translate():
            return list(self.conn.execute(sql, args).fetchall())

    def log(
        self,
        conn: sqlite3.Connection,
        run_id: str,
        entity: str,
        from_state: str | None,
        to_state: str,
        detail: str | None,
    ) -> None:
        """One line of the run's history, in the caller's transaction."""
        conn.execute(_LOG, (run_id, entity, from_state, to_state, self.now(), detail))

    def migrate(self) -> int:
        """Apply the migrations this file lacks; the schema version reached."""
        with self.write() as conn:
            conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            row = conn.execute("SELECT MAX(version) FROM schema_version").fetchone()
            current = int(row[0]) if row and row[0] is not None else 0
            if current > SCHEMA_VERSION:
                raise JournalError(
                    f"journal {self.path} has schema version {current}, newer than this "
                    f"provisioner knows ({SCHEMA_VERSION}): upgrade provisioner"
                )
            for version in range(current + 1, SCHEMA_VERSION + 1):
                for statement in MIGRATIONS[version - 1]:
                    conn.execute(statement)
                conn.execute("INSERT INTO schema_version (version) VALUES (?)", (version,))
        return SCHEMA_VERSION

    def schema_version(self) -> int:
        rows = self.query("SELECT MAX(version) FROM schema_version")
        return int(rows[0][0]) if rows and rows[0][0] is not None else 0
