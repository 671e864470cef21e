"""The journal: the state of every run, so a killed run resumes where it stopped.

Runs, applications with their ApplyIds and states, devices with their states,
transitions with timestamps, and a lease per run so one process works a run at a
time. Never a secret. The pipeline sees a :class:`JournalStore` (the protocol of
:mod:`provisioner.journal.protocol`) made by :func:`open_journal`, the one place that
picks a backend: SQLite (:class:`SqliteJournal`, also known as :class:`Journal`) today.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from provisioner.errors import UsageError
from provisioner.journal.location import (
    ENV_JOURNAL,
    default_journal_path,
    pid_alive,
    resolve_journal_path,
)
from provisioner.journal.models import (
    ACTIVE_STATES,
    APP_MOVES,
    EXPORTABLE_STATES,
    RUN_TRANSITIONS,
    TERMINAL_STATES,
    TRANSITIONS,
    AppRecord,
    AppState,
    DeviceRecord,
    DeviceState,
    Lease,
    RunRecord,
    RunStatus,
    can_move_run,
    can_transition,
)
from provisioner.journal.protocol import (
    Claim,
    DeviceRow,
    ImportResult,
    JournalStore,
    RejectedRow,
    Transition,
)
from provisioner.journal.schema import SCHEMA_VERSION
from provisioner.journal.store import SqliteJournal

__all__ = [
    "ACTIVE_STATES",
    "APP_MOVES",
    "ENV_JOURNAL",
    "EXPORTABLE_STATES",
    "RUN_TRANSITIONS",
    "SCHEMA_VERSION",
    "TERMINAL_STATES",
    "TRANSITIONS",
    "AppRecord",
    "AppState",
    "Claim",
    "DeviceRecord",
    "DeviceRow",
    "DeviceState",
    "ImportResult",
    "Journal",
    "JournalStore",
    "Lease",
    "RejectedRow",
    "RunRecord",
    "RunStatus",
    "SqliteJournal",
    "Transition",
    "can_move_run",
    "can_transition",
    "default_journal_path",
    "open_journal",
    "pid_alive",
    "resolve_journal_path",
]

#: The SQLite journal under its first name (``Journal(path)``).
Journal = SqliteJournal

_POSTGRES_SCHEMES = frozenset({"postgresql", "postgres"})


def open_journal(
    location: str | Path | None,
    env: Mapping[str, str] = os.environ,
    *,
    clock: Callable[[], float] = time.time,
    hostname: str | None = None,
    pid: int | None = None,
    is_alive: Callable[[int], bool] = pid_alive,
    stale_after: float = 60.0,
    reuse_after: float = 600.0,
) -> JournalStore:
    """The journal named by ``--journal`` (``location``), else ``PROVISIONER_JOURNAL``,
    else the default file (see :func:`resolve_journal_path`), opened.

    ``clock``, ``hostname``, ``pid``, ``is_alive``, ``stale_after`` and ``reuse_after``
    are for tests (see :class:`SqliteJournal`). A ``postgresql://`` URL is a usage
    error until a PostgreSQL store exists: this is where it will be opened.
    """
    text = str(location) if isinstance(location, Path) else location
    named = (text if text is not None else env.get(ENV_JOURNAL, "")).strip()
    scheme, sep, _ = named.partition("://")
    # postgresql+psycopg:// is the SQLAlchemy spelling of the same thing.
    if sep and scheme.lower().partition("+")[0] in _POSTGRES_SCHEMES:
        # The URL is not repeated: it may hold a password.
        raise UsageError(
            "PostgreSQL journals come in a later version of provisioner; for now give a "
            "SQLite journal (a path or sqlite:///path) with --journal or "
            f"{ENV_JOURNAL}"
        )
    return SqliteJournal(
        resolve_journal_path(text, env),
        clock=clock,
        hostname=hostname,
        pid=pid,
        is_alive=is_alive,
        stale_after=stale_after,
        reuse_after=reuse_after,
    )
