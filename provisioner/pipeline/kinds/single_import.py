"""``import``: migrate devices with their existing secrets (ImportDevice, one per call).

The input (:mod:`provisioner.inputs`) is validated by ImportDevice's rules before any
call; then :class:`~provisioner.pipeline.device_engine.DeviceEngine` sends every device
not yet imported, each decided by :func:`~provisioner.pipeline.kinds.devices.import_step`.
A re-run imports only what is missing. The output is the encrypted credentials file
with an ``Sn`` column; secrets come from the input (held in memory only) and are never
journaled or logged.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from provisioner.config import ApiSettings
from provisioner.errors import ExportIncompleteError
from provisioner.inputs import ImportTable, read_import
from provisioner.journal import DeviceRow, RejectedRow, RunRecord
from provisioner.journal.protocol import JournalStore
from provisioner.output import IMPORT_COLUMNS, Encryption
from provisioner.pipeline.device_engine import DeviceEngine, DeviceInput
from provisioner.pipeline.execute import execute, guard_paths, run_identity
from provisioner.pipeline.finish import RunOutcome, input_refused
from provisioner.pipeline.kinds.base import (
    KindBase,
    ResumeOptions,
    RunSpec,
    WorkContext,
    register,
    spec_for,
)
from provisioner.pipeline.kinds.devices import EXISTS_REASON, import_step
from provisioner.pipeline.progress import Progress
from provisioner.pipeline.report import Counts, StageClock
from provisioner.pipeline.settings import ExistingPolicy, OutputSettings, check_existing

__all__ = ["IMPORT_KIND", "ImportKind", "ImportSettings", "import_devices", "import_key"]

IMPORT_KIND = "import"


@dataclass(frozen=True, slots=True, kw_only=True)
class ImportSettings(OutputSettings):
    """One ``provisioner import``."""

    input: Path
    encryption: Encryption
    api: ApiSettings
    identity: Path | None = None
    existing: ExistingPolicy = "fail"
    skip_invalid: bool = False

    def __post_init__(self) -> None:
        OutputSettings.__post_init__(self)
        check_existing(self.existing)


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
    refused = input_refused(
        table.rejected,
        table.total,
        table.valid.height,
        settings.input,
        settings.out,
        skip_invalid=settings.skip_invalid,
    )
    if refused is not None:
        return refused
    spec = spec_for(
        settings,
        kind=IMPORT_KIND,
        key=import_key(table, settings),
        params=_params(settings),
        columns=IMPORT_COLUMNS,
    )
    return await execute(
        ImportKind(spec, settings, table),
        stages=stages,
        transport=transport,
        progress=progress,
        expected_run_id=expected_run_id,
    )


async def _resume(run: RunRecord, options: ResumeOptions) -> RunOutcome:
    # An import needs its input again: the secrets are in it, never in the journal.
    params = run.params
    identity = params.get("identity")
    settings = ImportSettings(
        **options.recorded(run),
        input=Path(params["input"]),
        identity=Path(identity) if identity else None,
        existing=params.get("existing", "fail"),
        skip_invalid=bool(params.get("skip_invalid", False)),
    )
    settings = options.adjust(settings)
    return await import_devices(
        settings, transport=options.transport, progress=options.reporter, expected_run_id=run.run_id
    )


register(IMPORT_KIND, _resume)


class ImportKind(KindBase):
    """Devices imported with their existing secrets, one call each."""

    def __init__(self, spec: RunSpec, settings: ImportSettings, table: ImportTable) -> None:
        super().__init__(spec)
        self.settings = settings
        self.table = table
        self._engine: DeviceEngine | None = None

    def names(self) -> list[str]:
        return [str(n) for n in self.table.valid["DeviceName"].to_list()]

    def rewrites(self) -> list[str]:
        return self.names() if self.settings.existing == "adopt" else []

    def reopen(self, journal: JournalStore, run: RunRecord) -> int:
        """A run done with ``--existing fail`` and run again with ``adopt``: the devices
        it rejected as existing are looked up this time (and only those)."""
        if self.settings.existing != "adopt":
            return 0
        return journal.reopen_existing(run.run_id, EXISTS_REASON)

    def plan(self, journal: JournalStore) -> RunRecord:
        valid, rejected = self.table.valid, self.table.rejected
        return journal.plan_run(
            run_key=self._spec.key,
            kind=IMPORT_KIND,
            product_key=self._spec.product_key,
            params=self._spec.params,
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

    def start_progress(self, progress: Progress, journal: JournalStore, run_id: str) -> None:
        counts = journal.device_counts(run_id)
        live = sum(counts.get(s, 0) for s in ("pending", "importing", "created", "adopted"))
        progress.set_total("validated", self.table.total)
        progress.advance("validated", self.table.total)
        progress.set_total("created", live)
        progress.advance("created", counts.get("created", 0) + counts.get("adopted", 0))
        progress.set_total("exported", live)

    async def work(self, ctx: WorkContext) -> None:
        inputs = {
            line: DeviceInput(secret, nickname, sn)
            for line, secret, nickname, sn in self.table.valid.select(
                "line", "DeviceSecret", "Nickname", "Sn"
            ).iter_rows()
        }
        adopt = self.settings.existing == "adopt"
        product_key = ctx.spec.product_key
        self._engine = DeviceEngine(
            ctx,
            lambda view, event: import_step(view, event, product_key=product_key, adopt=adopt),
            inputs,
        )
        await self._engine.run()

    def verify(self, ctx: WorkContext) -> Counts:
        """Every imported or adopted device is in the output once; none is left pending."""
        assert self._engine is not None
        counts = ctx.journal.device_counts(ctx.run_id)
        left = counts.get("pending", 0) + counts.get("importing", 0)
        if left:
            raise ExportIncompleteError(
                f"run {ctx.run_id}: {left} devices were not imported; re-run the command"
            )
        wanted = {
            d.device_name for d in ctx.journal.devices(ctx.run_id, states=("created", "adopted"))
        }
        missing = wanted - self._engine.written
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
            exported=len(self._engine.written),
            adopted=counts.get("adopted", 0),
            failed=counts.get("failed", 0),
        )
