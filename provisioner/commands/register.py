"""The ``register-random`` command: devices whose names the server picks.

Options -> :class:`~provisioner.pipeline.kinds.random_names.RandomSettings` -> one call of
:func:`~provisioner.pipeline.kinds.random_names.register_random` -> message + exit code.
"""

from __future__ import annotations

from typing import Annotated

import anyio
import typer

from provisioner.commands.common import finish, guard
from provisioner.commands.options import (
    ApiOptions,
    EncryptionOptions,
    ForceOpt,
    FormatChoice,
    FormatOpt,
    JournalOpt,
    LogOptions,
    LostChoice,
    OutOpt,
    ProductKeyOpt,
    with_groups,
)
from provisioner.pipeline import MAX_PER_CALL, RandomSettings, register_random

__all__ = ["register_random_command"]


@with_groups(progress_bars=True)
def register_random_command(
    *,
    count: Annotated[int, typer.Option("--count", min=1, help="How many devices to register.")],
    product_key: ProductKeyOpt,
    out: OutOpt,
    encryption: EncryptionOptions,
    api: ApiOptions,
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
    logs: LogOptions,
) -> None:
    """Register --count devices with names chosen by the server (BatchRegisterDevice) and
    write their credentials, encrypted, to --out.

    The same command again resumes an interrupted batch or says it is complete; it
    never registers a second set. A new batch needs a new --out.
    """
    settings = guard(
        lambda: RandomSettings(
            count=count,
            product_key=product_key,
            out=out,
            api=api.settings(),
            encryption=encryption.encryption(),
            fmt=fmt.value,
            per_call=per_call,
            force=force,
            journal=journal,
            lost=lost.value,
            new_batch=new_batch,
            encryption_options=encryption.recorded(),
        )
    )
    finish(guard(lambda: anyio.run(register_random, settings)))
