"""``register-random``: devices whose DeviceNames the server picks (BatchRegisterDevice).

The count is split into applications of at most 10,000 (one BatchRegisterDevice call
each, 10 QPS); each is polled to CREATE_SUCCESS or CREATE_FAILED and exported page by
page exactly as in ``run``, into the same encrypted output with an empty Nickname. The
decisions are :func:`~provisioner.pipeline.kinds.apps.random_step`.

BatchRegisterDevice registers new devices on every call and cannot be asked about
afterwards without its ApplyId, so it is sent at most once per application: the intent
is journaled before the call, the ApplyId in one transaction after it. A call refused
before it ran (throttled past the deadline, a business error, a failed handshake) may be
sent again. A call whose answer is lost (transport error, server error, or a crash
after the intent) leaves the application ``LOST``: the run finishes the others and then
stops (exit 1) without committing, until the operator says ``--lost resubmit`` (nothing
was created) or ``--lost abandon`` (finish without them). This is how a re-run never
registers a second set of devices.

A run is identified by ProductKey, count, output path, IotInstanceId and endpoint: the
same command resumes it or reports it complete; a new batch needs a new ``--out``.
Starting a new batch while another one for the same product is unfinished is refused
unless ``--new-batch`` is given.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from provisioner.config import ApiSettings
from provisioner.errors import ExportIncompleteError, LostApplicationsError, UsageError
from provisioner.journal import AppRecord, RunRecord
from provisioner.journal.protocol import JournalStore
from provisioner.output import Encryption
from provisioner.pipeline.engine import Engine
from provisioner.pipeline.execute import execute, run_identity
from provisioner.pipeline.export import AppExport, CredentialSink
from provisioner.pipeline.finish import RunOutcome
from provisioner.pipeline.kinds.apps import EXPORTABLE, AppView, LostPolicy, random_step
from provisioner.pipeline.kinds.base import (
    KindBase,
    ResumeOptions,
    RunSpec,
    WorkContext,
    register,
    spec_for,
)
from provisioner.pipeline.machine import Action, Event
from provisioner.pipeline.plan import PAGE_SIZE, chunk_sizes
from provisioner.pipeline.progress import Progress, Stage
from provisioner.pipeline.report import Counts
from provisioner.pipeline.settings import OutputSettings

__all__ = [
    "MAX_PER_CALL",
    "RANDOM_KIND",
    "LostPolicy",
    "RandomKind",
    "RandomSettings",
    "register_random",
]

RANDOM_KIND = "random"
#: BatchRegisterDevice's Count limit.
MAX_PER_CALL = 10_000


@dataclass(frozen=True, slots=True, kw_only=True)
class RandomSettings(OutputSettings):
    """One ``provisioner register-random``."""

    count: int
    encryption: Encryption
    api: ApiSettings
    per_call: int = MAX_PER_CALL
    lost: LostPolicy = "fail"
    new_batch: bool = False

    def __post_init__(self) -> None:
        OutputSettings.__post_init__(self)
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
    key: str | None = None,
) -> RunOutcome:
    """Register ``settings.count`` devices with random names and export their credentials."""
    spec = spec_for(
        settings, kind=RANDOM_KIND, key=key or random_run_key(settings), params=_params(settings)
    )
    return await execute(
        RandomKind(spec, settings),
        transport=transport,
        progress=progress,
        expected_run_id=expected_run_id,
    )


async def _resume(run: RunRecord, options: ResumeOptions) -> RunOutcome:
    params = run.params
    settings = RandomSettings(
        **options.recorded(run),
        count=int(params["count"]),
        per_call=int(params["per_call"]),
        lost=options.lost or "fail",  # type: ignore[arg-type]
    )
    settings = options.adjust(settings)
    return await register_random(
        settings,
        transport=options.transport,
        progress=options.reporter,
        expected_run_id=run.run_id,
        key=run.run_key,
    )


register(RANDOM_KIND, _resume)


class RandomKind(KindBase):
    """Devices the server names (see the module docstring)."""

    def __init__(self, spec: RunSpec, settings: RandomSettings) -> None:
        super().__init__(spec)
        self.settings = settings
        self._sink: CredentialSink | None = None

    def plan(self, journal: JournalStore) -> RunRecord:
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
        return journal.plan_run(
            run_key=self._spec.key,
            kind=RANDOM_KIND,
            product_key=self._spec.product_key,
            params=self._spec.params,
            sizes=chunk_sizes(settings.count, settings.per_call),
        )

    def start_progress(self, progress: Progress, journal: JournalStore, run_id: str) -> None:
        counts = journal.device_counts(run_id)
        progress.set_total("created", self.settings.count)
        progress.advance("created", counts.get("created", 0))
        progress.set_total("exported", self.settings.count)

    async def work(self, ctx: WorkContext) -> None:
        self.bind(ctx)
        self._sink = CredentialSink(ctx.writer, ctx.spec.product_key, ctx.progress)
        await Engine(ctx, self, self._sink).run()
        lost = ctx.journal.applications(ctx.run_id, ("LOST",))
        if lost:
            raise LostApplicationsError(
                ctx.run_id,
                [a.app_id for a in lost],
                sum(a.size for a in lost),
                self.settings.product_key,
            )

    def verify(self, ctx: WorkContext) -> Counts:
        assert self._sink is not None
        wanted = {d.device_name for d in ctx.journal.devices(ctx.run_id, states=("created",))}
        missing = wanted - self._sink.written
        if missing:
            raise ExportIncompleteError(
                f"run {ctx.run_id}: {len(missing)} devices are not in the output (first: "
                f"{sorted(missing)[0]}); re-run the command to export again"
            )
        counts = ctx.journal.device_counts(ctx.run_id)
        return Counts(
            input=self.settings.count,
            rejected=0,
            submitted=self.settings.count,
            created=counts.get("created", 0),
            exported=len(self._sink.written),
            failed=counts.get("failed", 0) + self.unaccounted(ctx),
        )

    def unaccounted(self, ctx: WorkContext) -> int:
        return sum(a.size for a in ctx.journal.applications(ctx.run_id, ("ABANDONED",)))

    # --- its applications (AppMachine) -------------------------------------------------

    def step(self, view: AppView, event: Event) -> list[Action]:
        return random_step(view, event, lost=self.settings.lost)

    def view(self, app_id: int) -> AppView:
        return AppView(self.journal.application(app_id))

    def export_plan(self, app: AppRecord) -> AppExport | None:
        # The pages name the devices: a CREATE_FAILED status lists only the failed ones.
        assert app.apply_id is not None
        expected = self.journal.random_expected(app)
        if expected <= 0:
            return None
        return AppExport(
            apply_id=app.apply_id,
            expected=None,
            app_id=app.app_id,
            planned=math.ceil(expected / PAGE_SIZE),
            expected_count=expected,
        )

    def totals(self) -> Mapping[Stage, int]:
        counts = self.journal.device_counts(self.run_id)
        waiting = sum(
            a.size
            for a in self.journal.applications(self.run_id)
            if a.state not in (*EXPORTABLE, "SPLIT", "ABANDONED")
        )
        total = counts.get("created", 0) + waiting
        return {"created": total, "exported": total}
