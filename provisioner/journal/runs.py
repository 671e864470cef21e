"""Runs: planning one (with its devices and applications), finding it, its status and
its history.

The status moves only as :data:`~provisioner.journal.models.RUN_TRANSITIONS` allows,
through the named moves ``start_run``, ``fail_run``, ``commit_run`` and
``complete_run``; a move to the status the run is in (a run found ``running`` after
its holder died) writes the new error and report but logs nothing, as a change it is
not.
"""

from __future__ import annotations

import secrets
import sqlite3
from collections.abc import Mapping, Sequence
from typing import Any

from provisioner.errors import JournalError
from provisioner.journal.applications import new_app
from provisioner.journal.models import RUN_MOVES, RUN_TRANSITIONS, RunRecord, can_move_run
from provisioner.journal.protocol import DeviceRow, RejectedRow, Transition
from provisioner.journal.sqlite import RUN_SELECT, SqliteDb, dumps, run_record

__all__ = ["SqliteRuns", "set_run_status"]

_RUN_BY_ID = RUN_SELECT + "WHERE run_id = ?"
_RUN_BY_KEY = RUN_SELECT + "WHERE run_key = ?"
_RUN_STATUS = "SELECT status FROM runs WHERE run_id = ?"
_INSERT_RUN = (
    "INSERT INTO runs (run_id, run_key, kind, product_key, status, params, created_at, "
    "updated_at) VALUES (?, ?, ?, ?, 'planned', ?, ?, ?)"
)
_INSERT_IN_APP = (
    "INSERT INTO devices (run_id, line, device_name, nickname, app_id, state) "
    "VALUES (?, ?, ?, ?, ?, 'pending')"
)
_INSERT_ALONE = (
    "INSERT INTO devices (run_id, line, device_name, nickname, state) "
    "VALUES (?, ?, ?, ?, 'pending')"
)
_INSERT_REJECTED = (
    "INSERT INTO devices (run_id, line, device_name, nickname, state, reason) "
    "VALUES (?, ?, ?, ?, 'rejected', ?)"
)
_SET_STATUS = "UPDATE runs SET status = ?, error = ?, updated_at = ? WHERE run_id = ?"
_SET_STATUS_REPORT = (
    "UPDATE runs SET status = ?, error = ?, updated_at = ?, report = ? WHERE run_id = ?"
)
_TRANSITIONS = "SELECT entity, from_state, to_state, at, detail FROM transitions WHERE run_id = ? "


def set_run_status(
    db: SqliteDb,
    conn: sqlite3.Connection,
    run_id: str,
    target: str,
    *,
    move: str,
    error: str | None = None,
    report: Mapping[str, Any] | None = None,
    allowed: bool | None = None,
) -> str:
    """Move run ``run_id`` to ``target`` in the caller's transaction, logged if its status
    changes; ``report`` (no secrets) is kept when given. ``allowed`` overrides the
    table for a move with its own rule (a reopened run). Returns the former status."""
    row = conn.execute(_RUN_STATUS, (run_id,)).fetchone()
    if row is None:
        raise JournalError(f"no run {run_id!r} in the journal {db.path}")
    current = str(row[0])
    if not (can_move_run(current, target) if allowed is None else allowed):
        sources = sorted(s for s, targets in RUN_TRANSITIONS.items() if target in targets)
        raise JournalError(
            f"run {run_id}: {move} ({current} -> {target}) is not allowed "
            f"(only from {', '.join(sources)})"
        )
    if report is None:
        conn.execute(_SET_STATUS, (target, error, db.now(), run_id))
    else:
        conn.execute(_SET_STATUS_REPORT, (target, error, db.now(), dumps(report), run_id))
    if current != target:
        db.log(conn, run_id, "run", current, target, error)
    return current


