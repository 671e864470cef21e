"""The words of the sans-I/O state machines: what happened (events), what to do (actions).

A kind of run decides with a pure step function ``step(view, event) -> [actions]``;
the engine (:mod:`provisioner.pipeline.engine`) performs the actions in order (journal
transitions, calls, polls, exports), and the one action that asks the outside world
something produces the next event. So every decision is table-tested without a
network, and the I/O lives in one place::

    Begin --> step --> [Write(intend_check), SubmitCheck] --> engine --> Accepted(...)
    Accepted --> step --> [Write(record_apply_id), Poll(...)] --> engine --> Status(...)

A :class:`Write` names a transition of :class:`~provisioner.journal.protocol.JournalStore`
and its arguments; a write that returns applications (a split, a retry) spawns them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from provisioner.api.records import ApplyStatus, DeviceDetail
from provisioner.errors import ProvisionerError

__all__ = [
    "Accepted",
    "Action",
    "Adopt",
    "Advance",
    "Ask",
    "Begin",
    "Created",
    "Event",
    "Explain",
    "Explained",
    "Export",
    "Exported",
    "Fail",
    "Found",
    "Note",
    "Poll",
    "Refused",
    "Status",
    "SubmitCheck",
    "SubmitCreate",
    "SubmitRegister",
    "Total",
    "Unanswered",
    "Write",
]

# --- events ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Begin:
    """The engine takes the item up; ``resumed``: its state comes from an earlier process."""

    resumed: bool


@dataclass(frozen=True, slots=True)
class Accepted:
    """A submission was answered with an ApplyId (a check or a registration)."""

    apply_id: str


@dataclass(frozen=True, slots=True)
class Created:
    """BatchRegisterDeviceWithApplyId was accepted, or the server said it had taken effect."""


@dataclass(frozen=True, slots=True)
class Refused:
    """A submission was refused by a business error, or could not be sent (never ran)."""

    error: ProvisionerError

    @property
    def code(self) -> str:
        return str(getattr(self.error, "code", type(self.error).__name__))


@dataclass(frozen=True, slots=True)
class Unanswered:
    """A submission was sent and its answer lost; nobody can be asked whether it ran."""

    why: str


@dataclass(frozen=True, slots=True)
class Status:
    """QueryBatchRegisterDeviceStatus answered."""

    status: ApplyStatus


@dataclass(frozen=True, slots=True)
class Explained:
    """For names the server's check refused (name -> the server's message): the earlier
    runs of the journal that created some of them (name -> a clause naming the run and
    its output)."""

    messages: Mapping[str, str]
    clauses: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class Exported:
    """Every page of the application was written; ``seen``: the names its pages held."""

    seen: frozenset[str]


@dataclass(frozen=True, slots=True)
class Found:
    """A device looked up with QueryDeviceDetail: its detail, or ``None`` (no such device)."""

    detail: DeviceDetail | None
    why: str = ""


Event = Begin | Accepted | Created | Refused | Unanswered | Status | Explained | Exported | Found

# --- actions --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Write:
    """Perform the journal transition ``name`` with ``args`` (see the store protocol)."""

    name: str
    args: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SubmitCheck:
    """BatchCheckDeviceNames for the application's pending names -> Accepted | Refused."""


@dataclass(frozen=True, slots=True)
class SubmitCreate:
    """BatchRegisterDeviceWithApplyId, never blindly twice -> Created."""


@dataclass(frozen=True, slots=True)
class SubmitRegister:
    """Intent, then BatchRegisterDevice for ``size`` devices, one at a time and seen
    through once the intent is written -> Accepted | Refused | Unanswered."""

    size: int


@dataclass(frozen=True, slots=True)
class Ask:
    """One QueryBatchRegisterDeviceStatus -> Status."""


@dataclass(frozen=True, slots=True)
class Poll:
    """QueryBatchRegisterDeviceStatus until the status is one of ``finals`` -> Status.
    ``fresh``: the stage has just begun here (wait a moment before the first poll)."""

    finals: frozenset[str]
    fresh: bool


@dataclass(frozen=True, slots=True)
class Explain:
    """Ask the journal which earlier runs created the refused names -> Explained (which
    carries ``messages``, name -> the server's message, back unchanged)."""

    messages: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class Export:
    """Queue the application's pages; the engine reports Exported when all are written."""


@dataclass(frozen=True, slots=True)
class Adopt:
    """Look ``names`` up with QueryDeviceDetail and write them (adopted devices)."""

    names: Sequence[str]


@dataclass(frozen=True, slots=True)
class Advance:
    """Move the progress bar ``stage`` by ``count``."""

    stage: str
    count: int


@dataclass(frozen=True, slots=True)
class Total:
    """Recount the progress totals from the journal (devices left the run)."""


@dataclass(frozen=True, slots=True)
class Note:
    """A log event (named, with key/value fields) and a stage clock mark."""

    event: str
    fields: Mapping[str, Any] = field(default_factory=dict)
    warning: bool = False


@dataclass(frozen=True, slots=True)
class Fail:
    """Stop the run with ``error`` (the journal is consistent; the run resumes)."""

    error: ProvisionerError


Action = (
    Write
    | SubmitCheck
    | SubmitCreate
    | SubmitRegister
    | Ask
    | Poll
    | Explain
    | Export
    | Adopt
    | Advance
    | Total
    | Note
    | Fail
)
