"""What every kind of run shares: find or plan it, take its lease, work it, commit it.

A kind of run (names checked then created, random names, imports) is a :class:`Job`:
it plans its run in the journal, sets the progress totals, builds the engine that
does the calls, and checks at the end that every device is in the output.
:func:`execute` does the rest, the same way for each:

* the run is looked up by its key: unknown, it is planned (one transaction);
  unfinished, it resumes; completed, nothing is called (``--force`` exports again);
* one process at a time (the lease; a second gets
  :class:`~provisioner.errors.RunInProgressError`);
* credentials stream into an encrypted temporary file, renamed into place by the
  commit (:mod:`provisioner.pipeline.finish`) only when the run is complete;
* a failure leaves the journal consistent, removes the temporary file and raises
  :class:`RunFailedError` (exit 1): the same command carries on.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator, Collection, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import anyio
import httpx
import structlog

from provisioner.api import IotClient, RetryPolicy, SlidingWindowLimiter
from provisioner.api import retry as retry_mod
from provisioner.config import ApiSettings
from provisioner.errors import (
    EXIT_FAILED,
    OutputError,
    ProvisionerError,
    RunInProgressError,
    RunStoppedError,
    TerminalApiError,
    UnfinishedRunError,
    UsageError,
)
from provisioner.journal import Journal, Lease, RunRecord, resolve_journal_path
from provisioner.output import (
    OUTPUT_COLUMNS,
    CredentialWriter,
    Encryption,
    OutputFormat,
    remove_stale_partials,
    report_path,
)
from provisioner.paths import refuse_overlaps, same_file
from provisioner.pipeline.finish import RunOutcome, already_completed, commit_run, finish_commit
from provisioner.pipeline.progress import Progress, make_progress
from provisioner.pipeline.report import Counts, StageClock, merge_retry_stats, rejects_path
from provisioner.pipeline.settings import ProgressMode, Tuning
from provisioner.stopping import note_resume

__all__ = [
    "Job",
    "RunFailedError",
    "Session",
    "WorkContext",
    "check_product",
    "commit",
    "execute",
    "first_error",
    "guard_paths",
    "keep_lease",
    "run_identity",
]

logger = structlog.get_logger("provisioner.pipeline")


class RunFailedError(RunStoppedError):
    """The run stopped on an error; the journal is consistent and the run can be resumed."""

    def __init__(self, run_id: str, cause: ProvisionerError) -> None:
        self.run_id = run_id
        self.cause = cause
        super().__init__(
            f"run {run_id} failed: {cause}; re-run the same command (or "
            f"`provisioner resume {run_id}`) to resume"
        )


@dataclass(frozen=True, slots=True)
class Session:
    """Where a run writes and how it calls: the part of the settings every kind shares."""

    kind: str
    key: str
    product_key: str
    params: Mapping[str, Any]
    out: Path
    encryption: Encryption
    api: ApiSettings
    fmt: OutputFormat = "csv"
    force: bool = False
    journal: str | None = None
    progress: ProgressMode = "auto"
    tuning: Tuning = field(default_factory=Tuning)
    columns: Sequence[str] = OUTPUT_COLUMNS


@dataclass(frozen=True, slots=True)
class WorkContext:
    """What a job's engine works with while the run holds its lease."""

    run_id: str
    session: Session
    journal: Journal
    lease: Lease
    client: IotClient
    once_client: IotClient
    writer: CredentialWriter
    progress: Progress
    stages: StageClock
    resumed: bool


class Job(Protocol):
    """One kind of run (see the module docstring)."""

    def names(self) -> Collection[str]:
        """The DeviceNames a new run would create (empty when the server picks them)."""
        ...

    def rewrites(self) -> Collection[str]:
        """The DeviceNames whose credentials the run writes even if they exist already
        (``--existing adopt``); empty otherwise."""
        ...

    def reopen(self, journal: Journal, run: RunRecord) -> int:
        """Put devices of a finished run back in play for new options (``--existing
        adopt``); how many."""
        ...

    def plan(self, journal: Journal, session: Session) -> RunRecord:
        """Create the run in the journal (it does not exist yet)."""
        ...

    def start_progress(self, progress: Progress, journal: Journal, run_id: str) -> None:
        """Totals, and what an earlier process already did."""
        ...

    async def work(self, ctx: WorkContext) -> RunOutcome:
        """Do every call, write every row, commit; return how the run ended."""
        ...


def guard_paths(
    out: Path, journal: str | None, reads: Mapping[str, Path | None] | None = None
) -> None:
    """Before anything is read or sent: no file the run writes is one it reads."""
    out = out.absolute()
    refuse_overlaps(
        {
            "--out": out,
            "the report file": report_path(out),
            "the rejects file": rejects_path(out),
            "the journal": resolve_journal_path(journal),
        },
        reads,
    )


