"""Network faults and endpoint options through the CLI: one line on stderr, the right exit
code, no traceback, no secret (``product show`` stands for every command that calls)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest
import structlog
from typer.testing import CliRunner

from provisioner.api import retry as retry_mod
from provisioner.cli import app
from provisioner.emulator.config import EmulatorConfig
from provisioner.emulator.serve import running_emulator

SECRET = "secret-not-to-be-printed"
ENV = {"ALIBABA_CLOUD_ACCESS_KEY_ID": "testid", "ALIBABA_CLOUD_ACCESS_KEY_SECRET": SECRET}


@pytest.fixture(autouse=True)
def _quiet() -> Iterator[None]:
    structlog.reset_defaults()
    yield
    structlog.reset_defaults()


def show(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["product", "show", "a1PK", *args], env={**ENV, **(env or {})})
    return result.exit_code, result.stdout, result.stderr


def _error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    assert SECRET not in stderr
    return lines[0]


def test_plain_http_to_another_machine_is_a_usage_error() -> None:
    code, _, stderr = show("--endpoint", "http://192.0.2.10:8080")
    assert code == 2
    line = _error_line(stderr)
    assert "use https://192.0.2.10:8080" in line
    assert "--insecure-http" in line


def test_insecure_http_is_allowed_with_a_warning() -> None:
    # Nothing listens there: the call fails (exit 1), but it was allowed and warned about.
    with retry_mod.testing():
        code, _, stderr = show(
            "--endpoint", "http://192.0.2.10:9", "--insecure-http", "--timeout", "0.3"
        )
    assert code == 1
    assert "api.insecure_http" in stderr
    _error_line(stderr)


def test_a_bare_host_against_the_plain_http_emulator() -> None:
    with running_emulator(EmulatorConfig(accounts={"testid": SECRET})) as url:
        bare = url.removeprefix("http://")
        code, _, stderr = show("--endpoint", bare)
    assert code == 1
    assert _error_line(stderr) == (
        f"error: TLS handshake with https://{bare} failed "
        f"(wrong version number: is it a plain-HTTP server? write http://{bare})"
    )


def test_a_silent_endpoint_ends_within_the_timeout() -> None:
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    stop = threading.Event()
    held: list[socket.socket] = []

    def accept() -> None:
        server.settimeout(0.05)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        code, _, stderr = show("--endpoint", f"http://127.0.0.1:{port}", "--timeout", "0.6")
    finally:
        stop.set()
        thread.join(timeout=5)
        server.close()
        for conn in held:
            conn.close()
    assert code == 1
    line = _error_line(stderr)
    assert line.startswith(f"error: no answer from http://127.0.0.1:{port} in 0.6 s (QueryProduct")


@pytest.mark.parametrize(
    ("args", "env", "needle"),
    [
        (["--timeout", "0"], {}, "--timeout"),
        (["--deadline", "-1"], {}, "--deadline"),
        ([], {"PROVISIONER_TIMEOUT": "soon"}, "PROVISIONER_TIMEOUT"),
        ([], {"PROVISIONER_DEADLINE": "1h"}, "PROVISIONER_DEADLINE"),
        ([], {"PROVISIONER_INSECURE_HTTP": "perhaps"}, "PROVISIONER_INSECURE_HTTP"),
    ],
)
def test_bad_values_are_usage_errors(args: list[str], env: dict[str, str], needle: str) -> None:
    code, _, stderr = show("--endpoint", "http://127.0.0.1:9", *args, env=env)
    assert code == 2
    assert needle in stderr
    assert "Traceback" not in stderr
