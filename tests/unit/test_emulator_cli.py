"""``provisioner emulator`` options, through a local Typer app wrapping the command."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from provisioner.emulator import cli as emulator_cli
from provisioner.emulator.cli import accounts_from_options, emulator_command
from provisioner.emulator.config import EmulatorConfig

runner = CliRunner()


def make_app() -> typer.Typer:
    app = typer.Typer()
    app.command("emulator")(emulator_command)

    @app.command("noop")
    def noop() -> None:  # a second command keeps "emulator" a subcommand, as in the real CLI
        pass

    return app


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> list[tuple[EmulatorConfig, str, int]]:
    calls: list[tuple[EmulatorConfig, str, int]] = []

    def fake_serve(config: EmulatorConfig, host: str = "", port: int = 0) -> None:
        calls.append((config, host, port))

    monkeypatch.setattr(emulator_cli, "serve", fake_serve)
    monkeypatch.delenv("ALIBABA_CLOUD_ACCESS_KEY_ID", raising=False)
    monkeypatch.delenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET", raising=False)
    return calls


def test_help_lists_every_option() -> None:
    result = runner.invoke(make_app(), ["emulator", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    for option in (
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
        "--fail-check-names",
        "--create-failure-rate",
        "--max-batch",
        "--seed",
    ):
        assert option in result.output, option


def test_mismatched_key_pairs_are_one_clear_error(
    served: list[tuple[EmulatorConfig, str, int]],
) -> None:
    args = ["emulator", "--access-key-id", "a", "--access-key-id", "b", "--access-key-secret", "s"]
    result = runner.invoke(make_app(), args, env={"COLUMNS": "200"})
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if "got 2" in line]
    assert len(lines) == 1
    assert "got 2 --access-key-id and 1 --access-key-secret; give them in pairs" in lines[0]
    assert served == []


def test_options_become_the_config(
    served: list[tuple[EmulatorConfig, str, int]], tmp_path: Path
) -> None:
    state = tmp_path / "state.sqlite3"
    args = [
        "emulator",
        "--host", "0.0.0.0",
        "--port", "9001",
        "--access-key-id", "id1", "--access-key-secret", "sec1",
        "--access-key-id", "id2", "--access-key-secret", "sec2",
        "--state", str(state),
        "--latency-ms", "5",
        "--check-seconds", "0.5",
        "--create-seconds", "0.25",
        "--qps-scale", "0.1",
        "--fault-503", "0.01",
        "--fault-system-error", "0.02",
        "--fault-drop", "0.03",
        "--fault-drop-after", "0.04",
        "--fail-check-names", "^bad",
        "--create-failure-rate", "0.05",
        "--max-batch", "1000",
        "--seed", "3",
    ]  # fmt: skip
    result = runner.invoke(make_app(), args)
    assert result.exit_code == 0, result.output
    assert "sec1" not in result.output
    assert "sec2" not in result.output
    ((config, host, port),) = served
    assert (host, port) == ("0.0.0.0", 9001)
    assert dict(config.accounts) == {"id1": "sec1", "id2": "sec2"}
    assert config.state_path == state
    assert (config.latency_ms, config.check_seconds, config.create_seconds) == (5, 0.5, 0.25)
    assert config.qps_scale == 0.1
    assert (config.fault_503, config.fault_system_error) == (0.01, 0.02)
    assert (config.fault_drop, config.fault_drop_after) == (0.03, 0.04)
    assert config.fail_check_names == "^bad"
    assert (config.create_failure_rate, config.max_batch, config.seed) == (0.05, 1000, 3)
    assert "sec1" not in repr(config)


def test_bad_values_are_rejected(served: list[tuple[EmulatorConfig, str, int]]) -> None:
    for args in (["--fault-503", "1.5"], ["--fail-check-names", "("], ["--max-batch", "0"]):
        result = runner.invoke(make_app(), ["emulator", *args])
        assert result.exit_code == 2, args
    assert served == []


def test_default_accounts() -> None:
    assert accounts_from_options(None, None, env={}) == {"testid": "testsecret"}
    env = {"ALIBABA_CLOUD_ACCESS_KEY_ID": "envid", "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "envsecret"}
    assert accounts_from_options(None, None, env=env) == {"envid": "envsecret"}
    assert accounts_from_options(["x"], ["y"], env=env) == {"x": "y"}
    with pytest.raises(typer.BadParameter):
        accounts_from_options(["x", "x"], ["y", "z"], env={})
