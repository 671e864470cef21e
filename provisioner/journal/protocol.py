"""The journal as a store: what the pipeline may ask of it, whatever keeps it.

:class:`JournalStore` is the whole interface. A backend (SQLite today, PostgreSQL
next) implements it and passes the contract tests in ``tests/unit/journal/``, which
are written against this protocol only. Every method is one transaction: a result
and the state change it causes are written together, or not at all.

Changes are **named transitions** of the machines in :mod:`provisioner.journal.models`
(``intend_check``, ``record_apply_id``, ``mark_lost``...), never a state string
chosen by the caller; a transition the machine does not allow from the current state
raises :class:`~provisioner.errors.JournalError` naming the move. The moves and the
states each is allowed from are :data:`~provisioner.journal.models.APP_MOVES`; the
run's own status moves through ``start_run`` -> ``commit_run`` -> ``complete_run`` (or
``fail_run``), guarded the same way by
:data:`~provisioner.journal.models.RUN_TRANSITIONS`.

Nothing here takes a secret: no record has a field for one.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any, NamedTuple, Protocol, Self

from provisioner.journal.models import AppRecord, DeviceRecord, DeviceState, Lease, RunRecord

__all__ = [
    "Claim",
    "DeviceRow",
    "ImportResult",
    "JournalStore",
    "RejectedRow",
    "Scope",
    "Transition",
]


class DeviceRow(NamedTuple):
    """A valid input row: its line in the input file, DeviceName and Nickname."""

    line: int
    device_name: str
    nickname: str | None


class RejectedRow(NamedTuple):
    """An input row refused before any call, with the reason a person reads."""

    line: int
    device_name: str
    nickname: str | None
    reason: str


class ImportResult(NamedTuple):
    """The end of one device of an import: its new state, why (if not created), IotId."""

    line: int
    state: DeviceState
    reason: str | None = None
    iot_id: str | None = None


class Transition(NamedTuple):
    """One line of a run's history."""

    entity: str
    from_state: str | None
    to_state: str
    at: float
    detail: str | None


class Scope(NamedTuple):
    """Where devices live: two runs with the same scope name the same devices."""

    product_key: str
    endpoint: str
    iot_instance_id: str | None


class Claim(NamedTuple):
    """An unfinished run that may have created ``names`` (sorted) of another run's input."""

    run: RunRecord
    names: list[str]


