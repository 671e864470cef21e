"""The :class:`Journal`: the shared run store plus the records of random-name
registrations (BatchRegisterDevice) and imports (ImportDevice).

Random names: an application knows only its size until the server answers; the names
it created are journaled with the result of its creation, so a resumed run exports
them from their pages like any other application. Imports: one device per call, so
intents and results are written for groups of devices, each group in one
transaction (a device is ``importing`` from just before its call until its result
is written).

Nothing here takes a secret; an IotId is kept for imported devices so a resumed run
can write them to the new output without a call.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Collection, Mapping, Sequence
from typing import NamedTuple

from provisioner.journal.crossrun import CrossRun
from provisioner.journal.models import AppRecord, AppState, DeviceState

__all__ = ["ImportResult", "Journal"]


class ImportResult(NamedTuple):
    """The end of one device of an import: its new state, why (if not created), IotId."""

    line: int
    state: DeviceState
    reason: str | None = None
    iot_id: str | None = None


class Journal(CrossRun):
    """The journal of every kind of run (see :class:`RunStore` for the shared part)."""

    # --- random names (BatchRegisterDevice) --------------------------------------------

    def record_registered(self, app_id: int, apply_id: str) -> None:
        """BatchRegisterDevice answered ``apply_id``: the application is in CREATE."""
        with self._translate(), self._tx() as conn:
            self._move(conn, app_id, "CREATE", apply_id=apply_id, detail=f"ApplyId {apply_id}")

    def record_split_sizes(
        self, app_id: int, sizes: Sequence[int], *, detail: str | None = None
    ) -> list[AppRecord]:
        """The server refused the application's count: ``sizes`` new ones replace it."""
        with self._translate(), self._tx() as conn:
            app = self._move(conn, app_id, "SPLIT", detail=detail)
            return [
                self._app_in(
                    conn,
                    self._new_app(
                        conn, app.run_id, app.chunk_no, app_id, app.kind, app.attempt, size
                    ),
                )
                for size in sizes
                if size > 0
            ]

    def record_random_result(
        self,
        app_id: int,
        failed: Mapping[str, str],
        *,
        retry: bool,
        detail: str | None = None,
    ) -> AppRecord | None:
        """Creation of random names ended. The ``failed`` names (name -> reason) are
        replaced by a new application of that size (attempt + 1) when ``retry``, else
        journaled as failed devices. The created names are journaled when their pages
        have been exported (:meth:`record_random_names`): a CREATE_FAILED status does
        not list them. Returns the new application, if any."""
        with self._translate(), self._tx() as conn:
            target: AppState = "CREATE_FAILED" if failed else "CREATE_SUCCESS"
            app = self._move(conn, app_id, target, detail=detail)
            if failed and retry:
                child = self._new_app(
                    conn, app.run_id, app.chunk_no, app_id, app.kind, app.attempt + 1, len(failed)
                )
                return self._app_in(conn, child)
            self._insert_named(conn, app.run_id, app_id, sorted(failed.items()), "failed")
            return None

    def record_random_names(self, app_id: int, names: Collection[str]) -> None:
        """The names an application created, once its pages were all exported (idempotent)."""
        with self._translate(), self._tx() as conn:
            app = self._app_in(conn, app_id)
            known = {
                r[0]
                for r in conn.execute("SELECT device_name FROM devices WHERE app_id = ?", (app_id,))
            }
            new = [(n, None) for n in sorted(names) if n not in known]
            self._insert_named(conn, app.run_id, app_id, new, "created")

    def random_expected(self, app: AppRecord) -> int:
        """How many devices a created application of random names holds: its size less
        the failed ones (journaled as failed, or moved to a retry application)."""
        rows = self._query(
            "SELECT (SELECT COUNT(*) FROM devices WHERE app_id = ? AND state = 'failed'), "
            "(SELECT COALESCE(SUM(size), 0) FROM applications WHERE parent_id = ?)",
            (app.app_id, app.app_id),
        )
        failed, retried = rows[0]
        return app.size - int(failed) - int(retried)

    def _insert_named(
        self,
        conn: sqlite3.Connection,
        run_id: str,
        app_id: int,
        named: Sequence[tuple[str, str | None]],
        state: DeviceState,
    ) -> None:
        row = conn.execute(
            "SELECT COALESCE(MAX(line), 1) FROM devices WHERE run_id = ?", (run_id,)
        ).fetchone()
        first = int(row[0]) + 1
        conn.executemany(
            "INSERT INTO devices (run_id, line, device_name, app_id, state, reason) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            [(run_id, first + i, name, app_id, state, why) for i, (name, why) in enumerate(named)],
        )

    # --- imports (ImportDevice) --------------------------------------------------------

    def mark_importing(self, run_id: str, lines: Collection[int]) -> None:
        """Intent: these devices are about to be sent (pending ones only)."""
        with self._translate(), self._tx() as conn:
            conn.executemany(
                "UPDATE devices SET state = 'importing' "
                "WHERE run_id = ? AND line = ? AND state = 'pending'",
                [(run_id, line) for line in lines],
            )

    def record_import_results(self, run_id: str, results: Sequence[ImportResult]) -> None:
        """Results of a group of ImportDevice calls, in one transaction."""
        if not results:
            return
        with self._translate(), self._tx() as conn:
            conn.executemany(
                "UPDATE devices SET state = ?, reason = ?, iot_id = ? "
                "WHERE run_id = ? AND line = ? AND state IN ('pending', 'importing')",
                [(r.state, r.reason, r.iot_id, run_id, r.line) for r in results],
            )
            for r in results:
                if r.state != "created":
                    self._log(conn, run_id, f"device:{r.line}", "importing", r.state, r.reason)

    def reopen_devices(self, run_id: str, reason_prefix: str) -> int:
        """Put the devices rejected with a reason starting ``reason_prefix`` back to
        pending (an operator changed ``--existing``); the run is no longer complete."""
        with self._translate(), self._tx() as conn:
            cur = conn.execute(
                "UPDATE devices SET state = 'pending', reason = NULL "
                "WHERE run_id = ? AND state = 'rejected' AND substr(reason, 1, ?) = ?",
                (run_id, len(reason_prefix), reason_prefix),
            )
            reopened = cur.rowcount
            if reopened:
                detail = f"{reopened} devices reopened for --existing adopt"
                run = conn.execute(
                    "UPDATE runs SET status = 'failed', error = ?, updated_at = ? "
                    "WHERE run_id = ? AND status = 'completed'",
                    (detail, self._clock(), run_id),
                )
                if run.rowcount:
                    self._log(conn, run_id, "run", "completed", "failed", detail)
            return reopened
