"""Who works a run: the lease, so one process at a time works a run.

:func:`holder_alive` is the decision alone (no clock, no file, no process probe of its
own: all are passed in), so its rules are tested without I/O. A holder on another
host is alive while its heartbeat is younger than ``stale_after`` seconds; on this
host while its pid exists, unless its heartbeat is older than ``reuse_after`` (the pid
was reused after a reboot); this very process is never a live *other* holder (an
earlier run of it let go without releasing).

:class:`SqliteLeases` takes, proves and gives back a lease in the SQLite journal; the
lease of a dead holder is taken over at once, so the same command re-run right after
a kill resumes without waiting.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable

from provisioner.errors import JournalError, RunInProgressError
from provisioner.journal.models import Lease
from provisioner.journal.sqlite import RUN_SELECT, SqliteDb, iso, run_record

__all__ = ["SqliteLeases", "holder_alive"]

_TAKE = (
    "UPDATE runs SET lease_pid = ?, lease_host = ?, lease_since = ?, lease_heartbeat = ?, "
    "lease_token = ? WHERE run_id = ?"
)
_BEAT = "UPDATE runs SET lease_heartbeat = ? WHERE run_id = ? AND lease_token = ?"
_RELEASE = (
    "UPDATE runs SET lease_pid = NULL, lease_host = NULL, lease_since = NULL, "
    "lease_heartbeat = NULL, lease_token = NULL WHERE run_id = ? AND lease_token = ?"
)


def holder_alive(
    lease: Lease,
    *,
    now: float,
    hostname: str,
    pid: int,
    is_alive: Callable[[int], bool],
    stale_after: float,
    reuse_after: float,
) -> bool:
    """Whether the process holding ``lease`` may still be working, seen by process
    ``pid`` on ``hostname`` at ``now`` (see the module docstring)."""
    age = now - lease.heartbeat
    if lease.host == hostname:
        if lease.pid == pid:
            return False  # ourselves: an earlier run of this process let go without release
        # The age first: a probe of a pid from before a reboot would answer for another.
        return age < reuse_after and is_alive(lease.pid)
    return age < stale_after


class SqliteLeases:
    """The lease methods of :class:`~provisioner.journal.store.SqliteJournal`."""

    _db: SqliteDb
    hostname: str
    pid: int
    stale_after: float
    reuse_after: float
    _is_alive: Callable[[int], bool]

    def holder_alive(self, lease: Lease) -> bool:
        """Whether the process that holds ``lease`` may still be working."""
        return holder_alive(
            lease,
            now=self._db.now(),
            hostname=self.hostname,
            pid=self.pid,
            is_alive=self._is_alive,
            stale_after=self.stale_after,
            reuse_after=self.reuse_after,
        )

    def acquire_lease(self, run_id: str) -> Lease:
        """Take the run for this process; :class:`RunInProgressError` if a live one has it."""
        now = self._db.now()
        token = secrets.token_hex(8)
        with self._db.write() as conn:
            row = conn.execute(RUN_SELECT + "WHERE run_id = ?", (run_id,)).fetchone()
            if row is None:
                raise JournalError(f"no run {run_id!r} in the journal {self._db.path}")
            held = run_record(row).lease
            detail = None
            if held is not None:
                if self.holder_alive(held):
                    raise RunInProgressError(
                        f"run {run_id} is in progress (pid {held.pid} on {held.host} since "
                        f"{iso(held.since)}); wait for it or stop it"
                    )
                detail = f"taken over from pid {held.pid} on {held.host}"
            conn.execute(_TAKE, (self.pid, self.hostname, now, now, token, run_id))
            holder = f"pid {self.pid} on {self.hostname}"
            self._db.log(conn, run_id, "lease", None, holder, detail)
        return Lease(pid=self.pid, host=self.hostname, since=now, heartbeat=now, token=token)

    def heartbeat(self, run_id: str, lease: Lease) -> None:
        """Prove the holder is alive; :class:`RunInProgressError` if the lease was lost."""
        with self._db.write() as conn:
            cur = conn.execute(_BEAT, (self._db.now(), run_id, lease.token))
            if cur.rowcount != 1:
                raise RunInProgressError(
                    f"run {run_id} was taken over by another process; this one stops"
                )

    def release_lease(self, run_id: str, lease: Lease) -> None:
        """Let go of the run (only if ``lease`` still holds it)."""
        with self._db.write() as conn:
            conn.execute(_RELEASE, (run_id, lease.token))
