"""The journal's SQL schema, as an ordered list of forward migrations.

Each migration is a list of statements that takes the schema from version ``n - 1``
to ``n``; ``schema_version`` holds the version reached. Migrations only ever go
forward and each is applied in the transaction that records its version, so opening
a journal twice, or from two processes at once, applies each exactly once.

The schema is plain SQL that PostgreSQL also accepts (no SQLite-only types; the
autoincrement key is the only dialect-specific piece and is isolated in
:data:`MIGRATIONS`' first step).

No table has a column for a secret: DeviceSecrets are fetched again after a crash,
and AccessKey secrets never leave the process environment.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import get_args

from provisioner.journal.models import AppState, DeviceState, RunStatus

__all__ = [
    "APP_STATES",
    "DEVICE_STATES",
    "MIGRATIONS",
    "RUN_STATUSES",
    "SCHEMA_VERSION",
]

# The CHECK constraints are drawn from the state types in models.py, so the two lists
# cannot drift apart.
RUN_STATUSES: tuple[str, ...] = get_args(RunStatus)
DEVICE_STATES: tuple[str, ...] = get_args(DeviceState)
APP_STATES: tuple[str, ...] = get_args(AppState)

_V1: Sequence[str] = (
    """
    CREATE TABLE runs (
        run_id          TEXT PRIMARY KEY,
        run_key         TEXT NOT NULL UNIQUE,
        kind            TEXT NOT NULL,
        product_key     TEXT NOT NULL,
        status          TEXT NOT NULL,
        params          TEXT NOT NULL,
        report          TEXT,
        error           TEXT,
        created_at      REAL NOT NULL,
        updated_at      REAL NOT NULL,
        lease_pid       INTEGER,
        lease_host      TEXT,
        lease_token     TEXT,
        lease_since     REAL,
        lease_heartbeat REAL
    )
    """,
    """
    CREATE TABLE applications (
        app_id      INTEGER PRIMARY KEY AUTOINCREMENT,
        run_id      TEXT NOT NULL REFERENCES runs(run_id),
        chunk_no    INTEGER NOT NULL,
        parent_id   INTEGER REFERENCES applications(app_id),
        kind        TEXT NOT NULL,
        apply_id    TEXT,
        state       TEXT NOT NULL,
        attempt     INTEGER NOT NULL DEFAULT 0,
        size        INTEGER NOT NULL,
        created_at  REAL NOT NULL,
        updated_at  REAL NOT NULL
    )
    """,
    "CREATE INDEX applications_run ON applications(run_id, state)",
    """
    CREATE TABLE devices (
        run_id      TEXT NOT NULL REFERENCES runs(run_id),
        line        INTEGER NOT NULL,
        device_name TEXT NOT NULL,
        nickname    TEXT,
        app_id      INTEGER REFERENCES applications(app_id),
        state       TEXT NOT NULL,
        reason      TEXT,
        PRIMARY KEY (run_id, line)
    )
    """,
    "CREATE INDEX devices_app ON devices(app_id, state)",
    "CREATE INDEX devices_name ON devices(run_id, device_name)",
    """
    CREATE TABLE transitions (
        seq         INTEGER PRIMARY KEY AUTOINCREMENT,
        run_id      TEXT NOT NULL,
        entity      TEXT NOT NULL,
        from_state  TEXT,
        to_state    TEXT NOT NULL,
        at          REAL NOT NULL,
        detail      TEXT
    )
    """,
    "CREATE INDEX transitions_entity ON transitions(run_id, entity)",
)

# Imported devices keep their IotId, so a resumed import can write the devices it
# created before without asking the server again (an IotId is not a secret).
_V2: Sequence[str] = ("ALTER TABLE devices ADD COLUMN iot_id TEXT",)

# Why a device was rejected, as a word a program can act on (``check``: the server's
# BatchCheckDeviceNames refused it, so ``--existing adopt`` may look it up later); the
# reason text stays for people. Rows of older versions have NULL.
_V3: Sequence[str] = ("ALTER TABLE devices ADD COLUMN cause TEXT",)

#: Migration ``i`` (0-based) takes the schema to version ``i + 1``.
MIGRATIONS: Sequence[Sequence[str]] = (_V1, _V2, _V3)

SCHEMA_VERSION = len(MIGRATIONS)
