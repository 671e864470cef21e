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

import hashlib
import os
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import polars as pl
import structlog

from provisioner.api import IotClient, RetryPolicy, SlidingWindowLimiter
from provisioner.config import ApiSettings, load_api_settings
from provisioner.errors import (
    EXIT_FAILED,
    EXIT_INPUT,
    EXIT_OK,
    OutputError,
    ProvisionerError,
    RunInProgressError,
    UsageError,
)
from provisioner.inputs import InputTable, fingerprint, read_devices, write_rejects
from provisioner.journal import (
    AppRecord,
    DeviceRow,
    Journal,
    RejectedRow,
    RunRecord,
    resolve_journal_path,
)
from provisioner.output import (
    CredentialWriter,
    Encryption,
    load_encryption,
    remove_stale_partials,
)
from provisioner.pipeline.driver import Driver
from provisioner.pipeline.export import CredentialSink
from provisioner.pipeline.finish import (
    RunOutcome,
    already_completed,
    commit_run,
    finish_commit,
    verify_export,
)
from provisioner.pipeline.plan import estimate, format_plan, split_chunks
from provisioner.pipeline.progress import Progress, make_progress
from provisioner.pipeline.report import (
    StageClock,
    merge_retry_stats,
    rejects_path,
)
from provisioner.pipeline.settings import RunSettings
from provisioner.pipeline.status import RunStatusView, status

__all__ = [
    "RUN_KIND",
    "RunFailedError",
    "RunOutcome",
    "RunStatusView",
    "dry_run_plan",
    "provision",
    "resume",
    "run_key",
    "status",
]

logger = structlog.get_logger("provisioner.pipeline")

#: The kind of run this module makes: names checked, then created (BatchCheckDeviceNames).
RUN_KIND = "check_create"


class RunFailedError(ProvisionerError):
    """The run stopped on an error; the journal is consistent and the run can be resumed."""

    def __init__(self, run_id: str, cause: ProvisionerError) -> None:
        self.run_id = run_id
        self.cause = cause
        super().__init__(
            f"run {run_id} failed: {cause}; re-run the same command (or "
            f"`provisioner resume {run_id}`) to resume"
        )


def run_key(
    input_fingerprint: str,
    product_key: str,
    iot_instance_id: str | None,
    endpoint: str,
    kind: str = RUN_KIND,
) -> str:
    """The identity of a run: the same rows, product, instance, endpoint and kind."""
    parts = (input_fingerprint, product_key, iot_instance_id or "", endpoint, kind)
    digest = hashlib.sha256()
    for part in parts:
        data = part.encode("utf-8")
        digest.update(len(data).to_bytes(8, "big") + data)
    return digest.hexdigest()


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