async def execute(
    session: Session,
    job: Job,
    *,
    stages: StageClock,
    transport: httpx.AsyncBaseTransport | None = None,
    progress: Progress | None = None,
    expected_run_id: str | None = None,
) -> RunOutcome:
    """Plan, resume or recognise the run of ``session``, and work it with ``job``."""
    out = session.out.absolute()
    guard_paths(out, session.journal)
    if not _is_dir(out.parent):
        raise OutputError(f"the directory of --out does not exist: {out.parent}")
    journal = Journal(resolve_journal_path(session.journal))
    try:
        run = journal.find_run(session.key)
        if expected_run_id is not None and (run is None or run.run_id != expected_run_id):
            raise UsageError(
                f"the input or options no longer match run {expected_run_id} (the input file "
                "changed?); start a new run with the new input instead"
            )
        if run is not None and run.status == "committing" and _exists(run.params["out"]):
            finish_commit(journal, run)
            run = journal.get_run(run.run_id)
        if run is not None and job.reopen(journal, run):
            run = journal.get_run(run.run_id)
        # The file a run wrote itself may be replaced by the same run (reopened for
        # --existing adopt, or exported again): it holds a subset of what comes.
        own_output = run is not None and same_file(Path(run.params["out"]), out)
        if run is not None and run.status == "completed" and not session.force:
            if own_output:
                return already_completed(run)
            # A finished run asked for a new --out: export it again there.
            logger.info("run.export_again", run_id=run.run_id, out=str(out))
        if _exists(out) and not own_output:
            _refuse_replacing(journal, session, job.rewrites(), out)
        if run is None:
            _refuse_claimed(journal, session, job.names())
        async with _clients(session, transport) as (client, once_client):
            await check_product(client, session.product_key)
            resumed = run is not None
            # A holder that never let go died (or was killed) working the run: its
            # last calls may still count in the account's one-second QPS windows.
            taken_over = run is not None and run.lease is not None
            if run is None:
                run = job.plan(journal, session)
            note_resume(_resume_command(run.run_id, session.journal))
            lease = journal.acquire_lease(run.run_id)
            try:
                if resumed:
                    # The output path or format may differ from the first attempt's.
                    journal.update_params(run.run_id, session.params)
                if taken_over and not retry_mod.is_testing():
                    window = 1.0 + session.tuning.qps_margin
                    logger.info("run.waiting_for_window", run_id=run.run_id, seconds=window)
                    await anyio.sleep(window)
                ctx = _Open(journal, lease, client, once_client, stages, resumed, own_output)
                return await _work(session, job, run, ctx, progress)
            finally:
                journal.release_lease(run.run_id, lease)
    finally:
        journal.close()


#: QueryProduct codes that mean the ProductKey (or the instance) is wrong.
_NO_PRODUCT = frozenset(
    {
        "iot.prod.NotExistedProduct",
        "iot.prod.InvalidFormattedProductkey",
        "iot.prod.InvalidFormattedProductKey",
        "iot.prod.NullProductKey",
        "iot.prod.NullProduct",
    }
)
_NO_INSTANCE = frozenset({"iot.system.InstanceNotFound", "iot.common.InstanceNotFound"})


async def check_product(client: IotClient, product_key: str) -> None:
    """One QueryProduct before the run starts: a wrong ProductKey is a usage error
    (exit 2), not a failed run left in the journal."""
    try:
        await client.query_product(product_key)
    except TerminalApiError as exc:
        where = f"at {client.settings.endpoint}"
        if client.settings.iot_instance_id:
            where += f", instance {client.settings.iot_instance_id}"
        if exc.code in _NO_PRODUCT:
            raise UsageError(
                f"product {product_key!r} does not exist ({where}); check --product-key "
                "(and --iot-instance-id, --region)"
            ) from exc
        if exc.code in _NO_INSTANCE:
            raise UsageError(
                f"IoT instance {client.settings.iot_instance_id!r} does not exist ({where}); "
                "check --iot-instance-id"
            ) from exc
        raise


def _refuse_claimed(journal: Journal, session: Session, names: Collection[str]) -> None:
    """A new run must not report as "already exists" devices that an unfinished run of
    this journal created: their credentials would reach no file."""
    if not names:
        return
    api = session.api
    for claim in journal.claims(
        session.product_key, api.endpoint, api.iot_instance_id, session.key, names
    ):
        other = claim.run
        count = len(claim.names)
        held = other.lease
        if held is not None and journal.holder_alive(held):
            raise UnfinishedRunError(
                f"run {other.run_id} (pid {held.pid} on {held.host}) is creating {count} "
                f"devices of this input (first: {claim.names[0]}); wait for it to finish, "
                "then run this command again"
            )
        raise UnfinishedRunError(
            f"{count} devices of this input (first: {claim.names[0]}) were submitted for "
            f"creation by run {other.run_id}, which did not finish, so their credentials "
            f"are in no file yet; finish it first with "
            f"`{_resume_command(other.run_id, session.journal)}` (it writes "
            f"{other.params.get('out')}), then run this command again"
        )


