"""The ``import`` command: migrate devices with their existing DeviceSecrets.

Options -> :class:`~provisioner.pipeline.importer.ImportSettings` -> one call of
:func:`~provisioner.pipeline.importer.import_devices` -> message + exit code.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import anyio
import typer

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
    setup_logging,
)
from provisioner.config import load_api_settings
from provisioner.output import load_encryption
from provisioner.pipeline.importer import ImportSettings, import_devices

__all__ = ["import_command"]


def import_command(
    input_path: Annotated[
        Path,
        typer.Argument(
            metavar="INPUT",
            help="CSV or Parquet with DeviceName, DeviceSecret (and Nickname, Sn); "
            "may be age-encrypted (.age).",
        ),
    ],
    product_key: Annotated[str, typer.Option("--product-key", help="ProductKey of the product.")],
    out: Annotated[Path, typer.Option("--out", help="Encrypted credentials file to write.")],
    identity: Annotated[
        Path | None,
        typer.Option("--identity", "-i", help="age identity file to decrypt an INPUT.age."),
    ] = None,
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
    log_format: LogFormatOpt = None,
    qps_scale: QpsScaleOpt = None,
) -> None:
    """Import the devices of INPUT with their existing secrets (ImportDevice) and write
    their credentials, with an Sn column, encrypted to --out.

    Re-running the same command imports only what is missing.
    """
    setup_logging(log_format)

    def settings() -> ImportSettings:
        api = load_api_settings(
            endpoint=endpoint,
            region=region,
            iot_instance_id=iot_instance_id,
            qps_scale=qps_scale,
            timeout=timeout,
            deadline=deadline,
            insecure_http=insecure_http or None,
        )
        return ImportSettings(
            input=input_path,
            product_key=product_key,
            out=out,
            encryption=load_encryption(recipient or (), recipients_file, passphrase_env),
            api=api,
            identity=identity,
            existing=existing.value,
            skip_invalid=skip_invalid,
            fmt=fmt.value,
            force=force,
            journal=journal,
            encryption_options=encryption_options(recipient, recipients_file, passphrase_env),
        )

    import_settings = guard(settings)
    finish(guard(lambda: anyio.run(import_devices, import_settings)))
