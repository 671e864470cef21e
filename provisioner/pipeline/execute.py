"""The life of a run, the same for every kind: find or plan it, hold it, work it, commit it.

:func:`execute` takes a :class:`~provisioner.pipeline.kinds.base.RunKind` and:

* refuses, before anything is read or sent, a written file that is a read one;
* looks the run up by its key: unknown, it is planned (one transaction); unfinished, it
  resumes; completed, nothing is called (another ``--out``: it exports again there);
* refuses a new run whose devices an unfinished run of the journal may have created,
  naming that run and the command that finishes it;
* checks the product once (QueryProduct) before planning;
* takes the run's lease and renews it while the kind works (a second process gets
  :class:`~provisioner.errors.RunInProgressError`);
* streams credentials into an encrypted temporary file, has the kind verify that
  every device is accounted for, and commits (:mod:`provisioner.pipeline.finish`);
* on failure leaves the journal consistent, removes the temporary file and raises
  :class:`~provisioner.errors.RunFailedError` (exit 1): the same command carries on.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Collection, Mapping
from pathlib import Path

import anyio
import httpx
import structlog

from provisioner import wiring
from provisioner.api import IotClient
from provisioner.api import retry as retry_mod
from provisioner.errors import (
    EXIT_FAILED,
    OutputError,
    ProvisionerError,
    RunFailedError,
    RunInProgressError,
    RunStoppedError,
    TerminalApiError,
    UnfinishedRunError,
    UsageError,
)
from provisioner.journal import Lease, RunRecord, resolve_journal_path
from provisioner.journal.protocol import JournalStore, Scope
from provisioner.output import remove_stale_partials, report_path
from provisioner.paths import refuse_overlaps, same_file
from provisioner.pipeline.finish import RunOutcome, already_completed, commit_run, finish_commit
from provisioner.pipeline.kinds.base import RunKind, RunSpec, WorkContext
from provisioner.pipeline.progress import Progress, make_progress
from provisioner.pipeline.report import StageClock, merge_retry_stats, rejects_path
from provisioner.stopping import note_resume

__all__ = [
    "check_product",
    "execute",
    "first_error",
    "guard_paths",
    "keep_lease",
    "resume_command",
    "run_identity",
]

logger = structlog.get_logger("provisioner.pipeline")


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
    kind: RunKind,
    *,
    stages: StageClock | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    progress: Progress | None = None,
    expected_run_id: str | None = None,
) -> RunOutcome:
    """Plan, resume or recognise the run of ``kind``, and work it."""
    spec = kind.spec
    stages = stages or StageClock()
    out = spec.out.absolute()
    guard_paths(out, spec.journal)
    if not _is_dir(out.parent):
        raise OutputError(f"the directory of --out does not exist: {out.parent}")
    journal = wiring.open_journal(spec.journal)
    lease: Lease | None = None
    run: RunRecord | None = None
    try:
        run = journal.find_run(spec.key)
        if expected_run_id is not None and (run is None or run.run_id != expected_run_id):
            raise UsageError(
                f"the input or options no longer match run {expected_run_id} (the input file "
                "changed?); start a new run with the new input instead"
            )
        # A holder that never let go died (or was killed) working the run: its last
        # calls may still count in the account's one-second QPS windows.
        taken_over = run is not None and run.lease is not None
        if run is not None:
            # Held from here: nothing below may change a run another process works on.
            lease = journal.acquire_lease(run.run_id)
            if run.status == "committing" and _exists(run.params["out"]):
                finish_commit(journal, run)
            kind.reopen(journal, run)
            run = journal.get_run(run.run_id)
        # The file a run wrote itself may be replaced by the same run (reopened for
        # --existing adopt, or exported again): it holds a subset of what comes.
        own_output = run is not None and same_file(Path(run.params["out"]), out)
        if run is not None and run.status == "completed" and not spec.force:
            if own_output:
                return already_completed(run)
            # A finished run asked for a new --out: export it again there.
            logger.info("run.export_again", run_id=run.run_id, out=str(out))
        if _exists(out) and not own_output:
            _refuse_replacing(journal, spec, kind.rewrites(), out)
        if run is None:
            _refuse_claimed(journal, spec, kind.names())
        async with wiring.clients(spec.api, transport=transport, margin=spec.tuning.qps_margin) as (
            client,
            once_client,
        ):
            await check_product(client, spec.product_key)
            resumed = run is not None
            if run is None:
                run = kind.plan(journal)
                lease = journal.acquire_lease(run.run_id)
            assert lease is not None
            note_resume(resume_command(run.run_id, spec.journal))
            if resumed:
                # The output path or format may differ from the first attempt's.
                journal.update_params(run.run_id, spec.params)
            if taken_over and not retry_mod.is_testing():
                window = 1.0 + spec.tuning.qps_margin
                logger.info("run.waiting_for_window", run_id=run.run_id, seconds=window)
                await anyio.sleep(window)
            return await _work(
                kind,
                run,
                journal,
                lease,
                (client, once_client),
                stages,
                progress,
                resumed=resumed,
                replace=spec.force or own_output,
            )
    finally:
        try:
            if lease is not None and run is not None:
                journal.release_lease(run.run_id, lease)
        finally:
            journal.close()


async def _work(
    kind: RunKind,
    run: RunRecord,
    journal: JournalStore,
    lease: Lease,
    clients: tuple[IotClient, IotClient],
    stages: StageClock,
    progress: Progress | None,
    *,
    resumed: bool,
    replace: bool,
) -> RunOutcome:
    spec = kind.spec
    out = spec.out.absolute()
    run_id = run.run_id
    logger.info(
        "run.resumed" if resumed else "run.started", run_id=run_id, kind=spec.kind, out=str(out)
    )
    journal.start_run(run_id)
    bars = progress or make_progress(spec.progress, interval=spec.tuning.progress_seconds)
    try:
        kind.start_progress(bars, journal, run_id)
        remove_stale_partials(out)
        writer = wiring.writer(
            out, spec.encryption, fmt=spec.fmt, columns=spec.columns, force=replace
        )
        writer.open()
        try:
            ctx = WorkContext(
                run_id=run_id,
                spec=spec,
                journal=journal,
                lease=lease,
                client=clients[0],
                once_client=clients[1],
                writer=writer,
                progress=bars,
                stages=stages,
                resumed=resumed,
            )
            try:
                async with anyio.create_task_group() as beat:
                    beat.start_soon(
                        keep_lease, journal, run_id, lease, spec.tuning.heartbeat_seconds
                    )
                    try:
                        await kind.work(ctx)
                    finally:
                        beat.cancel_scope.cancel()
            except BaseExceptionGroup as group:
                raise first_error(group) from None
            counts = kind.verify(ctx)
            retries = merge_retry_stats(
                [ctx.client.retry_stats.snapshot(), ctx.once_client.retry_stats.snapshot()]
            )
            return commit_run(
                spec,
                journal,
                run_id,
                writer,
                counts,
                stages,
                retries,
                resumed,
                unaccounted=kind.unaccounted(ctx),
            )
        except BaseException:
            writer.abort()
            raise
    except RunInProgressError:
        raise  # the lease was lost: the run's state belongs to its new holder
    except ProvisionerError as exc:
        journal.fail_run(run_id, str(exc))
        logger.error("run.failed", run_id=run_id, error=str(exc))
        if exc.exit_code != EXIT_FAILED or isinstance(exc, RunStoppedError):
            raise
        raise RunFailedError(run_id, exc) from exc
    except BaseException:
        journal.fail_run(run_id, "interrupted")
        logger.warning("run.interrupted", run_id=run_id)
        raise
    finally:
        bars.close()


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


def _refuse_claimed(journal: JournalStore, spec: RunSpec, names: Collection[str]) -> None:
    """A new run must not report as "already exists" devices that an unfinished run of
    this journal created: their credentials would reach no file."""
    if not names:
        return
    api = spec.api
    scope = Scope(spec.product_key, api.endpoint, api.iot_instance_id)
    for claim in journal.claims(scope, spec.key, names):
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
            f"`{resume_command(other.run_id, spec.journal)}` (it writes "
            f"{other.params.get('out')}), then run this command again"
        )


def _refuse_replacing(
    journal: JournalStore, spec: RunSpec, rewrites: Collection[str], out: Path
) -> None:
    """An existing ``out`` is replaced only with ``--force``, and never when it holds the
    credentials of another run's devices that this run will not write again."""
    wanted = set(rewrites)
    for owner in journal.output_owners(spec.key, str(out)):
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
    if not spec.force:
        raise OutputError(
            f"{out} already exists; choose another --out or pass --force to replace it"
        )


def _exists(path: str | Path) -> bool:
    return os.path.exists(path)


def _is_dir(path: Path) -> bool:
    return os.path.isdir(path)


def resume_command(run_id: str, journal: str | None) -> str:
    """The command that carries run ``run_id`` on."""
    where = f" --journal {journal}" if journal else ""
    return f"provisioner resume {run_id}{where}"


def run_identity(*parts: str) -> str:
    """The key of a run: SHA-256 over its length-prefixed parts (two different part lists
    cannot encode to the same bytes)."""
    digest = hashlib.sha256()
    for part in parts:
        data = part.encode("utf-8")
        digest.update(len(data).to_bytes(8, "big") + data)
    return digest.hexdigest()


async def keep_lease(journal: JournalStore, run_id: str, lease: Lease, seconds: float) -> None:
    """Renew the run's lease every ``seconds`` until cancelled; raises
    :class:`~provisioner.errors.RunInProgressError` if another process took it."""
    while True:
        await anyio.sleep(seconds)
        journal.heartbeat(run_id, lease)


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
