"""The rejects file: the rejected rows of an input, as CSV a person opens in a spreadsheet.

Written by ``validate --rejects`` and beside the output of ``run`` and ``import``. Rows
repeat at most 40 characters of a cell (the readers cut them,
:func:`provisioner.inputs.limits.echo_cell`); an import's rejected rows hold no cell that
failed a rule (:mod:`provisioner.inputs.imports`). The file is written mode 0600 from its
first byte and atomically, and every cell that a spreadsheet would run as a formula
(starting with ``= + - @``, TAB or CR) is prefixed with ``'``
(:func:`provisioner.output.spreadsheet.excel_safe`).
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import polars as pl

from provisioner.errors import OutputError
from provisioner.output import create_partial, discard, publish
from provisioner.output.spreadsheet import write_csv_rows

__all__ = ["REJECTS_COLUMNS", "write_rejects"]

REJECTS_COLUMNS: tuple[str, ...] = ("line", "DeviceName", "Nickname", "reason")


def write_rejects(rejected: pl.DataFrame, path: Path, *, replace: bool = True) -> None:
    """Write the rejected rows as CSV (header ``line,DeviceName,Nickname,reason``).

    The file is created under a temporary name beside ``path`` with mode 0600 from its first
    byte, fsynced and renamed over ``path`` (:func:`provisioner.output.create_partial`,
    :func:`provisioner.output.publish`): a reader never sees half a file. Every cell goes through
    :func:`~provisioner.output.spreadsheet.excel_safe`. ``replace=False`` refuses a ``path``
    that exists (``validate --rejects`` without ``--force``); the pipeline's own rejects
    beside an output belong to that output and are replaced. Raises :class:`OutputError`.
    """
    if path.is_dir():
        raise OutputError(
            f"{path}: cannot write the rejects file (it is a directory); choose a file path"
        )
    if not replace and os.path.lexists(path):
        raise OutputError(f"{path} exists; pass --force to replace it or choose another path")
    try:
        temp, file = create_partial(path)
    except OutputError as exc:
        cause = exc.__cause__
        why = cause.strerror if isinstance(cause, OSError) and cause.strerror else "cannot create"
        raise OutputError(
            f"{path}: cannot write the rejects file ({why}); check the directory exists "
            "and is writable"
        ) from exc
    try:
        text = io.TextIOWrapper(file, encoding="utf-8", newline="")
        rows = (
            ["" if cell is None else str(cell) for cell in row]
            for row in rejected.select(REJECTS_COLUMNS).iter_rows()
        )
        write_csv_rows(text, [list(REJECTS_COLUMNS)])
        write_csv_rows(text, rows)
        text.flush()
        text.detach()
    except OSError as exc:
        file.close()
        discard(temp)
        raise OutputError(
            f"{path}: cannot write the rejects file ({exc.strerror or exc}); check the "
            "directory is writable and has space"
        ) from exc
    except BaseException:
        file.close()
        discard(temp)
        raise
    publish(temp, file, path, force=replace)