class JournalStore(Protocol):
    """Runs, their applications and devices, their leases and history."""

    # --- the store itself ----------------------------------------------------------

    @property
    def location(self) -> str:
        """Where the journal is, for messages (a path or a URL without password)."""
        ...

    def schema_version(self) -> int: ...

    def close(self) -> None: ...

    def __enter__(self) -> Self: ...

    def __exit__(self, *_exc: object) -> None:
        """Closes the store."""
        ...

    # --- runs ----------------------------------------------------------------------

    def find_run(self, run_key: str) -> RunRecord | None:
        """The run of ``run_key`` (the hash of what makes two commands the same run)."""
        ...

    def get_run(self, run_id: str) -> RunRecord:
        """The run ``run_id`` (a unique prefix will do); JournalError if none."""
        ...

    def list_runs(self) -> list[RunRecord]: ...

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
        PLANNED applications of that many devices whose names the server will pick.
        ``devices``: pending devices outside any application (one call each).
        ``rejected``: input rows refused before any call. If ``run_key`` exists
        already, that run is returned unchanged.
        """
        ...

    def update_params(self, run_id: str, params: Mapping[str, Any]) -> None: ...

    def start_run(self, run_id: str) -> None:
        """planned / failed / completed -> running (a completed run runs again only
        when it exports again); running / committing -> running when the process that
        left it so stopped (no history line for running -> running)."""
        ...

    def fail_run(self, run_id: str, error: str) -> None:
        """planned / running / committing / completed -> failed, with the one-line
        error a person reads."""
        ...

    def commit_run(self, run_id: str, report: Mapping[str, Any]) -> None:
        """running -> committing: the report is kept before the output is renamed."""
        ...

    def complete_run(self, run_id: str, report: Mapping[str, Any] | None) -> None:
        """committing -> completed."""
        ...

    # --- leases --------------------------------------------------------------------

    def acquire_lease(self, run_id: str) -> Lease:
        """Take the run for this process; RunInProgressError if a live holder has it."""
        ...

    def heartbeat(self, run_id: str, lease: Lease) -> None:
        """Prove the holder is alive; RunInProgressError if the lease was taken over."""
        ...

    def release_lease(self, run_id: str, lease: Lease) -> None: ...

    def holder_alive(self, lease: Lease) -> bool:
        """Whether the process holding ``lease`` may still be working."""
        ...

    # --- applications: reads -------------------------------------------------------

    def applications(self, run_id: str, states: Collection[str] | None = None) -> list[AppRecord]:
        """The run's applications (those in ``states`` if given), by id."""
        ...

    def application(self, app_id: int) -> AppRecord: ...

    # --- applications: check and create (names chosen by the input) ----------------

    def intend_check(self, app_id: int) -> None:
        """PLANNED -> INTENT_CHECK, before BatchCheckDeviceNames is sent."""
        ...

    def record_apply_id(self, app_id: int, apply_id: str) -> None:
        """INTENT_CHECK -> CHECK: the check was accepted with ``apply_id``."""
        ...

    def split(self, app_id: int, parts: int = 2, *, detail: str | None = None) -> list[AppRecord]:
        """INTENT_CHECK -> SPLIT: the server refused the size; the pending names go to
        ``parts`` new PLANNED applications, returned."""
        ...

    def record_check_failed(
        self,
        app_id: int,
        rejected: Mapping[str, str],
        *,
        adopt: Collection[str] = (),
        detail: str | None = None,
    ) -> AppRecord | None:
        """-> CHECK_FAILED: the ``rejected`` names (name -> reason) are rejected (or,
        those in ``adopt``, adopted); the rest go to a new PLANNED application,
        returned (``None`` if none is left)."""
        ...

    def check_passed(self, app_id: int) -> None:
        """CHECK -> CHECK_SUCCESS."""
        ...

    def intend_create(self, app_id: int) -> None:
        """CHECK_SUCCESS -> INTENT_CREATE, before BatchRegisterDeviceWithApplyId."""
        ...

    def record_creating(self, app_id: int, *, detail: str | None = None) -> None:
        """INTENT_CREATE -> CREATE: the server is creating (random names reach CREATE
        with their ApplyId, through :meth:`record_registered`)."""
        ...

    def record_create_result(
        self,
        app_id: int,
        failed: Collection[str],
        *,
        retry: bool,
        reason: str,
        detail: str | None = None,
    ) -> AppRecord | None:
        """-> CREATE_SUCCESS / CREATE_FAILED: the pending names not ``failed`` are
        created; the failed ones go to a new application (attempt + 1) when ``retry``,
        else are failed with ``reason``. Returns the new application, if any."""
        ...

    def mark_exported(self, app_id: int, *, detail: str | None = None) -> None:
        """CREATE_SUCCESS / CREATE_FAILED -> DONE: every page was written. Like every
        move that writes only the state, asked again of an application already there it
        changes nothing (an application exported again)."""
        ...

    # --- applications: random names (BatchRegisterDevice) --------------------------

    def intend_register(self, app_id: int, *, detail: str | None = None) -> None:
        """PLANNED / LOST -> INTENT_REGISTER, before BatchRegisterDevice."""
        ...

    def record_registered(self, app_id: int, apply_id: str) -> None:
        """INTENT_REGISTER -> CREATE with ``apply_id``."""
        ...

    def unregister(self, app_id: int, *, detail: str | None = None) -> None:
        """INTENT_REGISTER -> PLANNED: the call was refused before it ran."""
        ...

    def mark_lost(self, app_id: int, why: str) -> None:
        """INTENT_REGISTER -> LOST: sent, answer never came; the operator decides. The
        history keeps the first 300 characters of ``why``."""
        ...

    def abandon(self, app_id: int) -> None:
        """LOST -> ABANDONED (``--lost abandon``, the detail of its history line)."""
        ...

    def split_sizes(
        self, app_id: int, sizes: Sequence[int], *, detail: str | None = None
    ) -> list[AppRecord]:
        """INTENT_REGISTER -> SPLIT: ``sizes`` new PLANNED applications replace it."""
        ...

    def record_random_result(
        self,
        app_id: int,
        failed: Mapping[str, str],
        *,
        retry: bool,
        detail: str | None = None,
    ) -> AppRecord | None:
        """CREATE -> CREATE_SUCCESS / CREATE_FAILED for random names: the ``failed``
        names (name -> reason) are replaced by a new application of that size (attempt
        + 1) when ``retry``, else journaled as failed devices. Returns the new
        application, if any."""
        ...

    def record_random_names(self, app_id: int, names: Collection[str]) -> None:
        """The names an application created, once its pages were exported (idempotent)."""
        ...

    def random_expected(self, app: AppRecord) -> int:
        """How many devices a created application of random names holds."""
        ...

    # --- devices -------------------------------------------------------------------

    def app_devices(
        self, app_id: int, states: Collection[str] | None = ("pending",)
    ) -> list[DeviceRecord]: ...

    def devices(self, run_id: str, states: Collection[str] | None = None) -> list[DeviceRecord]: ...

    def device_counts(self, run_id: str) -> dict[str, int]: ...

    def reject_missing(self, run_id: str, device_name: str, reason: str) -> None:
        """An adopted device that could not be found after all: rejected (``missing``)."""
        ...

    def mark_importing(self, run_id: str, lines: Collection[int]) -> None:
        """Intent: these pending devices are about to be sent (ImportDevice)."""
        ...

    def record_import_results(self, run_id: str, results: Sequence[ImportResult]) -> None:
        """Results of a group of ImportDevice calls, in one transaction."""
        ...

    def reopen_existing(self, run_id: str, reason_prefix: str) -> int:
        """Import devices rejected with a reason starting ``reason_prefix`` back to
        pending (``--existing adopt``); a completed run goes to failed, another keeps
        its status. How many were reopened."""
        ...

    def reopen_for_adoption(self, run_id: str) -> int:
        """Devices the server's check refused back as ``adopted`` (``--existing adopt``);
        if any, the run (whatever its status) is failed with a note. How many."""
        ...

    # --- across runs ---------------------------------------------------------------

    def claims(self, scope: Scope, exclude_run_key: str, names: Collection[str]) -> list[Claim]:
        """Unfinished runs of the product on the same endpoint and instance (other than
        ``exclude_run_key``'s) that may have created some of ``names``."""
        ...

    def creators(
        self, scope: Scope, exclude_run_key: str, names: Collection[str]
    ) -> dict[str, RunRecord]:
        """For each of ``names`` created by another run of the product on the same
        endpoint and instance: the earliest such run."""
        ...

    def output_owners(self, exclude_run_key: str, out: str) -> list[RunRecord]:
        """Completed runs (other than ``exclude_run_key``'s) whose output file is ``out``."""
        ...

    # --- history -------------------------------------------------------------------

    def transitions(self, run_id: str, entity: str | None = None) -> list[Transition]:
        """The run's history (of one ``entity``: ``run``, ``lease``, ``app:N``,
        ``device:...``), oldest first."""
        ...
