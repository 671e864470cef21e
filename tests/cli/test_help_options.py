"""Every command lists, in ``--help``, the options it listed before the option groups.

The lists below were taken from every command's ``--help`` before the options were
gathered into groups (:mod:`provisioner.commands.options`): the visible options in
their order, then the hidden ones. A group that loses, renames, hides or moves an
option fails here.
"""

from __future__ import annotations

import pytest
import typer
from typer.main import get_command
from typer.testing import CliRunner

from provisioner.cli import app

# command -> (visible parameters in order: arguments by metavar, options by their names;
#             hidden options)
BEFORE: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "decrypt": (
        (
            "FILE",
            "--identity -i",
            "--passphrase-env",
            "--out",
            "--force",
            "--excel-safe",
        ),
        (),
    ),
    "emulator": (
        (
            "--host",
            "--port",
            "--access-key-id",
            "--access-key-secret",
            "--state",
            "--latency-ms",
            "--check-seconds",
            "--create-seconds",
            "--qps-scale",
            "--fault-503",
            "--fault-system-error",
            "--fault-drop",
            "--fault-drop-after",
            "--fault-actions",
            "--fail-check-names",
            "--create-failure-rate",
            "--max-batch",
            "--seed",
        ),
        (),
    ),
    "export": (
        (
            "--apply-id",
            "--product-key",
            "--out",
            "--recipient -r",
            "--recipients-file -R",
            "--passphrase-env",
            "--endpoint",
            "--region",
            "--iot-instance-id",
            "--insecure-http",
            "--timeout",
            "--deadline",
            "--format",
            "--force",
            "--log-format",
        ),
        ("--qps-scale",),
    ),
    "import": (
        (
            "INPUT",
            "--product-key",
            "--out",
            "--identity -i",
            "--recipient -r",
            "--recipients-file -R",
            "--passphrase-env",
            "--endpoint",
            "--region",
            "--iot-instance-id",
            "--insecure-http",
            "--timeout",
            "--deadline",
            "--journal",
            "--existing",
            "--skip-invalid",
            "--format",
            "--force",
            "--log-format",
        ),
        ("--qps-scale",),
    ),
    "keygen": (
        (
            "--out",
            "--force",
        ),
        (),
    ),
    "product create": (
        (
            "--name",
            "--node-type",
            "--commodity-code",
            "--data-format",
            "--description",
            "--protocol-type",
            "--net-type",
            "--auth-type",
            "--category-key",
            "--publish-auto/--no-publish-auto",
            "--validate-type",
            "--resource-group-id",
            "--out",
            "--recipient -r",
            "--recipients-file -R",
            "--passphrase-env",
            "--force",
            "--endpoint",
            "--region",
            "--iot-instance-id",
            "--insecure-http",
            "--timeout",
            "--deadline",
            "--log-format",
        ),
        ("--qps-scale",),
    ),
    "product show": (
        (
            "PRODUCT_KEY",
            "--json",
            "--out",
            "--recipient -r",
            "--recipients-file -R",
            "--passphrase-env",
            "--force",
            "--endpoint",
            "--region",
            "--iot-instance-id",
            "--insecure-http",
            "--timeout",
            "--deadline",
            "--log-format",
        ),
        ("--qps-scale",),
    ),
    "register-random": (
        (
            "--count",
            "--product-key",
            "--out",
            "--recipient -r",
            "--recipients-file -R",
            "--passphrase-env",
            "--endpoint",
            "--region",
            "--iot-instance-id",
            "--insecure-http",
            "--timeout",
            "--deadline",
            "--journal",
            "--per-call",
            "--lost",
            "--new-batch",
            "--format",
            "--force",
            "--log-format",
        ),
        ("--qps-scale",),
    ),
    "resume": (
        (
            "RUN_ID",
            "--journal",
            "--recipient -r",
            "--recipients-file -R",
            "--passphrase-env",
            "--force",
            "--lost",
            "--log-format",
            "--insecure-http",
            "--timeout",
            "--deadline",
        ),
        ("--qps-scale",),
    ),
    "run": (
        (
            "INPUT",
            "--product-key",
            "--out",
            "--recipient -r",
            "--recipients-file -R",
            "--passphrase-env",
            "--endpoint",
            "--region",
            "--iot-instance-id",
            "--insecure-http",
            "--timeout",
            "--deadline",
            "--journal",
            "--chunk-size",
            "--skip-invalid",
            "--existing",
            "--log-format",
            "--format",
            "--dry-run",
            "--force",
        ),
        ("--qps-scale",),
    ),
    "status": (
        (
            "[RUN_ID]",
            "--journal",
        ),
        (),
    ),
    "validate": (
        (
            "FILE",
            "--rejects",
            "--force",
        ),
        (),
    ),
}


def _command(path: str) -> typer.core.TyperCommand:
    command = get_command(app)
    for part in path.split():
        command = command.commands[part]  # type: ignore[attr-defined]
    return command  # type: ignore[return-value]


def _listed(parameter: typer.core.click.Parameter) -> str:
    if isinstance(parameter, typer.core.TyperArgument):
        return parameter.metavar or parameter.name or ""
    if parameter.secondary_opts:
        return "/".join([*parameter.opts, *parameter.secondary_opts])
    return " ".join(parameter.opts)


def test_every_command_is_listed() -> None:
    found = set()
    for name, command in get_command(app).commands.items():  # type: ignore[attr-defined]
        if isinstance(command, typer.core.TyperGroup):
            found.update(f"{name} {sub}" for sub in command.commands)
        else:
            found.add(name)
    assert found == set(BEFORE)


@pytest.mark.parametrize("path", sorted(BEFORE))
def test_options_as_before(path: str) -> None:
    visible, hidden = BEFORE[path]
    params = [p for p in _command(path).params if p.name != "help"]
    assert tuple(_listed(p) for p in params if not getattr(p, "hidden", False)) == visible
    assert tuple(_listed(p) for p in params if getattr(p, "hidden", False)) == hidden


@pytest.mark.parametrize("path", sorted(BEFORE))
def test_help_lists_them(path: str) -> None:
    # Wide, so that rich does not cut a long option name short.
    result = CliRunner().invoke(app, [*path.split(), "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    visible, hidden = BEFORE[path]
    for listed in visible:
        for name in listed.replace("/", " ").split():
            assert name in result.output, f"{path} --help does not list {name}"
    for listed in hidden:
        assert listed not in result.output
