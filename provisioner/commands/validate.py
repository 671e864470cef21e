"""``provisioner validate``: check a device list offline and say what would be rejected.

No network, no credentials: the file is read and validated with the same rules a run
uses (:func:`provisioner.inputs.validate_file`), the counts and the first few reasons are
printed (:func:`render_summary`), and the rejected rows can be written to a CSV for
fixing. Exit 0 when every row is valid, 3 when some row was rejected or the file could
not be read.

``--rejects FILE`` is written like every file we write (mode 0600 from its first byte,
atomically, formula-like cells neutralised: see :func:`provisioner.inputs.write_rejects`)
and an existing FILE is refused (exit 2) unless ``--force``: it may be something else
than an old rejects file. Empty physical lines are not rows; they are counted and named.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from provisioner.commands.common import guard
from provisioner.commands.options import with_groups
from provisioner.errors import EXIT_INPUT, EXIT_OK
from provisioner.inputs import ValidationSummary, validate_file

__all__ = ["render_summary", "validate_command"]


@with_groups()
def validate_command(
    input: Annotated[
        Path,
        typer.Argument(
            help="Device list: CSV (.csv, .txt) or Parquet (.parquet, .pq) "
            "with a DeviceName column and an optional Nickname column.",
            metavar="FILE",
            show_default=False,
        ),
    ],
    rejects: Annotated[
        Path | None,
        typer.Option(
            "--rejects",
            help="Write the rejected rows (line, DeviceName, Nickname, reason) to this CSV file.",
            metavar="FILE",
            show_default=False,
        ),
    ] = None,
    force: Annotated[
        bool,
        typer.Option("--force", help="Replace the --rejects file if it exists."),
    ] = False,
) -> None:
    """Check a device list offline: count valid and rejected rows, and say why.

    Exit 0 when every row is valid, 3 when some row was rejected or the file is unreadable.
    """
    summary = guard(lambda: validate_file(input, rejects, force=force))
    for line in render_summary(input, summary):
        typer.echo(line)
    raise typer.Exit(EXIT_OK if summary.rejected == 0 else EXIT_INPUT)


def render_summary(path: Path, summary: ValidationSummary) -> list[str]:
    """The lines ``validate`` prints. Values from the file are shown with ``repr`` so a
    control character in a DeviceName cannot reach the terminal raw."""
    lines = [
        f"{path}: {summary.total} rows, {summary.valid} valid, {summary.rejected} rejected",
    ]
    if summary.empty_lines:
        shown = ", ".join(str(n) for n in summary.first_empty_lines)
        etc = ", ..." if summary.empty_lines > len(summary.first_empty_lines) else ""
        noun = "line" if summary.empty_lines == 1 else "lines"
        lines.append(f"skipped {summary.empty_lines} empty {noun} (not rows): {shown}{etc}")
    if summary.ignored_columns:
        lines.append("ignored columns: " + ", ".join(repr(c) for c in summary.ignored_columns))
    if summary.first_reasons:
        more = summary.rejected - len(summary.first_reasons)
        lines.append("first rejected rows:" if more else "rejected rows:")
        lines.extend(
            f"  line {line}: {name!r}: {reason}" for line, name, reason in summary.first_reasons
        )
        if more:
            lines.append(f"  ... and {more} more")
    if summary.rejects_path is not None:
        lines.append(f"rejected rows written to {summary.rejects_path}")
    elif summary.rejected:
        lines.append("use --rejects FILE to write every rejected row with its reason")
    return lines
