"""The one engine of applications: it performs what the step functions decide.

A kind gives the engine an :class:`AppMachine`: a pure step function and three reads
(the view a step may see, how to export an application, the progress totals). The
engine drives every unfinished application in a task of its own::

    event = Begin(resumed)
    while event: actions = step(view, event); event = perform(actions)

and runs a pool of page workers and detail workers on two queues, so the pages of the
first created application are fetched while the others are still checked or created:
QueryPageByApplyId's budget, the bound of the whole run, is busy from the first
created application to the last page.

Performing is all the I/O: named journal transitions (a write that returns new
applications spawns them), calls through one rate limiter (the normal client retries
transient errors; submissions that create something go through
:func:`~provisioner.api.retry.submit` and are never sent blindly twice), polls, and
the export queue. Credentials go from the pages straight into the encrypted writer.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Protocol

import anyio
import anyio.lowlevel
import structlog
from anyio.abc import TaskGroup
from anyio.streams.memory import MemoryObjectSendStream

from provisioner.api.limits import qps_for
from provisioner.api.records import ApplyState
from provisioner.api.retry import submit
from provisioner.errors import NoAnswerError, TerminalApiError, ThrottledError, TlsError
from provisioner.journal import AppRecord
from provisioner.journal.protocol import Scope
from provisioner.pipeline import machine as m
from provisioner.pipeline.export import (
    AppExport,
    CredentialSink,
    DetailJob,
    Exporter,
    ExportJob,
    PageJob,
)
from provisioner.pipeline.kinds.apps import TASK_RUNNING, AppView
from provisioner.pipeline.kinds.base import WorkContext
from provisioner.pipeline.polling import Poller
from provisioner.pipeline.progress import Stage

__all__ = ["AppMachine", "Engine"]

logger = structlog.get_logger("provisioner.pipeline")

# Writes that end a stage, for the report's per-stage durations.
_STAGE_ENDS = {
    "check_passed": "check",
    "record_check_failed": "check",
    "record_create_result": "create",
    "record_random_result": "create",
}
_CREATE_STARTED = frozenset(
    {ApplyState.CREATE, ApplyState.CREATE_SUCCESS, ApplyState.CREATE_FAILED}
)


class AppMachine(Protocol):
    """What the engine needs of a kind whose work is applications."""

    def step(self, view: AppView, event: m.Event) -> list[m.Action]: ...

    def view(self, app_id: int) -> AppView: ...

    def export_plan(self, app: AppRecord) -> AppExport | None:
        """The pages to fetch, or ``None`` if the application has nothing to export."""
        ...

    def totals(self) -> Mapping[Stage, int]:
        """Progress totals recounted from the journal."""
        ...


class Engine:
    """Drives every application of one run to export (see the module docstring)."""

    def __init__(self, ctx: WorkContext, machine: AppMachine, sink: CredentialSink) -> None:
        self.ctx = ctx
        self.machine = machine
        self.sink = sink
        self.journal = ctx.journal
        self.product_key = ctx.spec.product_key
        self.tuning = ctx.spec.tuning
        status_qps = qps_for("QueryBatchRegisterDeviceStatus", ctx.spec.api.qps_scale)
        self.poller = Poller(self.tuning, status_qps)
        self.exporter = Exporter(
            ctx.client,
            sink,
            self.product_key,
            on_app_done=self._exported,
            on_missing=self._missing,
        )
        self._pages: MemoryObjectSendStream[ExportJob] | None = None
        self._details: MemoryObjectSendStream[ExportJob] | None = None
        self._drivers: TaskGroup | None = None
        # One BatchRegisterDevice in flight at a time: a crash can then leave at most
        # one application without its answer (the call rate is 10 QPS either way).
        self._register_lock = anyio.Lock()

    # --- the whole run ---------------------------------------------------------------

    async def run(self) -> None:
        """Drive every unfinished application and export everything; returns when done."""
        # Pages and single-device look-ups have budgets of their own: two queues, so a
        # long run of adopted devices cannot hold the pages back (or the reverse).
        pages, page_jobs = anyio.create_memory_object_stream[ExportJob](math.inf)
        details, detail_jobs = anyio.create_memory_object_stream[ExportJob](math.inf)
        async with anyio.create_task_group() as workers:
            for _ in range(self.tuning.page_workers):
                workers.start_soon(self.exporter.worker, page_jobs.clone())
            for _ in range(self.tuning.detail_workers):
                workers.start_soon(self.exporter.worker, detail_jobs.clone())
            page_jobs.close()
            detail_jobs.close()
            async with pages, details:
                self._pages, self._details = pages, details
                for device in self.journal.devices(self.ctx.run_id, states=("adopted",)):
                    details.send_nowait(DetailJob(device.device_name, device.nickname))
                async with anyio.create_task_group() as drivers:
                    self._drivers = drivers
                    for app in self.journal.applications(self.ctx.run_id):
                        drivers.start_soon(self.drive, app.app_id, True)
            self._pages = self._details = None
        self.ctx.stages.end("export")

    async def drive(self, app_id: int, resumed: bool) -> None:
        """Take one application from its journaled state to queued export."""
        event: m.Event | None = m.Begin(resumed)
        while event is not None:
            actions = self.machine.step(self.machine.view(app_id), event)
            event = None
            for action in actions:
                answer = await self._perform(app_id, action)
                if answer is not None:
                    event = answer

    # --- performing ------------------------------------------------------------------

    async def _perform(self, app_id: int, action: m.Action) -> m.Event | None:
        if isinstance(action, m.SubmitCheck):
            return await self._submit_check(app_id)
        if isinstance(action, m.SubmitCreate):
            return await self._submit_create(app_id)
        if isinstance(action, m.SubmitRegister):
            return await self._submit_register(app_id, action.size)
        if isinstance(action, m.Ask):
            app = self.journal.application(app_id)
            return m.Status(await self._status(app))
        if isinstance(action, m.Poll):
            app = self.journal.application(app_id)
            status = await self.poller.until(
                lambda: self._status(app), action.finals, fresh=action.fresh
            )
            return m.Status(status)
        if isinstance(action, m.Explain):
            return self._explain(action)
        if isinstance(action, m.Export):
            self._queue_export(self.journal.application(app_id))
            return None
        self._now(action)
        return None

    def _now(self, action: m.Action) -> None:
        """Perform an action that neither waits nor asks anything."""
        if isinstance(action, m.Write):
            self._write(action)
        elif isinstance(action, m.Advance):
            self.ctx.progress.advance(action.stage, action.count)  # type: ignore[arg-type]
        elif isinstance(action, m.Total):
            for stage, total in self.machine.totals().items():
                self.ctx.progress.set_total(stage, total)
        elif isinstance(action, m.Note):
            log = logger.warning if action.warning else logger.info
            log(action.event, run_id=self.ctx.run_id, **action.fields)
        elif isinstance(action, m.Adopt):
            assert self._details is not None
            nicknames = {d.device_name: d.nickname for d in self.journal.devices(self.ctx.run_id)}
            for name in action.names:
                self._details.send_nowait(DetailJob(name, nicknames.get(name)))
        elif isinstance(action, m.Fail):
            raise action.error
        else:
            raise TypeError(f"the engine cannot perform {action!r} here")

    def _write(self, action: m.Write) -> Any:
        result = getattr(self.journal, action.name)(**action.args)
        if action.name in _STAGE_ENDS:
            self.ctx.stages.end(_STAGE_ENDS[action.name])
        children = (
            [result]
            if isinstance(result, AppRecord)
            else [r for r in result if isinstance(r, AppRecord)]
            if isinstance(result, list)
            else []
        )
        for child in children:
            assert self._drivers is not None
            self._drivers.start_soon(self.drive, child.app_id, False)
        return result

    async def _status(self, app: AppRecord) -> Any:
        assert app.apply_id is not None
        return await self.ctx.client.query_batch_register_device_status(
            self.product_key, app.apply_id
        )

    async def _submit_check(self, app_id: int) -> m.Event:
        devices = self.journal.app_devices(app_id)
        self.ctx.stages.start("check")
        names = [(d.device_name, d.nickname) for d in devices]
        try:
            result = await self.ctx.client.batch_check_device_names(self.product_key, names)
        except TerminalApiError as exc:
            return m.Refused(exc)
        return m.Accepted(str(result.apply_id))

    async def _submit_create(self, app_id: int) -> m.Event:
        app = self.journal.application(app_id)
        apply_id = app.apply_id
        assert apply_id is not None
        self.ctx.stages.start("create")

        async def ask() -> bool:
            return (await self._status(app)).status in _CREATE_STARTED

        sent = await submit(
            lambda: self.ctx.once_client.batch_register_device_with_apply_id(
                self.product_key, apply_id
            ),
            policy=self.ctx.once_client.retry_policy,
            attempts=self.tuning.create_attempts,
            ask=ask,
        )
        # Already running: an earlier submission of this process or another arrived.
        if sent.refused is not None and sent.refused.code != TASK_RUNNING:
            raise sent.refused
        return m.Created()

    async def _submit_register(self, app_id: int, size: int) -> m.Event:
        """Intent, then BatchRegisterDevice, seen through once the intent is written."""
        async with self._register_lock:
            # A run being cancelled (another task failed) stops here, before the intent;
            # once the intent is written the call is seen through, so that its ApplyId
            # is journaled rather than left to be reported lost.
            await anyio.lowlevel.checkpoint()
            with anyio.CancelScope(shield=True):
                if self.journal.application(app_id).state == "PLANNED":
                    self.journal.intend_register(app_id)
                self.ctx.stages.start("create")
                try:
                    sent = await submit(
                        lambda: self.ctx.once_client.batch_register_device(self.product_key, size),
                        policy=self.ctx.once_client.retry_policy,
                        attempts=1,
                    )
                except (ThrottledError, TlsError) as exc:
                    return m.Refused(exc)  # it never ran: nothing was registered
                except NoAnswerError as exc:
                    return m.Unanswered(f"{type(exc).__name__}: {exc}")  # it may have run
                if sent.refused is not None:
                    return m.Refused(sent.refused)
                if sent.answer is None:
                    error = sent.error
                    why = f"{type(error).__name__}: {error}" if error else "no answer"
                    return m.Unanswered(why)
                return m.Accepted(str(sent.answer.apply_id))
        raise AssertionError("not reached: a shielded scope is never cancelled")

    def _explain(self, action: m.Explain) -> m.Event:
        run = self.journal.get_run(self.ctx.run_id)
        params = run.params
        scope = Scope(self.product_key, str(params.get("endpoint")), params.get("iot_instance_id"))
        creators = self.journal.creators(scope, run.run_key, set(action.messages))
        clauses = {
            name: f"; created by run {other.run_id}, credentials in {other.params.get('out')}"
            for name, other in creators.items()
        }
        return m.Explained(action.messages, clauses)

    # --- export ----------------------------------------------------------------------

    def _queue_export(self, app: AppRecord) -> None:
        assert self._pages is not None
        export = self.machine.export_plan(app)
        if export is None:
            self.journal.mark_exported(app.app_id, detail="nothing to export")
            return
        self.ctx.stages.start("export")
        for number in range(1, export.planned + 1):
            self._pages.send_nowait(PageJob(export, number))

    def _exported(self, export: AppExport) -> None:
        assert export.app_id is not None
        self.ctx.stages.end("export")
        view = self.machine.view(export.app_id)
        for action in self.machine.step(view, m.Exported(frozenset(export.seen))):
            self._now(action)

    def _missing(self, name: str, reason: str) -> None:
        self.journal.reject_missing(
            self.ctx.run_id,
            name,
            f"failed the check and does not exist in product {self.product_key} ({reason})",
        )
        for stage, total in self.machine.totals().items():
            self.ctx.progress.set_total(stage, total)
