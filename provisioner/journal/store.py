"""The :class:`Journal`: every SQL statement of provisioner behind one small interface.

Each method is one transaction (see :mod:`provisioner.journal.sqlite` for the file,
WAL mode and ``synchronous=FULL``); a result and the state change it causes are
written together.

The interface speaks in records (:mod:`provisioner.journal.models`), not rows, so a
PostgreSQL store can follow with the same methods.

Nothing here takes a secret: the tables have no column for one.
"""

from __future__ import annotations

import os
import secrets
import socket
import sqlite3
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from provisioner.errors import JournalError, RunInProgressError
from provisioner.journal.location import pid_alive
from provisioner.journal.models import (
    AppRecord,
    AppState,
    DeviceRecord,
    Lease,
    RunRecord,
    RunStatus,
    can_transition,
)
from provisioner.journal.sqlite import (
    APP_SELECT,
    DEVICE_SELECT,
    RUN_SELECT,
    SqliteBase,
    app_record,
    device_record,
    dumps,
    iso,
    run_record,
)

__all__ = ["DeviceRow", "RejectedRow", "RunStore", "Transition"]

Clock = Callable[[], float]


class DeviceRow(NamedTuple):
    """A valid input row: its line in the input file, DeviceName and Nickname."""

    line: int
    device_name: str
    nickname: str | None


class RejectedRow(NamedTuple):
    line: int
    device_name: str
    nickname: str | None
    reason: str


class Transition(NamedTuple):
    entity: str
    from_state: str | None
    to_state: str
    at: float
    detail: str | None


