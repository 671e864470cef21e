"""The ``import`` command: migrate devices with their existing DeviceSecrets.

Options -> :class:`~provisioner.pipeline.kinds.single_import.ImportSettings` -> one call of
:func:`~provisioner.pipeline.kinds.single_import.import_devices` -> message + exit code.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import anyio
import typer

from provisioner.commands.common import finish, guard
from provisioner.commands.options import (
    ApiOptions,
    EncryptionOptions,
    ExistingChoice,
    ForceOpt,
    FormatChoice,
    FormatOpt,
    JournalOpt,
    LogOptions,
    OutOpt,
    ProductKeyOpt,
    with_groups,
)
from provisioner.pipeline import ImportSettings, import_devices

__all__ = ["import_command"]


@with_groups(progress_bars=True)
def import_command(
    *,
    input_path: Annotated[
        Path,
        typer.Argument(
            metavar="INPUT",
            help="CSV or Parquet with DeviceName, DeviceSecret (and Nickname, Sn); "
            "may be age-encrypted (.age).",
        ),
    ],
    product_key: ProductKeyOpt,
    out: OutOpt,
    identity: Annotated[
        Path | None,
        typer.Option("--identity", "-i", help="age identity file to decrypt an INPUT.age."),
    ] = None,
    encryption: EncryptionOptions,
    api: ApiOptions,
    journal: JournalOpt = None,
    existing: Annotated[
        ExistingChoice,
        typer.Option(
            "--existing",
            help="A device that already exists: fail (report it) or adopt (include it when "
            "its DeviceSecret matches the input).",
        ),
    ] = ExistingChoice.fail,
    skip_invalid: Annotated[
        bool,
        typer.Option("--skip-invalid", help="Import the valid rows; report the invalid ones."),
    ] = False,
    fmt: FormatOpt = FormatChoice.csv,
    force: ForceOpt = False,
    logs: LogOptions,
) -> None:
    """Import the devices of INPUT with their existing secrets (ImportDevice) and write
    their credentials, with an Sn column, encrypted to --out.

    Re-running the same command imports only what is missing.
    """
    settings = guard(
        lambda: ImportSettings(
            input=input_path,
            product_key=product_key,
            out=out,
            api=api.settings(),
            encryption=encryption.encryption(),
            identity=identity,
            existing=existing.value,
            skip_invalid=skip_invalid,
            fmt=fmt.value,
            force=force,
            journal=journal,
            encryption_options=encryption.recorded(),
        )
    )
    finish(guard(lambda: anyio.run(import_devices, settings)))
