"""The end of a run: checking the output is complete, committing it, and the outcome.

A run commits in an order that survives a crash at any point: the report is stored in
the journal (status ``committing``), the rejects file is written (or a stale one
removed), the encrypted output is renamed into place, the report file is written,
and the run is marked ``completed``. A run found ``committing`` with its output
present only needs the last two steps (:func:`finish_commit`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import polars as pl
import structlog

from provisioner.config import ApiSettings
from provisioner.errors import EXIT_INPUT, EXIT_OK, EXIT_PARTIAL, OutputError
from provisioner.inputs import write_rejects
from provisioner.journal import RunRecord
from provisioner.journal.protocol import JournalStore
from provisioner.output import CredentialWriter, report_path, write_json_atomic
from provisioner.pipeline.report import (
    Counts,
    StageClock,
    build_report,
    rejects_path,
)

__all__ = [
    "CommitTarget",
    "RunOutcome",
    "already_completed",
    "commit_run",
    "finish_commit",
    "input_refused",
]

logger = structlog.get_logger("provisioner.pipeline")


@dataclass(frozen=True, slots=True)
class RunOutcome:
    """How a run ended (without an error): exit code, report, paths and a one-line message."""

    run_id: str | None
    exit_code: int
    message: str
    report: Mapping[str, Any] | None = None
    out: Path | None = None
    report_path: Path | None = None
    rejects_path: Path | None = None
    already_completed: bool = False
    plan: Sequence[str] = ()


class CommitTarget(Protocol):
    """Where and how a run writes: the part of its settings the commit needs."""

    @property
    def out(self) -> Path: ...
    @property
    def product_key(self) -> str: ...
    @property
    def fmt(self) -> str: ...
    @property
    def api(self) -> ApiSettings | None: ...


def commit_run(
    settings: CommitTarget,
    journal: JournalStore,
    run_id: str,
    writer: CredentialWriter,
    counts: Counts,
    stages: StageClock,
    retries: Mapping[str, Any],
    resumed: bool,
    *,
    unaccounted: int = 0,
) -> RunOutcome:
    """Commit a verified run (see the module docstring). ``unaccounted``: devices left
    out on the operator's word (abandoned applications), which make the run partial."""
    assert settings.api is not None
    out = settings.out.absolute()
    report_file = report_path(out)
    rejects = rejects_path(out)
    not_provisioned = [d for d in journal.devices(run_id, states=("rejected", "failed"))]
    exit_code = EXIT_PARTIAL if not_provisioned or unaccounted else EXIT_OK
    apply_ids = [
        a.apply_id
        for a in journal.applications(run_id, ("CREATE_SUCCESS", "CREATE_FAILED", "DONE"))
        if a.apply_id is not None
    ]
    report = build_report(
        run_id=run_id,
        product_key=settings.product_key,
        exit_code=exit_code,
        counts=counts,
        apply_ids=apply_ids,
        durations=stages.durations(),
        retries=retries,
        out=out,
        report=report_file,
        rejects=rejects if not_provisioned else None,
        fmt=settings.fmt,
        resumed=resumed,
        iot_instance_id=settings.api.iot_instance_id,
        endpoint=settings.api.endpoint,
    )
    # Stored first: a crash between the rename and the end still finds the report.
    journal.commit_run(run_id, report)
    if not_provisioned:
        frame = pl.DataFrame(
            {
                "line": [d.line for d in not_provisioned],
                "DeviceName": [d.device_name for d in not_provisioned],
                "Nickname": [d.nickname for d in not_provisioned],
                "reason": [d.reason or d.state for d in not_provisioned],
            },
            schema={
                "line": pl.Int64,
                "DeviceName": pl.String,
                "Nickname": pl.String,
                "reason": pl.String,
            },
        )
        write_rejects(frame, rejects)
    else:
        _remove_stale(rejects)
    writer.commit()
    write_json_atomic(report_file, report)
    journal.complete_run(run_id, report)
    counts_text = ", ".join(f"{k} {v}" for k, v in counts.as_dict().items())
    logger.info("run.completed", run_id=run_id, exit_code=exit_code, **counts.as_dict())
    if exit_code == EXIT_OK:
        message = f"run {run_id} completed: {counts.exported} devices in {out} ({counts_text})"
    else:
        where = f" (see {rejects})" if not_provisioned else ""
        existing = sum(1 for d in not_provisioned if d.cause == "check")
        if existing:
            where += (
                f"; {existing} failed the server's check (most often: they exist already); "
                "run again with --existing adopt to include those that exist"
            )
        left = f", {unaccounted} abandoned after a lost answer" if unaccounted else ""
        message = (
            f"run {run_id} finished, {len(not_provisioned) + unaccounted} devices not "
            f"provisioned{where}{left}; {counts.exported} devices in {out} ({counts_text})"
        )
    return RunOutcome(
        run_id=run_id,
        exit_code=exit_code,
        message=message,
        report=report,
        out=out,
        report_path=report_file,
        rejects_path=rejects if not_provisioned else None,
    )


def input_refused(
    rejected: pl.DataFrame, total: int, valid: int, source: Path, out: Path, *, skip_invalid: bool
) -> RunOutcome | None:
    """The outcome of an input that stops the run before any call (rejected rows without
    ``--skip-invalid``, or no valid row), its rejects written; ``None`` if it goes on."""
    rejects = rejects_path(out.absolute())
    count = rejected.height
    if count and (not skip_invalid or valid == 0):
        write_rejects(rejected, rejects)
    if count and not skip_invalid:
        message = (
            f"{count} of {total} rows were rejected, nothing was sent: see {rejects} "
            "(fix them, or pass --skip-invalid)"
        )
    elif valid == 0:
        message = f"no valid row in {source}, nothing was sent"
    else:
        return None
    return RunOutcome(
        run_id=None,
        exit_code=EXIT_INPUT,
        message=message,
        rejects_path=rejects if count else None,
    )


def _remove_stale(path: Path) -> None:
    """A rejects file of an earlier attempt at the same output no longer applies."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise OutputError(f"cannot remove the stale rejects file {path}: {exc.strerror}") from exc


def finish_commit(journal: JournalStore, run: RunRecord) -> None:
    """A run that crashed after renaming its output: write its report and complete it."""
    if run.report is not None:
        out = Path(run.params["out"])
        write_json_atomic(report_path(out), run.report)
    journal.complete_run(run.run_id, run.report)


def already_completed(run: RunRecord) -> RunOutcome:
    out = Path(run.params["out"])
    report = run.report or {}
    counts = report.get("counts", {})
    failed = int(counts.get("rejected", 0)) + int(counts.get("failed", 0))
    extra = f" ({failed} devices were not provisioned, see the report)" if failed else ""
    present = (
        " (pass --force to export it again)"
        if out.exists()
        else " (the file is gone: pass --force to export it again)"
    )
    logger.info("run.already_completed", run_id=run.run_id, out=str(out))
    return RunOutcome(
        run_id=run.run_id,
        exit_code=EXIT_OK,
        message=f"run {run.run_id} already completed: {out}{extra}{present}",
        report=run.report,
        out=out,
        report_path=report_path(out),
        already_completed=True,
    )