class RunStore(SqliteBase):
    """The state store of runs, applications and devices (one SQLite file): what every
    kind of run shares. :class:`~provisioner.journal.batches.Journal` adds the
    operations of random-name registrations and imports.

    ``clock`` gives wall-clock seconds (stored, and compared across hosts for the
    lease); ``hostname``, ``pid`` and ``is_alive`` identify this process and probe
    others, injectable for tests. A holder on another host is alive while its
    heartbeat is younger than ``stale_after`` seconds; on this host while its pid
    exists, unless its heartbeat is older than ``reuse_after`` (the pid was reused
    after a reboot).
    """

    def __init__(
        self,
        path: str | Path,
        *,
        clock: Clock = time.time,
        hostname: str | None = None,
        pid: int | None = None,
        is_alive: Callable[[int], bool] = pid_alive,
        stale_after: float = 60.0,
        reuse_after: float = 600.0,
    ) -> None:
        self._clock = clock
        self.hostname = hostname if hostname is not None else socket.gethostname()
        self.pid = pid if pid is not None else os.getpid()
        self._is_alive = is_alive
        self.stale_after = stale_after
        self.reuse_after = reuse_after
        super().__init__(path)

    # --- runs ------------------------------------------------------------------------

    def find_run(self, run_key: str) -> RunRecord | None:
        """The run of ``run_key`` (the hash of what makes two commands the same run)."""
        rows = self._query(RUN_SELECT + "WHERE run_key = ?", (run_key,))
        return run_record(rows[0]) if rows else None

    def get_run(self, run_id: str) -> RunRecord:
        """The run ``run_id`` (a unique prefix is enough); :class:`JournalError` if none."""
        if not run_id:
            raise JournalError("a run id is needed")
        rows = self._query(
            RUN_SELECT + "WHERE substr(run_id, 1, ?) = ? ORDER BY run_id = ? DESC",
            (len(run_id), run_id, run_id),
        )
        if not rows:
            raise JournalError(f"no run {run_id!r} in the journal {self.path}")
        if len(rows) > 1 and rows[0][0] != run_id:
            raise JournalError(f"run id {run_id!r} is ambiguous: give more characters")
        return run_record(rows[0])

    def list_runs(self) -> list[RunRecord]:
        rows = self._query(RUN_SELECT + "ORDER BY created_at, run_id")
        return [run_record(r) for r in rows]

    def create_run(
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
        """A new run with its devices and one PLANNED application per chunk, atomically.

        ``sizes``: PLANNED applications of that many devices with no names yet (random
        names, chosen by the server). ``devices``: pending devices outside any
        application (an import calls once per device).

        If a run with ``run_key`` exists already (another process created it a moment
        ago), that run is returned unchanged.
        """
        now = self._clock()
        run_id = secrets.token_hex(6)
        with self._translate(), self._tx() as conn:
            existing = conn.execute("SELECT run_id FROM runs WHERE run_key = ?", (run_key,))
            row = existing.fetchone()
            if row is not None:
                run_id = str(row[0])
                return run_record(
                    conn.execute(RUN_SELECT + "WHERE run_id = ?", (run_id,)).fetchone()
                )
            conn.execute(
                "INSERT INTO runs (run_id, run_key, kind, product_key, status, params, "
                "created_at, updated_at) VALUES (?, ?, ?, ?, 'planned', ?, ?, ?)",
                (run_id, run_key, kind, product_key, dumps(params), now, now),
            )
            self._log(conn, run_id, "run", None, "planned", None)
            for chunk_no, chunk in enumerate(chunks):
                app_id = self._new_app(conn, run_id, chunk_no, None, kind, 0, len(chunk))
                conn.executemany(
                    "INSERT INTO devices (run_id, line, device_name, nickname, app_id, state) "
                    "VALUES (?, ?, ?, ?, ?, 'pending')",
                    [(run_id, d.line, d.device_name, d.nickname, app_id) for d in chunk],
                )
            for chunk_no, size in enumerate(sizes, start=len(chunks)):
                self._new_app(conn, run_id, chunk_no, None, kind, 0, size)
            conn.executemany(
                "INSERT INTO devices (run_id, line, device_name, nickname, state) "
                "VALUES (?, ?, ?, ?, 'pending')",
                [(run_id, d.line, d.device_name, d.nickname) for d in devices],
            )
            conn.executemany(
                "INSERT INTO devices (run_id, line, device_name, nickname, state, reason) "
                "VALUES (?, ?, ?, ?, 'rejected', ?)",
                [(run_id, r.line, r.device_name, r.nickname, r.reason) for r in rejected],
            )
        return self.get_run(run_id)

    def update_params(self, run_id: str, params: Mapping[str, Any]) -> None:
        with self._translate(), self._tx() as conn:
            conn.execute(
                "UPDATE runs SET params = ?, updated_at = ? WHERE run_id = ?",
                (dumps(params), self._clock(), run_id),
            )

    def set_status(
        self,
        run_id: str,
        status: RunStatus,
        *,
        error: str | None = None,
        report: Mapping[str, Any] | None = None,
    ) -> None:
        """Move the run to ``status``; ``report`` (no secrets) is kept for re-reporting."""
        with self._translate(), self._tx() as conn:
            row = conn.execute("SELECT status FROM runs WHERE run_id = ?", (run_id,)).fetchone()
            if row is None:
                raise JournalError(f"no run {run_id!r} in the journal {self.path}")
            sets = "status = ?, error = ?, updated_at = ?"
            args: list[Any] = [status, error, self._clock()]
            if report is not None:
                sets += ", report = ?"
                args.append(dumps(report))
            conn.execute(f"UPDATE runs SET {sets} WHERE run_id = ?", (*args, run_id))  # noqa: S608
            if row[0] != status:
                self._log(conn, run_id, "run", row[0], status, error)

    # --- lease -----------------------------------------------------------------------

    def holder_alive(self, lease: Lease) -> bool:
        """Whether the process that holds ``lease`` may still be working."""
        age = self._clock() - lease.heartbeat
        if lease.host == self.hostname:
            if lease.pid == self.pid:
                return False  # ourselves: an earlier run of this process let go without release
            return age < self.reuse_after and self._is_alive(lease.pid)
        return age < self.stale_after

    def acquire_lease(self, run_id: str) -> Lease:
        """Take the run for this process; :class:`RunInProgressError` if a live one has it.

        The lease of a dead holder (same host: its pid is gone; another host: no
        heartbeat for ``stale_after`` seconds) is taken over at once, so the same
        command re-run right after a kill resumes without waiting.
        """
        now = self._clock()
        token = secrets.token_hex(8)
        with self._translate(), self._tx() as conn:
            row = conn.execute(RUN_SELECT + "WHERE run_id = ?", (run_id,)).fetchone()
            if row is None:
                raise JournalError(f"no run {run_id!r} in the journal {self.path}")
            held = run_record(row).lease
            detail = None
            if held is not None:
                if self.holder_alive(held):
                    raise RunInProgressError(
                        f"run {run_id} is in progress (pid {held.pid} on {held.host} since "
                        f"{iso(held.since)}); wait for it or stop it"
                    )
                detail = f"taken over from pid {held.pid} on {held.host}"
            conn.execute(
                "UPDATE runs SET lease_pid = ?, lease_host = ?, lease_since = ?, "
                "lease_heartbeat = ?, lease_token = ? WHERE run_id = ?",
                (self.pid, self.hostname, now, now, token, run_id),
            )
            self._log(conn, run_id, "lease", None, f"pid {self.pid} on {self.hostname}", detail)
        return Lease(pid=self.pid, host=self.hostname, since=now, heartbeat=now, token=token)

    def heartbeat(self, run_id: str, lease: Lease) -> None:
        """Prove the holder is alive; :class:`RunInProgressError` if the lease was lost."""
        with self._translate(), self._tx() as conn:
            cur = conn.execute(
                "UPDATE runs SET lease_heartbeat = ? WHERE run_id = ? AND lease_token = ?",
                (self._clock(), run_id, lease.token),
            )
            if cur.rowcount != 1:
                raise RunInProgressError(
                    f"run {run_id} was taken over by another process; this one stops"
                )

    def release_lease(self, run_id: str, lease: Lease) -> None:
        with self._translate(), self._tx() as conn:
            conn.execute(
                "UPDATE runs SET lease_pid = NULL, lease_host = NULL, lease_since = NULL, "
                "lease_heartbeat = NULL, lease_token = NULL WHERE run_id = ? AND lease_token = ?",
                (run_id, lease.token),
            )

    # --- applications ----------------------------------------------------------------

    def applications(self, run_id: str, states: Collection[str] | None = None) -> list[AppRecord]:
        rows = self._query(
            APP_SELECT + "WHERE run_id = ? ORDER BY app_id",
            (run_id,),
        )
        apps = [app_record(r) for r in rows]
        return apps if states is None else [a for a in apps if a.state in states]

    def application(self, app_id: int) -> AppRecord:
        rows = self._query(APP_SELECT + "WHERE app_id = ?", (app_id,))
        if not rows:
            raise JournalError(f"no application {app_id} in the journal {self.path}")
        return app_record(rows[0])

    def _new_app(
        self,
        conn: sqlite3.Connection,
        run_id: str,
        chunk_no: int,
        parent_id: int | None,
        kind: str,
        attempt: int,
        size: int,
    ) -> int:
        now = self._clock()
        cur = conn.execute(
            "INSERT INTO applications (run_id, chunk_no, parent_id, kind, state, attempt, size, "
            "created_at, updated_at) VALUES (?, ?, ?, ?, 'PLANNED', ?, ?, ?, ?)",
            (run_id, chunk_no, parent_id, kind, attempt, size, now, now),
        )
        app_id = int(cur.lastrowid or 0)
        detail = f"from application {parent_id}" if parent_id is not None else None
        self._log(conn, run_id, f"app:{app_id}", None, "PLANNED", detail)
        return app_id

    def _move(
        self,
        conn: sqlite3.Connection,
        app_id: int,
        target: AppState,
        *,
        apply_id: str | None = None,
        detail: str | None = None,
    ) -> AppRecord:
        row = conn.execute(APP_SELECT + "WHERE app_id = ?", (app_id,)).fetchone()
        if row is None:
            raise JournalError(f"no application {app_id} in the journal {self.path}")
        app = app_record(row)
        if app.state != target and not can_transition(app.state, target):
            raise JournalError(
                f"application {app_id}: transition {app.state} -> {target} is not allowed"
            )
        new_apply_id = apply_id if apply_id is not None else app.apply_id
        conn.execute(
            "UPDATE applications SET state = ?, apply_id = ?, updated_at = ? WHERE app_id = ?",
            (target, new_apply_id, self._clock(), app_id),
        )
        if app.state != target or apply_id is not None:
            self._log(conn, app.run_id, f"app:{app_id}", app.state, target, detail)
        return app

    def set_state(self, app_id: int, target: AppState, *, detail: str | None = None) -> None:
        """A plain state change (intents, CHECK_SUCCESS, CREATE, DONE...)."""
        with self._translate(), self._tx() as conn:
            self._move(conn, app_id, target, detail=detail)

    def record_check_submitted(self, app_id: int, apply_id: str) -> None:
        """BatchCheckDeviceNames answered ``apply_id``: the application is in CHECK."""
        with self._translate(), self._tx() as conn:
            self._move(conn, app_id, "CHECK", apply_id=apply_id, detail=f"ApplyId {apply_id}")

    def record_check_failed(
        self,
        app_id: int,
        rejected: Mapping[str, str],
        *,
        adopt: Collection[str] = (),
        detail: str | None = None,
    ) -> AppRecord | None:
        """The check refused some names: reject them (or mark them adopted) and move the
        rest of the application's pending names to a new PLANNED application, returned
        (``None`` if no name is left)."""
        with self._translate(), self._tx() as conn:
            app = self._move(conn, app_id, "CHECK_FAILED", detail=detail)
            pending = self._pending(conn, app_id)
            adopt_set = set(adopt)
            refused = [(n, r) for n, r in rejected.items() if n in pending and n not in adopt_set]
            conn.executemany(
                "UPDATE devices SET state = 'rejected', reason = ?, cause = 'check' "
                "WHERE app_id = ? AND device_name = ? AND state = 'pending'",
                [(reason, app_id, name) for name, reason in refused],
            )
            conn.executemany(
                "UPDATE devices SET state = 'adopted', reason = ?, cause = 'check' "
                "WHERE app_id = ? AND device_name = ? AND state = 'pending'",
                [(rejected.get(n), app_id, n) for n in adopt_set if n in pending],
            )
            rest = len(pending) - len(refused) - len(adopt_set & pending)
            if rest <= 0:
                return None
            child = self._new_app(
                conn, app.run_id, app.chunk_no, app_id, app.kind, app.attempt, rest
            )
            conn.execute(
                "UPDATE devices SET app_id = ? WHERE app_id = ? AND state = 'pending'",
                (child, app_id),
            )
            return self._app_in(conn, child)

    def record_split(
        self, app_id: int, parts: int = 2, *, detail: str | None = None
    ) -> list[AppRecord]:
        """The server refused the application's size: its names go to ``parts`` new ones."""
        with self._translate(), self._tx() as conn:
            app = self._move(conn, app_id, "SPLIT", detail=detail)
            lines = [
                r[0]
                for r in conn.execute(
                    "SELECT line FROM devices WHERE app_id = ? AND state = 'pending' ORDER BY line",
                    (app_id,),
                )
            ]
            size = -(-len(lines) // parts)
            children = []
            for start in range(0, len(lines), size):
                part = lines[start : start + size]
                child = self._new_app(
                    conn, app.run_id, app.chunk_no, app_id, app.kind, app.attempt, len(part)
                )
                conn.executemany(
                    "UPDATE devices SET app_id = ? WHERE run_id = ? AND line = ?",
                    [(child, app.run_id, line) for line in part],
                )
                children.append(self._app_in(conn, child))
            return children

    def record_create_result(
        self,
        app_id: int,
        failed: Collection[str],
        *,
        retry: bool,
        reason: str,
        detail: str | None = None,
    ) -> AppRecord | None:
        """Creation ended: the pending names not in ``failed`` are created; the failed
        ones go to a new application (attempt + 1) when ``retry``, else are failed with
        ``reason``. The new application, if any, is returned."""
        with self._translate(), self._tx() as conn:
            pending = self._pending(conn, app_id)
            failed_here = pending & set(failed)
            target: AppState = "CREATE_FAILED" if failed_here else "CREATE_SUCCESS"
            app = self._move(conn, app_id, target, detail=detail)
            if failed_here:
                if retry:
                    child: int | None = self._new_app(
                        conn,
                        app.run_id,
                        app.chunk_no,
                        app_id,
                        app.kind,
                        app.attempt + 1,
                        len(failed_here),
                    )
                    conn.executemany(
                        "UPDATE devices SET app_id = ? WHERE app_id = ? AND device_name = ?",
                        [(child, app_id, n) for n in failed_here],
                    )
                else:
                    child = None
                    conn.executemany(
                        "UPDATE devices SET state = 'failed', reason = ? "
                        "WHERE app_id = ? AND device_name = ?",
                        [(reason, app_id, n) for n in failed_here],
                    )
            else:
                child = None
            conn.execute(
                "UPDATE devices SET state = 'created' WHERE app_id = ? AND state = 'pending'",
                (app_id,),
            )
            return self._app_in(conn, child) if child is not None else None

    def reject_device(self, run_id: str, device_name: str, reason: str) -> None:
        """Reject one device after the fact (an adopted name that could not be found)."""
        with self._translate(), self._tx() as conn:
            conn.execute(
                # 'missing': looked up and not found, so a later --existing adopt does
                # not look it up again.
                "UPDATE devices SET state = 'rejected', reason = ?, cause = 'missing' "
                "WHERE run_id = ? AND device_name = ? AND state IN ('pending', 'adopted')",
                (reason, run_id, device_name),
            )
            self._log(conn, run_id, f"device:{device_name}", None, "rejected", reason)

    def _pending(self, conn: sqlite3.Connection, app_id: int) -> set[str]:
        return {
            r[0]
            for r in conn.execute(
                "SELECT device_name FROM devices WHERE app_id = ? AND state = 'pending'", (app_id,)
            )
        }

    def _app_in(self, conn: sqlite3.Connection, app_id: int) -> AppRecord:
        row = conn.execute(APP_SELECT + "WHERE app_id = ?", (app_id,)).fetchone()
        return app_record(row)

    # --- devices ---------------------------------------------------------------------

    def app_devices(
        self, app_id: int, states: Collection[str] | None = ("pending",)
    ) -> list[DeviceRecord]:
        """The devices of an application (by default those still pending), by line."""
        rows = self._query(
            DEVICE_SELECT + "WHERE app_id = ? ORDER BY line",
            (app_id,),
        )
        devices = [device_record(r) for r in rows]
        return devices if states is None else [d for d in devices if d.state in states]

    def devices(self, run_id: str, states: Collection[str] | None = None) -> list[DeviceRecord]:
        rows = self._query(
            DEVICE_SELECT + "WHERE run_id = ? ORDER BY line",
            (run_id,),
        )
        devices = [device_record(r) for r in rows]
        return devices if states is None else [d for d in devices if d.state in states]

    def device_counts(self, run_id: str) -> dict[str, int]:
        rows = self._query(
            "SELECT state, COUNT(*) FROM devices WHERE run_id = ? GROUP BY state", (run_id,)
        )
        return {str(state): int(n) for state, n in rows}

    def transitions(self, run_id: str, entity: str | None = None) -> list[Transition]:
        sql = "SELECT entity, from_state, to_state, at, detail FROM transitions WHERE run_id = ?"
        args: list[Any] = [run_id]
        if entity is not None:
            sql += " AND entity = ?"
            args.append(entity)
        return [Transition(*r) for r in self._query(sql + " ORDER BY seq", args)]

    def _log(
        self,
        conn: sqlite3.Connection,
        run_id: str,
        entity: str,
        from_state: str | None,
        to_state: str,
        detail: str | None,
    ) -> None:
        conn.execute(
            "INSERT INTO transitions (run_id, entity, from_state, to_state, at, detail) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (run_id, entity, from_state, to_state, self._clock(), detail),
        )
