"""Applications of names chosen by the input: BatchCheckDeviceNames, then creation.

Every change is a named move of :data:`~provisioner.journal.models.APP_MOVES`, checked
against the machine and logged in the caller's transaction by :func:`move_app`; an
application that hands its names on (split, refused names, failed creation) gets
children made by :func:`new_app`. Both are shared with the random-name moves
(:mod:`provisioner.journal.registrations`) and the planning of a run.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Collection, Mapping

from provisioner.errors import JournalError
from provisioner.journal.models import APP_MOVES, AppRecord, AppState, move_allowed
from provisioner.journal.sqlite import APP_SELECT, SqliteDb, app_record

__all__ = [
    "SqliteApplications",
    "app_in",
    "child_of",
    "move_app",
    "new_app",
    "pending_names",
    "plain_move",
]

_APP_BY_ID = APP_SELECT + "WHERE app_id = ?"
_NEW_APP = (
    "INSERT INTO applications (run_id, chunk_no, parent_id, kind, state, attempt, size, "
    "created_at, updated_at) VALUES (?, ?, ?, ?, 'PLANNED', ?, ?, ?, ?)"
)
_SET_STATE = "UPDATE applications SET state = ?, apply_id = ?, updated_at = ? WHERE app_id = ?"
_PENDING_NAMES = "SELECT device_name FROM devices WHERE app_id = ? AND state = 'pending'"
_PENDING_LINES = "SELECT line FROM devices WHERE app_id = ? AND state = 'pending' ORDER BY line"
_MOVE_PENDING = "UPDATE devices SET app_id = ? WHERE app_id = ? AND state = 'pending'"
_MOVE_LINE = "UPDATE devices SET app_id = ? WHERE run_id = ? AND line = ?"
_MOVE_NAME = "UPDATE devices SET app_id = ? WHERE app_id = ? AND device_name = ?"
# cause 'check': the server's check refused it, so --existing adopt may look it up later.
_REJECT_CHECKED = (
    "UPDATE devices SET state = 'rejected', reason = ?, cause = 'check' "
    "WHERE app_id = ? AND device_name = ? AND state = 'pending'"
)
_ADOPT_CHECKED = (
    "UPDATE devices SET state = 'adopted', reason = ?, cause = 'check' "
    "WHERE app_id = ? AND device_name = ? AND state = 'pending'"
)
_FAIL_NAME = "UPDATE devices SET state = 'failed', reason = ? WHERE app_id = ? AND device_name = ?"
_CREATE_PENDING = "UPDATE devices SET state = 'created' WHERE app_id = ? AND state = 'pending'"


def app_in(conn: sqlite3.Connection, app_id: int) -> AppRecord | None:
    """Application ``app_id`` read in the caller's transaction, if it exists."""
    row = conn.execute(_APP_BY_ID, (app_id,)).fetchone()
    return app_record(row) if row is not None else None


def pending_names(conn: sqlite3.Connection, app_id: int) -> set[str]:
    return {r[0] for r in conn.execute(_PENDING_NAMES, (app_id,))}


def new_app(
    db: SqliteDb,
    conn: sqlite3.Connection,
    parent: AppRecord | None,
    *,
    run_id: str,
    chunk_no: int,
    kind: str,
    attempt: int,
    size: int,
) -> AppRecord:
    """A new PLANNED application (a child of ``parent`` if given), logged."""
    now = db.now()
    parent_id = parent.app_id if parent is not None else None
    cur = conn.execute(_NEW_APP, (run_id, chunk_no, parent_id, kind, attempt, size, now, now))
    app_id = int(cur.lastrowid or 0)
    detail = f"from application {parent_id}" if parent_id is not None else None
    db.log(conn, run_id, f"app:{app_id}", None, "PLANNED", detail)
    return AppRecord(
        app_id=app_id,
        run_id=run_id,
        chunk_no=chunk_no,
        parent_id=parent_id,
        kind=kind,
        apply_id=None,
        state="PLANNED",
        attempt=attempt,
        size=size,
        created_at=now,
        updated_at=now,
    )


