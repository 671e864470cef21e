"""Devices: reads, the one-call-each devices of an import, and the repairs that put
rejected devices back in play.

An import (ImportDevice) writes intents and results for groups of devices, each group
in one transaction: a device is ``importing`` from just before its call until its
result is written. Nothing here takes a secret; an IotId is kept for imported devices
so a resumed run can write them to the new output without a call.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

from provisioner.journal.models import DeviceRecord
from provisioner.journal.protocol import ImportResult
from provisioner.journal.runs import set_run_status
from provisioner.journal.sqlite import DEVICE_SELECT, SqliteDb, device_record

__all__ = ["SqliteDevices"]

# 'missing': looked up and not found, so a later --existing adopt does not look it up again.
_REJECT_MISSING = (
    "UPDATE devices SET state = 'rejected', reason = ?, cause = 'missing' "
    "WHERE run_id = ? AND device_name = ? AND state IN ('pending', 'adopted')"
)
_MARK_IMPORTING = (
    "UPDATE devices SET state = 'importing' WHERE run_id = ? AND line = ? AND state = 'pending'"
)
_IMPORT_RESULT = (
    "UPDATE devices SET state = ?, reason = ?, iot_id = ? "
    "WHERE run_id = ? AND line = ? AND state IN ('pending', 'importing')"
)
_REOPEN_EXISTING = (
    "UPDATE devices SET state = 'pending', reason = NULL "
    "WHERE run_id = ? AND state = 'rejected' AND substr(reason, 1, ?) = ?"
)
_REOPEN_CHECKED = (
    "UPDATE devices SET state = 'adopted' "
    "WHERE run_id = ? AND state = 'rejected' AND cause = 'check'"
)
_RUN_STATUS = "SELECT status FROM runs WHERE run_id = ?"


class SqliteDevices:
    """The device methods of :class:`~provisioner.journal.store.SqliteJournal`."""

    _db: SqliteDb

    # --- reads -----------------------------------------------------------------------

    def app_devices(
        self, app_id: int, states: Collection[str] | None = ("pending",)
    ) -> list[DeviceRecord]:
        """The devices of an application (by default those still pending), by line."""
        rows = self._db.query(DEVICE_SELECT + "WHERE app_id = ? ORDER BY line", (app_id,))
        devices = [device_record(r) for r in rows]
        return devices if states is None else [d for d in devices if d.state in states]

    def devices(self, run_id: str, states: Collection[str] | None = None) -> list[DeviceRecord]:
        """The run's devices (those in ``states`` if given), by line."""
        rows = self._db.query(DEVICE_SELECT + "WHERE run_id = ? ORDER BY line", (run_id,))
        devices = [device_record(r) for r in rows]
        return devices if states is None else [d for d in devices if d.state in states]

    def device_counts(self, run_id: str) -> dict[str, int]:
        rows = self._db.query(
            "SELECT state, COUNT(*) FROM devices WHERE run_id = ? GROUP BY state", (run_id,)
        )
        return {str(state): int(n) for state, n in rows}

    # --- after the fact --------------------------------------------------------------

    def reject_missing(self, run_id: str, device_name: str, reason: str) -> None:
        """An adopted (or pending) device that could not be found after all: rejected,
        with cause ``missing``."""
        with self._db.write() as conn:
            conn.execute(_REJECT_MISSING, (reason, run_id, device_name))
            self._db.log(conn, run_id, f"device:{device_name}", None, "rejected", reason)

    # --- imports (ImportDevice) ------------------------------------------------------

    def mark_importing(self, run_id: str, lines: Collection[int]) -> None:
        """Intent: these devices are about to be sent (pending ones only)."""
        with self._db.write() as conn:
            conn.executemany(_MARK_IMPORTING, [(run_id, line) for line in lines])

    def record_import_results(self, run_id: str, results: Sequence[ImportResult]) -> None:
        """Results of a group of ImportDevice calls, in one transaction; every end but
        ``created`` is logged with its reason."""
        if not results:
            return
        with self._db.write() as conn:
            conn.executemany(
                _IMPORT_RESULT, [(r.state, r.reason, r.iot_id, run_id, r.line) for r in results]
            )
            for r in results:
                if r.state != "created":
                    self._db.log(conn, run_id, f"device:{r.line}", "importing", r.state, r.reason)

    # --- reopening (--existing adopt) ------------------------------------------------

    def reopen_existing(self, run_id: str, reason_prefix: str) -> int:
        """Import devices rejected with a reason starting ``reason_prefix`` back to
        pending (an operator changed ``--existing``); a completed run is no longer
        complete (completed -> failed), any other keeps its status. How many reopened."""
        with self._db.write() as conn:
            cur = conn.execute(_REOPEN_EXISTING, (run_id, len(reason_prefix), reason_prefix))
            reopened = cur.rowcount
            if reopened:
                row = conn.execute(_RUN_STATUS, (run_id,)).fetchone()
                if row is not None and row[0] == "completed":
                    set_run_status(
                        self._db,
                        conn,
                        run_id,
                        "failed",
                        move="reopen_existing",
                        error=f"{reopened} devices reopened for --existing adopt",
                    )
            return reopened

    def reopen_for_adoption(self, run_id: str) -> int:
        """The devices the server's check refused go back in play as ``adopted`` (they
        will be looked up with QueryDeviceDetail), and the run, whatever its status, is
        failed with a note of it (so a completed run is open again). How many reopened."""
        with self._db.write() as conn:
            reopened = conn.execute(_REOPEN_CHECKED, (run_id,)).rowcount
            if reopened:
                set_run_status(
                    self._db,
                    conn,
                    run_id,
                    "failed",
                    move="reopen_for_adoption",
                    error=f"{reopened} devices reopened for --existing adopt",
                    # Its own rule: from any status (failed stays failed, with the note).
                    allowed=True,
                )
            return reopened
