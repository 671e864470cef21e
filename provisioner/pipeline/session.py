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
from collections.abc import Mapping, Sequence
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
    UsageError,
)
from provisioner.journal import Journal, Lease, RunRecord, resolve_journal_path
from provisioner.output import (
    OUTPUT_COLUMNS,
    CredentialWriter,
    Encryption,
    OutputFormat,
    remove_stale_partials,
)
from provisioner.pipeline.finish import RunOutcome, already_completed, commit_run, finish_commit
from provisioner.pipeline.progress import Progress, make_progress
from provisioner.pipeline.report import Counts, StageClock, merge_retry_stats
from provisioner.pipeline.settings import ProgressMode, Tuning

__all__ = [
    "Job",
    "RunFailedError",
    "Session",
    "WorkContext",
    "commit",
    "execute",
    "first_error",
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

    def plan(self, journal: Journal, session: Session) -> RunRecord:
        """Create the run in the journal (it does not exist yet)."""
        ...

    def start_progress(self, progress: Progress, journal: Journal, run_id: str) -> None:
        """Totals, and what an earlier process already did."""
        ...

    async def work(self, ctx: WorkContext) -> RunOutcome:
        """Do every call, write every row, commit; return how the run ended."""
        ...


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
        if run is not None and run.status == "completed" and not session.force:
            return already_completed(run)
        if _exists(out) and not session.force:
            raise OutputError(
                f"{out} already exists; choose another --out or pass --force to replace it"
            )
        resumed = run is not None
        # A holder that never let go died (or was killed) working the run: its last
        # calls may still count in the account's one-second QPS windows.
        taken_over = run is not None and run.lease is not None
        if run is None:
            run = job.plan(journal, session)
        lease = journal.acquire_lease(run.run_id)
        try:
            if resumed:
                # The output path or format may differ from the first attempt's.
                journal.update_params(run.run_id, session.params)
            if taken_over and not retry_mod.is_testing():
                window = 1.0 + session.tuning.qps_margin
                logger.info("run.waiting_for_window", run_id=run.run_id, seconds=window)
                await anyio.sleep(window)
            return await _work(
                session, job, run, journal, lease, stages, transport, progress, resumed
            )
        finally:
            journal.release_lease(run.run_id, lease)
    finally:
        journal.close()


async def _work(
    session: Session,
    job: Job,
    run: RunRecord,
    journal: Journal,
    lease: Lease,
    stages: StageClock,
    transport: httpx.AsyncBaseTransport | None,
    progress: Progress | None,
    resumed: bool,
) -> RunOutcome:
    api = session.api
    out = session.out.absolute()
    run_id = run.run_id
    logger.info(
        "run.resumed" if resumed else "run.started", run_id=run_id, kind=session.kind, out=str(out)
    )
    journal.set_status(run_id, "running")
    bars = progress or make_progress(session.progress, interval=session.tuning.progress_seconds)
    try:
        job.start_progress(bars, journal, run_id)
        remove_stale_partials(out)
        limiter = SlidingWindowLimiter(
            api.credentials.access_key_id, scale=api.qps_scale, margin=session.tuning.qps_margin
        )
        retry = RetryPolicy(max_attempts=api.max_attempts, max_total_seconds=api.max_retry_seconds)
        once = RetryPolicy(max_attempts=1, max_total_seconds=api.max_retry_seconds)
        writer = CredentialWriter(
            out, session.encryption, fmt=session.fmt, columns=session.columns, force=session.force
        )
        async with (
            IotClient(api, transport=transport, limiter=limiter, retry=retry) as client,
            IotClient(api, transport=transport, limiter=limiter, retry=once) as once_client,
        ):
            writer.open()
            try:
                ctx = WorkContext(
                    run_id=run_id,
                    session=session,
                    journal=journal,
                    lease=lease,
                    client=client,
                    once_client=once_client,
                    writer=writer,
                    progress=bars,
                    stages=stages,
                    resumed=resumed,
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
