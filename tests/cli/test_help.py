"""Every command has help text, and the README documents every command and exit code."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import typer
from typer.main import get_command
from typer.testing import CliRunner

from provisioner.cli import app

README = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
COMMANDS = sorted(get_command(app).commands)  # type: ignore[attr-defined]


def _sub_commands() -> list[str]:
    """``group command`` for every command of every group (``product create``...)."""
    found = []
    for name, command in get_command(app).commands.items():  # type: ignore[attr-defined]
        if isinstance(command, typer.core.TyperGroup):
            found.extend(f"{name} {sub}" for sub in sorted(command.commands))
    return sorted(found)


SUB_COMMANDS = _sub_commands()


def test_there_are_commands() -> None:
    assert {"validate", "keygen", "decrypt", "emulator"} <= set(COMMANDS)


@pytest.mark.parametrize("name", COMMANDS)
def test_command_has_help(name: str) -> None:
    result = CliRunner().invoke(app, [name, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output
    command = get_command(app).commands[name]  # type: ignore[attr-defined]
    assert command.help, f"{name} has no help text"
    for param in command.params:
        if param.name != "help" and not getattr(param, "hidden", False):
            assert getattr(param, "help", None) or isinstance(param, typer.core.TyperArgument), (
                f"{name} {param.name} has no help"
            )


def test_there_are_sub_commands() -> None:
    assert {"product create", "product show"} <= set(SUB_COMMANDS)


@pytest.mark.parametrize("path", SUB_COMMANDS)
def test_sub_command_has_help(path: str) -> None:
    group_name, name = path.split()
    result = CliRunner().invoke(app, [group_name, name, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output
    group = get_command(app).commands[group_name]  # type: ignore[attr-defined]
    assert group.help, f"{group_name} has no help text"
    command = group.commands[name]
    assert command.help, f"{path} has no help text"
    for param in command.params:
        if param.name != "help" and not getattr(param, "hidden", False):
            assert getattr(param, "help", None) or isinstance(param, typer.core.TyperArgument), (
                f"{path} {param.name} has no help"
            )


@pytest.mark.parametrize("path", SUB_COMMANDS)
def test_readme_mentions_sub_command(path: str) -> None:
    assert re.search(rf"provisioner {path}\b", README), f"README does not show `provisioner {path}`"


@pytest.mark.parametrize("name", COMMANDS)
def test_readme_mentions_command(name: str) -> None:
    assert re.search(rf"provisioner {name}\b", README), f"README does not show `provisioner {name}`"


def test_root_help_lists_exit_codes() -> None:
    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0
    for code in ("0", "1", "2", "3", "4"):
        assert f"| {code} |" in README


def test_version() -> None:
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output.startswith("provisioner ")
