"""``provisioner emulator``: check the options, build the configuration, serve over HTTP.

The command's options are declared in :mod:`provisioner.commands.emulator`, which the
project's CLI registers without importing this module (the server needs starlette and
uvicorn); the command imports this module and calls :func:`run_emulator` when it runs.
:func:`emulator_command` is that same command function, exported here too.
"""

from __future__ import annotations

import os
import re

import typer

from provisioner.commands.emulator import EmulatorOptions, emulator_command
from provisioner.emulator.config import EmulatorConfig
from provisioner.emulator.serve import serve

__all__ = ["accounts_from_options", "emulator_command", "run_emulator"]

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


def run_emulator(options: EmulatorOptions) -> None:
    """The body of ``provisioner emulator``, given the options as parsed.

    Errors in the options are :class:`typer.BadParameter` (exit 2 with the usage).
    """
    accounts = accounts_from_options(options.access_key_id, options.access_key_secret)
    fail_check_names = options.fail_check_names
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
            latency_ms=options.latency_ms,
            check_seconds=options.check_seconds,
            create_seconds=options.create_seconds,
            qps_scale=options.qps_scale,
            fault_503=options.fault_503,
            fault_system_error=options.fault_system_error,
            fault_drop=options.fault_drop,
            fault_drop_after=options.fault_drop_after,
            fault_actions=(
                frozenset(a.strip() for a in options.fault_actions.split(",") if a.strip())
                if options.fault_actions
                else None
            ),
            fail_check_names=fail_check_names,
            create_failure_rate=options.create_failure_rate,
            max_batch=options.max_batch,
            state_path=options.state,
            seed=options.seed,
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    typer.echo(
        f"IoT Platform emulator on http://{options.host}:{options.port}/"
        f" (AccessKeyIds: {', '.join(config.access_key_ids)})",
        err=True,
    )
    serve(config, host=options.host, port=options.port)
