"""Applications of random names: BatchRegisterDevice, whose server picks the names.

Such an application knows only its size until the server answers; the names it
created are journaled once its pages were exported (:meth:`record_random_names`), so
a resumed run exports them from their pages like any other application. Sending it
has no idempotency key, so an answer that never came leaves it LOST until the
operator decides (``--lost resubmit`` / ``--lost abandon``).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Collection, Mapping, Sequence

from provisioner.errors import JournalError
from provisioner.journal.applications import app_in, child_of, move_app, new_app, plain_move
from provisioner.journal.models import AppRecord, AppState, DeviceState
from provisioner.journal.sqlite import SqliteDb

__all__ = ["LOST_DETAIL_CHARS", "SqliteRegistrations"]

#: The reason an answer was lost is an exception's text: the history keeps its start.
LOST_DETAIL_CHARS = 300

_APP_NAMES = "SELECT device_name FROM devices WHERE app_id = ?"
_LAST_LINE = "SELECT COALESCE(MAX(line), 1) FROM devices WHERE run_id = ?"
_INSERT_NAMED = (
    "INSERT INTO devices (run_id, line, device_name, app_id, state, reason) "
    "VALUES (?, ?, ?, ?, ?, ?)"
)
# Failed devices are journaled; retried ones are the size of a child application.
_EXPECTED = (
    "SELECT (SELECT COUNT(*) FROM devices WHERE app_id = ? AND state = 'failed'), "
    "(SELECT COALESCE(SUM(size), 0) FROM applications WHERE parent_id = ?)"
)


def _insert_named(
    conn: sqlite3.Connection,
    run_id: str,
    app_id: int,
    named: Sequence[tuple[str, str | None]],
    state: DeviceState,
) -> None:
    """Devices named by the server, on lines after the run's last (no input line)."""
    row = conn.execute(_LAST_LINE, (run_id,)).fetchone()
    first = int(row[0]) + 1
    conn.executemany(
        _INSERT_NAMED,
        [(run_id, first + i, name, app_id, state, why) for i, (name, why) in enumerate(named)],
    )


class SqliteRegistrations:
    """The random-name methods of :class:`~provisioner.journal.store.SqliteJournal`."""

    _db: SqliteDb

    def intend_register(self, app_id: int, *, detail: str | None = None) -> None:
        """PLANNED / LOST -> INTENT_REGISTER, before BatchRegisterDevice."""
        plain_move(self._db, app_id, "intend_register", "INTENT_REGISTER", detail)

    def record_registered(self, app_id: int, apply_id: str) -> None:
        """INTENT_REGISTER -> CREATE: BatchRegisterDevice answered ``apply_id``."""
        with self._db.write() as conn:
            move_app(
                self._db,
                conn,
                app_id,
                "record_registered",
                "CREATE",
                apply_id=apply_id,
                detail=f"ApplyId {apply_id}",
            )

    def unregister(self, app_id: int, *, detail: str | None = None) -> None:
        """INTENT_REGISTER -> PLANNED: the call was refused before it ran."""
        plain_move(self._db, app_id, "unregister", "PLANNED", detail)

    def mark_lost(self, app_id: int, why: str) -> None:
        """INTENT_REGISTER -> LOST: sent, answer never came; the operator decides."""
        plain_move(self._db, app_id, "mark_lost", "LOST", why[:LOST_DETAIL_CHARS])

    def abandon(self, app_id: int) -> None:
        """LOST -> ABANDONED (``--lost abandon``)."""
        plain_move(self._db, app_id, "abandon", "ABANDONED", "--lost abandon")

    def split_sizes(
        self, app_id: int, sizes: Sequence[int], *, detail: str | None = None
    ) -> list[AppRecord]:
        """INTENT_REGISTER -> SPLIT: new PLANNED applications of ``sizes`` (those above
        zero) replace it."""
        with self._db.write() as conn:
            app = move_app(self._db, conn, app_id, "split_sizes", "SPLIT", detail=detail)
            return [child_of(self._db, conn, app, size) for size in sizes if size > 0]

    def record_random_result(
        self,
        app_id: int,
        failed: Mapping[str, str],
        *,
        retry: bool,
        detail: str | None = None,
    ) -> AppRecord | None:
        """CREATE -> CREATE_SUCCESS / CREATE_FAILED. The ``failed`` names (name ->
        reason) are replaced by a new application of that size (attempt + 1) when
        ``retry``, else journaled as failed devices. The created names are journaled
        when their pages have been exported (:meth:`record_random_names`): a
        CREATE_FAILED status does not list them. Returns the new application, if any."""
        with self._db.write() as conn:
            target: AppState = "CREATE_FAILED" if failed else "CREATE_SUCCESS"
            app = move_app(self._db, conn, app_id, "record_random_result", target, detail=detail)
            if failed and retry:
                return new_app(
                    self._db,
                    conn,
                    app,
                    run_id=app.run_id,
                    chunk_no=app.chunk_no,
                    kind=app.kind,
                    attempt=app.attempt + 1,
                    size=len(failed),
                )
            _insert_named(conn, app.run_id, app_id, sorted(failed.items()), "failed")
            return None

    def record_random_names(self, app_id: int, names: Collection[str]) -> None:
        """The names an application created, once its pages were all exported; a name
        already journaled is not added twice (an application exported again)."""
        with self._db.write() as conn:
            app = app_in(conn, app_id)
            if app is None:
                raise JournalError(f"no application {app_id} in the journal {self._db.path}")
            known = {r[0] for r in conn.execute(_APP_NAMES, (app_id,))}
            new = [(n, None) for n in sorted(names) if n not in known]
            _insert_named(conn, app.run_id, app_id, new, "created")

    def random_expected(self, app: AppRecord) -> int:
        """How many devices a created application of random names holds: its size less
        the failed ones (journaled as failed, or moved to a retry application)."""
        rows = self._db.query(_EXPECTED, (app.app_id, app.app_id))
        failed, retried = rows[0]
        return app.size - int(failed) - int(retried)
