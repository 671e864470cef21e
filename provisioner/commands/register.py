"""The ``register-random`` command: devices whose names the server picks.

Options -> :class:`~provisioner.pipeline.random_names.RandomSettings` -> one call of
:func:`~provisioner.pipeline.random_names.register_random` -> message + exit code.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import anyio
import typer

from provisioner.commands.common import (
    DeadlineOpt,
    EndpointOpt,
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
from provisioner.pipeline.random_names import MAX_PER_CALL, RandomSettings, register_random

__all__ = ["LostChoice", "register_random_command"]


class LostChoice(StrEnum):
    """What to do with BatchRegisterDevice calls whose answer was lost."""

    fail = "fail"
    resubmit = "resubmit"
    abandon = "abandon"


def register_random_command(
    count: Annotated[int, typer.Option("--count", min=1, help="How many devices to register.")],
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
    per_call: Annotated[
        int,
        typer.Option(
            "--per-call", min=1, max=MAX_PER_CALL, help="Most devices per BatchRegisterDevice call."
        ),
    ] = MAX_PER_CALL,
    lost: Annotated[
        LostChoice,
        typer.Option(
            "--lost",
            help="Calls whose answer was lost (devices may exist): fail (stop and say so), "
            "resubmit (they were not created) or abandon (finish without them).",
        ),
    ] = LostChoice.fail,
    new_batch: Annotated[
        bool,
        typer.Option(
            "--new-batch",
            help="Start this batch although another one for the product is unfinished.",
        ),
    ] = False,
    fmt: FormatOpt = FormatChoice.csv,
    force: ForceOpt = False,
    log_format: LogFormatOpt = None,
    qps_scale: QpsScaleOpt = None,
) -> None:
    """Register --count devices with names chosen by the server (BatchRegisterDevice) and
    write their credentials, encrypted, to --out.

    The same command again resumes an interrupted batch or says it is complete; it
    never registers a second set. A new batch needs a new --out.
    """
    setup_logging(log_format)

    def settings() -> RandomSettings:
        api = load_api_settings(
            endpoint=endpoint,
            region=region,
            iot_instance_id=iot_instance_id,
            qps_scale=qps_scale,
            timeout=timeout,
            deadline=deadline,
            insecure_http=insecure_http or None,
        )
        return RandomSettings(
            count=count,
            product_key=product_key,
            out=out,
            encryption=load_encryption(recipient or (), recipients_file, passphrase_env),
            api=api,
            fmt=fmt.value,
            per_call=per_call,
            force=force,
            journal=journal,
            lost=lost.value,
            new_batch=new_batch,
            encryption_options=encryption_options(recipient, recipients_file, passphrase_env),
        )

    random_settings = guard(settings)
    finish(guard(lambda: anyio.run(register_random, random_settings)))
