"""The library API for integrators: provision a file of devices from Python.

A factory's MES (or any program) calls :func:`provision` the way an operator types
``provisioner run``: the same validation, journal, resume, encryption and exit codes,
without a subprocess. Credentials come from the environment (the variables every
Alibaba Cloud tool reads), never from arguments. Errors an operator could cause are
raised as :class:`~provisioner.errors.ProvisionerError` subclasses, each with a
one-line message and an ``exit_code``; a run that finished is a :class:`RunResult`.

>>> from provisioner import provision                       # doctest: +SKIP
>>> result = provision("shift-42.csv", product_key="a1BwAGV1234",
...                    out="shift-42.csv.age", recipients=["age1..."])
>>> result.ok, result.counts["exported"]
(True, 3000)
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypedDict, Unpack

import anyio
import structlog

from provisioner.config import load_api_settings
from provisioner.errors import EXIT_OK
from provisioner.log import configure_logging
from provisioner.output import load_encryption
from provisioner.pipeline import RunOutcome, RunSettings
from provisioner.pipeline import provision as _provision

__all__ = ["RunOptions", "RunResult", "provision", "provision_async"]


@dataclass(frozen=True, slots=True)
class RunResult:
    """How a run ended: its id, exit code (0 done, 3 input rejected, 4 some devices not
    provisioned), the one-line message, and where its files are."""

    run_id: str | None
    exit_code: int
    message: str
    out: Path | None
    report_path: Path | None
    rejects_path: Path | None
    report: Mapping[str, Any] | None
    already_completed: bool

    @property
    def ok(self) -> bool:
        """Every device of the input is in the output."""
        return self.exit_code == EXIT_OK

    @property
    def counts(self) -> Mapping[str, int]:
        """input, rejected, submitted, created, exported, adopted, failed (empty if the
        run never started: a rejected input)."""
        return dict((self.report or {}).get("counts", {}))

    @classmethod
    def of(cls, outcome: RunOutcome) -> RunResult:
        return cls(
            run_id=outcome.run_id,
            exit_code=outcome.exit_code,
            message=outcome.message,
            out=outcome.out,
            report_path=outcome.report_path,
            rejects_path=outcome.rejects_path,
            report=outcome.report,
            already_completed=outcome.already_completed,
        )


def _log_through_stdlib() -> None:
    """Unless the program configured structlog itself, the run's events go to the
    standard ``logging`` module, where a program decides what to show; structlog's own
    default would print them on stdout."""
    if not structlog.is_configured():
        configure_logging(level=logging.DEBUG, stdlib=True)


class RunOptions(TypedDict, total=False):
    """The options of :func:`provision`, as ``provisioner run`` names them."""

    recipients: Sequence[str]
    recipients_file: str | os.PathLike[str] | None
    passphrase_env: str | None
    endpoint: str | None
    region: str | None
    iot_instance_id: str | None
    journal: str | None
    chunk_size: int
    skip_invalid: bool
    existing: Literal["fail", "adopt"]
    fmt: Literal["csv", "jsonl", "parquet"]
    force: bool


def _settings(
    input: str | os.PathLike[str],
    product_key: str,
    out: str | os.PathLike[str],
    options: RunOptions,
) -> RunSettings:
    recipients = list(options.get("recipients", ()))
    given = options.get("recipients_file")
    file = Path(given) if given is not None else None
    passphrase_env = options.get("passphrase_env")
    return RunSettings(
        input=Path(input),
        product_key=product_key,
        out=Path(out),
        encryption=load_encryption(recipients, file, passphrase_env),
        fmt=options.get("fmt", "csv"),
        chunk_size=options.get("chunk_size", 10_000),
        skip_invalid=options.get("skip_invalid", False),
        existing=options.get("existing", "fail"),
        force=options.get("force", False),
        journal=options.get("journal"),
        api=load_api_settings(
            endpoint=options.get("endpoint"),
            region=options.get("region"),
            iot_instance_id=options.get("iot_instance_id"),
        ),
        progress="none",
        encryption_options={
            "recipients": recipients,
            "recipients_file": str(file.absolute()) if file else None,
            "passphrase_env": passphrase_env,
        },
    )


async def provision_async(
    input: str | os.PathLike[str],
    *,
    product_key: str,
    out: str | os.PathLike[str],
    **options: Unpack[RunOptions],
) -> RunResult:
    """:func:`provision` inside an event loop that is already running (asyncio)."""
    _log_through_stdlib()
    return RunResult.of(await _provision(_settings(input, product_key, out, options)))


def provision(
    input: str | os.PathLike[str],
    *,
    product_key: str,
    out: str | os.PathLike[str],
    **options: Unpack[RunOptions],
) -> RunResult:
    """Provision every device of ``input`` and write their credentials, encrypted, to ``out``.

    Exactly ``provisioner run``: a second call with the same input resumes an
    interrupted run, or returns at once (``already_completed``) if it finished.
    ``recipients`` are age or SSH public keys (or give ``recipients_file``, or the
    *name* of an environment variable holding a passphrase); ``endpoint``, ``region``,
    ``iot_instance_id`` and ``journal`` default to their environment variables; the
    other options are those of :class:`RunOptions`. Raises
    :class:`~provisioner.errors.ProvisionerError` (usage, journal, output and API
    errors; a failed run can be resumed by calling again).
    """
    return anyio.run(
        functools.partial(provision_async, input, product_key=product_key, out=out, **options)
    )