def _refuse_replacing(
    journal: Journal, session: Session, rewrites: Collection[str], out: Path
) -> None:
    """An existing ``out`` is replaced only with ``--force``, and never when it holds the
    credentials of another run's devices that this run will not write again."""
    wanted = set(rewrites)
    for owner in journal.output_owners(session.key, str(out)):
        stranded = [
            d.device_name
            for d in journal.devices(owner.run_id, states=("created", "adopted"))
            if d.device_name not in wanted
        ]
        if stranded:
            raise OutputError(
                f"{out} holds the credentials of run {owner.run_id}, {len(stranded)} of whose "
                f"devices this run would not write again (first: {stranded[0]}); choose "
                "another --out (or move the file away first)"
            )
    if not session.force:
        raise OutputError(
            f"{out} already exists; choose another --out or pass --force to replace it"
        )


def _resume_command(run_id: str, journal: str | None) -> str:
    where = f" --journal {journal}" if journal else ""
    return f"provisioner resume {run_id}{where}"


@asynccontextmanager
async def _clients(
    session: Session, transport: httpx.AsyncBaseTransport | None
) -> AsyncIterator[tuple[IotClient, IotClient]]:
    """The run's two clients on one limiter: one retries, one sends once (creation)."""
    api = session.api
    limiter = SlidingWindowLimiter(
        api.credentials.access_key_id, scale=api.qps_scale, margin=session.tuning.qps_margin
    )
    retry = RetryPolicy(max_attempts=api.max_attempts, max_total_seconds=api.max_retry_seconds)
    once = RetryPolicy(max_attempts=1, max_total_seconds=api.max_retry_seconds)
    async with (
        IotClient(api, transport=transport, limiter=limiter, retry=retry) as client,
        IotClient(api, transport=transport, limiter=limiter, retry=once) as once_client,
    ):
        yield client, once_client


@dataclass(frozen=True, slots=True)
class _Open:
    """What :func:`execute` opened for the work: journal, lease, clients, clock."""

    journal: Journal
    lease: Lease
    client: IotClient
    once_client: IotClient
    stages: StageClock
    resumed: bool
    own_output: bool


async def _work(
    session: Session,
    job: Job,
    run: RunRecord,
    opened: _Open,
    progress: Progress | None,
) -> RunOutcome:
    out = session.out.absolute()
    run_id = run.run_id
    journal = opened.journal
    logger.info(
        "run.resumed" if opened.resumed else "run.started",
        run_id=run_id,
        kind=session.kind,
        out=str(out),
    )
    journal.set_status(run_id, "running")
    bars = progress or make_progress(session.progress, interval=session.tuning.progress_seconds)
    try:
        job.start_progress(bars, journal, run_id)
        remove_stale_partials(out)
        writer = CredentialWriter(
            out,
            session.encryption,
            fmt=session.fmt,
            columns=session.columns,
            force=session.force or opened.own_output,
        )
        writer.open()
        try:
            ctx = WorkContext(
                run_id=run_id,
                session=session,
                journal=journal,
                lease=opened.lease,
                client=opened.client,
                once_client=opened.once_client,
                writer=writer,
                progress=bars,
                stages=opened.stages,
                resumed=opened.resumed,
            )
            try:
                return await job.work(ctx)
            except BaseExceptionGroup as group:
                raise first_error(group) from None
        except BaseException:
            writer.abort()
            raise
    except RunInProgressError:
        raise  # the lease was lost: the run's state belongs to its new holder
    except ProvisionerError as exc:
        journal.set_status(run_id, "failed", error=str(exc))
        logger.error("run.failed", run_id=run_id, error=str(exc))
        if exc.exit_code != EXIT_FAILED or isinstance(exc, RunStoppedError):
            raise
        raise RunFailedError(run_id, exc) from exc
    except BaseException:
        journal.set_status(run_id, "failed", error="interrupted")
        logger.warning("run.interrupted", run_id=run_id)
        raise
    finally:
        bars.close()


def run_identity(*parts: str) -> str:
    """The key of a run: SHA-256 over its length-prefixed parts (two different part lists
    cannot encode to the same bytes)."""
    digest = hashlib.sha256()
    for part in parts:
        data = part.encode("utf-8")
        digest.update(len(data).to_bytes(8, "big") + data)
    return digest.hexdigest()


async def keep_lease(journal: Journal, run_id: str, lease: Lease, seconds: float) -> None:
    """Renew the run's lease every ``seconds`` until cancelled; raises
    :class:`~provisioner.errors.RunInProgressError` if another process took it."""
    while True:
        await anyio.sleep(seconds)
        journal.heartbeat(run_id, lease)


def commit(ctx: WorkContext, counts: Counts, *, unaccounted: int = 0) -> RunOutcome:
    """Commit a verified run: report (with both clients' retries), rejects, output."""
    retries = merge_retry_stats(
        [ctx.client.retry_stats.snapshot(), ctx.once_client.retry_stats.snapshot()]
    )
    return commit_run(
        ctx.session,
        ctx.journal,
        ctx.run_id,
        ctx.writer,
        counts,
        ctx.stages,
        retries,
        ctx.resumed,
        unaccounted=unaccounted,
    )


def _exists(path: str | Path) -> bool:
    return os.path.exists(path)


def _is_dir(path: Path) -> bool:
    return os.path.isdir(path)


def first_error(group: BaseExceptionGroup[BaseException]) -> BaseException:
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
