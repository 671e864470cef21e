"""Only ``provisioner emulator`` pays for the emulator's server (starlette, uvicorn).

Every command starts by importing ``provisioner.cli``; the emulator command is registered
from ``provisioner.commands.emulator``, which imports the server only when it runs.
Checked in a fresh interpreter: this test process may have imported them already.
"""

from __future__ import annotations

import json
import subprocess
import sys

SERVER_MODULES = ("starlette", "uvicorn", "provisioner.emulator.cli")


def _imported_after(statement: str) -> list[str]:
    code = (
        f"import sys, json; {statement}; "
        f"print(json.dumps([m for m in {SERVER_MODULES!r} if m in sys.modules]))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    found: list[str] = json.loads(result.stdout.strip().splitlines()[-1])
    return found


def test_importing_the_cli_imports_no_server() -> None:
    assert _imported_after("import provisioner.cli") == []


def test_the_emulator_help_imports_no_server() -> None:
    statement = (
        "from typer.testing import CliRunner; from provisioner.cli import app; "
        "r = CliRunner().invoke(app, ['emulator', '--help']); assert r.exit_code == 0, r.output; "
        "assert '--qps-scale' in r.output, r.output"
    )
    assert _imported_after(statement) == []


def test_running_the_command_imports_the_server() -> None:
    # The other side: the command does import it when it runs. A bad --fail-check-names is
    # refused by provisioner.emulator.cli before anything listens.
    statement = (
        "from typer.testing import CliRunner; from provisioner.cli import app; "
        "r = CliRunner().invoke(app, ['emulator', '--fail-check-names', '(']); "
        "assert r.exit_code == 2, r.output; "
        "assert 'not a valid regular expression' in r.output, r.output"
    )
    assert _imported_after(statement) == list(SERVER_MODULES)
