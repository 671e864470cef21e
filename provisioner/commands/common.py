"""What the commands share: option declarations, logging set-up, error and outcome handling.

Every command is a shim (options -> settings -> one library call -> message + exit
code); the pieces of that shim live here so the commands declare an option, and turn
an error into a message, the same way.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Sequence
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from provisioner.errors import EXIT_OK, ProvisionerError
from provisioner.log import configure_logging
from provisioner.pipeline import RunOutcome

__all__ = [
    "DeadlineOpt",
    "EndpointOpt",
    "ExistingChoice",
    "ForceOpt",
    "FormatChoice",
    "FormatOpt",
    "InsecureHttpOpt",
    "InstanceOpt",
    "JournalOpt",
    "LogFormatChoice",
    "LogFormatOpt",
    "PassphraseEnvOpt",
    "QpsScaleOpt",
    "RecipientOpt",
    "RecipientsFileOpt",
    "RegionOpt",
    "TimeoutOpt",
    "encryption_options",
    "fail",
    "finish",
    "guard",
    "print_table",
    "setup_logging",
]

T = TypeVar("T")


class ExistingChoice(StrEnum):
    fail = "fail"
    adopt = "adopt"


class FormatChoice(StrEnum):
    csv = "csv"
    jsonl = "jsonl"
    parquet = "parquet"


class LogFormatChoice(StrEnum):
    console = "console"
    json = "json"


# --- shared options ---------------------------------------------------------------------

RecipientOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--recipient",
        "-r",
        help="age X25519 (age1...) or SSH public key to encrypt to; repeatable.",
    ),
]
RecipientsFileOpt = Annotated[
    Path | None,
    typer.Option("--recipients-file", "-R", help="File of recipients, one per line."),
]
PassphraseEnvOpt = Annotated[
    str | None,
    typer.Option(
        "--passphrase-env",
        metavar="VAR",
        help="Encrypt with the passphrase held in this environment variable.",
    ),
]
EndpointOpt = Annotated[
    str | None,
    typer.Option("--endpoint", help="API endpoint (env PROVISIONER_ENDPOINT)."),
]
RegionOpt = Annotated[
    str | None, typer.Option("--region", help="Region id (env PROVISIONER_REGION).")
]
InstanceOpt = Annotated[
    str | None,
    typer.Option("--iot-instance-id", help="IoT instance id (env PROVISIONER_IOT_INSTANCE_ID)."),
]
JournalOpt = Annotated[
    str | None,
    typer.Option(
        "--journal",
        metavar="URL",
        help="Journal file or sqlite:///path (env PROVISIONER_JOURNAL; default "
        "$XDG_STATE_HOME/provisioner/journal.sqlite3).",
    ),
]
FormatOpt = Annotated[
    FormatChoice, typer.Option("--format", help="Plaintext format inside the age file.")
]
ForceOpt = Annotated[bool, typer.Option("--force", help="Replace an existing output file.")]
LogFormatOpt = Annotated[
    LogFormatChoice | None,
    typer.Option("--log-format", help="Log lines for people or machines (default: by TTY)."),
]
InsecureHttpOpt = Annotated[
    bool,
    typer.Option(
        "--insecure-http",
        help="Allow a plain http:// endpoint on another machine: the AccessKey ID, signatures "
        "and device secrets cross the network unencrypted (env PROVISIONER_INSECURE_HTTP=1). "
        "http:// to this machine needs no option.",
    ),
]
TimeoutOpt = Annotated[
    float | None,
    typer.Option(
        "--timeout",
        metavar="SECONDS",
        min=0.001,
        help="Longest time to keep trying an endpoint from which no answer at all comes; "
        "each attempt waits a third of it (env PROVISIONER_TIMEOUT; default 60).",
    ),
]
DeadlineOpt = Annotated[
    float | None,
    typer.Option(
        "--deadline",
        metavar="SECONDS",
        min=0.001,
        help="Throttled calls keep waiting for the account's QPS window at most this long "
        "after the command starts calling the API; then the run stops, resumable "
        "(env PROVISIONER_DEADLINE; default none).",
    ),
]
# For compressed rehearsals against an emulator started with --qps-scale.
QpsScaleOpt = Annotated[float | None, typer.Option("--qps-scale", hidden=True)]


def setup_logging(log_format: LogFormatChoice | None) -> None:
    """Logs for the chosen format. On a terminal without a chosen format the progress
    bars tell the story, so only warnings and errors are logged under them."""
    if log_format is None and sys.stderr.isatty():
        configure_logging("console", level=logging.WARNING)
    else:
        configure_logging(log_format.value if log_format else None)


def fail(message: str, code: int) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def guard(action: Callable[[], T]) -> T:
    """Run ``action``; a provisioner error becomes its message and exit code."""
    try:
        return action()
    except ProvisionerError as exc:
        fail(str(exc), exc.exit_code)


def encryption_options(
    recipients: Sequence[str] | None, recipients_file: Path | None, passphrase_env: str | None
) -> dict[str, Any]:
    """What the journal keeps to rebuild the encryption on ``resume``: public keys, a
    path and a variable *name*, never a passphrase."""
    return {
        "recipients": list(recipients or ()),
        "recipients_file": str(recipients_file.absolute()) if recipients_file else None,
        "passphrase_env": passphrase_env,
    }


def finish(outcome: RunOutcome) -> None:
    for line in outcome.plan:
        typer.echo(line)
    stream_err = outcome.exit_code != EXIT_OK
    typer.echo(outcome.message, err=stream_err)
    raise typer.Exit(outcome.exit_code)


def print_table(console: Console, columns: Sequence[str], rows: list[list[str]]) -> None:
    """A rich table on a terminal; tab-separated lines (header first) for a pipe."""
    if console.is_terminal:
        table = Table(*columns)
        for row in rows:
            table.add_row(*row)
        console.print(table)
    else:
        for row in [list(columns), *rows]:
            typer.echo("\t".join(row))