class SqliteRuns:
    """The run methods of :class:`~provisioner.journal.store.SqliteJournal`."""

    _db: SqliteDb

    # --- reads -----------------------------------------------------------------------

    def find_run(self, run_key: str) -> RunRecord | None:
        """The run of ``run_key`` (the hash of what makes two commands the same run)."""
        rows = self._db.query(_RUN_BY_KEY, (run_key,))
        return run_record(rows[0]) if rows else None

    def get_run(self, run_id: str) -> RunRecord:
        """The run ``run_id`` (a unique prefix is enough); :class:`JournalError` if none."""
        if not run_id:
            raise JournalError("a run id is needed")
        # The exact id first: a full id that is also the prefix of another is not ambiguous.
        rows = self._db.query(
            RUN_SELECT + "WHERE substr(run_id, 1, ?) = ? ORDER BY run_id = ? DESC",
            (len(run_id), run_id, run_id),
        )
        if not rows:
            raise JournalError(f"no run {run_id!r} in the journal {self._db.path}")
        if len(rows) > 1 and rows[0][0] != run_id:
            raise JournalError(f"run id {run_id!r} is ambiguous: give more characters")
        return run_record(rows[0])

    def list_runs(self) -> list[RunRecord]:
        rows = self._db.query(RUN_SELECT + "ORDER BY created_at, run_id")
        return [run_record(r) for r in rows]

    def transitions(self, run_id: str, entity: str | None = None) -> list[Transition]:
        """The run's history (of one ``entity``: ``run``, ``lease``, ``app:N``...), in order."""
        if entity is None:
            rows = self._db.query(_TRANSITIONS + "ORDER BY seq", (run_id,))
        else:
            rows = self._db.query(_TRANSITIONS + "AND entity = ? ORDER BY seq", (run_id, entity))
        return [Transition(*r) for r in rows]

    # --- planning --------------------------------------------------------------------

    def plan_run(
        self,
        *,
        run_key: str,
        kind: str,
        product_key: str,
        params: Mapping[str, Any],
        chunks: Sequence[Sequence[DeviceRow]] = (),
        rejected: Sequence[RejectedRow] = (),
        sizes: Sequence[int] = (),
        devices: Sequence[DeviceRow] = (),
    ) -> RunRecord:
        """A new run (``planned``) with its devices and applications, atomically.

        ``chunks``: one PLANNED application per chunk of named devices. ``sizes``:
        PLANNED applications of that many devices with no names yet (random names,
        chosen by the server). ``devices``: pending devices outside any application
        (an import calls once per device). ``rejected``: input rows refused before any
        call. If a run with ``run_key`` exists already (another process planned it a
        moment ago), that run is returned unchanged.
        """
        db = self._db
        now = db.now()
        run_id = secrets.token_hex(6)
        with db.write() as conn:
            row = conn.execute(_RUN_BY_KEY, (run_key,)).fetchone()
            if row is not None:
                return run_record(row)
            conn.execute(_INSERT_RUN, (run_id, run_key, kind, product_key, dumps(params), now, now))
            db.log(conn, run_id, "run", None, "planned", None)
            for chunk_no, chunk in enumerate(chunks):
                app = new_app(
                    db,
                    conn,
                    None,
                    run_id=run_id,
                    chunk_no=chunk_no,
                    kind=kind,
                    attempt=0,
                    size=len(chunk),
                )
                conn.executemany(
                    _INSERT_IN_APP,
                    [(run_id, d.line, d.device_name, d.nickname, app.app_id) for d in chunk],
                )
            for chunk_no, size in enumerate(sizes, start=len(chunks)):
                new_app(
                    db,
                    conn,
                    None,
                    run_id=run_id,
                    chunk_no=chunk_no,
                    kind=kind,
                    attempt=0,
                    size=size,
                )
            conn.executemany(
                _INSERT_ALONE, [(run_id, d.line, d.device_name, d.nickname) for d in devices]
            )
            conn.executemany(
                _INSERT_REJECTED,
                [(run_id, r.line, r.device_name, r.nickname, r.reason) for r in rejected],
            )
            return run_record(conn.execute(_RUN_BY_ID, (run_id,)).fetchone())

    def update_params(self, run_id: str, params: Mapping[str, Any]) -> None:
        """The run's parameters, as the latest command gave them (a new ``--out``...)."""
        with self._db.write() as conn:
            conn.execute(
                "UPDATE runs SET params = ?, updated_at = ? WHERE run_id = ?",
                (dumps(params), self._db.now(), run_id),
            )

    # --- status ----------------------------------------------------------------------

    def _move_run(
        self,
        run_id: str,
        move: str,
        *,
        error: str | None = None,
        report: Mapping[str, Any] | None = None,
    ) -> None:
        with self._db.write() as conn:
            target = RUN_MOVES[move]
            set_run_status(self._db, conn, run_id, target, move=move, error=error, report=report)

    def start_run(self, run_id: str) -> None:
        """-> running: planned, failed, completed (exported again), or left running or
        committing by a process that stopped."""
        self._move_run(run_id, "start_run")

    def fail_run(self, run_id: str, error: str) -> None:
        """-> failed, with the one-line error a person reads."""
        self._move_run(run_id, "fail_run", error=error)

    def commit_run(self, run_id: str, report: Mapping[str, Any]) -> None:
        """running -> committing: the report is kept before the output is renamed."""
        self._move_run(run_id, "commit_run", report=report)

    def complete_run(self, run_id: str, report: Mapping[str, Any] | None) -> None:
        """committing -> completed (``report`` replaces the kept one when given)."""
        self._move_run(run_id, "complete_run", report=report)
