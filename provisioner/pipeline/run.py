"""Entry points of a provisioning run: new run, resume, already completed, dry run, status.

:func:`provision` reads and validates the input, then looks the run up in the journal
by its key (a hash of the valid rows, ProductKey, IotInstanceId, endpoint and kind):

* unknown: the run is planned (devices and chunks journaled in one transaction);
* known and unfinished: it is resumed where the journal says it stopped;
* completed: nothing is called; the outcome says so (exit 0).

Then it takes the run's lease (a second process gets
:class:`~provisioner.errors.RunInProgressError`), opens the encrypted writer on a
temporary file, lets :class:`~provisioner.pipeline.driver.Driver` do the work, and
commits: report stored in the journal (``committing``), rejects written, output
renamed into place, report written, run ``completed``. A failure leaves the journal
consistent, removes the temporary file, and raises :class:`RunFailedError` (exit 1):
the same command, or ``provisioner resume RUN_ID``, carries on.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx
import polars as pl
import structlog

from provisioner.config import ApiSettings
from provisioner.errors import EXIT_INPUT, EXIT_OK, OutputError
from provisioner.inputs import InputTable, fingerprint, read_devices, write_rejects
from provisioner.journal import (
    AppRecord,
    DeviceRow,
    Journal,
    RejectedRow,
    RunRecord,
    resolve_journal_path,
)
from provisioner.pipeline.driver import Driver
from provisioner.pipeline.export import CredentialSink
from provisioner.pipeline.finish import RunOutcome, verify_export
from provisioner.pipeline.plan import estimate, format_plan, split_chunks
from provisioner.pipeline.progress import Progress
from provisioner.pipeline.report import StageClock, rejects_path
from provisioner.pipeline.session import (
    RunFailedError,
    Session,
    WorkContext,
    commit,
    execute,
    guard_paths,
    run_identity,
)
from provisioner.pipeline.settings import RunSettings
from provisioner.pipeline.status import RunStatusView, status

__all__ = [
    "RUN_KIND",
    "CheckCreateJob",
    "RunFailedError",
    "RunOutcome",
    "RunStatusView",
    "dry_run_plan",
    "provision",
    "resume_check_create",
    "run_key",
    "status",
]

logger = structlog.get_logger("provisioner.pipeline")

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


def _params(settings: RunSettings, api: ApiSettings, table: InputTable) -> dict[str, Any]:
    """What the journal keeps to resume the run by id (without the input file, which
    may have changed since); never a secret."""
    return {
        "input_rows": table.total,
        "valid_rows": table.valid.height,
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
    if the run already completed. Errors: :class:`UsageError`, :class:`InputError`,
    :class:`RunInProgressError`, :class:`OutputError`, :class:`RunFailedError`."""
    if not settings.dry_run:
        guard_paths(settings.out, settings.journal, {"the input": settings.input})
    stages = StageClock()
    stages.start("validate")
    table = read_devices(settings.input)
    stages.end("validate")
    out = settings.out.absolute()
    rejects = rejects_path(out)
    logger.info(
        "run.input_validated",
        input=str(settings.input),
        rows=table.total,
        valid=table.valid.height,
        rejected=table.rejected.height,
    )
    if settings.dry_run:
        scale = settings.api.qps_scale if settings.api is not None else 1.0
        code = EXIT_INPUT if table.rejected.height and not settings.skip_invalid else EXIT_OK
        return RunOutcome(
            run_id=None,
            exit_code=code,
            message="dry run: nothing was sent",
            plan=dry_run_plan(table, settings, qps_scale=scale),
        )
    if not _is_dir(out.parent):
        raise OutputError(f"the directory of --out does not exist: {out.parent}")
    if table.rejected.height and not settings.skip_invalid:
        write_rejects(table.rejected, rejects)
        return RunOutcome(
            run_id=None,
            exit_code=EXIT_INPUT,
            message=(
                f"{table.rejected.height} of {table.total} rows were rejected, nothing was "
                f"sent: see {rejects} (fix them, or pass --skip-invalid)"
            ),
            rejects_path=rejects,
        )
    if table.valid.height == 0:
        if table.rejected.height:
            write_rejects(table.rejected, rejects)
        return RunOutcome(
            run_id=None,
            exit_code=EXIT_INPUT,
            message=f"no valid row in {settings.input}, nothing was sent",
            rejects_path=rejects if table.rejected.height else None,
        )
    # RunSettings refuses a real run without these.
    assert settings.api is not None
    assert settings.encryption is not None
    api = settings.api
    session = Session(
        kind=RUN_KIND,
        key=run_key(
            fingerprint(table.valid), settings.product_key, api.iot_instance_id, api.endpoint
        ),
        product_key=settings.product_key,
        params=_params(settings, api, table),
        out=settings.out,
        encryption=settings.encryption,
        api=api,
        fmt=settings.fmt,
        force=settings.force,
        journal=settings.journal,
        progress=settings.progress,
        tuning=settings.tuning,
    )
    job = CheckCreateJob(settings, table.total, table.valid.height, table)
    return await execute(
        session,
        job,
        stages=stages,
        transport=transport,
        progress=progress,
        expected_run_id=expected_run_id,
    )


