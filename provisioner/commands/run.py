"""The ``run``, ``resume``, ``status`` and ``export`` commands (registered in ``cli.py``).

Each command turns options into settings, makes one library call from
:mod:`provisioner.pipeline` and turns the outcome or the error into a message and an
exit code: 0 done; 1 failed, resumable; 2 usage; 3 input rejected, nothing sent;
4 finished with devices not provisioned. Credentials come from the environment only
(:func:`~provisioner.config.load_api_settings`); no command prints a traceback for an
error an operator can cause.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import anyio
import typer
from rich.console import Console

from provisioner.commands.common import finish, guard, print_table
from provisioner.commands.options import (
    ApiOptions,
    ApiOverrides,
    EncryptionOptions,
    ExistingChoice,
    ForceOpt,
    FormatChoice,
    FormatOpt,
    JournalOpt,
    LogOptions,
    LostChoice,
    OutOpt,
    ProductKeyOpt,
    with_groups,
)
from provisioner.errors import EXIT_OK, UsageError
from provisioner.pipeline import RunSettings, export_application, provision, resume, status
from provisioner.pipeline.kinds import ResumeOptions

__all__ = ["export_command", "resume_command", "run_command", "status_command"]


@with_groups(progress_bars=True)
def run_command(
    *,
    input_path: Annotated[
        Path, typer.Argument(metavar="INPUT", help="CSV or Parquet file with a DeviceName column.")
    ],
    product_key: ProductKeyOpt,
    out: OutOpt,
    encryption: EncryptionOptions,
    api: ApiOptions,
    journal: JournalOpt = None,
    chunk_size: Annotated[
        int, typer.Option("--chunk-size", min=1, help="Most names per application.")
    ] = 10_000,
    skip_invalid: Annotated[
        bool,
        typer.Option("--skip-invalid", help="Provision the valid rows; report the invalid ones."),
    ] = False,
    existing: Annotated[
        ExistingChoice,
        typer.Option(
            "--existing",
            help="A name that already exists: fail (report it) or adopt (export its credentials).",
        ),
    ] = ExistingChoice.fail,
    logs: LogOptions,
    fmt: FormatOpt = FormatChoice.csv,
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="Validate and plan (chunks, time estimate); no network."),
    ] = False,
    force: ForceOpt = False,
) -> None:
    """Provision every device of INPUT and write their credentials, encrypted, to --out.

    Re-running the same command resumes an interrupted run, or says it is complete.
    """
    settings = guard(
        lambda: RunSettings(
            input=input_path,
            product_key=product_key,
            out=out,
            # A dry run makes no call and writes nothing: it needs neither credentials nor keys.
            api=None if dry_run else api.settings(),
            encryption=None if dry_run else encryption.encryption(),
            fmt=fmt.value,
            chunk_size=chunk_size,
            skip_invalid=skip_invalid,
            existing=existing.value,
            force=force,
            journal=journal,
            dry_run=dry_run,
            encryption_options=encryption.recorded(),
        )
    )
    finish(guard(lambda: anyio.run(provision, settings)))


@with_groups(progress_bars=True)
def resume_command(
    *,
    run_id: Annotated[str, typer.Argument(metavar="RUN_ID", help="Run id (a prefix will do).")],
    journal: JournalOpt = None,
    encryption: EncryptionOptions,
    force: ForceOpt = False,
    lost: Annotated[
        LostChoice | None,
        typer.Option(
            "--lost",
            help="register-random runs: calls whose answer was lost: fail, resubmit or abandon.",
        ),
    ] = None,
    logs: LogOptions,
    api: ApiOverrides,
) -> None:
    """Resume run RUN_ID with the options it was started with.

    Encryption options given here replace the recorded ones.
    """
    # Only what is given here replaces the run's recorded options (None, {}: as recorded).
    options = guard(
        lambda: ResumeOptions(
            journal=journal,
            encryption=encryption.encryption() if encryption.given else None,
            api_options=api.overrides() if api.given else {},
            force=force,
            lost=lost.value if lost is not None else None,
        )
    )
    finish(guard(lambda: anyio.run(resume, run_id, options)))


def _when(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


@with_groups()
def status_command(
    run_id: Annotated[
        str | None, typer.Argument(metavar="[RUN_ID]", help="Show this run's applications.")
    ] = None,
    journal: JournalOpt = None,
) -> None:
    """List the runs of the journal, or the applications of one run."""
    views = guard(lambda: status(journal, run_id))
    console = Console()
    if not views:
        typer.echo("no runs in the journal")
        raise typer.Exit(EXIT_OK)
    runs: list[list[str]] = []
    for view in views:
        run = view.run
        devices = ", ".join(f"{k} {v}" for k, v in sorted(view.devices.items()))
        lease = f"pid {run.lease.pid} on {run.lease.host}" if run.lease else ""
        runs.append(
            [
                run.run_id,
                run.status,
                run.product_key,
                _when(run.created_at),
                devices,
                str(run.params.get("out", "")),
                lease,
            ]
        )
    print_table(console, ("run", "status", "product", "created", "devices", "out", "lease"), runs)
    if run_id is not None:
        apps = [
            [
                str(app.app_id),
                str(app.chunk_no),
                app.apply_id or "",
                app.state,
                str(app.attempt),
                str(app.size),
                _when(app.updated_at),
            ]
            for app in views[0].applications
        ]
        typer.echo("")
        print_table(
            console, ("app", "chunk", "ApplyId", "state", "attempt", "size", "updated"), apps
        )
        if views[0].run.error:
            typer.echo(f"last error: {views[0].run.error}")


@with_groups()
def export_command(
    *,
    apply_id: Annotated[str, typer.Option("--apply-id", help="ApplyId of the application.")],
    product_key: ProductKeyOpt,
    out: OutOpt,
    encryption: EncryptionOptions,
    api: ApiOptions,
    fmt: FormatOpt = FormatChoice.csv,
    force: ForceOpt = False,
    logs: LogOptions,
) -> None:
    """Export the credentials of an existing application again (a lost output file).

    The Nickname column is empty: QueryPageByApplyId does not return nicknames.
    """

    def go() -> str:
        api_settings = api.settings()
        keys = encryption.encryption()
        if not product_key.strip():
            raise UsageError("--product-key is required")
        result = anyio.run(
            lambda: export_application(
                apply_id, product_key, out, keys, fmt.value, api_settings, force=force
            )
        )
        return f"exported {result.rows} devices of application {result.apply_id} to {result.out}"

    typer.echo(guard(go))
