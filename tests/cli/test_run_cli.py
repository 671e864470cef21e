"""``run``, ``resume``, ``status`` and ``export`` through Typer, against an emulator on a socket."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pyrage
import pytest
import structlog
import typer
from typer.testing import CliRunner

from provisioner.api import IotClient
from provisioner.api import retry as retry_mod
from provisioner.commands.run import export_command, resume_command, run_command, status_command
from provisioner.config import load_api_settings
from provisioner.emulator.app import create_app
from provisioner.emulator.config import EmulatorConfig
from provisioner.emulator.serve import running_emulator
from provisioner.journal import open_journal
from provisioner.pipeline.kinds.base import recorded_api

SCALE = "20"


def make_app() -> typer.Typer:
    app = typer.Typer(pretty_exceptions_enable=False)
    app.command("run")(run_command)
    app.command("resume")(resume_command)
    app.command("status")(status_command)
    app.command("export")(export_command)
    return app


@pytest.fixture(scope="module")
def emulator() -> Iterator[tuple[str, Any]]:
    config = EmulatorConfig(check_seconds=0.05, create_seconds=0.05, qps_scale=float(SCALE))
    app = create_app(config)
    with running_emulator(config, app=app) as url:
        yield url, app.state.emulator


@pytest.fixture
def env(emulator: tuple[str, Any], tmp_path: Path) -> dict[str, str]:
    url, _ = emulator
    return {
        "ALIBABA_CLOUD_ACCESS_KEY_ID": "testid",
        "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "testsecret",
        "PROVISIONER_ENDPOINT": url,
        "PROVISIONER_JOURNAL": str(tmp_path / "journal.sqlite3"),
        "PROVISIONER_QPS_SCALE": SCALE,
    }


@pytest.fixture(autouse=True)
def _no_retry_waits() -> Iterator[None]:
    with retry_mod.testing():
        yield


@pytest.fixture(autouse=True)
def _reset_logging() -> Iterator[None]:
    # The commands configure structlog on CliRunner's stderr, closed after each invoke.
    structlog.reset_defaults()
    yield
    structlog.reset_defaults()


@pytest.fixture
def product(env: dict[str, str]) -> str:
    api = load_api_settings(env=env)

    async def create() -> str:
        async with IotClient(api) as client:
            return (
                await client.create_product(f"Cli{abs(hash(env['PROVISIONER_JOURNAL']))}"[:30], 0)
            ).product_key

    return anyio.run(create)


@pytest.fixture
def identity() -> Any:
    return pyrage.x25519.Identity.generate()


def invoke(env: dict[str, str], *args: str) -> Any:
    return CliRunner().invoke(make_app(), list(args), env=env)


def write_input(path: Path, n: int, extra: str = "") -> Path:
    path.write_text(
        "DeviceName\n" + "".join(f"cli{i:05d}\n" for i in range(n)) + extra, encoding="utf-8"
    )
    return path


def requests_total(emulator: tuple[str, Any]) -> int:
    return int(httpx.get(f"{emulator[0]}/_emulator/stats").json()["requests_total"])


def test_run_status_and_rerun(
    tmp_path: Path, env: dict[str, str], product: str, identity: Any, emulator: tuple[str, Any]
) -> None:
    source = write_input(tmp_path / "in.csv", 240)
    out = tmp_path / "creds.csv.age"
    args = ["run", str(source), "--product-key", product, "--out", str(out)]
    args += ["--recipient", str(identity.to_public()), "--chunk-size", "100"]
    args += ["--log-format", "json"]
    result = invoke(env, *args)
    assert result.exit_code == 0, result.output
    assert "completed" in result.stdout
    text = pyrage.decrypt(out.read_bytes(), [identity]).decode()
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == 240
    assert list(rows[0]) == [
        "ProductKey",
        "DeviceName",
        "DeviceSecret",
        "IotId",
        "Nickname",
        "ApplyId",
    ]
    secrets = {r["DeviceSecret"] for r in rows}
    for line in result.stderr.splitlines():
        json.loads(line)  # JSON lines only
        assert not any(s in line for s in secrets)

    listing = invoke(env, "status")
    assert listing.exit_code == 0
    run_id = json.loads(out.with_name(out.name + ".report.json").read_text())["run_id"]
    assert run_id in listing.stdout
    detail = invoke(env, "status", run_id)
    assert detail.exit_code == 0
    assert "DONE" in detail.stdout

    before = requests_total(emulator)
    again = invoke(env, *args)
    assert again.exit_code == 0
    assert "already completed" in again.stdout
    assert requests_total(emulator) == before


def test_invalid_rows_exit_3(
    tmp_path: Path, env: dict[str, str], product: str, identity: Any, emulator: tuple[str, Any]
) -> None:
    source = write_input(tmp_path / "in.csv", 10, extra="no\n")
    out = tmp_path / "creds.age"
    before = requests_total(emulator)
    result = invoke(
        env, "run", str(source), "--product-key", product, "--out", str(out),
        "--recipient", str(identity.to_public()),
    )  # fmt: skip
    assert result.exit_code == 3
    assert "--skip-invalid" in result.stderr
    assert (tmp_path / "creds.age.rejects.csv").exists()
    assert requests_total(emulator) == before
    skipped = invoke(
        env, "run", str(source), "--product-key", product, "--out", str(out),
        "--recipient", str(identity.to_public()), "--skip-invalid",
    )  # fmt: skip
    assert skipped.exit_code == 4
    assert "not provisioned" in skipped.stderr


def test_dry_run_plans_without_calls(
    tmp_path: Path, env: dict[str, str], emulator: tuple[str, Any]
) -> None:
    source = write_input(tmp_path / "in.csv", 25)
    before = requests_total(emulator)
    result = invoke(
        env, "run", str(source), "--product-key", "a1Whatever1", "--out", str(tmp_path / "o"),
        "--dry-run", "--chunk-size", "10",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "chunks: 3 (9, 8, 8)" in result.stdout
    assert "estimated time" in result.stdout
    assert requests_total(emulator) == before


def test_usage_errors_exit_2(tmp_path: Path, env: dict[str, str]) -> None:
    source = write_input(tmp_path / "in.csv", 5)
    base = ["run", str(source), "--product-key", "a1PK", "--out", str(tmp_path / "o")]
    no_encryption = invoke(env, *base)
    assert no_encryption.exit_code == 2
    assert "encrypted" in no_encryption.stderr
    key = str(pyrage.x25519.Identity.generate().to_public())
    no_credentials = invoke(
        {**env, "ALIBABA_CLOUD_ACCESS_KEY_SECRET": ""}, *base, "--recipient", key
    )
    assert no_credentials.exit_code == 2
    bad_journal = invoke(env, *base, "--recipient", key, "--journal", "postgresql://h/db")
    assert bad_journal.exit_code == 2
    assert "only sqlite journals are supported" in bad_journal.stderr
    assert "Traceback" not in bad_journal.output


def test_resume_unknown_run_is_an_error(env: dict[str, str]) -> None:
    result = invoke(env, "resume", "0123456789ab")
    assert result.exit_code == 1
    assert "no run" in result.stderr


def test_export_command(tmp_path: Path, env: dict[str, str], product: str, identity: Any) -> None:
    source = write_input(tmp_path / "in.csv", 60)
    out = tmp_path / "creds.age"
    key = str(identity.to_public())
    assert (
        invoke(
            env, "run", str(source), "--product-key", product, "--out", str(out), "--recipient", key
        ).exit_code
        == 0
    )
    apply_id = json.loads((tmp_path / "creds.age.report.json").read_text())["apply_ids"][0]
    again = tmp_path / "again.age"
    result = invoke(
        env, "export", "--apply-id", apply_id, "--product-key", product, "--out", str(again),
        "--recipient", key,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "exported 60 devices" in result.stdout
    first = pyrage.decrypt(out.read_bytes(), [identity]).decode().splitlines()
    second = pyrage.decrypt(again.read_bytes(), [identity]).decode().splitlines()
    assert len(second) == 61
    strip = {",".join(line.split(",")[:4]) for line in first[1:]}
    assert {",".join(line.split(",")[:4]) for line in second[1:]} == strip
    refused = invoke(
        env, "export", "--apply-id", apply_id, "--product-key", product, "--out", str(again),
        "--recipient", key,
    )  # fmt: skip
    assert refused.exit_code != 0
    assert "exists" in refused.stderr


def test_resume_with_overrides_calls_the_recorded_endpoint(
    tmp_path: Path,
    env: dict[str, str],
    product: str,
    identity: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # --timeout (like --qps-scale, --deadline, --insecure-http) rebuilds the API settings
    # from what the run recorded: no PROVISIONER_ENDPOINT is needed to find the emulator.
    source = write_input(tmp_path / "in.csv", 20)
    out = tmp_path / "creds.age"
    key = str(identity.to_public())
    started = invoke(
        env, "run", str(source), "--product-key", product, "--out", str(out), "--recipient", key
    )
    assert started.exit_code == 0, started.output
    run_id = json.loads(out.with_name(out.name + ".report.json").read_text())["run_id"]
    without_endpoint = {k: v for k, v in env.items() if k != "PROVISIONER_ENDPOINT"}
    resumed = invoke(without_endpoint, "resume", run_id, "--timeout", "5", "--qps-scale", SCALE)
    assert resumed.exit_code == 0, resumed.output
    assert "already completed" in resumed.stdout
    unknown = invoke(without_endpoint, "resume", "0123456789ab", "--timeout", "5")
    assert unknown.exit_code == 1
    assert "no run" in unknown.stderr
    for name in ("ALIBABA_CLOUD_ACCESS_KEY_ID", "ALIBABA_CLOUD_ACCESS_KEY_SECRET"):
        monkeypatch.setenv(name, env[name])
    monkeypatch.delenv("PROVISIONER_ENDPOINT", raising=False)
    with open_journal(env["PROVISIONER_JOURNAL"]) as store:
        params = store.get_run(run_id).params
    api = recorded_api(params, timeout=5.0, qps_scale=2.0)
    assert api.endpoint == load_api_settings(env=env).endpoint
    assert (api.timeout, api.qps_scale) == (5.0, 2.0)
