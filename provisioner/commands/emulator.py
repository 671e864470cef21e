"""``provisioner emulator``: the command's options, registered without importing the server.

The emulator's server needs starlette and uvicorn, which take a while to import and which
no other command uses. :func:`emulator_command` only declares the options, as the group
:class:`EmulatorOptions` (so ``provisioner --help`` and ``provisioner emulator --help`` need
nothing more), and imports :mod:`provisioner.emulator.cli`, which builds the configuration
from them and serves, when the command runs.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated, Any

import typer

from provisioner.commands.options import OptionGroup, with_groups

__all__ = ["EmulatorOptions", "emulator_command"]


def _probability(help: str, *names: str) -> Any:
    """An option whose value is a probability, or a fraction: 0 to 1."""
    return typer.Option(*names, min=0.0, max=1.0, help=help)


@dataclasses.dataclass(frozen=True, slots=True)
class EmulatorOptions(OptionGroup):
    """Every option of ``provisioner emulator``, in the order ``--help`` lists them."""

    host: Annotated[
        str, typer.Option(help="Address to listen on (0.0.0.0 for every interface).")
    ] = "127.0.0.1"
    port: Annotated[int, typer.Option(min=0, max=65535, help="TCP port to listen on.")] = 8080
    access_key_id: Annotated[
        list[str] | None,
        typer.Option(
            "--access-key-id",
            help="AccessKeyId the emulator accepts; repeat, paired in order with"
            " --access-key-secret. Default: $ALIBABA_CLOUD_ACCESS_KEY_ID /"
            " $ALIBABA_CLOUD_ACCESS_KEY_SECRET, else testid/testsecret.",
            show_default=False,
        ),
    ] = None
    access_key_secret: Annotated[
        list[str] | None,
        typer.Option(
            "--access-key-secret",
            help="AccessKeySecret of the --access-key-id at the same position (repeatable).",
            show_default=False,
        ),
    ] = None
    state: Annotated[
        Path | None,
        typer.Option(
            "--state",
            help="SQLite file (created 0600) that keeps products, devices and applications"
            " across restarts. Holds DeviceSecrets: it is the emulated server's database."
            " Default: memory only.",
            dir_okay=False,
        ),
    ] = None
    latency_ms: Annotated[
        float, typer.Option(min=0.0, help="Delay added to every answered request, in ms.")
    ] = 0.0
    check_seconds: Annotated[
        float, typer.Option(min=0.0, help="How long an application stays in CHECK.")
    ] = 1.0
    create_seconds: Annotated[
        float, typer.Option(min=0.0, help="How long an application stays in CREATE.")
    ] = 2.0
    qps_scale: Annotated[
        float,
        typer.Option(
            min=0.0001,
            help="Multiplies every per-account QPS limit (e.g. 0.1 for compressed tests,"
            " 100 to never throttle).",
        ),
    ] = 1.0
    fault_503: Annotated[
        float, _probability("Probability of HTTP 503 ServiceUnavailable.", "--fault-503")
    ] = 0.0
    fault_system_error: Annotated[
        float, _probability("Probability of HTTP 200 iot.system.SystemException.")
    ] = 0.0
    fault_drop: Annotated[
        float, _probability("Probability that the connection is dropped before the action runs.")
    ] = 0.0
    fault_drop_after: Annotated[
        float,
        _probability(
            "Probability that the action runs and then the connection is dropped"
            " (the call took effect, the response is lost)."
        ),
    ] = 0.0
    fault_actions: Annotated[
        str | None,
        typer.Option(
            metavar="ACTION,...",
            help="Inject the faults only into these operations (comma-separated; default all).",
        ),
    ] = None
    fail_check_names: Annotated[
        str | None,
        typer.Option(
            metavar="REGEX",
            help="Regular expression (searched); matching DeviceNames fail the check"
            " (CHECK_FAILED, listed in InvalidList).",
        ),
    ] = None
    create_failure_rate: Annotated[
        float, _probability("Fraction of DeviceNames whose creation fails.")
    ] = 0.0
    max_batch: Annotated[
        int,
        typer.Option(
            min=1,
            help="Most names (or Count) in one application; more is"
            " iot.device.DeviceCountExceeded.",
        ),
    ] = 10_000
    seed: Annotated[
        int | None,
        typer.Option(help="Seed of the random source of faults, identifiers and failures."),
    ] = None


@with_groups()
def emulator_command(*, options: EmulatorOptions) -> None:
    """Serve a local emulator of the IoT Platform device provisioning API.

    Verifies V1 and V3 signatures, enforces per-account QPS limits, runs
    applications through CHECK and CREATE on a clock and can inject faults.
    """
    # Imported only now: the server pulls in starlette and uvicorn (see the module docstring).
    from provisioner.emulator import cli as emulator_cli

    emulator_cli.run_emulator(options)
