"""Records read from the journal, and the state machine of an application (pure).

An application goes through::

    PLANNED -> INTENT_CHECK -> CHECK -> CHECK_SUCCESS -> INTENT_CREATE -> CREATE
                  |  |           |                          |              |
                  |  |           +-> CHECK_FAILED           +--------------+
                  |  +-> CHECK_FAILED                       |
                  +-> SPLIT                                 +-> CREATE_SUCCESS -> DONE
                                                            +-> CREATE_FAILED  -> DONE

* ``INTENT_*`` is written before the call that creates something on the server
  (BatchCheckDeviceNames, BatchRegisterDeviceWithApplyId), the result and the next
  state after it, each in one transaction.
* ``SPLIT``: the server answered ``iot.device.DeviceCountExceeded``; the names went
  to two new applications.
* ``CHECK_FAILED`` from ``INTENT_CHECK``: BatchCheckDeviceNames refused some names
  outright (malformed); they are rejected and the rest went to a new application.
* ``DONE``: every page was exported by the process that wrote it. Export restarts
  from the beginning in a new process (secrets are never journaled), so ``DONE`` is
  read like ``CREATE_SUCCESS`` on resume.

An application of random names (BatchRegisterDevice, ``register-random``) has no
check::

    PLANNED -> INTENT_REGISTER -> CREATE -> CREATE_SUCCESS / CREATE_FAILED -> DONE
                 |   |   |
                 |   |   +-> PLANNED  (refused by a business error: nothing was created)
                 |   +-> SPLIT        (iot.device.DeviceCountExceeded: two smaller ones)
                 +-> LOST -> INTENT_REGISTER  (operator: --lost resubmit)
                        +-> ABANDONED        (operator: --lost abandon)

* ``LOST``: the call was sent but its answer never came (a transport error, a server
  error, or a crash after the intent). BatchRegisterDevice has no idempotency key
  and no way to find an ApplyId afterwards, so the devices may or may not exist;
  sending again could register a second set. Only the operator moves it on.

Devices of an import (ImportDevice, one call each) have no application: ``pending``
-> ``importing`` (intent, written before the call) -> ``created`` / ``adopted`` /
``rejected`` / ``failed``. A device found ``importing`` after a crash is looked up
on the server before anything is sent again.

The store never takes a target state from its caller: it offers the **named moves** of
:data:`APP_MOVES` (``intend_check``, ``record_apply_id``...), each allowed from the
states it lists, each edge of which :data:`TRANSITIONS` allows. A run's own status
follows :data:`RUN_TRANSITIONS` through the moves of :data:`RUN_MOVES`::

    planned    -> running | failed
    running    -> committing | failed | running
    committing -> completed | failed | running
    completed  -> running | failed
    failed     -> running

* ``running -> running``: a run found ``running`` was left so by a process that died;
  the next one takes it as it is.
* ``committing -> running``: the commit stopped before the output was renamed, so the
  run works (and commits) again.
* ``completed -> running``: a finished run exported again (a new ``--out``, or
  ``--force``); ``completed -> failed``: reopened (``--existing adopt``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

__all__ = [
    "ACTIVE_STATES",
    "APP_MOVES",
    "EXPORTABLE_STATES",
    "RUN_MOVES",
    "RUN_TRANSITIONS",
    "TERMINAL_STATES",
    "TRANSITIONS",
    "AppMove",
    "AppRecord",
    "AppState",
    "DeviceRecord",
    "DeviceState",
    "Lease",
    "RunRecord",
    "RunStatus",
    "can_move_run",
    "can_transition",
    "move_allowed",
]

AppState = Literal[
    "PLANNED",
    "INTENT_CHECK",
    "CHECK",
    "CHECK_SUCCESS",
    "CHECK_FAILED",
    "SPLIT",
    "INTENT_CREATE",
    "CREATE",
    "CREATE_SUCCESS",
    "CREATE_FAILED",
    "DONE",
    "INTENT_REGISTER",
    "LOST",
    "ABANDONED",
]
DeviceState = Literal["pending", "importing", "rejected", "created", "failed", "adopted"]
RunStatus = Literal["planned", "running", "committing", "completed", "failed"]

TRANSITIONS: Mapping[str, frozenset[str]] = {
    "PLANNED": frozenset({"INTENT_CHECK", "INTENT_REGISTER"}),
    "INTENT_CHECK": frozenset({"CHECK", "SPLIT", "CHECK_FAILED"}),
    "CHECK": frozenset({"CHECK_SUCCESS", "CHECK_FAILED"}),
    "CHECK_SUCCESS": frozenset({"INTENT_CREATE"}),
    "CHECK_FAILED": frozenset(),
    "SPLIT": frozenset(),
    "INTENT_CREATE": frozenset({"CREATE", "CREATE_SUCCESS", "CREATE_FAILED"}),
    "CREATE": frozenset({"CREATE_SUCCESS", "CREATE_FAILED"}),
    "CREATE_SUCCESS": frozenset({"DONE"}),
    "CREATE_FAILED": frozenset({"DONE"}),
    "DONE": frozenset(),
    "INTENT_REGISTER": frozenset({"CREATE", "LOST", "SPLIT", "PLANNED"}),
    "LOST": frozenset({"INTENT_REGISTER", "ABANDONED"}),
    "ABANDONED": frozenset(),
}

#: States after which the application's names live elsewhere (or nowhere).
TERMINAL_STATES = frozenset({"CHECK_FAILED", "SPLIT", "ABANDONED"})
#: States whose devices exist on the server and are exported from the application's pages.
EXPORTABLE_STATES = frozenset({"CREATE_SUCCESS", "CREATE_FAILED", "DONE"})
#: States that still need calls before the application can be exported.
ACTIVE_STATES = frozenset(TRANSITIONS) - TERMINAL_STATES - EXPORTABLE_STATES


def can_transition(current: str, target: str) -> bool:
    """Whether the machine allows ``current -> target``."""
    return target in TRANSITIONS.get(current, frozenset())


class AppMove(NamedTuple):
    """A named move of an application: from any of ``sources`` to one of ``targets``."""

    sources: frozenset[str]
    targets: frozenset[str]
    #: A plain move (it writes the state and nothing else) asked again of an application
    #: already in its target changes nothing: a resumed run repeats the last one it did
    #: (an application exported again is DONE again). A move that writes a result
    #: (an ApplyId, new applications, device states) is never repeated.
    plain: bool = False


def _move(sources: set[str], *targets: str, plain: bool = False) -> AppMove:
    return AppMove(frozenset(sources), frozenset(targets), plain)


#: Every way an application's state changes, by the name of the store's method.
APP_MOVES: Mapping[str, AppMove] = {
    # Names chosen by the input: check, then create.
    "intend_check": _move({"PLANNED"}, "INTENT_CHECK", plain=True),
    "record_apply_id": _move({"INTENT_CHECK"}, "CHECK"),
    "split": _move({"INTENT_CHECK"}, "SPLIT"),
    "record_check_failed": _move({"INTENT_CHECK", "CHECK"}, "CHECK_FAILED"),
    "check_passed": _move({"CHECK"}, "CHECK_SUCCESS", plain=True),
    "intend_create": _move({"CHECK_SUCCESS"}, "INTENT_CREATE", plain=True),
    # Only after BatchRegisterDeviceWithApplyId: an application of random names reaches
    # CREATE with its ApplyId (record_registered), never without one.
    "record_creating": _move({"INTENT_CREATE"}, "CREATE", plain=True),
    "record_create_result": _move({"INTENT_CREATE", "CREATE"}, "CREATE_SUCCESS", "CREATE_FAILED"),
    "mark_exported": _move({"CREATE_SUCCESS", "CREATE_FAILED"}, "DONE", plain=True),
    # Random names: BatchRegisterDevice.
    "intend_register": _move({"PLANNED", "LOST"}, "INTENT_REGISTER", plain=True),
    "record_registered": _move({"INTENT_REGISTER"}, "CREATE"),
    "unregister": _move({"INTENT_REGISTER"}, "PLANNED", plain=True),
    "mark_lost": _move({"INTENT_REGISTER"}, "LOST", plain=True),
    "abandon": _move({"LOST"}, "ABANDONED", plain=True),
    "split_sizes": _move({"INTENT_REGISTER"}, "SPLIT"),
    "record_random_result": _move({"CREATE"}, "CREATE_SUCCESS", "CREATE_FAILED"),
}


def move_allowed(move: str, current: str, target: str) -> bool:
    """Whether the named ``move`` may take an application from ``current`` to ``target``
    (a plain move to the state it is in is allowed, and changes nothing)."""
    spec = APP_MOVES[move]
    if target not in spec.targets:
        return False
    if current == target:
        return spec.plain
    return current in spec.sources and can_transition(current, target)


#: The statuses a run may move to from each status (see the module docstring).
RUN_TRANSITIONS: Mapping[str, frozenset[str]] = {
    "planned": frozenset({"running", "failed"}),
    "running": frozenset({"running", "committing", "failed"}),
    "committing": frozenset({"running", "completed", "failed"}),
    "completed": frozenset({"running", "failed"}),
    "failed": frozenset({"running"}),
}

#: The store's methods that change a run's status, and the status each moves it to.
RUN_MOVES: Mapping[str, RunStatus] = {
    "start_run": "running",
    "fail_run": "failed",
    "commit_run": "committing",
    "complete_run": "completed",
}


def can_move_run(current: str, target: str) -> bool:
    """Whether a run may go from status ``current`` to ``target``."""
    return target in RUN_TRANSITIONS.get(current, frozenset())


@dataclass(frozen=True, slots=True)
class Lease:
    """Who works a run: process ``pid`` on ``host`` since ``since``, alive at ``heartbeat``."""

    pid: int
    host: str
    since: float
    heartbeat: float
    token: str


@dataclass(frozen=True, slots=True)
class RunRecord:
    run_id: str
    run_key: str
    kind: str
    product_key: str
    status: RunStatus
    params: Mapping[str, Any]
    report: Mapping[str, Any] | None
    error: str | None
    created_at: float
    updated_at: float
    lease: Lease | None


@dataclass(frozen=True, slots=True)
class AppRecord:
    """One application: a chunk of names (or a part of one) sent to the server together."""

    app_id: int
    run_id: str
    chunk_no: int
    parent_id: int | None
    kind: str
    apply_id: str | None
    state: AppState
    attempt: int
    size: int
    created_at: float
    updated_at: float


@dataclass(frozen=True, slots=True)
class DeviceRecord:
    line: int
    device_name: str
    nickname: str | None
    app_id: int | None
    state: DeviceState
    reason: str | None
    iot_id: str | None = None
    #: Why it was rejected, for programs: ``check`` (the server's check refused it),
    #: ``missing`` (adopted, then not found); ``None`` otherwise or in older journals.
    cause: str | None = None
