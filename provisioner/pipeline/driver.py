"""The engine of one run: a coroutine per application, a pool of export workers.

Each application is driven through its states by one task::

    submit check -> poll -> CHECK_SUCCESS -> submit create -> poll -> CREATE_SUCCESS/FAILED
                                                                     -> queue its pages

All applications start at once (the limiter paces BatchCheckDeviceNames at its 10
QPS), and a pool of page workers takes (application, page) jobs from one queue, so
the pages of the first created application are fetched while the others are still
being checked or created: QueryPageByApplyId's budget, the bound of the whole run,
is busy from the first created application to the last page.

Every call goes through one rate limiter shared by two clients: the normal one, whose
policy retries transient errors, and one that never retries, for
BatchRegisterDeviceWithApplyId. A lost answer of that call is followed by a status
query, not by a blind second submission: an application is submitted for creation
once (``iot.device.CreateDeviceTaskIsRunning`` counts as accepted).

The journal records an intent before each call that creates something on the server
and the result with its state change after; resume starts from those records (see
:meth:`Driver.drive`). Credentials go from the pages straight into the writer.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import anyio
import structlog
from anyio.abc import TaskGroup
from anyio.streams.memory import MemoryObjectSendStream

from provisioner.api import IotClient
from provisioner.api import retry as retry_mod
from provisioner.api.limits import qps_for
from provisioner.api.models import ApplyState, ApplyStatus
from provisioner.errors import (
    JournalError,
    TerminalApiError,
    ThrottledError,
    TransientApiError,
    TransportError,
)
from provisioner.journal import EXPORTABLE_STATES, TERMINAL_STATES, AppRecord, Journal, Lease
from provisioner.naming import device_name_problem, nickname_problem
from provisioner.pipeline.export import (
    AppExport,
    CredentialSink,
    DetailJob,
    Exporter,
    ExportJob,
    PageJob,
)
from provisioner.pipeline.progress import Progress
from provisioner.pipeline.report import StageClock
from provisioner.pipeline.session import keep_lease
from provisioner.pipeline.settings import Tuning

__all__ = ["CHECK_FINAL", "CREATE_FINAL", "Driver"]

logger = structlog.get_logger("provisioner.pipeline")

CHECK_FINAL = frozenset({ApplyState.CHECK_SUCCESS, ApplyState.CHECK_FAILED})
CREATE_FINAL = frozenset({ApplyState.CREATE_SUCCESS, ApplyState.CREATE_FAILED})
_CREATE_STARTED = frozenset({ApplyState.CREATE}) | CREATE_FINAL

_COUNT_EXCEEDED = "iot.device.DeviceCountExceeded"
_TASK_RUNNING = "iot.device.CreateDeviceTaskIsRunning"
#: BatchCheckDeviceNames refusing names outright (the local validation should prevent it).
_MALFORMED = frozenset(
    {
        "iot.device.InvalidFormattedDeviceNameInNameList",
        "iot.device.InvalidFormattedDeviceName",
        "iot.device.InvalidDeviceNickNameExisted",
        "iot.device.RepeatedDeviceName",
    }
)


class Driver:
    """Drives every application of one run to export, through ``client``.

    ``once_client`` shares ``client``'s limiter but does not retry (for creation
    submissions). ``send`` is set while :meth:`run` works.
    """

    def __init__(
        self,
        *,
        run_id: str,
        product_key: str,
        existing: str,
        journal: Journal,
        lease: Lease,
        client: IotClient,
        once_client: IotClient,
        sink: CredentialSink,
        progress: Progress,
        stages: StageClock,
        tuning: Tuning,
        qps_scale: float,
    ) -> None:
        self.run_id = run_id
        self.product_key = product_key
        self.adopt = existing == "adopt"
        self.journal = journal
        self.lease = lease
        self.client = client
        self.once = once_client
        self.sink = sink
        self.progress = progress
        self.stages = stages
        self.tuning = tuning
        self.status_qps = qps_for("QueryBatchRegisterDeviceStatus", qps_scale)
        self.polling = 0
        self.exporter = Exporter(
            client,
            sink,
            product_key,
            on_app_done=self._exported,
            on_missing=self._adopt_missing,
        )
        self._send: MemoryObjectSendStream[ExportJob] | None = None
        self._details: MemoryObjectSendStream[ExportJob] | None = None
        self._drivers: TaskGroup | None = None
        # Set when any application reaches a final state: applications submitted
        # together finish together, so the others are polled at once, not at their
        # next (possibly backed-off) turn.
        self._wake = anyio.Event()
        self._wakes_left = 0

    # --- the whole run ---------------------------------------------------------------

    async def run(self) -> None:
        """Drive every unfinished application and export everything; returns when done."""
        async with anyio.create_task_group() as beat:
            beat.start_soon(
                keep_lease, self.journal, self.run_id, self.lease, self.tuning.heartbeat_seconds
            )
            try:
                await self._pipeline()
            finally:
                beat.cancel_scope.cancel()

    async def _pipeline(self) -> None:
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
                self._send = pages
                self._details = details
                for device in self.journal.devices(self.run_id, states=("adopted",)):
                    details.send_nowait(DetailJob(device.device_name, device.nickname))
                async with anyio.create_task_group() as drivers:
                    self._drivers = drivers
                    for app in self.journal.applications(self.run_id):
                        if app.state not in TERMINAL_STATES:
                            drivers.start_soon(self.drive, app.app_id, True)
            self._send = None
            self._details = None
        self.stages.end("export")

    def _spawn(self, app: AppRecord) -> None:
        assert self._drivers is not None
        self._drivers.start_soon(self.drive, app.app_id, False)

    # --- one application -------------------------------------------------------------

    async def drive(self, app_id: int, resumed: bool) -> None:
        """Take application ``app_id`` from its journaled state to queued export.

        Resume, by state: PLANNED / INTENT_CHECK submit the check (again: an orphan
        check on the server is harmless); CHECK polls; CHECK_SUCCESS submits creation;
        INTENT_CREATE / CREATE ask the status first and submit only if the server is
        still at CHECK_SUCCESS; CREATE_* / DONE export from page 1.
        """
        app = self.journal.application(app_id)
        if app.state in ("PLANNED", "INTENT_CHECK"):
            if not await self._submit_check(app):
                return
            app = self.journal.application(app_id)
            resumed = False
        if app.state == "CHECK":
            status = await self._wait(app, CHECK_FINAL, fresh=not resumed)
            if not self._checked(app, status):
                return
            app = self.journal.application(app_id)
        if app.state == "CHECK_SUCCESS":
            self.journal.set_state(app_id, "INTENT_CREATE")
            await self._submit_create(app)
            app = self.journal.application(app_id)
            resumed = False
        elif app.state == "INTENT_CREATE":
            await self._reconcile_create(app)
            app = self.journal.application(app_id)
        if app.state == "CREATE":
            status = await self._wait(app, CREATE_FINAL, fresh=not resumed)
            self._created(app, status)
            app = self.journal.application(app_id)
        if app.state in EXPORTABLE_STATES:
            self._queue_export(app)

    async def _submit_check(self, app: AppRecord) -> bool:
        """BatchCheckDeviceNames for the application's pending names; False if the names
        went to other applications instead (split, or names refused outright)."""
        devices = self.journal.app_devices(app.app_id)
        if not devices:
            raise JournalError(f"application {app.app_id} of run {self.run_id} has no names")
        if app.state == "PLANNED":
            self.journal.set_state(app.app_id, "INTENT_CHECK")
        self.stages.start("check")
        names = [(d.device_name, d.nickname) for d in devices]
        try:
            result = await self.client.batch_check_device_names(self.product_key, names)
        except TerminalApiError as exc:
            if exc.code == _COUNT_EXCEEDED and len(devices) > 1:
                children = self.journal.record_split(app.app_id, detail=exc.code)
                logger.info(
                    "run.chunk_split",
                    run_id=self.run_id,
                    app=app.app_id,
                    size=len(devices),
                    parts=[c.size for c in children],
                )
                for child in children:
                    self._spawn(child)
                return False
            if exc.code in _MALFORMED:
                refused = _local_problems(devices)
                if not refused:
                    raise
                reasons = {
                    n: f"{r} (BatchCheckDeviceNames: {exc.code})" for n, r in refused.items()
                }
                self._refused(app, reasons, adopt=False, detail=exc.code)
                return False
            raise
        self.journal.record_check_submitted(app.app_id, str(result.apply_id))
        logger.info(
            "run.chunk_check_submitted",
            run_id=self.run_id,
            app=app.app_id,
            chunk=app.chunk_no,
            apply_id=result.apply_id,
            size=len(devices),
        )
        return True

    def _checked(self, app: AppRecord, status: ApplyStatus) -> bool:
        """Record the end of the check; True if the application goes on to creation."""
        if status.status == ApplyState.CHECK_SUCCESS:
            self.journal.set_state(app.app_id, "CHECK_SUCCESS")
            self.progress.advance("checked", app.size)
            self.stages.end("check")
            logger.info("run.chunk_checked", run_id=self.run_id, app=app.app_id, size=app.size)
            return True
        if status.status != ApplyState.CHECK_FAILED:
            raise JournalError(
                f"application {app.apply_id} is {status.status} on the server but CHECK in "
                "the journal"
            )
        pending = {d.device_name for d in self.journal.app_devices(app.app_id)}
        details = {d.device_name: d.error_message for d in status.invalid_details}
        listed = (set(status.invalid_names) | set(details)) & pending
        if not listed:
            raise TerminalApiError(
                "QueryBatchRegisterDeviceStatus",
                "CheckFailedWithoutNames",
                f"application {app.apply_id} failed the check without naming one of its devices",
            )
        earlier = self._created_elsewhere(listed)
        reasons = {
            name: f"{details.get(name) or 'failed the check'} "
            f"(BatchCheckDeviceNames, product {self.product_key})" + earlier.get(name, "")
            for name in listed
        }
        self._refused(app, reasons, adopt=self.adopt, detail=f"{len(listed)} names refused")
        return False

    def _created_elsewhere(self, names: set[str]) -> dict[str, str]:
        """For names an earlier run of this journal created: where their credentials went."""
        run = self.journal.get_run(self.run_id)
        params = run.params
        creators = self.journal.creators(
            self.product_key,
            str(params.get("endpoint")),
            params.get("iot_instance_id"),
            run.run_key,
            names,
        )
        return {
            name: f"; created by run {other.run_id}, credentials in {other.params.get('out')}"
            for name, other in creators.items()
        }

    def _refused(
        self, app: AppRecord, reasons: Mapping[str, str], *, adopt: bool, detail: str
    ) -> None:
        """Reject (or adopt) the refused names; the rest of the application goes on anew."""
        child = self.journal.record_check_failed(
            app.app_id, reasons, adopt=reasons.keys() if adopt else (), detail=detail
        )
        self.progress.advance("checked", len(reasons))
        self.progress.set_total("created", self._created_total())
        logger.info(
            "run.chunk_check_failed",
            run_id=self.run_id,
            app=app.app_id,
            apply_id=app.apply_id,
            refused=len(reasons),
            adopted=len(reasons) if adopt else 0,
            resubmitted=child.size if child else 0,
        )
        if adopt:
            assert self._send is not None
            nicknames = {
                d.device_name: d.nickname for d in self.journal.app_devices(app.app_id, None)
            }
            for name in reasons:
                self._send.send_nowait(DetailJob(name, nicknames.get(name)))
        self.progress.set_total("exported", self._exported_total())
        if child is not None:
            self._spawn(child)

    async def _submit_create(self, app: AppRecord) -> None:
        """BatchRegisterDeviceWithApplyId, at most once per application in effect."""
        assert app.apply_id is not None
        self.stages.start("create")
        attempts = self.tuning.create_attempts
        for attempt in range(1, attempts + 1):
            try:
                await self.once.batch_register_device_with_apply_id(self.product_key, app.apply_id)
                break
            except TerminalApiError as exc:
                if exc.code != _TASK_RUNNING:
                    raise
                break
            except ThrottledError:
                # Refused before it ran, so the policy resent it for as long as the
                # run's deadline allows; past that the run stops, resumable.
                raise
            except (TransientApiError, TransportError) as exc:
                # Not transient: a silent endpoint or a failed handshake; resuming asks.
                if attempt == attempts or not exc.transient:
                    raise
                # The call may have taken effect with its answer lost: ask before acting.
                status = await self.client.query_batch_register_device_status(
                    self.product_key, app.apply_id
                )
                if status.status in _CREATE_STARTED:
                    break
                await self._pause(self.tuning.create_retry_wait * 2 ** (attempt - 1))
        self.journal.set_state(app.app_id, "CREATE", detail="creation submitted")
        logger.info(
            "run.chunk_create_submitted", run_id=self.run_id, app=app.app_id, apply_id=app.apply_id
        )

    async def _reconcile_create(self, app: AppRecord) -> None:
        """INTENT_CREATE after a restart: the submission may or may not have arrived."""
        assert app.apply_id is not None
        status = await self.client.query_batch_register_device_status(
            self.product_key, app.apply_id
        )
        logger.info(
            "run.chunk_reconciled", run_id=self.run_id, app=app.app_id, server=status.status
        )
        if status.status == ApplyState.CHECK_SUCCESS:
            await self._submit_create(app)
        elif status.status == ApplyState.CREATE:
            self.journal.set_state(app.app_id, "CREATE", detail="found CREATE on resume")
        elif status.status in CREATE_FINAL:
            self._created(app, status)
        else:
            raise JournalError(
                f"application {app.apply_id} is {status.status} on the server but "
                "INTENT_CREATE in the journal"
            )

    def _created(self, app: AppRecord, status: ApplyStatus) -> None:
        if status.status not in CREATE_FINAL:
            raise JournalError(
                f"application {app.apply_id} is {status.status} on the server while creating"
            )
        failed: set[str] = set()
        reason = ""
        if status.status == ApplyState.CREATE_FAILED:
            details = {d.device_name: d.error_message for d in status.invalid_details}
            failed = set(status.invalid_names) | set(details)
            messages = sorted({m for m in details.values() if m})
            reason = (messages[0] if len(messages) == 1 else "creation failed") + (
                " (BatchRegisterDeviceWithApplyId CREATE_FAILED, retried once)"
            )
        retry = app.attempt == 0
        child = self.journal.record_create_result(
            app.app_id, failed, retry=retry, reason=reason, detail=status.status
        )
        done = self.journal.app_devices(app.app_id, ("created",))
        self.progress.advance("created", len(done))
        self.stages.end("create")
        logger.info(
            "run.chunk_created",
            run_id=self.run_id,
            app=app.app_id,
            apply_id=app.apply_id,
            status=status.status,
            created=len(done),
            failed=len(failed),
            retried=bool(failed) and retry,
        )
        if failed and not retry:
            self.progress.set_total("created", self._created_total())
            self.progress.set_total("exported", self._exported_total())
        if child is not None:
            self._spawn(child)

    async def _wait(self, app: AppRecord, finals: frozenset[str], *, fresh: bool) -> ApplyStatus:
        """Poll the application's status until it is one of ``finals``."""
        assert app.apply_id is not None
        tuning = self.tuning
        delay = tuning.poll_initial
        started = anyio.current_time()
        self.polling += 1
        try:
            if fresh:
                await self._nap(delay)
            while True:
                status = await self.client.query_batch_register_device_status(
                    self.product_key, app.apply_id
                )
                if status.status in finals:
                    self._signal()
                    return status
                if anyio.current_time() - started >= tuning.poll_fast_seconds:
                    delay = min(delay * tuning.poll_factor, tuning.poll_max)
                # Together, the applications polling stay within a share of the budget.
                floor = self.polling / (self.status_qps * tuning.status_share)
                await self._nap(max(delay, floor))
        finally:
            self.polling -= 1

    def _signal(self) -> None:
        # At most one budget-share of applications answer a signal, so a string of
        # applications finishing one after another cannot flood the status budget.
        self._wakes_left = max(1, int(self.status_qps * self.tuning.status_share))
        self._wake.set()
        self._wake = anyio.Event()

    async def _nap(self, seconds: float) -> None:
        """Sleep ``seconds``, or less if another application reaches a final state."""
        deadline = anyio.current_time() + seconds
        while (left := deadline - anyio.current_time()) > 0:
            event = self._wake
            with anyio.move_on_after(left):
                await event.wait()
            if not event.is_set():
                return
            if self._wakes_left > 0:
                self._wakes_left -= 1
                return

    async def _pause(self, seconds: float) -> None:
        await anyio.sleep(0.0 if retry_mod.is_testing() else seconds)

    # --- export ----------------------------------------------------------------------

    def _queue_export(self, app: AppRecord) -> None:
        assert app.apply_id is not None
        assert self._send is not None
        created = self.journal.app_devices(app.app_id, ("created",))
        if not created:
            self.journal.set_state(app.app_id, "DONE", detail="nothing to export")
            return
        export = AppExport.for_devices(
            app.apply_id, {d.device_name: d.nickname for d in created}, app.app_id
        )
        self.stages.start("export")
        for number in range(1, export.planned + 1):
            self._send.send_nowait(PageJob(export, number))

    def _exported(self, export: AppExport) -> None:
        if export.app_id is not None:
            self.journal.set_state(export.app_id, "DONE", detail="exported")
        self.stages.end("export")
        logger.info(
            "run.chunk_exported",
            run_id=self.run_id,
            app=export.app_id,
            apply_id=export.apply_id,
            devices=len(export.seen),
        )

    def _adopt_missing(self, name: str, reason: str) -> None:
        self.journal.reject_device(
            self.run_id,
            name,
            f"failed the check and does not exist in product {self.product_key} ({reason})",
        )
        self.progress.set_total("exported", self._exported_total())

    # --- totals for the progress bars ------------------------------------------------

    def _counts(self) -> dict[str, int]:
        return self.journal.device_counts(self.run_id)

    def _created_total(self) -> int:
        counts = self._counts()
        return counts.get("pending", 0) + counts.get("created", 0)

    def _exported_total(self) -> int:
        counts = self._counts()
        return counts.get("pending", 0) + counts.get("created", 0) + counts.get("adopted", 0)


def _local_problems(devices: Any) -> dict[str, str]:
    """Names (and nicknames) our own rules refuse, with the reason."""
    problems: dict[str, str] = {}
    seen: set[str] = set()
    for device in devices:
        name, nickname = device.device_name, device.nickname
        problem = device_name_problem(name)
        if problem is None and nickname:
            problem = nickname_problem(nickname)
        if problem is None and name in seen:
            problem = "repeated DeviceName"
        seen.add(name)
        if problem is not None:
            problems[name] = problem
    return problems
