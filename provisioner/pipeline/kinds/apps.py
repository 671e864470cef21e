"""Pure step functions of the applications of ``run`` (names checked, then created) and
of ``register-random`` (names picked by the server).

``step(view, event) -> [actions]`` decides, from the application's journaled state and
what just happened, what to write and what to ask next (see
:mod:`provisioner.pipeline.machine`). Resume is the same function with
``Begin(resumed=True)``: an application is taken up from whatever state the journal
holds, and a call that may have run is reconciled with the server, never sent twice.

Check and create::

    PLANNED -> INTENT_CHECK -> CHECK -> CHECK_SUCCESS -> INTENT_CREATE -> CREATE -> CREATE_*
                  |  |           +-> CHECK_FAILED (refused names out, the rest anew)
                  |  +-> SPLIT (iot.device.DeviceCountExceeded)
                  +-> CHECK_FAILED (names refused outright)

Random names::

    PLANNED -> INTENT_REGISTER -> CREATE -> CREATE_*;  INTENT_REGISTER -> LOST (answer
    lost) -> INTENT_REGISTER (--lost resubmit) | ABANDONED (--lost abandon)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from provisioner.api.records import ApplyState, ApplyStatus
from provisioner.errors import JournalError, TerminalApiError
from provisioner.journal import AppRecord, DeviceRecord
from provisioner.naming import device_name_problem, nickname_problem
from provisioner.pipeline.machine import (
    Accepted,
    Action,
    Adopt,
    Advance,
    Ask,
    Begin,
    Created,
    Event,
    Explain,
    Explained,
    Export,
    Exported,
    Fail,
    Note,
    Poll,
    Refused,
    Status,
    SubmitCheck,
    SubmitCreate,
    SubmitRegister,
    Total,
    Unanswered,
    Write,
)

__all__ = [
    "CHECK_FINAL",
    "CREATE_FINAL",
    "AppView",
    "LostPolicy",
    "check_create_step",
    "random_step",
]

CHECK_FINAL = frozenset({ApplyState.CHECK_SUCCESS, ApplyState.CHECK_FAILED})
CREATE_FINAL = frozenset({ApplyState.CREATE_SUCCESS, ApplyState.CREATE_FAILED})
EXPORTABLE = frozenset({"CREATE_SUCCESS", "CREATE_FAILED", "DONE"})
LostPolicy = Literal["fail", "resubmit", "abandon"]

COUNT_EXCEEDED = "iot.device.DeviceCountExceeded"
TASK_RUNNING = "iot.device.CreateDeviceTaskIsRunning"
#: BatchCheckDeviceNames refusing names outright (the local validation should prevent it).
MALFORMED = frozenset(
    {
        "iot.device.InvalidFormattedDeviceNameInNameList",
        "iot.device.InvalidFormattedDeviceName",
        "iot.device.InvalidDeviceNickNameExisted",
        "iot.device.RepeatedDeviceName",
    }
)


@dataclass(frozen=True, slots=True)
class AppView:
    """What a step may know of an application: its record, and its pending devices
    (names chosen by the input; empty for random names)."""

    app: AppRecord
    pending: Sequence[DeviceRecord] = ()


def _unexpected(app: AppRecord, server: str) -> Fail:
    return Fail(
        JournalError(
            f"application {app.apply_id} is {server} on the server but {app.state} in the journal"
        )
    )


# --- names checked, then created --------------------------------------------------------


def check_create_step(
    view: AppView, event: Event, *, product_key: str, adopt: bool
) -> list[Action]:
    """The next actions of an application of ``run`` (see the module docstring)."""
    app = view.app
    state = app.state
    if isinstance(event, Begin):
        return _check_create_begin(app, event.resumed)
    if isinstance(event, Accepted) and state == "INTENT_CHECK":
        return [
            Write("record_apply_id", {"app_id": app.app_id, "apply_id": event.apply_id}),
            Note(
                "run.chunk_check_submitted",
                {
                    "app": app.app_id,
                    "chunk": app.chunk_no,
                    "apply_id": event.apply_id,
                    "size": len(view.pending),
                },
            ),
            Poll(CHECK_FINAL, fresh=True),
        ]
    if isinstance(event, Refused) and state == "INTENT_CHECK":
        return _check_refused(view, event)
    if isinstance(event, Status) and state == "CHECK":
        return _checked(view, event.status)
    if isinstance(event, Explained) and state == "CHECK":
        return _check_failed(view, event, product_key=product_key, adopt=adopt)
    if isinstance(event, Created) and state == "INTENT_CREATE":
        return [
            Write("record_creating", {"app_id": app.app_id, "detail": "creation submitted"}),
            Note("run.chunk_create_submitted", {"app": app.app_id, "apply_id": app.apply_id}),
            Poll(CREATE_FINAL, fresh=True),
        ]
    if isinstance(event, Status) and state == "INTENT_CREATE":
        return _reconciled(view, event.status)
    if isinstance(event, Status) and state == "CREATE":
        return _created(view, event.status)
    if isinstance(event, Exported) and state in EXPORTABLE:
        return [
            Write("mark_exported", {"app_id": app.app_id, "detail": "exported"}),
            Note(
                "run.chunk_exported",
                {"app": app.app_id, "apply_id": app.apply_id, "devices": len(event.seen)},
            ),
        ]
    return [Fail(JournalError(f"application {app.app_id}: no step from {state} on {event}"))]


def _check_create_begin(app: AppRecord, resumed: bool) -> list[Action]:
    state = app.state
    if state == "PLANNED":
        return [Write("intend_check", {"app_id": app.app_id}), SubmitCheck()]
    if state == "INTENT_CHECK":
        return [SubmitCheck()]  # an orphan check on the server is harmless
    if state == "CHECK":
        return [Poll(CHECK_FINAL, fresh=not resumed)]
    if state == "CHECK_SUCCESS":
        return [Write("intend_create", {"app_id": app.app_id}), SubmitCreate()]
    if state == "INTENT_CREATE":
        return [Ask()]  # the submission may have arrived: ask before acting
    if state == "CREATE":
        return [Poll(CREATE_FINAL, fresh=not resumed)]
    if state in EXPORTABLE:
        return [Export()]
    return []  # CHECK_FAILED, SPLIT: the names live in other applications now


def _check_refused(view: AppView, event: Refused) -> list[Action]:
    app = view.app
    code = event.code
    if code == COUNT_EXCEEDED and len(view.pending) > 1:
        return [
            Write("split", {"app_id": app.app_id, "detail": code}),
            Note("run.chunk_split", {"app": app.app_id, "size": len(view.pending)}),
        ]
    if code in MALFORMED:
        refused = local_problems(view.pending)
        if refused:
            reasons = {n: f"{r} (BatchCheckDeviceNames: {code})" for n, r in refused.items()}
            return [
                Write(
                    "record_check_failed",
                    {"app_id": app.app_id, "rejected": reasons, "adopt": (), "detail": code},
                ),
                Advance("checked", len(reasons)),
                Total(),
            ]
    return [Fail(event.error)]


def _checked(view: AppView, status: ApplyStatus) -> list[Action]:
    app = view.app
    if status.status == ApplyState.CHECK_SUCCESS:
        return [
            Write("check_passed", {"app_id": app.app_id}),
            Advance("checked", app.size),
            Note("run.chunk_checked", {"app": app.app_id, "size": app.size}),
            Write("intend_create", {"app_id": app.app_id}),
            SubmitCreate(),
        ]
    if status.status != ApplyState.CHECK_FAILED:
        return [_unexpected(app, status.status)]
    pending = {d.device_name for d in view.pending}
    details = {d.device_name: d.error_message or "" for d in status.invalid_details}
    listed = (set(status.invalid_names) | set(details)) & pending
    if not listed:
        return [
            Fail(
                TerminalApiError(
                    "QueryBatchRegisterDeviceStatus",
                    "CheckFailedWithoutNames",
                    f"application {app.apply_id} failed the check without naming one of "
                    "its devices",
                )
            )
        ]
    return [Explain({name: details.get(name, "") for name in sorted(listed)})]


def _check_failed(
    view: AppView, event: Explained, *, product_key: str, adopt: bool
) -> list[Action]:
    app = view.app
    names = sorted(event.messages)
    reasons = {
        name: f"{event.messages[name] or 'failed the check'} "
        f"(BatchCheckDeviceNames, product {product_key})" + event.clauses.get(name, "")
        for name in names
    }
    actions: list[Action] = [
        Write(
            "record_check_failed",
            {
                "app_id": app.app_id,
                "rejected": reasons,
                "adopt": tuple(names) if adopt else (),
                "detail": f"{len(reasons)} names refused",
            },
        ),
        Advance("checked", len(reasons)),
        Note(
            "run.chunk_check_failed",
            {
                "app": app.app_id,
                "apply_id": app.apply_id,
                "refused": len(reasons),
                "adopted": len(reasons) if adopt else 0,
            },
        ),
        Total(),
    ]
    if adopt:
        actions.append(Adopt(tuple(names)))
    return actions


def _reconciled(view: AppView, status: ApplyStatus) -> list[Action]:
    app = view.app
    note = Note("run.chunk_reconciled", {"app": app.app_id, "server": status.status})
    if status.status == ApplyState.CHECK_SUCCESS:
        return [note, SubmitCreate()]
    if status.status == ApplyState.CREATE:
        return [
            note,
            Write("record_creating", {"app_id": app.app_id, "detail": "found CREATE on resume"}),
            Poll(CREATE_FINAL, fresh=False),
        ]
    if status.status in CREATE_FINAL:
        return [note, *_created(view, status)]
    return [note, _unexpected(app, status.status)]


def _created(view: AppView, status: ApplyStatus) -> list[Action]:
    app = view.app
    if status.status not in CREATE_FINAL:
        return [_unexpected(app, status.status)]
    failed: set[str] = set()
    reason = ""
    if status.status == ApplyState.CREATE_FAILED:
        details = {d.device_name: d.error_message for d in status.invalid_details}
        failed = set(status.invalid_names) | set(details)
        messages = sorted({m for m in details.values() if m})
        reason = (messages[0] if len(messages) == 1 else "creation failed") + (
            " (BatchRegisterDeviceWithApplyId CREATE_FAILED, retried once)"
        )
    retry = app.attempt == 0
    pending = {d.device_name for d in view.pending}
    failed_here = failed & pending
    return [
        Write(
            "record_create_result",
            {
                "app_id": app.app_id,
                "failed": tuple(sorted(failed)),
                "retry": retry,
                "reason": reason,
                "detail": status.status,
            },
        ),
        Advance("created", len(pending - failed_here)),
        Note(
            "run.chunk_created",
            {
                "app": app.app_id,
                "apply_id": app.apply_id,
                "status": status.status,
                "created": len(pending - failed_here),
                "failed": len(failed_here),
                "retried": bool(failed_here) and retry,
            },
        ),
        *([Total()] if failed_here and not retry else []),
        Export(),
    ]


def local_problems(devices: Sequence[DeviceRecord]) -> dict[str, str]:
    """Names (and nicknames) our own rules refuse, with the reason."""
    problems: dict[str, str] = {}
    seen: set[str] = set()
    for device in devices:
        name, nickname = device.device_name, device.nickname
        problem = device_name_problem(name)
        if problem is None and nickname:
            problem = nickname_problem(nickname)
        if problem is None and name in seen:
            problem = "repeated DeviceName"
        seen.add(name)
        if problem is not None:
            problems[name] = problem
    return problems


# --- random names ------------------------------------------------------------------------


def random_step(view: AppView, event: Event, *, lost: LostPolicy) -> list[Action]:
    """The next actions of an application of ``register-random``."""
    app = view.app
    state = app.state
    if isinstance(event, Begin):
        return _random_begin(app, event.resumed, lost)
    if isinstance(event, Accepted) and state == "INTENT_REGISTER":
        return [
            Write("record_registered", {"app_id": app.app_id, "apply_id": event.apply_id}),
            Note(
                "register.application_submitted",
                {"app": app.app_id, "apply_id": event.apply_id, "size": app.size},
            ),
            Poll(CREATE_FINAL, fresh=True),
        ]
    if isinstance(event, Refused) and state == "INTENT_REGISTER":
        if event.code == COUNT_EXCEEDED and app.size > 1:
            half = app.size // 2
            return [
                Write(
                    "split_sizes",
                    {"app_id": app.app_id, "sizes": (app.size - half, half), "detail": event.code},
                ),
                Note("register.application_split", {"app": app.app_id, "size": app.size}),
            ]
        # Refused before it ran (a business error, a spent deadline, a failed handshake):
        # nothing was registered.
        return [
            Write("unregister", {"app_id": app.app_id, "detail": event.code}),
            Fail(event.error),
        ]
    if isinstance(event, Unanswered) and state == "INTENT_REGISTER":
        return _lose(app, event.why)
    if isinstance(event, Status) and state == "CREATE":
        return _random_created(app, event.status)
    if isinstance(event, Exported) and state in EXPORTABLE:
        return [
            Write("record_random_names", {"app_id": app.app_id, "names": event.seen}),
            Write("mark_exported", {"app_id": app.app_id, "detail": "exported"}),
            Note(
                "run.chunk_exported",
                {"app": app.app_id, "apply_id": app.apply_id, "devices": len(event.seen)},
            ),
        ]
    return [Fail(JournalError(f"application {app.app_id}: no step from {state} on {event}"))]


def _random_begin(app: AppRecord, resumed: bool, lost: LostPolicy) -> list[Action]:
    state = app.state
    if state == "PLANNED":
        return [SubmitRegister(app.size)]
    if state == "INTENT_REGISTER":
        if not resumed:
            return [SubmitRegister(app.size)]
        # A crash after the intent: the call may have registered devices.
        why = "found INTENT_REGISTER on resume: the answer may be lost"
        return [*_lose(app, why), *_lost(app, lost)]
    if state == "LOST":
        return _lost(app, lost) if resumed else []
    if state == "CREATE":
        return [Poll(CREATE_FINAL, fresh=not resumed)]
    if state in EXPORTABLE:
        return [Export()]
    return []  # SPLIT, ABANDONED


def _lose(app: AppRecord, why: str) -> list[Action]:
    return [
        Write("mark_lost", {"app_id": app.app_id, "why": why[:300]}),
        Note(
            "register.application_lost",
            {"app": app.app_id, "size": app.size, "why": why},
            warning=True,
        ),
    ]


def _lost(app: AppRecord, lost: LostPolicy) -> list[Action]:
    if lost == "abandon":
        return [
            Write("abandon", {"app_id": app.app_id}),
            Note(
                "register.application_abandoned",
                {"app": app.app_id, "size": app.size},
                warning=True,
            ),
            Total(),
        ]
    if lost == "resubmit":
        return [
            Write("intend_register", {"app_id": app.app_id, "detail": "--lost resubmit"}),
            SubmitRegister(app.size),
        ]
    return []  # the operator has not decided: the run stops when the others are done


def _random_created(app: AppRecord, status: ApplyStatus) -> list[Action]:
    if status.status not in CREATE_FINAL:
        return [
            Fail(
                TerminalApiError(
                    "QueryBatchRegisterDeviceStatus",
                    "UnexpectedStatus",
                    f"application {app.apply_id} is {status.status} on the server while creating",
                )
            )
        ]
    details = {d.device_name: d.error_message for d in status.invalid_details}
    failed = {
        name: (details.get(name) or "creation failed")
        + " (BatchRegisterDevice CREATE_FAILED, retried once)"
        for name in {*status.invalid_names, *details}
    }
    if status.status == ApplyState.CREATE_FAILED and not failed:
        return [
            Fail(
                TerminalApiError(
                    "QueryBatchRegisterDeviceStatus",
                    "CreateFailedWithoutNames",
                    f"application {app.apply_id} failed creation without naming a device",
                )
            )
        ]
    retry = app.attempt == 0
    created = app.size - len(failed)
    return [
        Write(
            "record_random_result",
            {"app_id": app.app_id, "failed": failed, "retry": retry, "detail": status.status},
        ),
        Advance("created", created),
        Note(
            "register.application_created",
            {
                "app": app.app_id,
                "apply_id": app.apply_id,
                "status": status.status,
                "created": created,
                "failed": len(failed),
                "retried": bool(failed) and retry,
            },
        ),
        *([Total()] if failed and not retry else []),
        Export(),
    ]