def child_of(db: SqliteDb, conn: sqlite3.Connection, app: AppRecord, size: int) -> AppRecord:
    """A new PLANNED application for part of ``app``'s names, at the same attempt."""
    return new_app(
        db,
        conn,
        app,
        run_id=app.run_id,
        chunk_no=app.chunk_no,
        kind=app.kind,
        attempt=app.attempt,
        size=size,
    )


def move_app(
    db: SqliteDb,
    conn: sqlite3.Connection,
    app_id: int,
    move: str,
    target: AppState,
    *,
    apply_id: str | None = None,
    detail: str | None = None,
) -> AppRecord:
    """Apply the named ``move`` (to ``target``) in the caller's transaction, logged;
    :class:`JournalError` naming the move if the machine does not allow it. Returns the
    application as it was before."""
    app = app_in(conn, app_id)
    if app is None:
        raise JournalError(f"no application {app_id} in the journal {db.path}")
    if not move_allowed(move, app.state, target):
        allowed = ", ".join(sorted(APP_MOVES[move].sources))
        raise JournalError(
            f"application {app_id}: {move} ({app.state} -> {target}) is not allowed "
            f"(only from {allowed})"
        )
    if app.state == target:
        return app  # a plain move repeated: nothing to write
    new_apply_id = apply_id if apply_id is not None else app.apply_id
    conn.execute(_SET_STATE, (target, new_apply_id, db.now(), app_id))
    db.log(conn, app.run_id, f"app:{app_id}", app.state, target, detail)
    return app


def plain_move(db: SqliteDb, app_id: int, move: str, target: AppState, detail: str | None) -> None:
    """A move that writes the state and nothing else, in its own transaction."""
    with db.write() as conn:
        move_app(db, conn, app_id, move, target, detail=detail)