def _params(settings: RunSettings, api: ApiSettings) -> dict[str, Any]:
    """What the journal keeps to resume the run by id; never a secret."""
    return {
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
    key = run_key(fingerprint(table.valid), settings.product_key, api.iot_instance_id, api.endpoint)
    journal = Journal(resolve_journal_path(settings.journal))
    try:
        run = journal.find_run(key)
        if expected_run_id is not None and (run is None or run.run_id != expected_run_id):
            raise UsageError(
                f"the input or options no longer match run {expected_run_id} (the input file "
                "changed?); run `provisioner run` with the new input instead"
            )
        if run is not None and run.status == "committing" and _exists(run.params["out"]):
            finish_commit(journal, run)
            run = journal.get_run(run.run_id)
        if run is not None and run.status == "completed" and not settings.force:
            return already_completed(run)
        if _exists(out) and not settings.force:
            raise OutputError(
                f"{out} already exists; choose another --out or pass --force to replace it"
            )
        params = _params(settings, api)
        resumed = run is not None
        if run is None:
            run = journal.create_run(
                run_key=key,
                kind=RUN_KIND,
                product_key=settings.product_key,
                params=params,
                chunks=split_chunks(_rows(table.valid), settings.chunk_size),
                rejected=_rejected_rows(table.rejected),
            )
        lease = journal.acquire_lease(run.run_id)
        try:
            if resumed:
                # The output path or format may differ from the first attempt's.
                journal.update_params(run.run_id, params)
            return await _work(
                settings, table, run, journal, lease, stages, transport, progress, resumed
            )
        finally:
            journal.release_lease(run.run_id, lease)
    finally:
        journal.close()


async def _work(
    settings: RunSettings,
    table: InputTable,
    run: RunRecord,
    journal: Journal,
    lease: Any,
    stages: StageClock,
    transport: httpx.AsyncBaseTransport | None,
    progress: Progress | None,
    resumed: bool,
) -> RunOutcome:
    assert settings.api is not None
    assert settings.encryption is not None
    api = settings.api
    out = settings.out.absolute()
    run_id = run.run_id
    logger.info("run.resumed" if resumed else "run.started", run_id=run_id, out=str(out))
    journal.set_status(run_id, "running")
    bars = progress or make_progress(settings.progress, interval=settings.tuning.progress_seconds)
    try:
        _start_progress(bars, journal, run_id, table)
        remove_stale_partials(out)
        limiter = SlidingWindowLimiter(
            api.credentials.access_key_id, scale=api.qps_scale, margin=settings.tuning.qps_margin
        )
        retry = RetryPolicy(max_attempts=api.max_attempts, max_total_seconds=api.max_retry_seconds)
        once = RetryPolicy(max_attempts=1, max_total_seconds=api.max_retry_seconds)
        writer = CredentialWriter(out, settings.encryption, fmt=settings.fmt, force=settings.force)
        async with (
            IotClient(api, transport=transport, limiter=limiter, retry=retry) as client,
            IotClient(api, transport=transport, limiter=limiter, retry=once) as once_client,
        ):
            writer.open()
            try:
                sink = CredentialSink(writer, settings.product_key, bars)
                driver = Driver(
                    run_id=run_id,
                    product_key=settings.product_key,
                    existing=settings.existing,
                    journal=journal,
                    lease=lease,
                    client=client,
                    once_client=once_client,
                    sink=sink,
                    progress=bars,
                    stages=stages,
                    tuning=settings.tuning,
                    qps_scale=api.qps_scale,
                )
                try:
                    await driver.run()
                except BaseExceptionGroup as group:
                    raise _first_error(group) from None
                counts = verify_export(journal, run_id, sink, table)
                retries = merge_retry_stats([client.retry_stats.snapshot(), once.stats.snapshot()])
                outcome = commit_run(
                    settings, journal, run_id, writer, counts, stages, retries, resumed
                )
            except BaseException:
                writer.abort()
                raise
    except RunInProgressError:
        raise  # the lease was lost: the run's state belongs to its new holder
    except ProvisionerError as exc:
        journal.set_status(run_id, "failed", error=str(exc))
        logger.error("run.failed", run_id=run_id, error=str(exc))
        if exc.exit_code != EXIT_FAILED:
            raise
        raise RunFailedError(run_id, exc) from exc
    except BaseException:
        journal.set_status(run_id, "failed", error="interrupted")
        raise
    finally:
        bars.close()
    return outcome


def _first_error(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The error to report from a task group: the first provisioner error, else the first."""
    leaves: list[BaseException] = []

    def walk(exc: BaseException) -> None:
        if isinstance(exc, BaseExceptionGroup):
            for inner in exc.exceptions:
                walk(inner)
        else:
            leaves.append(exc)

    walk(group)
    for leaf in leaves:
        if isinstance(leaf, ProvisionerError):
            return leaf
    return leaves[0] if leaves else group


def _start_progress(bars: Progress, journal: Journal, run_id: str, table: InputTable) -> None:
    """Totals, and what a resumed run had already done before this process."""
    devices = journal.devices(run_id)
    apps = {a.app_id: a for a in journal.applications(run_id)}
    submitted = [d for d in devices if d.app_id is not None]
    bars.set_total("validated", table.total)
    bars.advance("validated", table.total)
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


def _exists(path: str | Path) -> bool:
    return os.path.exists(path)


def _is_dir(path: Path) -> bool:
    return os.path.isdir(path)


async def resume(
    run_id: str,
    *,
    journal: str | None = None,
    encryption: Encryption | None = None,
    api: ApiSettings | None = None,
    force: bool = False,
    transport: httpx.AsyncBaseTransport | None = None,
    progress: Progress | None = None,
    base: RunSettings | None = None,
    env: Mapping[str, str] = os.environ,
) -> RunOutcome:
    """Resume run ``run_id`` with the options it was started with.

    ``encryption`` and ``api`` override what the journal recorded (the journal keeps
    public keys and the *name* of a passphrase variable, never a secret; credentials
    always come from the environment). ``base`` supplies the other settings (tuning,
    progress) when given.
    """
    with Journal(resolve_journal_path(journal, env)) as store:
        run = store.get_run(run_id)
    params = run.params
    if api is None:
        api = load_api_settings(
            endpoint=params.get("endpoint"),
            region=params.get("region"),
            iot_instance_id=params.get("iot_instance_id"),
            env=env,
        )
    if encryption is None:
        options = dict(params.get("encryption") or {})
        recipients_file = options.get("recipients_file")
        encryption = load_encryption(
            recipients=list(options.get("recipients") or ()),
            recipients_file=Path(recipients_file) if recipients_file else None,
            passphrase_env=options.get("passphrase_env"),
            env=env,
        )
    fields: dict[str, Any] = {
        "input": Path(params["input"]),
        "product_key": run.product_key,
        "out": Path(params["out"]),
        "encryption": encryption,
        "fmt": params.get("format", "csv"),
        "chunk_size": int(params.get("chunk_size", 10_000)),
        "skip_invalid": bool(params.get("skip_invalid", False)),
        "existing": params.get("existing", "fail"),
        "force": force,
        "journal": journal,
        "api": api,
        "encryption_options": params.get("encryption") or {},
    }
    settings = replace(base, **fields) if base is not None else RunSettings(**fields)
    return await provision(
        settings, transport=transport, progress=progress, expected_run_id=run.run_id
    )
