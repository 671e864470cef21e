"""The contract of a kind of run, and the registry that resume and status look kinds up in.

A kind (check-and-create, random names, single imports; deletion and batch imports
next) is a :class:`RunKind`: it says what makes two commands the same run (its
:class:`RunSpec`), plans the run in the journal, sets the progress totals, does its
calls (through :class:`~provisioner.pipeline.engine.Engine` and pure step functions),
and verifies that every device is accounted for. :func:`~provisioner.pipeline.execute.execute`
does everything else the same way for each: lookup, lease and heartbeat, the
credentials file (if the kind writes one), the commit.

A new kind is one module in this package that builds a :class:`RunSpec` and a
:class:`RunKind`, and registers how to resume a run of it from the journal
(:func:`register`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import httpx

from provisioner.api import IotClient
from provisioner.config import ApiSettings, load_api_settings
from provisioner.errors import UsageError
from provisioner.journal import Lease, RunRecord
from provisioner.journal.protocol import JournalStore
from provisioner.output import (
    OUTPUT_COLUMNS,
    CredentialWriter,
    Encryption,
    OutputFormat,
    load_encryption,
)
from provisioner.pipeline.finish import RunOutcome
from provisioner.pipeline.progress import Progress
from provisioner.pipeline.report import Counts, StageClock
from provisioner.pipeline.settings import OutputSettings, ProgressMode, Tuning

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

S = TypeVar("S", bound="DataclassInstance")

__all__ = [
    "KINDS",
    "KindBase",
    "Resume",
    "ResumeOptions",
    "RunKind",
    "RunSpec",
    "WorkContext",
    "recorded_api",
    "recorded_encryption",
    "register",
    "resume_kind",
    "spec_for",
]


@dataclass(frozen=True, slots=True)
class RunSpec:
    """Where a run writes and how it calls: the part of the settings every kind shares.

    ``key`` is the run's identity (a hash of what makes two commands the same run);
    ``params`` what the journal keeps to resume it by id (never a secret);
    ``columns`` the output's columns, ``()`` for a kind that writes no credentials.
    """

    kind: str
    key: str
    product_key: str
    params: Mapping[str, Any]
    out: Path
    encryption: Encryption
    api: ApiSettings
    fmt: OutputFormat = "csv"
    force: bool = False
    journal: str | None = None
    progress: ProgressMode = "auto"
    tuning: Tuning = field(default_factory=Tuning)
    columns: Sequence[str] = OUTPUT_COLUMNS


def spec_for(
    settings: OutputSettings,
    *,
    kind: str,
    key: str,
    params: Mapping[str, Any],
    columns: Sequence[str] = OUTPUT_COLUMNS,
) -> RunSpec:
    """The spec of a run of ``kind`` from its settings (which must hold an encryption and
    API settings: a dry run has no spec)."""
    encryption = getattr(settings, "encryption", None)
    api = getattr(settings, "api", None)
    assert encryption is not None, "a run that writes an output encrypts it"
    assert api is not None, "a run that calls has API settings"
    return RunSpec(
        kind=kind,
        key=key,
        product_key=settings.product_key,
        params=params,
        out=settings.out,
        encryption=encryption,
        api=api,
        fmt=settings.fmt,
        force=settings.force,
        journal=settings.journal,
        progress=settings.progress,
        tuning=settings.tuning,
        columns=columns,
    )


@dataclass(frozen=True, slots=True)
class WorkContext:
    """What a kind works with while the run holds its lease."""

    run_id: str
    spec: RunSpec
    journal: JournalStore
    lease: Lease
    client: IotClient
    once_client: IotClient
    writer: CredentialWriter
    progress: Progress
    stages: StageClock
    resumed: bool


class RunKind(Protocol):
    """One kind of run (see the module docstring)."""

    @property
    def spec(self) -> RunSpec: ...

    def names(self) -> Collection[str]:
        """The DeviceNames a new run would create (empty when the server picks them)."""
        ...

    def rewrites(self) -> Collection[str]:
        """The DeviceNames whose credentials the run writes even if they exist already
        (``--existing adopt``); empty otherwise."""
        ...

    def reopen(self, journal: JournalStore, run: RunRecord) -> int:
        """Put devices of a finished run back in play for new options; how many."""
        ...

    def plan(self, journal: JournalStore) -> RunRecord:
        """Create the run in the journal (it does not exist yet)."""
        ...

    def start_progress(self, progress: Progress, journal: JournalStore, run_id: str) -> None:
        """Totals, and what an earlier process already did."""
        ...

    async def work(self, ctx: WorkContext) -> None:
        """Every call and every output row of the run."""
        ...

    def verify(self, ctx: WorkContext) -> Counts:
        """Every device is accounted for and in the output once; raises if not."""
        ...

    def unaccounted(self, ctx: WorkContext) -> int:
        """Devices left out on the operator's word (``--lost abandon``)."""
        ...


