"""``provisioner emulator``: serve the IoT Platform emulator over HTTP.

:func:`emulator_command` is a plain Typer command function; the project's CLI
registers it as ``app.command("emulator")(emulator_command)``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated

import typer

from provisioner.emulator.config import EmulatorConfig
from provisioner.emulator.serve import serve

__all__ = ["accounts_from_options", "emulator_command"]

_ENV_ID = "ALIBABA_CLOUD_ACCESS_KEY_ID"
_ENV_SECRET = "ALIBABA_CLOUD_ACCESS_KEY_SECRET"  # noqa: S105 (a variable name)


def accounts_from_options(
    ids: list[str] | None, secrets: list[str] | None, env: dict[str, str] | None = None
) -> dict[str, str]:
    """AccessKey pairs from repeated options, else the environment, else testid/testsecret."""
    ids = ids or []
    secrets = secrets or []
    environ = os.environ if env is None else env
    if not ids and not secrets:
        env_id, env_secret = environ.get(_ENV_ID), environ.get(_ENV_SECRET)
        if env_id and env_secret:
            return {env_id: env_secret}
        return {"testid": "testsecret"}
    if len(ids) != len(secrets):
        raise typer.BadParameter(
            f"got {len(ids)} --access-key-id and {len(secrets)} --access-key-secret;"
            " give them in pairs",
            param_hint="'--access-key-id/--access-key-secret'",
        )
    accounts: dict[str, str] = {}
    for key_id, secret in zip(ids, secrets, strict=True):
        if not key_id or not secret:
            raise typer.BadParameter(
                "AccessKeyId and AccessKeySecret must not be empty", param_hint="'--access-key-id'"
            )
        if key_id in accounts and accounts[key_id] != secret:
            raise typer.BadParameter(
                f"AccessKeyId {key_id} is given twice with different secrets",
                param_hint="'--access-key-id'",
            )
        accounts[key_id] = secret
    return accounts


def emulator_command(
    host: Annotated[
        str, typer.Option(help="Address to listen on (0.0.0.0 for every interface).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="TCP port to listen on.")] = 8080,
    access_key_id: Annotated[
        list[str] | None,
        typer.Option(
            "--access-key-id",
            help="AccessKeyId the emulator accepts; repeat, paired in order with"
            f" --access-key-secret. Default: ${_ENV_ID} / ${_ENV_SECRET}, else testid/testsecret.",
            show_default=False,
        ),
    ] = None,
    access_key_secret: Annotated[
        list[str] | None,
        typer.Option(
            "--access-key-secret",
            help="AccessKeySecret of the --access-key-id at the same position (repeatable).",
            show_default=False,
        ),
    ] = None,
    state: Annotated[
        Path | None,
        typer.Option(
            "--state",
            help="SQLite file (created 0600) that keeps products, devices and applications"
            " across restarts. Holds DeviceSecrets: it is the emulated server's database."
            " Default: memory only.",
            dir_okay=False,
        ),
    ] = None,
    latency_ms: Annotated[
        float, typer.Option(min=0.0, help="Delay added to every answered request, in ms.")
    ] = 0.0,
    check_seconds: Annotated[
        float, typer.Option(min=0.0, help="How long an application stays in CHECK.")
    ] = 1.0,
    create_seconds: Annotated[
        float, typer.Option(min=0.0, help="How long an application stays in CREATE.")
    ] = 2.0,
    qps_scale: Annotated[
        float,
        typer.Option(
            min=0.0001,
            help="Multiplies every per-account QPS limit (e.g. 0.1 for compressed tests,"
            " 100 to never throttle).",
        ),
    ] = 1.0,
    fault_503: Annotated[
        float,
        typer.Option(
            "--fault-503", min=0.0, max=1.0, help="Probability of HTTP 503 ServiceUnavailable."
        ),
    ] = 0.0,
    fault_system_error: Annotated[
        float,
        typer.Option(min=0.0, max=1.0, help="Probability of HTTP 200 iot.system.SystemException."),
    ] = 0.0,
    fault_drop: Annotated[
        float,
        typer.Option(
            min=0.0,
            max=1.0,
            help="Probability that the connection is dropped before the action runs.",
        ),
    ] = 0.0,
    fault_drop_after: Annotated[
        float,
        typer.Option(
            min=0.0,
            max=1.0,
            help="Probability that the action runs and then the connection is dropped"
            " (the call took effect, the response is lost).",
        ),
    ] = 0.0,
    fault_actions: Annotated[
        str | None,
        typer.Option(
            metavar="ACTION,...",
            help="Inject the faults only into these operations (comma-separated; default all).",
        ),
    ] = None,
    fail_check_names: Annotated[
        str | None,
        typer.Option(
            metavar="REGEX",
            help="Regular expression (searched); matching DeviceNames fail the check"
            " (CHECK_FAILED, listed in InvalidList).",
        ),
    ] = None,
    create_failure_rate: Annotated[
        float,
        typer.Option(min=0.0, max=1.0, help="Fraction of DeviceNames whose creation fails."),
    ] = 0.0,
    max_batch: Annotated[
        int,
        typer.Option(
            min=1,
            help="Most names (or Count) in one application; more is"
            " iot.device.DeviceCountExceeded.",
        ),
    ] = 10_000,
    seed: Annotated[
        int | None,
        typer.Option(help="Seed of the random source of faults, identifiers and failures."),
    ] = None,
) -> None:
    """Serve a local emulator of the IoT Platform device provisioning API.

    Verifies V1 and V3 signatures, enforces per-account QPS limits, runs
    applications through CHECK and CREATE on a clock and can inject faults.
    """
    accounts = accounts_from_options(access_key_id, access_key_secret)
    if fail_check_names is not None:
        try:
            re.compile(fail_check_names)
        except re.error as exc:
            raise typer.BadParameter(
                f"not a valid regular expression: {exc}", param_hint="'--fail-check-names'"
            ) from None
    try:
        config = EmulatorConfig(
            accounts=accounts,
            latency_ms=latency_ms,
            check_seconds=check_seconds,
            create_seconds=create_seconds,
            qps_scale=qps_scale,
            fault_503=fault_503,
            fault_system_error=fault_system_error,
            fault_drop=fault_drop,
            fault_drop_after=fault_drop_after,
            fault_actions=(
                frozenset(a.strip() for a in fault_actions.split(",") if a.strip())
                if fault_actions
                else None
            ),
            fail_check_names=fail_check_names,
            create_failure_rate=create_failure_rate,
            max_batch=max_batch,
            state_path=state,
            seed=seed,
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    typer.echo(
        f"IoT Platform emulator on http://{host}:{port}/"
        f" (AccessKeyIds: {', '.join(config.access_key_ids)})",
        err=True,
    )
    serve(config, host=host, port=port)
