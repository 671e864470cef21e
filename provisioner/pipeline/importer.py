"""``import``: migrate devices with their existing secrets (ImportDevice, one per call).

The input (:mod:`provisioner.import_input`) is validated by ImportDevice's rules before
any call. Then many calls are in flight under the 50 QPS limit, each device journaled:
``pending`` -> ``importing`` (written for a group of devices before they are sent)
-> ``created`` / ``adopted`` / ``rejected`` / ``failed`` (written for a group after
their answers). A re-run imports only what is missing.

A device is never left in doubt, because ImportDevice can be asked about afterwards:

* ``iot.device.AlreadyExistedDeviceName`` for a device this run may have sent before
  (it was ``importing`` after a crash, or an earlier attempt lost its answer) is
  looked up with QueryDeviceDetail: the same DeviceSecret means the earlier call
  worked (``created``); another secret is a conflict (``rejected``).
* The same code for a device that existed before the run is reported per device
  (``--existing fail``), or looked up and included when its secret matches the
  input's (``--existing adopt``; a different secret is a conflict).

The output is the encrypted credentials file with an ``Sn`` column; secrets come from
the input (held in memory only) and are never journaled or logged.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import anyio
import httpx
import structlog
from anyio.abc import ObjectReceiveStream

from provisioner.api import retry as retry_mod
from provisioner.config import ApiSettings
from provisioner.errors import (
    EXIT_INPUT,
    AuthenticationError,
    JournalError,
    TerminalApiError,
    ThrottledError,
    TransientApiError,
    TransportError,
    UsageError,
)
from provisioner.import_input import ImportTable, read_import
from provisioner.inputs import write_rejects
from provisioner.journal import (
    DeviceRecord,
    DeviceRow,
    ImportResult,
    Journal,
    RejectedRow,
    RunRecord,
)
from provisioner.output import IMPORT_COLUMNS, Encryption, OutputFormat
from provisioner.pipeline.export import NOT_FOUND_CODES, ExportIncompleteError
from provisioner.pipeline.finish import RunOutcome
from provisioner.pipeline.progress import Progress
from provisioner.pipeline.report import Counts, StageClock, rejects_path
from provisioner.pipeline.session import (
    Session,
    WorkContext,
    commit,
    execute,
    guard_paths,
    keep_lease,
    run_identity,
)
from provisioner.pipeline.settings import (
    ExistingPolicy,
    ProgressMode,
    Tuning,
    empty_mapping,
    product_key_of,
)

__all__ = ["IMPORT_KIND", "ImportSettings", "import_devices"]

logger = structlog.get_logger("provisioner.pipeline")

IMPORT_KIND = "import"
_EXISTS = "iot.device.AlreadyExistedDeviceName"
_CREATE_FAILED = "iot.device.CreateDeviceFailed"
#: Errors that are about the account or the call, not about one device: stop the run.
_FATAL = frozenset({"iot.system.InstanceNotFound", "iot.prod.NotExistedProduct"})
#: How an "already exists" rejection starts; ``--existing adopt`` re-opens these.
_EXISTS_REASON = "already exists in product"
_GROUP = 50
_FLUSH_SECONDS = 0.2


@dataclass(frozen=True, slots=True)
class ImportSettings:
    """One ``provisioner import``."""

    input: Path
    product_key: str
    out: Path
    encryption: Encryption
    api: ApiSettings
    identity: Path | None = None
    existing: ExistingPolicy = "fail"
    skip_invalid: bool = False
    fmt: OutputFormat = "csv"
    force: bool = False
    journal: str | None = None
    progress: ProgressMode = "auto"
    encryption_options: Mapping[str, Any] = field(default_factory=empty_mapping)
    tuning: Tuning = field(default_factory=Tuning)

    def __post_init__(self) -> None:
        object.__setattr__(self, "product_key", product_key_of(self.product_key))
        if self.existing not in ("fail", "adopt"):
            raise UsageError(f"--existing must be fail or adopt, got {self.existing!r}")


def import_key(table: ImportTable, settings: ImportSettings) -> str:
    """The same rows (names, nicknames, serials; not the secrets), product, instance and
    endpoint: the same import."""
    rows = hashlib.sha256()
    for row in table.valid.select("DeviceName", "Nickname", "Sn").iter_rows():
        for value in row:
            data = b"\x00" if value is None else b"+" + value.encode("utf-8")
            rows.update(len(data).to_bytes(4, "big") + data)
    api = settings.api
    return run_identity(
        IMPORT_KIND, settings.product_key, api.iot_instance_id or "", api.endpoint, rows.hexdigest()
    )


def _params(settings: ImportSettings) -> dict[str, Any]:
    """What the journal keeps to resume the run by id; never a secret."""
    api = settings.api
    return {
        "input": str(settings.input.absolute()),
        "identity": str(settings.identity.absolute()) if settings.identity else None,
        "out": str(settings.out.absolute()),
        "format": settings.fmt,
        "existing": settings.existing,
        "skip_invalid": settings.skip_invalid,
        "product_key": settings.product_key,
        "endpoint": api.endpoint,
        "region": api.region,
        "iot_instance_id": api.iot_instance_id,
        "encryption": dict(settings.encryption_options),
    }


async def import_devices(
    settings: ImportSettings,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    progress: Progress | None = None,
    expected_run_id: str | None = None,
) -> RunOutcome:
    """Import the devices of ``settings.input`` with their secrets; write their credentials."""
    guard_paths(
        settings.out,
        settings.journal,
        {"the input": settings.input, "--identity": settings.identity},
    )
    stages = StageClock()
    stages.start("validate")
    table = read_import(settings.input, settings.identity)
    stages.end("validate")
    rejects = rejects_path(settings.out.absolute())
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
        return RunOutcome(
            run_id=None,
            exit_code=EXIT_INPUT,
            message=f"no valid row in {settings.input}, nothing was sent",
        )
    key = import_key(table, settings)
    session = Session(
        kind=IMPORT_KIND,
        key=key,
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
        columns=IMPORT_COLUMNS,
    )
    return await execute(
        session,
        ImportJob(settings, table),
        stages=stages,
        transport=transport,
        progress=progress,
        expected_run_id=expected_run_id,
    )


class _Input(NamedTuple):
    secret: str
    nickname: str | None
    sn: str | None


class ImportJob:
    """The :class:`~provisioner.pipeline.session.Job` of an import."""

    def __init__(self, settings: ImportSettings, table: ImportTable) -> None:
        self.settings = settings
        self.table = table

    def names(self) -> list[str]:
        return [str(n) for n in self.table.valid["DeviceName"].to_list()]

    def rewrites(self) -> list[str]:
        return self.names() if self.settings.existing == "adopt" else []

    def reopen(self, journal: Journal, run: RunRecord) -> int:
        """A run done with ``--existing fail`` and run again with ``adopt``: the devices
        it rejected as existing are looked up this time (and only those)."""
        if self.settings.existing != "adopt":
            return 0
        reopened = journal.reopen_devices(run.run_id, _EXISTS_REASON)
        if reopened:
            logger.info("import.existing_reopened", run_id=run.run_id, devices=reopened)
        return reopened

    def plan(self, journal: Journal, session: Session) -> RunRecord:
        valid, rejected = self.table.valid, self.table.rejected
        return journal.create_run(
            run_key=session.key,
            kind=IMPORT_KIND,
            product_key=session.product_key,
            params=session.params,
            devices=[
                DeviceRow(line, name, nickname)
                for line, name, nickname in valid.select(
                    "line", "DeviceName", "Nickname"
                ).iter_rows()
            ],
            rejected=[
                RejectedRow(line, name or "", nickname, reason)
                for line, name, nickname, reason in rejected.iter_rows()
            ],
        )

    def start_progress(self, progress: Progress, journal: Journal, run_id: str) -> None:
        counts = journal.device_counts(run_id)
        live = sum(counts.get(s, 0) for s in ("pending", "importing", "created", "adopted"))
        progress.set_total("validated", self.table.total)
        progress.advance("validated", self.table.total)
        progress.set_total("created", live)
        progress.advance("created", counts.get("created", 0) + counts.get("adopted", 0))
        progress.set_total("exported", live)

    async def work(self, ctx: WorkContext) -> RunOutcome:
        importer = Importer(ctx, self.settings, self.table)
        await importer.run()
        counts = importer.verify()
        return commit(ctx, counts)


class Importer:
    """Sends every device not yet imported, many at once, and writes the output rows."""

    def __init__(self, ctx: WorkContext, settings: ImportSettings, table: ImportTable) -> None:
        self.ctx = ctx
        self.settings = settings
        self.table = table
        self.product_key = settings.product_key
        self.inputs: dict[int, _Input] = {
            line: _Input(secret, nickname, sn)
            for line, secret, nickname, sn in table.valid.select(
                "line", "DeviceSecret", "Nickname", "Sn"
            ).iter_rows()
        }
        self.results: list[ImportResult] = []
        self.written: set[str] = set()
        # Devices that will end in the output (the progress totals): counted down as
        # devices are rejected, rather than counted again in the journal each time.
        self.live = 0

    async def run(self) -> None:
        ctx = self.ctx
        ctx.stages.start("import")
        for device in ctx.journal.devices(ctx.run_id, states=("created", "adopted")):
            if device.iot_id is None:
                raise JournalError(f"device {device.device_name} has no IotId in the journal")
            self._write(device, device.iot_id, device.nickname)
        todo = ctx.journal.devices(ctx.run_id, states=("pending", "importing"))
        self.live = len(self.written) + len(todo)
        send, receive = anyio.create_memory_object_stream[DeviceRecord](
            ctx.session.tuning.import_workers
        )
        async with anyio.create_task_group() as background:
            background.start_soon(
                keep_lease, ctx.journal, ctx.run_id, ctx.lease, ctx.session.tuning.heartbeat_seconds
            )
            background.start_soon(self._flusher)
            async with anyio.create_task_group() as workers:
                for _ in range(ctx.session.tuning.import_workers):
                    workers.start_soon(self._worker, receive.clone())
                receive.close()
                async with send:
                    for start in range(0, len(todo), _GROUP):
                        group = todo[start : start + _GROUP]
                        ctx.journal.mark_importing(
                            ctx.run_id, [d.line for d in group if d.state == "pending"]
                        )
                        for device in group:
                            await send.send(device)
            background.cancel_scope.cancel()
        self._flush()
        ctx.stages.end("import")

    async def _flusher(self) -> None:
        while True:
            await anyio.sleep(_FLUSH_SECONDS)
            self._flush()

    def _flush(self) -> None:
        results, self.results = self.results, []
        if not results:
            return
        self.ctx.journal.record_import_results(self.ctx.run_id, results)
        logger.info("import.results_recorded", run_id=self.ctx.run_id, devices=len(results))

    async def _worker(self, devices: ObjectReceiveStream[DeviceRecord]) -> None:
        async with devices:
            async for device in devices:
                await self._import(device)

    async def _import(self, device: DeviceRecord) -> None:
        given = self.inputs[device.line]
        # Sent by an earlier process (crashed before its answer was journaled), or by
        # an attempt here whose answer was lost: "already exists" may be our own doing.
        ours = device.state == "importing"
        attempts = self.ctx.session.api.max_attempts
        for attempt in range(1, attempts + 1):
            try:
                imported = await self.ctx.once_client.import_device(
                    self.product_key, device.device_name, given.secret, given.nickname, given.sn
                )
            except ThrottledError:
                # Refused before it ran, so the policy resent it for as long as the
                # run's deadline allows; past that the run stops, resumable.
                raise
            except (TransientApiError, TransportError) as exc:
                # Not transient (a silent endpoint, a failed handshake): the run stops and
                # the device, still ``importing``, is looked up when it resumes.
                if attempt == attempts or not exc.transient:
                    raise
                ours = True
                await self._pause(min(0.2 * 2**attempt, 5.0))
                continue
            except TerminalApiError as exc:
                if exc.code == _EXISTS:
                    await self._existing(device, given, ours=ours)
                    return
                if exc.code == _CREATE_FAILED and attempt < attempts:
                    ours = True
                    await self._pause(min(0.2 * 2**attempt, 5.0))
                    continue
                if isinstance(exc, AuthenticationError) or exc.code in _FATAL:
                    raise
                state = "failed" if exc.code == _CREATE_FAILED else "rejected"
                self._end(device, state, f"ImportDevice: {exc.code}: {_clean(exc.message, given)}")
                return
            if imported.device_secret != given.secret:
                self._end(device, "failed", "ImportDevice returned another DeviceSecret")
                return
            self._end(device, "created", iot_id=imported.iot_id)
            self._write(device, imported.iot_id, given.nickname)
            return

    async def _existing(self, device: DeviceRecord, given: _Input, *, ours: bool) -> None:
        adopt = self.settings.existing == "adopt"
        if not ours and not adopt:
            self._end(
                device,
                "rejected",
                f"{_EXISTS_REASON} {self.product_key} (pass --existing adopt to "
                "include it when its DeviceSecret matches)",
            )
            return
        try:
            detail = await self.ctx.client.query_device_detail(
                product_key=self.product_key, device_name=device.device_name
            )
        except TerminalApiError as exc:
            if exc.code not in NOT_FOUND_CODES:
                raise
            self._end(device, "failed", "ImportDevice said it exists, QueryDeviceDetail not")
            return
        if detail.device_secret != given.secret:
            self._end(
                device,
                "rejected",
                f"exists in product {self.product_key} with a different DeviceSecret (conflict)",
            )
            return
        self._end(device, "created" if ours else "adopted", iot_id=detail.iot_id)
        self._write(device, detail.iot_id, detail.nickname or given.nickname)

    def _end(
        self, device: DeviceRecord, state: Any, reason: str | None = None, iot_id: str | None = None
    ) -> None:
        self.results.append(ImportResult(device.line, state, reason, iot_id))
        if state in ("rejected", "failed"):
            logger.info(
                "import.device_not_imported",
                run_id=self.ctx.run_id,
                device=device.device_name,
                state=state,
                reason=reason,
            )
            self.live -= 1
            self.ctx.progress.set_total("created", self.live)
            self.ctx.progress.set_total("exported", self.live)
        else:
            self.ctx.progress.advance("created", 1)
        if len(self.results) >= _GROUP * 4:
            self._flush()

    def _write(self, device: DeviceRecord, iot_id: str, nickname: str | None) -> None:
        given = self.inputs[device.line]
        if device.device_name in self.written:
            return
        self.written.add(device.device_name)
        row = (
            self.product_key,
            device.device_name,
            given.secret,
            iot_id,
            nickname or "",
            "",
            given.sn or "",
        )
        self.ctx.writer.write([row])
        self.ctx.progress.advance("exported", 1)

    async def _pause(self, seconds: float) -> None:
        await anyio.sleep(0.0 if retry_mod.is_testing() else seconds)

    def verify(self) -> Counts:
        """Every imported or adopted device is in the output once; none is left pending."""
        ctx = self.ctx
        counts = ctx.journal.device_counts(ctx.run_id)
        left = counts.get("pending", 0) + counts.get("importing", 0)
        if left:
            raise ExportIncompleteError(
                f"run {ctx.run_id}: {left} devices were not imported; re-run the command"
            )
        wanted = {
            d.device_name for d in ctx.journal.devices(ctx.run_id, states=("created", "adopted"))
        }
        missing = wanted - self.written
        if missing:
            raise ExportIncompleteError(
                f"run {ctx.run_id}: {len(missing)} devices are not in the output (first: "
                f"{sorted(missing)[0]}); re-run the command"
            )
        return Counts(
            input=self.table.total,
            rejected=counts.get("rejected", 0),
            submitted=self.table.valid.height,
            created=counts.get("created", 0),
            exported=len(self.written),
            adopted=counts.get("adopted", 0),
            failed=counts.get("failed", 0),
        )


def _clean(message: str, given: _Input) -> str:
    """A server message, without the secret should it quote it."""
    return message.replace(given.secret, "***") if given.secret else message
