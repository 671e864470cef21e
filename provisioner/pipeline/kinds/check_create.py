"""``run``: devices named by an input file, checked, then created.

:func:`provision` reads and validates the input (rejected rows stop the run unless
``--skip-invalid``), then hands a :class:`CheckCreateKind` to
:func:`~provisioner.pipeline.execute.execute`. The kind splits the valid names into
applications of at most ``--chunk-size``, and the engine drives each through
BatchCheckDeviceNames -> BatchRegisterDeviceWithApplyId -> QueryPageByApplyId with the
pure step function :func:`~provisioner.pipeline.kinds.apps.check_create_step`.

A run is identified by its valid rows, ProductKey, IotInstanceId and endpoint: the same
command resumes it. ``provisioner resume RUN_ID`` works from the journal alone; the
input file is not read again, so an input edited after a kill does not stand in the way.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx
import polars as pl

from provisioner.config import ApiSettings
from provisioner.errors import EXIT_INPUT, EXIT_OK, ExportIncompleteError, OutputError
from provisioner.inputs import InputTable, fingerprint, read_devices
from provisioner.journal import AppRecord, DeviceRow, RejectedRow, RunRecord
from provisioner.journal.protocol import JournalStore
from provisioner.pipeline.engine import Engine
from provisioner.pipeline.execute import execute, guard_paths, run_identity
from provisioner.pipeline.export import AppExport, CredentialSink
from provisioner.pipeline.finish import RunOutcome, input_refused
from provisioner.pipeline.kinds.apps import AppView, check_create_step
from provisioner.pipeline.kinds.base import (
    KindBase,
    ResumeOptions,
    RunSpec,
    WorkContext,
    register,
    spec_for,
)
from provisioner.pipeline.machine import Action, Event
from provisioner.pipeline.plan import estimate, format_plan, split_chunks
from provisioner.pipeline.progress import Progress, Stage
from provisioner.pipeline.report import Counts, StageClock
from provisioner.pipeline.settings import RunSettings

__all__ = ["RUN_KIND", "CheckCreateKind", "dry_run_plan", "provision", "run_key"]

#: The kind of run this module makes: names checked, then created (BatchCheckDeviceNames).
RUN_KIND = "check_create"


def run_key(
    input_fingerprint: str,
    product_key: str,
    iot_instance_id: str | None,
    endpoint: str,
    kind: str = RUN_KIND,
) -> str:
    """The identity of a run: the same rows, product, instance, endpoint and kind."""
    return run_identity(input_fingerprint, product_key, iot_instance_id or "", endpoint, kind)


def dry_run_plan(table: InputTable, settings: RunSettings, *, qps_scale: float = 1.0) -> list[str]:
    """The lines a dry run prints: chunks, calls per operation and the time estimate."""
    plan = estimate(table.valid.height, settings.chunk_size, qps_scale=qps_scale)
    return format_plan(
        plan,
        input_rows=table.total,
        rejected=table.rejected.height,
        product_key=settings.product_key,
    )


async def provision(
    settings: RunSettings,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    progress: Progress | None = None,
    expected_run_id: str | None = None,
) -> RunOutcome:
    """Provision the devices of ``settings.input``: a new run, a resumed one, or nothing
    if the run already completed."""
    if not settings.dry_run:
        guard_paths(settings.out, settings.journal, {"the input": settings.input})
    stages = StageClock()
    stages.start("validate")
    table = read_devices(settings.input)
    stages.end("validate")
    out = settings.out.absolute()
    if settings.dry_run:
        scale = settings.api.qps_scale if settings.api is not None else 1.0
        code = EXIT_INPUT if table.rejected.height and not settings.skip_invalid else EXIT_OK
        return RunOutcome(
            run_id=None,
            exit_code=code,
            message="dry run: nothing was sent",
            plan=dry_run_plan(table, settings, qps_scale=scale),
        )
    if not out.parent.is_dir():
        raise OutputError(f"the directory of --out does not exist: {out.parent}")
    refused = input_refused(
        table.rejected,
        table.total,
        table.valid.height,
        settings.input,
        out,
        skip_invalid=settings.skip_invalid,
    )
    if refused is not None:
        return refused
    assert settings.api is not None  # RunSettings refuses a real run without them
    spec = _spec(
        settings,
        key=run_key(
            fingerprint(table.valid),
            settings.product_key,
            settings.api.iot_instance_id,
            settings.api.endpoint,
        ),
        params=_params(settings, settings.api, table.total, table.valid.height),
    )
    kind = CheckCreateKind(spec, settings, table.total, table.valid.height, table)
    return await execute(
        kind, stages=stages, transport=transport, progress=progress, expected_run_id=expected_run_id
    )


def _spec(settings: RunSettings, *, key: str, params: Mapping[str, Any]) -> RunSpec:
    return spec_for(settings, kind=RUN_KIND, key=key, params=params)


def _params(
    settings: RunSettings, api: ApiSettings, input_rows: int, valid_rows: int
) -> dict[str, Any]:
    """What the journal keeps to resume the run by id (without the input file, which
    may have changed since); never a secret."""
    return {
        "input_rows": input_rows,
        "valid_rows": valid_rows,
        "input": str(settings.input.absolute()),
        "out": str(settings.out.absolute()),
        "format": settings.fmt,
        "chunk_size": settings.chunk_size,
        "skip_invalid": settings.skip_invalid,
        "existing": settings.existing,
        "product_key": settings.product_key,
        "endpoint": api.endpoint,
        "region": api.region,
        "iot_instance_id": api.iot_instance_id,
        "encryption": dict(settings.encryption_options),
    }


async def _resume(run: RunRecord, options: ResumeOptions) -> RunOutcome:
    """Resume ``run`` from the journal alone (the input file is not read again)."""
    params = run.params
    settings = RunSettings(
        **options.recorded(run),
        input=Path(params["input"]),
        chunk_size=int(params.get("chunk_size", 10_000)),
        skip_invalid=bool(params.get("skip_invalid", False)),
        existing=params.get("existing", "fail"),
    )
    settings = options.adjust(settings)
    rows, valid = _recorded_totals(run, options.journal)
    fresh = dict(params)
    fresh.update(out=str(settings.out.absolute()), format=settings.fmt)
    spec = _spec(settings, key=run.run_key, params=fresh)
    kind = CheckCreateKind(spec, settings, rows, valid, None)
    return await execute(
        kind, transport=options.transport, progress=options.reporter, expected_run_id=run.run_id
    )


def _recorded_totals(run: RunRecord, journal: str | None) -> tuple[int, int]:
    """Input rows and valid rows of ``run``: recorded since schema 3, else counted."""
    params = run.params
    if "input_rows" in params and "valid_rows" in params:
        return int(params["input_rows"]), int(params["valid_rows"])
    from provisioner import wiring

    store = wiring.open_journal(journal)
    try:
        devices = store.devices(run.run_id)
    finally:
        store.close()
    # Rows rejected by validation never joined an application.
    return len(devices), sum(1 for d in devices if d.app_id is not None)


register(RUN_KIND, _resume)


class CheckCreateKind(KindBase):
    """Names checked, then created. ``table`` is the validated input of a new run; a run
    resumed from the journal has none (and needs none: its devices are journaled)."""

    def __init__(
        self,
        spec: RunSpec,
        settings: RunSettings,
        input_rows: int,
        valid_rows: int,
        table: InputTable | None,
    ) -> None:
        super().__init__(spec)
        self.settings = settings
        self.input_rows = input_rows
        self.valid_rows = valid_rows
        self.table = table
        self._sink: CredentialSink | None = None

    # --- the run's life (RunKind) ------------------------------------------------------

    def names(self) -> list[str]:
        if self.table is None:
            return []
        return [str(n) for n in self.table.valid["DeviceName"].to_list()]

    def rewrites(self) -> list[str]:
        return self.names() if self.settings.existing == "adopt" else []

    def reopen(self, journal: JournalStore, run: RunRecord) -> int:
        """``--existing adopt`` on a run that rejected names the server's check refused:
        they are looked up this time (and only they)."""
        if self.settings.existing != "adopt":
            return 0
        return journal.reopen_for_adoption(run.run_id)

    def plan(self, journal: JournalStore) -> RunRecord:
        assert self.table is not None, "a run resumed from the journal is planned already"
        return journal.plan_run(
            run_key=self._spec.key,
            kind=RUN_KIND,
            product_key=self._spec.product_key,
            params=self._spec.params,
            chunks=split_chunks(_rows(self.table.valid), self.settings.chunk_size),
            rejected=_rejected_rows(self.table.rejected),
        )

    def start_progress(self, progress: Progress, journal: JournalStore, run_id: str) -> None:
        """Totals, and what a resumed run had already done before this process."""
        devices = journal.devices(run_id)
        apps = {a.app_id: a.state for a in journal.applications(run_id)}
        submitted = [d for d in devices if d.app_id is not None]
        progress.set_total("validated", self.input_rows)
        progress.advance("validated", self.input_rows)
        progress.set_total("checked", len(submitted))
        past_check = frozenset(
            {"CHECK_SUCCESS", "INTENT_CREATE", "CREATE", "CREATE_SUCCESS", "CREATE_FAILED", "DONE"}
        )
        checked = sum(
            1 for d in submitted if d.state != "pending" or apps.get(d.app_id or -1) in past_check
        )
        progress.advance("checked", checked)
        live = [d for d in submitted if d.state in ("pending", "created", "adopted")]
        progress.set_total("created", sum(1 for d in live if d.state != "adopted"))
        progress.advance("created", sum(1 for d in live if d.state == "created"))
        progress.set_total("exported", len(live))

    async def work(self, ctx: WorkContext) -> None:
        self.bind(ctx)
        self._sink = CredentialSink(ctx.writer, ctx.spec.product_key, ctx.progress)
        await Engine(ctx, self, self._sink).run()

    def verify(self, ctx: WorkContext) -> Counts:
        """Every created or adopted device is in the output, once; nothing is pending."""
        assert self._sink is not None
        counts = ctx.journal.device_counts(ctx.run_id)
        if counts.get("pending", 0):
            raise ExportIncompleteError(
                f"run {ctx.run_id}: {counts['pending']} devices are still pending after every "
                "application finished; re-run the command"
            )
        wanted = {
            d.device_name for d in ctx.journal.devices(ctx.run_id, states=("created", "adopted"))
        }
        missing = wanted - self._sink.written
        if missing:
            raise ExportIncompleteError(
                f"run {ctx.run_id}: {len(missing)} devices are not in the output (first: "
                f"{sorted(missing)[0]}); re-run the command to export again"
            )
        return Counts(
            input=self.input_rows,
            rejected=counts.get("rejected", 0),
            submitted=self.valid_rows,
            created=counts.get("created", 0),
            exported=len(self._sink.written),
            adopted=counts.get("adopted", 0),
            failed=counts.get("failed", 0),
        )

    # --- its applications (AppMachine) -------------------------------------------------

    def step(self, view: AppView, event: Event) -> list[Action]:
        return check_create_step(
            view,
            event,
            product_key=self._spec.product_key,
            adopt=self.settings.existing == "adopt",
        )

    def view(self, app_id: int) -> AppView:
        return AppView(self.journal.application(app_id), self.journal.app_devices(app_id))

    def export_plan(self, app: AppRecord) -> AppExport | None:
        assert app.apply_id is not None
        created = self.journal.app_devices(app.app_id, ("created",))
        if not created:
            return None
        return AppExport.for_devices(
            app.apply_id, {d.device_name: d.nickname for d in created}, app.app_id
        )

    def totals(self) -> Mapping[Stage, int]:
        counts = self.journal.device_counts(self.run_id)
        created = counts.get("pending", 0) + counts.get("created", 0)
        return {"created": created, "exported": created + counts.get("adopted", 0)}


def _rows(valid: pl.DataFrame) -> list[DeviceRow]:
    return [
        DeviceRow(int(line), str(name), nick)
        for line, name, nick in zip(
            valid["line"].to_list(),
            valid["DeviceName"].to_list(),
            valid["Nickname"].to_list(),
            strict=True,
        )
    ]


def _rejected_rows(rejected: pl.DataFrame) -> list[RejectedRow]:
    return [
        RejectedRow(int(line), name or "", nick, str(reason))
        for line, name, nick, reason in zip(
            rejected["line"].to_list(),
            rejected["DeviceName"].to_list(),
            rejected["Nickname"].to_list(),
            rejected["reason"].to_list(),
            strict=True,
        )
    ]
