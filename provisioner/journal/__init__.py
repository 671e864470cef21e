"""The journal: the state of every run, so a killed run resumes where it stopped.

SQLite by default (:class:`Journal`); runs, applications with their ApplyIds and
states, devices with their states, transitions with timestamps, and a lease per run
so one process works a run at a time. Never a secret.
"""

from __future__ import annotations

from provisioner.journal.batches import ImportResult, Journal
from provisioner.journal.location import (
    ENV_JOURNAL,
    default_journal_path,
    pid_alive,
    resolve_journal_path,
)
from provisioner.journal.models import (
    ACTIVE_STATES,
    EXPORTABLE_STATES,
    TERMINAL_STATES,
    AppRecord,
    AppState,
    DeviceRecord,
    DeviceState,
    Lease,
    RunRecord,
    RunStatus,
    can_transition,
)
from provisioner.journal.schema import SCHEMA_VERSION
from provisioner.journal.store import DeviceRow, RejectedRow, RunStore, Transition

__all__ = [
    "ACTIVE_STATES",
    "ENV_JOURNAL",
    "EXPORTABLE_STATES",
    "SCHEMA_VERSION",
    "TERMINAL_STATES",
    "AppRecord",
    "AppState",
    "DeviceRecord",
    "DeviceRow",
    "DeviceState",
    "ImportResult",
    "Journal",
    "Lease",
    "RejectedRow",
    "RunRecord",
    "RunStatus",
    "RunStore",
    "Transition",
    "can_transition",
    "default_journal_path",
    "pid_alive",
    "resolve_journal_path",
]