class SqliteApplications:
    """The application methods of :class:`~provisioner.journal.store.SqliteJournal`."""

    _db: SqliteDb

    # --- reads -----------------------------------------------------------------------

    def applications(self, run_id: str, states: Collection[str] | None = None) -> list[AppRecord]:
        """The run's applications (those in ``states`` if given), by id."""
        rows = self._db.query(APP_SELECT + "WHERE run_id = ? ORDER BY app_id", (run_id,))
        apps = [app_record(r) for r in rows]
        return apps if states is None else [a for a in apps if a.state in states]

    def application(self, app_id: int) -> AppRecord:
        rows = self._db.query(_APP_BY_ID, (app_id,))
        if not rows:
            raise JournalError(f"no application {app_id} in the journal {self._db.path}")
        return app_record(rows[0])

    # --- check -----------------------------------------------------------------------

    def intend_check(self, app_id: int) -> None:
        """PLANNED -> INTENT_CHECK, before BatchCheckDeviceNames is sent."""
        plain_move(self._db, app_id, "intend_check", "INTENT_CHECK", None)

    def record_apply_id(self, app_id: int, apply_id: str) -> None:
        """INTENT_CHECK -> CHECK: BatchCheckDeviceNames answered ``apply_id``."""
        with self._db.write() as conn:
            move_app(
                self._db,
                conn,
                app_id,
                "record_apply_id",
                "CHECK",
                apply_id=apply_id,
                detail=f"ApplyId {apply_id}",
            )

    def split(self, app_id: int, parts: int = 2, *, detail: str | None = None) -> list[AppRecord]:
        """INTENT_CHECK -> SPLIT: the server refused the size; the pending names go to
        ``parts`` new PLANNED applications (as even as can be), returned."""
        if parts < 1:
            raise JournalError(f"application {app_id}: cannot split in {parts} parts")
        with self._db.write() as conn:
            app = move_app(self._db, conn, app_id, "split", "SPLIT", detail=detail)
            lines = [r[0] for r in conn.execute(_PENDING_LINES, (app_id,))]
            size = max(1, -(-len(lines) // parts))
            children = []
            for start in range(0, len(lines), size):
                part = lines[start : start + size]
                child = child_of(self._db, conn, app, len(part))
                conn.executemany(_MOVE_LINE, [(child.app_id, app.run_id, line) for line in part])
                children.append(child)
            return children

    def record_check_failed(
        self,
        app_id: int,
        rejected: Mapping[str, str],
        *,
        adopt: Collection[str] = (),
        detail: str | None = None,
    ) -> AppRecord | None:
        """-> CHECK_FAILED: the ``rejected`` names (name -> reason) are rejected (or,
        those in ``adopt``, adopted); the rest of the pending names go to a new PLANNED
        application, returned (``None`` if no name is left)."""
        with self._db.write() as conn:
            app = move_app(
                self._db, conn, app_id, "record_check_failed", "CHECK_FAILED", detail=detail
            )
            pending = pending_names(conn, app_id)
            adopt_set = set(adopt) & pending
            refused = [(n, r) for n, r in rejected.items() if n in pending and n not in adopt_set]
            conn.executemany(_REJECT_CHECKED, [(reason, app_id, n) for n, reason in refused])
            conn.executemany(_ADOPT_CHECKED, [(rejected.get(n), app_id, n) for n in adopt_set])
            rest = len(pending) - len(refused) - len(adopt_set)
            if rest <= 0:
                return None
            child = child_of(self._db, conn, app, rest)
            conn.execute(_MOVE_PENDING, (child.app_id, app_id))
            return child

    def check_passed(self, app_id: int) -> None:
        """CHECK -> CHECK_SUCCESS."""
        plain_move(self._db, app_id, "check_passed", "CHECK_SUCCESS", None)

    # --- create ----------------------------------------------------------------------

    def intend_create(self, app_id: int) -> None:
        """CHECK_SUCCESS -> INTENT_CREATE, before BatchRegisterDeviceWithApplyId."""
        plain_move(self._db, app_id, "intend_create", "INTENT_CREATE", None)

    def record_creating(self, app_id: int, *, detail: str | None = None) -> None:
        """INTENT_CREATE -> CREATE: the server is creating."""
        plain_move(self._db, app_id, "record_creating", "CREATE", detail)

    def record_create_result(
        self,
        app_id: int,
        failed: Collection[str],
        *,
        retry: bool,
        reason: str,
        detail: str | None = None,
    ) -> AppRecord | None:
        """-> CREATE_SUCCESS / CREATE_FAILED: the pending names not in ``failed`` are
        created; the failed ones go to a new application (attempt + 1) when ``retry``,
        else are failed with ``reason``. Returns the new application, if any."""
        with self._db.write() as conn:
            failed_here = pending_names(conn, app_id) & set(failed)
            target: AppState = "CREATE_FAILED" if failed_here else "CREATE_SUCCESS"
            app = move_app(self._db, conn, app_id, "record_create_result", target, detail=detail)
            child = None
            if failed_here and retry:
                child = new_app(
                    self._db,
                    conn,
                    app,
                    run_id=app.run_id,
                    chunk_no=app.chunk_no,
                    kind=app.kind,
                    attempt=app.attempt + 1,
                    size=len(failed_here),
                )
                conn.executemany(_MOVE_NAME, [(child.app_id, app_id, n) for n in failed_here])
            elif failed_here:
                conn.executemany(_FAIL_NAME, [(reason, app_id, n) for n in failed_here])
            conn.execute(_CREATE_PENDING, (app_id,))
            return child

    def mark_exported(self, app_id: int, *, detail: str | None = None) -> None:
        """CREATE_SUCCESS / CREATE_FAILED -> DONE: every page was written (again: a DONE
        application exported again stays DONE)."""
        plain_move(self._db, app_id, "mark_exported", "DONE", detail)
