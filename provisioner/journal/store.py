"""The SQLite journal: :class:`SqliteJournal`, the :class:`JournalStore` of one file.

It is the parts of :mod:`provisioner.journal` that each hold one concern (runs,
leases, applications, random-name registrations, devices, cross-run queries) over one
:class:`~provisioner.journal.sqlite.SqliteDb`: one connection, one clock, one
transaction per method. Nothing here takes a secret: the tables have no column for one.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Self

from provisioner.journal.applications import SqliteApplications
from provisioner.journal.crossrun import SqliteCrossRun
from provisioner.journal.devices import SqliteDevices
from provisioner.journal.leases import SqliteLeases
from provisioner.journal.location import pid_alive
from provisioner.journal.models import APP_MOVES, RUN_MOVES
from provisioner.journal.protocol import JournalStore
from provisioner.journal.registrations import SqliteRegistrations
from provisioner.journal.runs import SqliteRuns
from provisioner.journal.sqlite import Clock, SqliteDb

__all__ = ["SqliteJournal"]

# The old spellings set_state / set_status name a target; each target has one plain
# application move, and one run move.
_PLAIN_MOVE_TO = {next(iter(spec.targets)): name for name, spec in APP_MOVES.items() if spec.plain}
_RUN_MOVE_TO = {status: name for name, status in RUN_MOVES.items()}


class SqliteJournal(
    SqliteRuns,
    SqliteLeases,
    SqliteApplications,
    SqliteRegistrations,
    SqliteDevices,
    SqliteCrossRun,
):
    """The journal in one SQLite file (see :class:`JournalStore` for every method).

    ``clock`` gives wall-clock seconds (stored, and compared across hosts for the
    lease); ``hostname``, ``pid`` and ``is_alive`` identify this process and probe
    others, injectable for tests; ``stale_after`` and ``reuse_after`` are the rules of
    :func:`~provisioner.journal.leases.holder_alive`.
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
        self.hostname = hostname if hostname is not None else socket.gethostname()
        self.pid = pid if pid is not None else os.getpid()
        self._is_alive = is_alive
        self.stale_after = stale_after
        self.reuse_after = reuse_after
        self._db = SqliteDb(path, clock)
        self.path = self._db.path

    @property
    def location(self) -> str:
        return str(self.path)

    def schema_version(self) -> int:
        return self._db.schema_version()

    def migrate(self) -> int:
        """Apply the migrations this file lacks (opening did); the schema version reached."""
        return self._db.migrate()

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


# A static check (mypy strict): the SQLite journal is a JournalStore.
_IS_A_STORE: type[JournalStore] = SqliteJournal
