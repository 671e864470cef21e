"""The engine of one-call-per-device work (ImportDevice): what the device steps decide.

Many calls are in flight under the operation's QPS limit (``import_workers``). Before
a group of devices is handed to the workers, their intent (``importing``) is written in
one transaction; results are buffered and written a group at a time (every
``_FLUSH_SECONDS`` or ``_GROUP * 4`` results), so the journal costs a transaction per
group, not per device. A device's output row is written as soon as it is known, with
the input's secret (held in memory only).

Each device is driven like an application is by :class:`~provisioner.pipeline.engine.Engine`::

    event = Begin(resumed); while event: actions = step(view, event); event = perform(actions)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import anyio
import structlog
from anyio.abc import ObjectReceiveStream

from provisioner.api.retry import submit
from provisioner.errors import JournalError, TerminalApiError
from provisioner.journal import DeviceRecord, ImportResult
from provisioner.pipeline.export import NOT_FOUND_CODES
from provisioner.pipeline.kinds.base import WorkContext
from provisioner.pipeline.kinds.devices import (
    CREATE_FAILED,
    DeviceAction,
    DeviceEvent,
    DeviceView,
    Emit,
    Imported,
    Inspect,
    Record,
    SubmitImport,
)
from provisioner.pipeline.machine import Begin, Fail, Found, Refused

__all__ = ["DeviceEngine", "DeviceInput"]

logger = structlog.get_logger("provisioner.pipeline")

_GROUP = 50
_FLUSH_SECONDS = 0.2


@dataclass(frozen=True, slots=True)
class DeviceInput:
    """What the input file says of one device (kept in memory only)."""

    secret: str = field(repr=False)
    nickname: str | None
    sn: str | None


Step = Callable[[DeviceView, DeviceEvent], list[DeviceAction]]


class DeviceEngine:
    """Sends every device not yet done, many at once, and writes the output rows."""

    def __init__(self, ctx: WorkContext, step: Step, inputs: Mapping[int, DeviceInput]) -> None:
        self.ctx = ctx
        self.step = step
        self.inputs = inputs
        self.product_key = ctx.spec.product_key
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
            self._emit(device, Emit(device.iot_id, device.nickname))
        todo = ctx.journal.devices(ctx.run_id, states=("pending", "importing"))
        self.live = len(self.written) + len(todo)
        workers_count = ctx.spec.tuning.import_workers
        send, receive = anyio.create_memory_object_stream[DeviceRecord](workers_count)
        async with anyio.create_task_group() as background:
            background.start_soon(self._flusher)
            async with anyio.create_task_group() as workers:
                for _ in range(workers_count):
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
                await self.drive(device)

    async def drive(self, device: DeviceRecord) -> None:
        given = self.inputs[device.line]
        # Sent by an earlier process (crashed before its answer was journaled): an
        # "already exists" may be our own doing.
        ours = device.state == "importing"
        event: DeviceEvent | None = Begin(resumed=ours)
        while event is not None:
            view = DeviceView(device, given.secret, given.nickname, ours)
            actions = self.step(view, event)
            event = None
            for action in actions:
                if isinstance(action, SubmitImport):
                    event, uncertain = await self._import(device, given)
                    ours = ours or uncertain
                elif isinstance(action, Inspect):
                    event = await self._inspect(device)
                elif isinstance(action, Record):
                    self._record(device, action)
                elif isinstance(action, Emit):
                    self._emit(device, action)
                elif isinstance(action, Fail):
                    raise action.error

    async def _import(self, device: DeviceRecord, given: DeviceInput) -> tuple[DeviceEvent, bool]:
        client = self.ctx.once_client
        sent = await submit(
            lambda: client.import_device(
                self.product_key, device.device_name, given.secret, given.nickname, given.sn
            ),
            policy=client.retry_policy,
            attempts=self.ctx.spec.api.max_attempts,
            resend_unasked=True,
            resend_codes=(CREATE_FAILED,),
        )
        if sent.refused is not None:
            return Refused(sent.refused), sent.uncertain
        assert sent.answer is not None
        return Imported(sent.answer), sent.uncertain

    async def _inspect(self, device: DeviceRecord) -> DeviceEvent:
        try:
            detail = await self.ctx.client.query_device_detail(
                product_key=self.product_key, device_name=device.device_name
            )
        except TerminalApiError as exc:
            if exc.code not in NOT_FOUND_CODES:
                raise
            return Found(None, exc.code)
        return Found(detail)

    def _record(self, device: DeviceRecord, action: Record) -> None:
        self.results.append(ImportResult(device.line, action.state, action.reason, action.iot_id))  # type: ignore[arg-type]
        if action.state in ("rejected", "failed"):
            logger.info(
                "import.device_not_imported",
                run_id=self.ctx.run_id,
                device=device.device_name,
                state=action.state,
                reason=action.reason,
            )
            self.live -= 1
            self.ctx.progress.set_total("created", self.live)
            self.ctx.progress.set_total("exported", self.live)
        else:
            self.ctx.progress.advance("created", 1)
        if len(self.results) >= _GROUP * 4:
            self._flush()

    def _emit(self, device: DeviceRecord, action: Emit) -> None:
        if device.device_name in self.written:
            return
        given = self.inputs[device.line]
        self.written.add(device.device_name)
        row = (
            self.product_key,
            device.device_name,
            given.secret,
            action.iot_id,
            action.nickname or "",
            "",
            given.sn or "",
        )
        self.ctx.writer.write([row])
        self.ctx.progress.advance("exported", 1)
