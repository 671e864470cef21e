"""``register-random``: devices whose DeviceNames the server picks (BatchRegisterDevice).

The count is split into applications of at most 10,000 (one BatchRegisterDevice call
each, 10 QPS); each is polled to CREATE_SUCCESS or CREATE_FAILED and exported page by
page exactly as in ``run`` (:class:`~provisioner.pipeline.driver.Driver` does the
polling and the pages), into the same encrypted output with an empty Nickname.

BatchRegisterDevice registers new devices on every call and cannot be asked about
afterwards without its ApplyId, so it is sent at most once per application: the
intent is journaled before the call, the ApplyId in one transaction after it. A call
refused before it ran (throttled, or a business error) may be sent again. A call
whose answer is lost (transport error, server error, or a crash after the intent)
leaves the application ``LOST``: the run finishes the others and then stops (exit 1)
without committing, until the operator says ``--lost resubmit`` (nothing was
created) or ``--lost abandon`` (finish without them). This is how a re-run never
registers a second set of devices.

A run is identified by ProductKey, count, output path, IotInstanceId and endpoint:
the same command resumes it or reports it complete; a new batch needs a new
``--out``. Starting a new batch while another one for the same product is
unfinished is refused unless ``--new-batch`` is given.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import anyio
import anyio.lowlevel
import httpx
import structlog

from provisioner.api.models import ApplyState, ApplyStatus
from provisioner.config import ApiSettings
from provisioner.errors import (
    RunStoppedError,
    TerminalApiError,
    ThrottledError,
    TlsError,
    TransientApiError,
    TransportError,
    UsageError,
)
from provisioner.journal import EXPORTABLE_STATES, AppRecord, Journal, RunRecord
from provisioner.output import Encryption, OutputFormat
from provisioner.pipeline.driver import CREATE_FINAL, Driver
from provisioner.pipeline.export import AppExport, CredentialSink, ExportIncompleteError, PageJob
from provisioner.pipeline.finish import RunOutcome
from provisioner.pipeline.plan import PAGE_SIZE, chunk_sizes
from provisioner.pipeline.progress import Progress
from provisioner.pipeline.report import Counts, StageClock
from provisioner.pipeline.session import Session, WorkContext, commit, execute, run_identity
from provisioner.pipeline.settings import ProgressMode, Tuning, empty_mapping, product_key_of

__all__ = [
    "MAX_PER_CALL",
    "RANDOM_KIND",
    "LostApplicationsError",
    "LostPolicy",
    "RandomSettings",
    "register_random",
]

logger = structlog.get_logger("provisioner.pipeline")

RANDOM_KIND = "random"
#: BatchRegisterDevice's Count limit.
MAX_PER_CALL = 10_000
LostPolicy = Literal["fail", "resubmit", "abandon"]
_COUNT_EXCEEDED = "iot.device.DeviceCountExceeded"


class LostApplicationsError(RunStoppedError):
    """Applications were sent but their answers were lost; the operator must decide."""

    def __init__(self, run_id: str, apps: list[AppRecord], product_key: str) -> None:
        devices = sum(a.size for a in apps)
        ids = ", ".join(str(a.app_id) for a in apps)
        super().__init__(
            f"run {run_id}: {len(apps)} BatchRegisterDevice call(s) for {devices} devices "
            f"(application {ids}) got no answer, so those devices may exist without their "
            "credentials; nothing was sent twice. Compare the product's device count "
            f"(`provisioner product show {product_key}`) with what you expect, then re-run "
            "with --lost resubmit (they were not created) or --lost abandon (finish without "
            "them; if they exist, export them from the console's ApplyId with "
            "`provisioner export`)"
        )


@dataclass(frozen=True, slots=True)
class RandomSettings:
    """One ``provisioner register-random``."""

    count: int
    product_key: str
    out: Path
    encryption: Encryption
    api: ApiSettings
    fmt: OutputFormat = "csv"
    per_call: int = MAX_PER_CALL
    force: bool = False
    journal: str | None = None
    lost: LostPolicy = "fail"
    new_batch: bool = False
    progress: ProgressMode = "auto"
    encryption_options: Mapping[str, Any] = field(default_factory=empty_mapping)
    tuning: Tuning = field(default_factory=Tuning)

    def __post_init__(self) -> None:
        object.__setattr__(self, "product_key", product_key_of(self.product_key))
        if self.count < 1:
            raise UsageError(f"--count must be at least 1, got {self.count}")
        if not 1 <= self.per_call <= MAX_PER_CALL:
            raise UsageError(f"--per-call must be 1-{MAX_PER_CALL}, got {self.per_call}")
        if self.lost not in ("fail", "resubmit", "abandon"):
            raise UsageError(f"--lost must be fail, resubmit or abandon, got {self.lost!r}")


def random_run_key(settings: RandomSettings) -> str:
    """Same product, count, output, instance and endpoint: the same batch."""
    api = settings.api
    return run_identity(
        RANDOM_KIND,
        settings.product_key,
        str(settings.count),
        str(settings.out.absolute()),
        api.iot_instance_id or "",
        api.endpoint,
    )


def _params(settings: RandomSettings) -> dict[str, Any]:
    """What the journal keeps to resume the run by id; never a secret."""
    api = settings.api
    return {
        "count": settings.count,
        "per_call": settings.per_call,
        "out": str(settings.out.absolute()),
        "format": settings.fmt,
        "product_key": settings.product_key,
        "endpoint": api.endpoint,
        "region": api.region,
        "iot_instance_id": api.iot_instance_id,
        "encryption": dict(settings.encryption_options),
    }


async def register_random(
    settings: RandomSettings,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    progress: Progress | None = None,
    expected_run_id: str | None = None,
) -> RunOutcome:
    """Register ``settings.count`` devices with random names and export their credentials."""
    session = Session(
        kind=RANDOM_KIND,
        key=random_run_key(settings),
        product_key=settings.product_key,
        params=_params(settings),
        out=settings.out,
        encryption=settings.encryption,
        api=settings.api,
        fmt=settings.fmt,
        force=settings.force,
        journal=settings.journal,
        progress=settings.progress,
        tuning=settings.tuning,
    )
    return await execute(
        session,
        RandomJob(settings),
        stages=StageClock(),
        transport=transport,
        progress=progress,
        expected_run_id=expected_run_id,
    )


class RandomJob:
    """The :class:`~provisioner.pipeline.session.Job` of random names."""

    def __init__(self, settings: RandomSettings) -> None:
        self.settings = settings

    def names(self) -> list[str]:
        return []  # the server picks them

    def rewrites(self) -> list[str]:
        return []

    def reopen(self, journal: Journal, run: RunRecord) -> int:
        return 0

    def plan(self, journal: Journal, session: Session) -> RunRecord:
        settings = self.settings
        if not settings.new_batch:
            for other in journal.list_runs():
                if (
                    other.kind == RANDOM_KIND
                    and other.product_key == settings.product_key
                    and other.status != "completed"
                    and other.params.get("endpoint") == settings.api.endpoint
                ):
                    raise UsageError(
                        f"run {other.run_id} registering {other.params.get('count')} devices "
                        f"in {settings.product_key} is unfinished (output "
                        f"{other.params.get('out')}): resume it with `provisioner resume "
                        f"{other.run_id}`, or pass --new-batch to register another set"
                    )
        return journal.create_run(
            run_key=session.key,
            kind=RANDOM_KIND,
            product_key=session.product_key,
            params=session.params,
            sizes=chunk_sizes(settings.count, settings.per_call),
        )

    def start_progress(self, progress: Progress, journal: Journal, run_id: str) -> None:
        counts = journal.device_counts(run_id)
        progress.set_total("created", self.settings.count)
        progress.advance("created", counts.get("created", 0))
        progress.set_total("exported", self.settings.count)

    async def work(self, ctx: WorkContext) -> RunOutcome:
        settings = self.settings
        sink = CredentialSink(ctx.writer, settings.product_key, ctx.progress)
        driver = RandomDriver(
            run_id=ctx.run_id,
            product_key=settings.product_key,
            existing="fail",
            journal=ctx.journal,
            lease=ctx.lease,
            client=ctx.client,
            once_client=ctx.once_client,
            sink=sink,
            progress=ctx.progress,
            stages=ctx.stages,
            tuning=ctx.session.tuning,
            qps_scale=ctx.session.api.qps_scale,
        )
        driver.lost_policy = settings.lost
        await driver.run()
        if driver.lost:
            raise LostApplicationsError(ctx.run_id, driver.lost, settings.product_key)
        counts = _verify(ctx, sink, settings.count)
        abandoned = sum(a.size for a in ctx.journal.applications(ctx.run_id, ("ABANDONED",)))
        return commit(ctx, counts, unaccounted=abandoned)


def _verify(ctx: WorkContext, sink: CredentialSink, count: int) -> Counts:
    wanted = {d.device_name for d in ctx.journal.devices(ctx.run_id, states=("created",))}
    missing = wanted - sink.written
    if missing:
        raise ExportIncompleteError(
            f"run {ctx.run_id}: {len(missing)} devices are not in the output (first: "
            f"{sorted(missing)[0]}); re-run the command to export again"
        )
    counts = ctx.journal.device_counts(ctx.run_id)
    abandoned = sum(a.size for a in ctx.journal.applications(ctx.run_id, ("ABANDONED",)))
    return Counts(
        input=count,
        rejected=0,
        submitted=count,
        created=counts.get("created", 0),
        exported=len(sink.written),
        failed=counts.get("failed", 0) + abandoned,
    )


class RandomDriver(Driver):
    """:class:`Driver` with BatchRegisterDevice in place of check and create."""

    lost_policy: LostPolicy = "fail"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._expected: dict[int, int] = {}
        # One BatchRegisterDevice in flight at a time: a crash can then leave at most
        # one application without its answer (the call rate is 10 QPS either way).
        self._register_lock = anyio.Lock()

    @property
    def lost(self) -> list[AppRecord]:
        return self.journal.applications(self.run_id, ("LOST",))

    async def drive(self, app_id: int, resumed: bool) -> None:
        """Take application ``app_id`` from its journaled state to queued export.

        Resume, by state: PLANNED registers; INTENT_REGISTER (a crash after the
        intent) and LOST wait for the operator's ``--lost``; CREATE polls;
        CREATE_* / DONE export from page 1.
        """
        app = self.journal.application(app_id)
        if resumed and app.state == "INTENT_REGISTER":
            self._lose(app, "found INTENT_REGISTER on resume: the answer may be lost")
            app = self.journal.application(app_id)
        if app.state == "LOST":
            if not resumed or self.lost_policy == "fail":
                return
            if self.lost_policy == "abandon":
                self.journal.set_state(app_id, "ABANDONED", detail="--lost abandon")
                logger.warning(
                    "register.application_abandoned", run_id=self.run_id, app=app_id, size=app.size
                )
                self.progress.set_total("created", self._random_total())
                self.progress.set_total("exported", self._random_total())
                return
            self.journal.set_state(app_id, "INTENT_REGISTER", detail="--lost resubmit")
            app = self.journal.application(app_id)
        if app.state in ("PLANNED", "INTENT_REGISTER"):
            if not await self._register(app):
                return
            app = self.journal.application(app_id)
            resumed = False
        if app.state == "CREATE":
            status = await self._wait(app, CREATE_FINAL, fresh=not resumed)
            self._random_created(app, status)
            app = self.journal.application(app_id)
        if app.state in EXPORTABLE_STATES:
            self._queue_export(app)

    async def _register(self, app: AppRecord) -> bool:
        """BatchRegisterDevice for the application's count, sent at most once in effect;
        False if the application went LOST or was split."""
        async with self._register_lock:
            # A run being cancelled (another task failed) stops here, before the intent;
            # once the intent is written the call is seen through, so that its ApplyId
            # is journaled rather than left to be reported lost.
            await anyio.lowlevel.checkpoint()
            with anyio.CancelScope(shield=True):
                return await self._register_once(app)
        return False  # not reached: a shielded scope is never cancelled

    async def _register_once(self, app: AppRecord) -> bool:
        if app.state == "PLANNED":
            self.journal.set_state(app.app_id, "INTENT_REGISTER")
        self.stages.start("create")
        try:
            accepted = await self.once.batch_register_device(self.product_key, app.size)
        except ThrottledError as exc:
            # Refused before it ran, so the policy resent it for as long as the run's
            # deadline allows; nothing was registered.
            self.journal.set_state(app.app_id, "PLANNED", detail=exc.code)
            raise
        except TerminalApiError as exc:
            # A business error: the call was refused, nothing was registered.
            if exc.code == _COUNT_EXCEEDED and app.size > 1:
                half = app.size // 2
                children = self.journal.record_split_sizes(
                    app.app_id, [app.size - half, half], detail=exc.code
                )
                logger.info(
                    "register.application_split",
                    run_id=self.run_id,
                    app=app.app_id,
                    size=app.size,
                    parts=[c.size for c in children],
                )
                for child in children:
                    self._spawn(child)
                return False
            self.journal.set_state(app.app_id, "PLANNED", detail=exc.code)
            raise
        except TlsError:
            # The handshake failed: nothing was sent, so nothing can have been registered.
            self.journal.set_state(app.app_id, "PLANNED", detail="TLS handshake failed")
            raise
        except (TransientApiError, TransportError) as exc:
            self._lose(app, f"{type(exc).__name__}: {exc}")
            return False
        self.journal.record_registered(app.app_id, str(accepted.apply_id))
        logger.info(
            "register.application_submitted",
            run_id=self.run_id,
            app=app.app_id,
            apply_id=accepted.apply_id,
            size=app.size,
        )
        return True

    def _lose(self, app: AppRecord, why: str) -> None:
        self.journal.set_state(app.app_id, "LOST", detail=why[:300])
        logger.warning(
            "register.application_lost", run_id=self.run_id, app=app.app_id, size=app.size, why=why
        )

    def _random_created(self, app: AppRecord, status: ApplyStatus) -> None:
        if status.status not in CREATE_FINAL:
            raise TerminalApiError(
                "QueryBatchRegisterDeviceStatus",
                "UnexpectedStatus",
                f"application {app.apply_id} is {status.status} on the server while creating",
            )
        details = {d.device_name: d.error_message for d in status.invalid_details}
        failed = {
            name: (details.get(name) or "creation failed")
            + " (BatchRegisterDevice CREATE_FAILED, retried once)"
            for name in {*status.invalid_names, *details}
        }
        if status.status == ApplyState.CREATE_FAILED and not failed:
            raise TerminalApiError(
                "QueryBatchRegisterDeviceStatus",
                "CreateFailedWithoutNames",
                f"application {app.apply_id} failed creation without naming a device",
            )
        retry = app.attempt == 0
        child = self.journal.record_random_result(
            app.app_id, failed, retry=retry, detail=status.status
        )
        created = app.size - len(failed)
        self.progress.advance("created", created)
        self.stages.end("create")
        logger.info(
            "register.application_created",
            run_id=self.run_id,
            app=app.app_id,
            apply_id=app.apply_id,
            status=status.status,
            created=created,
            failed=len(failed),
            retried=bool(failed) and retry,
        )
        if child is not None:
            self._spawn(child)
        elif failed:
            self.progress.set_total("created", self._random_total())
            self.progress.set_total("exported", self._random_total())

    def _queue_export(self, app: AppRecord) -> None:
        # The pages name the devices: a CREATE_FAILED status lists only the failed ones.
        assert app.apply_id is not None
        assert self._send is not None
        expected = self.journal.random_expected(app)
        if expected <= 0:
            self.journal.set_state(app.app_id, "DONE", detail="nothing to export")
            return
        export = AppExport(
            apply_id=app.apply_id,
            expected=None,
            app_id=app.app_id,
            planned=math.ceil(expected / PAGE_SIZE),
        )
        self._expected[app.app_id] = expected
        self.stages.start("export")
        for number in range(1, export.planned + 1):
            self._send.send_nowait(PageJob(export, number))

    def _exported(self, export: AppExport) -> None:
        assert export.app_id is not None
        expected = self._expected.get(export.app_id, 0)
        if len(export.seen) != expected:
            raise ExportIncompleteError(
                f"application {export.apply_id} holds {len(export.seen)} devices, "
                f"{expected} expected; re-run the command to export again"
            )
        self.journal.record_random_names(export.app_id, export.seen)
        super()._exported(export)

    def _random_total(self) -> int:
        counts = self._counts()
        apps = self.journal.applications(self.run_id)
        pending = sum(
            a.size for a in apps if a.state not in (*EXPORTABLE_STATES, "SPLIT", "ABANDONED")
        )
        return counts.get("created", 0) + pending
