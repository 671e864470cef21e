"""What ``provisioner validate`` finds in a device list, and its rejects file.

:func:`validate_file` reads and validates a file with the same rules a run uses
(:func:`~provisioner.inputs.devices.read_devices`), counts the rows, keeps the first
few reasons and writes every rejected row to a rejects file when asked. No network,
no credentials. Saying it to a person is the command's business
(:func:`provisioner.commands.validate.render_summary`).

The rejects file is written like every file we write (mode 0600 from its first byte,
atomically, formula-like cells neutralised: see :func:`~provisioner.inputs.write_rejects`)
and an existing one is refused unless ``force``: it may be something else than an old
rejects file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from provisioner.errors import UsageError
from provisioner.inputs.devices import read_devices
from provisioner.inputs.limits import ReadLimits
from provisioner.inputs.rejects import write_rejects

__all__ = ["FIRST_REASONS", "ValidationSummary", "validate_file"]

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
    # The messages name the options because only the command passes a rejects path.
    if os.path.lexists(rejects) and os.path.lexists(path) and rejects.resolve() == path.resolve():
        raise UsageError("--rejects must not be the input file; choose another --rejects path")
    if os.path.lexists(rejects) and not force:
        raise UsageError(
            f"{rejects} exists; pass --force to replace it or choose another --rejects path"
        )
