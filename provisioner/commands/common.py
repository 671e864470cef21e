"""What every command does with an outcome: an error becomes a message and an exit code.

Every command is a shim (options -> settings -> one library call -> message + exit
code). The options and their groups are in :mod:`provisioner.commands.options`, the
settings are built by each command from them; the end of the shim is here, so every
command turns an error, an outcome or a table into output the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NoReturn, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from provisioner.errors import EXIT_OK, ProvisionerError
from provisioner.pipeline import RunOutcome

__all__ = ["fail", "finish", "guard", "print_table"]

T = TypeVar("T")


def fail(message: str, code: int) -> NoReturn:
    """``error: message`` on stderr, then exit ``code``."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def guard(action: Callable[[], T]) -> T:
    """Run ``action``; a provisioner error becomes its message and exit code."""
    try:
        return action()
    except ProvisionerError as exc:
        fail(str(exc), exc.exit_code)


def finish(outcome: RunOutcome) -> None:
    """Print a run's plan and message (stderr unless it succeeded); exit with its code."""
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