async def resume_check_create(
    run: RunRecord,
    settings: RunSettings,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    progress: Progress | None = None,
) -> RunOutcome:
    """Resume ``run`` from the journal alone: its devices and options are there, so the
    input file is not read again (it may have been edited or moved since)."""
    assert settings.api is not None
    assert settings.encryption is not None
    params = dict(run.params)
    params.update(
        out=str(settings.out.absolute()),
        format=settings.fmt,
        encryption=dict(settings.encryption_options),
    )
    session = Session(
        kind=RUN_KIND,
        key=run.run_key,
        product_key=run.product_key,
        params=params,
        out=settings.out,
        encryption=settings.encryption,
        api=settings.api,
        fmt=settings.fmt,
        force=settings.force,
        journal=settings.journal,
        progress=settings.progress,
        tuning=settings.tuning,
    )
    rows, valid = _recorded_totals(run, settings.journal)
    job = CheckCreateJob(settings, rows, valid, None)
    return await execute(
        session,
        job,
        stages=StageClock(),
        transport=transport,
        progress=progress,
        expected_run_id=run.run_id,
    )


def _recorded_totals(run: RunRecord, journal: str | None) -> tuple[int, int]:
    """Input rows and valid rows of ``run``: recorded since schema 3, else counted."""
    params = run.params
    if "input_rows" in params and "valid_rows" in params:
        return int(params["input_rows"]), int(params["valid_rows"])
    with Journal(resolve_journal_path(journal)) as store:
        devices = store.devices(run.run_id)
    # Rows rejected by validation never joined an application.
    return len(devices), sum(1 for d in devices if d.app_id is not None)


class CheckCreateJob:
    """Names checked, then created: BatchCheckDeviceNames and BatchRegisterDeviceWithApplyId.

    ``table`` is the validated input of a new run; a run resumed from the journal
    has none (and needs none: its devices are journaled).
    """

    def __init__(
        self, settings: RunSettings, input_rows: int, valid_rows: int, table: InputTable | None
    ) -> None:
        self.settings = settings
        self.input_rows = input_rows
        self.valid_rows = valid_rows
        self.table = table

    def names(self) -> list[str]:
        if self.table is None:
            return []
        return [str(n) for n in self.table.valid["DeviceName"].to_list()]

    def rewrites(self) -> list[str]:
        return self.names() if self.settings.existing == "adopt" else []

    def reopen(self, journal: Journal, run: RunRecord) -> int:
        """``--existing adopt`` on a run that rejected names the server's check refused:
        they are looked up this time (and only they)."""
        if self.settings.existing != "adopt":
            return 0
        reopened = journal.reopen_for_adoption(run.run_id)
        if reopened:
            logger.info("run.existing_reopened", run_id=run.run_id, devices=reopened)
        return reopened

    def plan(self, journal: Journal, session: Session) -> RunRecord:
        assert self.table is not None, "a run resumed from the journal is planned already"
        return journal.create_run(
            run_key=session.key,
            kind=RUN_KIND,
            product_key=session.product_key,
            params=session.params,
            chunks=split_chunks(_rows(self.table.valid), self.settings.chunk_size),
            rejected=_rejected_rows(self.table.rejected),
        )

    def start_progress(self, progress: Progress, journal: Journal, run_id: str) -> None:
        _start_progress(progress, journal, run_id, self.input_rows)

    async def work(self, ctx: WorkContext) -> RunOutcome:
        settings = self.settings
        sink = CredentialSink(ctx.writer, ctx.session.product_key, ctx.progress)
        driver = Driver(
            run_id=ctx.run_id,
            product_key=ctx.session.product_key,
            existing=settings.existing,
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
        await driver.run()
        counts = verify_export(ctx.journal, ctx.run_id, sink, self.input_rows, self.valid_rows)
        return commit(ctx, counts)


def _start_progress(bars: Progress, journal: Journal, run_id: str, input_rows: int) -> None:
    """Totals, and what a resumed run had already done before this process."""
    devices = journal.devices(run_id)
    apps = {a.app_id: a for a in journal.applications(run_id)}
    submitted = [d for d in devices if d.app_id is not None]
    bars.set_total("validated", input_rows)
    bars.advance("validated", input_rows)
    bars.set_total("checked", len(submitted))
    past_check = ("CHECK_SUCCESS", "INTENT_CREATE", "CREATE", "CREATE_SUCCESS", "CREATE_FAILED")
    checked = sum(
        1
        for d in submitted
        if d.state != "pending" or _state(apps, d.app_id) in (*past_check, "DONE")
    )
    bars.advance("checked", checked)
    live = [d for d in submitted if d.state in ("pending", "created", "adopted")]
    bars.set_total("created", sum(1 for d in live if d.state != "adopted"))
    bars.advance("created", sum(1 for d in live if d.state == "created"))
    bars.set_total("exported", len(live))


def _state(apps: Mapping[int, AppRecord], app_id: int | None) -> str | None:
    app = apps.get(app_id) if app_id is not None else None
    return app.state if app is not None else None


def _is_dir(path: Path) -> bool:
    return os.path.isdir(path)
