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

from provisioner.commands.common import (
    DeadlineOpt,
    EndpointOpt,
    ExistingChoice,
    ForceOpt,
    FormatChoice,
    FormatOpt,
    InsecureHttpOpt,
    InstanceOpt,
    JournalOpt,
    LogFormatOpt,
    PassphraseEnvOpt,
    QpsScaleOpt,
    RecipientOpt,
    RecipientsFileOpt,
    RegionOpt,
    TimeoutOpt,
    encryption_options,
    finish,
    guard,
    print_table,
    setup_logging,
)
from provisioner.commands.register import LostChoice
from provisioner.config import load_api_settings
from provisioner.errors import EXIT_OK, UsageError
from provisioner.journal import Journal, resolve_journal_path
from provisioner.log import configure_logging
from provisioner.output import load_encryption
from provisioner.pipeline import (
    RunOutcome,
    RunSettings,
    export_application,
    provision,
    resume,
    status,
)

__all__ = ["export_command", "resume_command", "run_command", "status_command"]

# --- commands ---------------------------------------------------------------------------


def run_command(
    input_path: Annotated[
        Path, typer.Argument(metavar="INPUT", help="CSV or Parquet file with a DeviceName column.")
    ],
    product_key: Annotated[str, typer.Option("--product-key", help="ProductKey of the product.")],
    out: Annotated[Path, typer.Option("--out", help="Encrypted credentials file to write.")],
    recipient: RecipientOpt = None,
    recipients_file: RecipientsFileOpt = None,
    passphrase_env: PassphraseEnvOpt = None,
    endpoint: EndpointOpt = None,
    region: RegionOpt = None,
    iot_instance_id: InstanceOpt = None,
    insecure_http: InsecureHttpOpt = False,
    timeout: TimeoutOpt = None,
    deadline: DeadlineOpt = None,
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
    log_format: LogFormatOpt = None,
    fmt: FormatOpt = FormatChoice.csv,
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="Validate and plan (chunks, time estimate); no network."),
    ] = False,
    force: ForceOpt = False,
    qps_scale: QpsScaleOpt = None,
) -> None:
    """Provision every device of INPUT and write their credentials, encrypted, to --out.

    Re-running the same command resumes an interrupted run, or says it is complete.
    """
    setup_logging(log_format)

    def settings() -> RunSettings:
        api = None
        encryption = None
        if not dry_run:
            api = load_api_settings(
                endpoint=endpoint,
                region=region,
                iot_instance_id=iot_instance_id,
                qps_scale=qps_scale,
                timeout=timeout,
                deadline=deadline,
                insecure_http=insecure_http or None,
            )
            encryption = load_encryption(recipient or (), recipients_file, passphrase_env)
        return RunSettings(
            input=input_path,
            product_key=product_key,
            out=out,
            encryption=encryption,
            fmt=fmt.value,
            chunk_size=chunk_size,
            skip_invalid=skip_invalid,
            existing=existing.value,
            force=force,
            journal=journal,
            dry_run=dry_run,
            api=api,
            encryption_options=encryption_options(recipient, recipients_file, passphrase_env),
        )

    run_settings = guard(settings)
    finish(guard(lambda: anyio.run(provision, run_settings)))


def resume_command(
    run_id: Annotated[str, typer.Argument(metavar="RUN_ID", help="Run id (a prefix will do).")],
    journal: JournalOpt = None,
    recipient: RecipientOpt = None,
    recipients_file: RecipientsFileOpt = None,
    passphrase_env: PassphraseEnvOpt = None,
    force: ForceOpt = False,
    lost: Annotated[
        LostChoice | None,
        typer.Option(
            "--lost",
            help="register-random runs: calls whose answer was lost: fail, resubmit or abandon.",
        ),
    ] = None,
    log_format: LogFormatOpt = None,
    qps_scale: QpsScaleOpt = None,
    insecure_http: InsecureHttpOpt = False,
    timeout: TimeoutOpt = None,
    deadline: DeadlineOpt = None,
) -> None:
    """Resume run RUN_ID with the options it was started with.

    Encryption options given here replace the recorded ones.
    """
    setup_logging(log_format)

    def go() -> RunOutcome:
        encryption = None
        if recipient or recipients_file or passphrase_env:
            encryption = load_encryption(recipient or (), recipients_file, passphrase_env)
        api = None
        if qps_scale is not None or timeout is not None or deadline is not None or insecure_http:
            with Journal(resolve_journal_path(journal)) as store:
                params = store.get_run(run_id).params
            api = load_api_settings(
                endpoint=params.get("endpoint"),
                region=params.get("region"),
                iot_instance_id=params.get("iot_instance_id"),
                qps_scale=qps_scale,
                timeout=timeout,
                deadline=deadline,
                insecure_http=insecure_http or None,
            )
        return anyio.run(
            lambda: resume(
                run_id,
                journal=journal,
                encryption=encryption,
                api=api,
                force=force,
                lost=lost.value if lost is not None else None,
            )
        )

    finish(guard(go))


def _when(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


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


def export_command(
    apply_id: Annotated[str, typer.Option("--apply-id", help="ApplyId of the application.")],
    product_key: Annotated[str, typer.Option("--product-key", help="ProductKey of the product.")],
    out: Annotated[Path, typer.Option("--out", help="Encrypted credentials file to write.")],
    recipient: RecipientOpt = None,
    recipients_file: RecipientsFileOpt = None,
    passphrase_env: PassphraseEnvOpt = None,
    endpoint: EndpointOpt = None,
    region: RegionOpt = None,
    iot_instance_id: InstanceOpt = None,
    insecure_http: InsecureHttpOpt = False,
    timeout: TimeoutOpt = None,
    deadline: DeadlineOpt = None,
    fmt: FormatOpt = FormatChoice.csv,
    force: ForceOpt = False,
    log_format: LogFormatOpt = None,
    qps_scale: QpsScaleOpt = None,
) -> None:
    """Export the credentials of an existing application again (a lost output file).

    The Nickname column is empty: QueryPageByApplyId does not return nicknames.
    """
    configure_logging(log_format.value if log_format else None)

    def go() -> str:
        api = load_api_settings(
            endpoint=endpoint,
            region=region,
            iot_instance_id=iot_instance_id,
            qps_scale=qps_scale,
            timeout=timeout,
            deadline=deadline,
            insecure_http=insecure_http or None,
        )
        encryption = load_encryption(recipient or (), recipients_file, passphrase_env)
        if not product_key.strip():
            raise UsageError("--product-key is required")
        result = anyio.run(
            lambda: export_application(
                apply_id, product_key, out, encryption, fmt.value, api, force=force
            )
        )
        return f"exported {result.rows} devices of application {result.apply_id} to {result.out}"

    typer.echo(guard(go))
