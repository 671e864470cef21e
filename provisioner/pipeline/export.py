"""Exporting credentials: pages of applications (and single devices) into the writer.

The pieces are shared by the pipeline and by ``provisioner export``:

* :class:`CredentialSink` turns API records into output rows and writes each
  DeviceName at most once, whatever retries or overlapping jobs deliver.
* :class:`AppExport` tracks the pages of one application: which are planned, which
  arrived, which devices were expected and which were seen.
* :class:`Exporter` executes jobs (a page of an application, or one device looked up
  with QueryDeviceDetail) through the one client, so every call is rate limited;
  the pipeline runs a pool of :meth:`Exporter.worker` tasks on one queue.
* :func:`export_application` re-exports an existing application to a new file.

Secrets exist only in the records handed straight to the writer, which encrypts them
in memory; nothing here logs or keeps them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import httpx
import structlog
from anyio.abc import ObjectReceiveStream

from provisioner import wiring
from provisioner.api import IotClient
from provisioner.api.records import ApplyState, DeviceCredential, DeviceDetail, DevicePage
from provisioner.config import ApiSettings
from provisioner.errors import ExportIncompleteError, TerminalApiError, UsageError
from provisioner.output import (
    OUTPUT_COLUMNS,
    CredentialWriter,
    Encryption,
    OutputFormat,
    remove_stale_partials,
)
from provisioner.pipeline.plan import PAGE_SIZE
from provisioner.pipeline.progress import NullProgress, Progress

__all__ = [
    "NOT_FOUND_CODES",
    "AppExport",
    "CredentialSink",
    "DetailJob",
    "ExportJob",
    "ExportOutcome",
    "Exporter",
    "PageJob",
    "export_application",
]

logger = structlog.get_logger("provisioner.pipeline")

#: Codes of QueryDeviceDetail that mean "no such device" (an adopted name that is gone).
NOT_FOUND_CODES = frozenset({"iot.device.NotExistedDevice", "iot.device.DeviceNotExist"})

assert OUTPUT_COLUMNS == (  # the row layout below follows this order
    "ProductKey",
    "DeviceName",
    "DeviceSecret",
    "IotId",
    "Nickname",
    "ApplyId",
)


class CredentialSink:
    """Rows into the writer, each DeviceName once; counts what it wrote."""

    def __init__(
        self, writer: CredentialWriter, product_key: str, progress: Progress | None = None
    ) -> None:
        self._writer = writer
        self._product_key = product_key
        self._progress: Progress = progress or NullProgress()
        self.written: set[str] = set()

    def add_page(
        self,
        apply_id: str,
        devices: Sequence[DeviceCredential],
        nicknames: Mapping[str, str | None] | None = None,
    ) -> int:
        """Write the devices of a page not written yet; ``nicknames`` (when given) also
        limits the devices to those it names. Returns how many rows were written."""
        rows: list[tuple[str, str, str, str, str, str]] = []
        for device in devices:
            name = device.device_name
            if name in self.written or (nicknames is not None and name not in nicknames):
                continue
            self.written.add(name)
            nickname = (nicknames or {}).get(name) or ""
            rows.append(
                (self._product_key, name, device.device_secret, device.iot_id, nickname, apply_id)
            )
        if rows:
            self._writer.write(rows)
            self._progress.advance("exported", len(rows))
        return len(rows)

    def add_detail(self, detail: DeviceDetail, nickname: str | None, apply_id: str = "") -> bool:
        """Write one device from QueryDeviceDetail (an adopted one: no ApplyId of ours)."""
        name = detail.device_name
        if name in self.written:
            return False
        self.written.add(name)
        row = (
            self._product_key,
            name,
            detail.device_secret,
            detail.iot_id,
            detail.nickname or nickname or "",
            apply_id,
        )
        self._writer.write([row])
        self._progress.advance("exported", 1)
        return True


@dataclass(slots=True)
class AppExport:
    """The export of one application: planned pages, and the devices expected and seen.

    ``expected`` maps the DeviceNames this run created in the application to their
    Nicknames; ``None`` accepts whatever the pages hold (a plain re-export).
    """

    apply_id: str
    expected: dict[str, str | None] | None
    app_id: int | None = None
    planned: int = 0
    #: How many devices the pages must hold when the names are not known beforehand
    #: (random names); ``None``: no count to check.
    expected_count: int | None = None
    done_pages: set[int] = field(default_factory=set)
    seen: set[str] = field(default_factory=set)
    page_count: int | None = None
    extending: bool = False
    finished: bool = False

    @classmethod
    def for_devices(
        cls, apply_id: str, expected: dict[str, str | None], app_id: int | None = None
    ) -> AppExport:
        """Plan the pages from the number of devices, so every page can be queued at once
        instead of waiting for page 1 to learn PageCount."""
        pages = math.ceil(len(expected) / PAGE_SIZE)
        return cls(apply_id=apply_id, expected=expected, app_id=app_id, planned=pages)

    @property
    def complete(self) -> bool:
        """Every planned page (and every page the server announced) has been written."""
        wanted = max(self.planned, self.page_count or 0)
        return all(n in self.done_pages for n in range(1, wanted + 1))

    def missing(self) -> list[str]:
        if self.expected is None:
            return []
        return sorted(set(self.expected) - self.seen)


@dataclass(frozen=True, slots=True)
class PageJob:
    app: AppExport
    page: int


@dataclass(frozen=True, slots=True)
class DetailJob:
    device_name: str
    nickname: str | None


ExportJob = PageJob | DetailJob


class Exporter:
    """Runs export jobs through one client into one sink.

    ``on_app_done(app)`` is called once when every page of an application has been
    written and its expected devices were all seen; ``on_missing(name, reason)`` when
    an adopted device cannot be found.
    """

    def __init__(
        self,
        client: IotClient,
        sink: CredentialSink,
        product_key: str,
        *,
        on_app_done: Callable[[AppExport], None] | None = None,
        on_missing: Callable[[str, str], None] | None = None,
    ) -> None:
        self._client = client
        self._sink = sink
        self._product_key = product_key
        self._on_app_done = on_app_done
        self._on_missing = on_missing
        self.pages_fetched = 0

    async def worker(self, jobs: ObjectReceiveStream[ExportJob]) -> None:
        """Execute jobs until the queue is closed and empty."""
        async with jobs:
            async for job in jobs:
                await self.run(job)

    async def run(self, job: ExportJob) -> None:
        if isinstance(job, PageJob):
            await self._page(job.app, job.page)
        else:
            await self._detail(job)

    async def _fetch(self, app: AppExport, number: int) -> DevicePage:
        page = await self._client.query_page_by_apply_id(app.apply_id, number, PAGE_SIZE)
        self.pages_fetched += 1
        app.done_pages.add(number)
        app.seen.update(d.device_name for d in page.devices)
        self._sink.add_page(app.apply_id, page.devices, app.expected)
        return page

    async def _page(self, app: AppExport, number: int) -> None:
        page = await self._fetch(app, number)
        if app.page_count is None:
            app.page_count = page.page_count
        if page.page_count > app.planned and not app.extending:
            # More pages than planned (the server holds more devices than the journal
            # expects): fetch the rest here; it does not happen in a consistent run.
            app.extending = True
            for extra in range(app.planned + 1, page.page_count + 1):
                app.planned = extra
                await self._fetch(app, extra)
        if app.complete and not app.finished:
            app.finished = True
            missing = app.missing()
            if missing:
                raise ExportIncompleteError(
                    f"application {app.apply_id}: {len(missing)} created devices are missing "
                    f"from its pages (first: {missing[0]}); re-run the command to export again"
                )
            if app.expected_count is not None and len(app.seen) != app.expected_count:
                raise ExportIncompleteError(
                    f"application {app.apply_id} holds {len(app.seen)} devices, "
                    f"{app.expected_count} expected; re-run the command to export again"
                )
            if self._on_app_done is not None:
                self._on_app_done(app)

    async def _detail(self, job: DetailJob) -> None:
        try:
            detail = await self._client.query_device_detail(
                product_key=self._product_key, device_name=job.device_name
            )
        except TerminalApiError as exc:
            if exc.code not in NOT_FOUND_CODES or self._on_missing is None:
                raise
            self._on_missing(job.device_name, f"{exc.code}: {exc.message}")
            return
        self._sink.add_detail(detail, job.nickname)


@dataclass(frozen=True, slots=True)
class ExportOutcome:
    apply_id: str
    out: Path
    rows: int
    pages: int
    status: str


async def export_application(
    apply_id: str,
    product_key: str,
    out: Path,
    encryption: Encryption,
    fmt: OutputFormat,
    api_settings: ApiSettings,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    force: bool = False,
    workers: int = 24,
) -> ExportOutcome:
    """Write the credentials of application ``apply_id`` to ``out`` (encrypted, atomic).

    The application must be created (CREATE_SUCCESS or CREATE_FAILED). Nicknames are
    not part of QueryPageByApplyId's answer, so that column is empty here.
    """
    apply_id = str(apply_id).strip()
    if not apply_id.isdigit():
        raise UsageError(f"--apply-id must be a number, got {apply_id!r}")
    async with wiring.client(api_settings, transport=transport) as client:
        status = await client.query_batch_register_device_status(product_key, apply_id)
        if status.status not in (ApplyState.CREATE_SUCCESS, ApplyState.CREATE_FAILED):
            raise UsageError(
                f"application {apply_id} is in state {status.status}: only a created "
                "application (CREATE_SUCCESS or CREATE_FAILED) can be exported"
            )
        remove_stale_partials(out)
        writer = wiring.writer(out, encryption, fmt=fmt, force=force)
        writer.open()
        try:
            sink = CredentialSink(writer, product_key)
            exporter = Exporter(client, sink, product_key)
            first = await client.query_page_by_apply_id(apply_id, 1, PAGE_SIZE)
            sink.add_page(apply_id, first.devices)
            app = AppExport(
                apply_id=apply_id,
                expected=None,
                planned=first.page_count,
                done_pages={1},
                page_count=first.page_count,
            )
            send, receive = anyio.create_memory_object_stream[ExportJob](max_buffer_size=math.inf)
            async with anyio.create_task_group() as tg:
                for _ in range(max(1, workers)):
                    tg.start_soon(exporter.worker, receive.clone())
                receive.close()
                async with send:
                    for number in range(2, first.page_count + 1):
                        send.send_nowait(PageJob(app, number))
            path = writer.commit()
        except BaseException:
            writer.abort()
            raise
    logger.info(
        "export.completed",
        apply_id=apply_id,
        rows=len(sink.written),
        pages=exporter.pages_fetched + 1,
        out=str(path),
    )
    return ExportOutcome(
        apply_id=apply_id,
        out=path,
        rows=len(sink.written),
        pages=exporter.pages_fetched + 1,
        status=status.status,
    )