class KindBase:
    """What the kinds share: their spec, the journal while they work, and the defaults of
    a kind whose names are not the input's (none to claim, adopt or reopen)."""

    def __init__(self, spec: RunSpec) -> None:
        self._spec = spec
        self._journal: JournalStore | None = None
        self._run_id = ""

    @property
    def spec(self) -> RunSpec:
        return self._spec

    @property
    def journal(self) -> JournalStore:
        assert self._journal is not None, "a kind reads the journal only while it works"
        return self._journal

    @property
    def run_id(self) -> str:
        return self._run_id

    def bind(self, ctx: WorkContext) -> None:
        """The run is held: remember its journal and id for the reads of the engine."""
        self._journal, self._run_id = ctx.journal, ctx.run_id

    def names(self) -> Collection[str]:
        return ()

    def rewrites(self) -> Collection[str]:
        return ()

    def reopen(self, journal: JournalStore, run: RunRecord) -> int:
        return 0

    def unaccounted(self, ctx: WorkContext) -> int:
        return 0


@dataclass(frozen=True, slots=True)
class ResumeOptions:
    """What ``provisioner resume`` may change about a run (``None``: as recorded)."""

    journal: str | None = None
    encryption: Encryption | None = None
    api: ApiSettings | None = None
    force: bool = False
    lost: str | None = None
    tuning: Tuning | None = None
    progress: ProgressMode | None = None
    out: Path | None = None
    #: Options of the API settings to change from the recorded ones (``timeout``,
    #: ``deadline``, ``qps_scale``, ``insecure_http``); ignored when ``api`` is given.
    api_options: Mapping[str, Any] = field(default_factory=dict)
    #: The seams of tests and libraries: an httpx transport, progress to report to.
    transport: httpx.AsyncBaseTransport | None = field(default=None, compare=False)
    reporter: Progress | None = field(default=None, compare=False)

    def recorded(self, run: RunRecord) -> dict[str, Any]:
        """The options every kind's settings take, as ``run`` recorded them and as
        changed here: product, output, encryption, API, journal."""
        params = run.params
        return {
            "product_key": run.product_key,
            "out": self.out or Path(params["out"]),
            "fmt": params.get("format", "csv"),
            "force": self.force,
            "journal": self.journal,
            "encryption": recorded_encryption(params, self.encryption),
            "api": recorded_api(params, self.api, **self.api_options),
            "encryption_options": dict(params.get("encryption") or {}),
        }

    def adjust(self, settings: S) -> S:
        """``settings`` with the tuning and progress mode given here, if any."""
        changes: dict[str, Any] = {}
        if self.tuning is not None:
            changes["tuning"] = self.tuning
        if self.progress is not None:
            changes["progress"] = self.progress
        return replace(settings, **changes) if changes else settings


Resume = Callable[[RunRecord, ResumeOptions], Awaitable[RunOutcome]]

#: How to resume a run of each kind, by the kind's name in the journal.
KINDS: dict[str, Resume] = {}


def recorded_api(
    params: Mapping[str, Any], override: ApiSettings | None = None, **options: Any
) -> ApiSettings:
    """The API settings a run was started with (endpoint, region, instance from the
    journal; credentials from the environment again), unless ``override`` is given.
    ``options`` (timeout, deadline, qps_scale...) go to ``load_api_settings``."""
    if override is not None:
        return override
    return load_api_settings(
        endpoint=params.get("endpoint"),
        region=params.get("region"),
        iot_instance_id=params.get("iot_instance_id"),
        **options,
    )


def recorded_encryption(
    params: Mapping[str, Any], override: Encryption | None = None
) -> Encryption:
    """The output's encryption as the run recorded it (public keys, a recipients file,
    the *name* of a passphrase variable, read again now), unless ``override``."""
    if override is not None:
        return override
    recorded = dict(params.get("encryption") or {})
    file = recorded.get("recipients_file")
    return load_encryption(
        recipients=list(recorded.get("recipients") or ()),
        recipients_file=Path(file) if file else None,
        passphrase_env=recorded.get("passphrase_env"),
    )


def register(name: str, resume: Resume) -> None:
    """Make runs of kind ``name`` resumable by id."""
    KINDS[name] = resume


def resume_kind(name: str) -> Resume:
    """How to resume a run of kind ``name``; :class:`UsageError` for an unknown kind."""
    try:
        return KINDS[name]
    except KeyError:
        raise UsageError(
            f"runs of kind {name!r} cannot be resumed by this version of provisioner; upgrade it"
        ) from None
