"""``provisioner validate``: check a device list offline and say what would be rejected.

No network, no credentials: the file is read and validated with the same rules a run
uses (:mod:`provisioner.inputs`), the counts and the first few reasons are printed, and
the rejected rows can be written to a CSV for fixing. Exit 0 when every row is valid,
3 when some row was rejected or the file could not be read.

``--rejects FILE`` is written like every file we write (mode 0600 from its first byte,
atomically, formula-like cells neutralised: see :func:`provisioner.inputs.write_rejects`)
and an existing FILE is refused (exit 2) unless ``--force``: it may be something else
than an old rejects file. Empty physical lines are not rows; they are counted and named.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer

from provisioner.errors import EXIT_INPUT, EXIT_OK, ProvisionerError, UsageError
from provisioner.inputs import ReadLimits, read_devices, write_rejects

__all__ = [
    "FIRST_REASONS",
    "ValidationSummary",
    "render_summary",
    "validate_command",
    "validate_file",
]

#: How many rejected rows the summary quotes; the rejects file has them all.
FIRST_REASONS = 5


@dataclass(frozen=True, slots=True)
class ValidationSummary:
    """What :func:`validate_file` found. ``rejects_path`` is set only when a file was written."""

    total: int
    valid: int
    rejected: int
    ignored_columns: tuple[str, ...]
    first_reasons: list[tuple[int, str, str]]  # (line, DeviceName, reason), file order
    rejects_path: Path | None
    empty_lines: int = 0  # empty physical lines skipped (not rows)
    first_empty_lines: tuple[int, ...] = ()


def validate_file(
    path: Path,
    rejects: Path | None,
    *,
    force: bool = False,
    limits: ReadLimits | None = None,
) -> ValidationSummary:
    """Validate ``path``; write the rejected rows to ``rejects`` if given and any were rejected.

    An existing ``rejects`` is refused unless ``force`` (:class:`UsageError`, before the
    file is read). Raises :class:`~provisioner.errors.InputError` when the file cannot be
    read and :class:`~provisioner.errors.OutputError` when the rejects file cannot be written.
    """
    if rejects is not None:
        _check_rejects_target(path, rejects, force=force)
    table = read_devices(path, limits)
    first = [
        (int(line), name or "", reason)
        for line, name, reason in table.rejected.head(FIRST_REASONS)
        .select("line", "DeviceName", "reason")
        .iter_rows()
    ]
    written: Path | None = None
    if rejects is not None and table.rejected.height:
        write_rejects(table.rejected, rejects, replace=force)
        written = rejects
    return ValidationSummary(
        total=table.total,
        valid=table.valid.height,
        rejected=table.rejected.height,
        ignored_columns=table.ignored_columns,
        first_reasons=first,
        rejects_path=written,
        empty_lines=table.empty_lines,
        first_empty_lines=table.first_empty_lines,
    )


def _check_rejects_target(path: Path, rejects: Path, *, force: bool) -> None:
    if os.path.lexists(rejects) and os.path.lexists(path) and rejects.resolve() == path.resolve():
        raise UsageError("--rejects must not be the input file; choose another --rejects path")
    if os.path.lexists(rejects) and not force:
        raise UsageError(
            f"{rejects} exists; pass --force to replace it or choose another --rejects path"
        )


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
    try:
        summary = validate_file(input, rejects, force=force)
    except ProvisionerError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(exc.exit_code) from None
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
