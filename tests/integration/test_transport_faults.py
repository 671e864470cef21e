"""The client against real sockets that misbehave: silence, untrusted TLS, plain HTTP, and a
second process filling the account's QPS window.

Each fault ends in one line saying what to check, fast, and without retrying what
retrying cannot fix. Time bounds are generous: they tell a fast failure (a few seconds)
from the 255 s of eight 30 s attempts, and are not timing measurements.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from provisioner.api import IotClient
from provisioner.api.limits import SlidingWindowLimiter
from provisioner.api.retry import RetryPolicy
from provisioner.config import ApiSettings, Credentials, load_api_settings
from provisioner.emulator.app import create_app
from provisioner.emulator.config import EmulatorConfig
from provisioner.errors import CertificateError, NoAnswerError, TlsError, UsageError

pytestmark = pytest.mark.anyio

KEYS = {"ALIBABA_CLOUD_ACCESS_KEY_ID": "testid", "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "testsecret"}
PRODUCT = {
    "RequestId": "R-1",
    "Success": True,
    "Data": {"ProductKey": "a1TlsPK", "ProductName": "tls_product"},
}


def _settings(endpoint: str, **kw: Any) -> ApiSettings:
    return ApiSettings(Credentials("testid", "testsecret"), endpoint, **kw)


# --- servers ----------------------------------------------------------------------------


class SilentServer:
    """Accepts TCP connections, reads what comes, never answers."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.05)  # so that the thread sees the stop flag
        self.port = self.sock.getsockname()[1]
        self.accepted: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            self.accepted.append(conn)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.sock.close()
        for conn in self.accepted:
            conn.close()


class _Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length") or 0))
        body = json.dumps(PRODUCT).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class CountingServer(ThreadingHTTPServer):
    """A small HTTP server, over TLS when given a context; counts connections."""

    daemon_threads = True

    def __init__(self, context: ssl.SSLContext | None = None) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.context = context
        self.connections = 0

    def get_request(self) -> tuple[Any, Any]:
        sock, address = super().get_request()
        self.connections += 1
        if self.context is not None:
            sock = self.context.wrap_socket(sock, server_side=True)  # handshakes here
        return sock, address

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a refused handshake is what the tests are about

    @property
    def port(self) -> int:
        return int(self.server_address[1])


@pytest.fixture
def serving() -> Iterator[Any]:
    servers: list[CountingServer] = []

    def start(context: ssl.SSLContext | None = None) -> CountingServer:
        server = CountingServer(context)
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def _self_signed(tmp: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and localhost, and its key, made here."""
    cert, key = tmp / "cert.pem", tmp / "key.pem"
    try:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID
    except ImportError:
        openssl = shutil.which("openssl")
        if openssl is None:
            pytest.skip("neither the cryptography package nor the openssl CLI is installed")
        subprocess.run(
            [
                *[openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
                *["-nodes", "-days", "2", "-subj", "/CN=127.0.0.1", "-keyout", str(key)],
                *["-out", str(cert), "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
            ],
            check=True,
            capture_output=True,
        )
        return cert, key
    private = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(private.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(private, hashes.SHA256())
    )
    cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert, key


@pytest.fixture
def tls_files(tmp_path: Path) -> tuple[Path, Path]:
    return _self_signed(tmp_path)


@pytest.fixture
def _no_trust_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)


# --- 15: an endpoint that accepts and never answers -------------------------------------


async def test_an_endpoint_that_never_answers_fails_within_the_timeout() -> None:
    server = SilentServer()
    endpoint = f"http://127.0.0.1:{server.port}"
    try:
        client = IotClient(_settings(endpoint, timeout=1.5))
        started = time.monotonic()
        async with client:
            with pytest.raises(NoAnswerError) as info:
                await client.query_product("a1PK")
        elapsed = time.monotonic() - started
    finally:
        server.close()
    # Was: eight attempts of 30 s each (255 s with the waits). Generous bounds.
    assert 1.0 <= elapsed < 6.0
    message = str(info.value)
    assert message.startswith(f"no answer from {endpoint} in 1.5 s (QueryProduct, ")
    assert "\n" not in message
    assert "--timeout" in message
    assert len(server.accepted) >= 2  # retried within the time, not given up at once


# --- 16: a certificate the trust store does not know ------------------------------------


@pytest.mark.usefixtures("_no_trust_env")
async def test_an_untrusted_certificate_is_terminal_and_named(
    serving: Any, tls_files: tuple[Path, Path]
) -> None:
    cert, key = tls_files
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    server = serving(context)
    endpoint = f"https://127.0.0.1:{server.port}"
    async with IotClient(_settings(endpoint)) as client:
        with pytest.raises(CertificateError) as info:
            await client.query_product("a1PK")
    message = str(info.value)
    # Was: a ConnectError, retried eight times.
    assert server.connections == 1
    assert client.retry_stats.retries == 0
    assert "self-signed certificate" in message
    assert "SSL_CERT_FILE=/path/to/ca.pem" in message
    assert endpoint in message
    assert "\n" not in message


async def test_ssl_cert_file_trusts_a_private_ca(
    serving: Any, tls_files: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    cert, key = tls_files
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    server = serving(context)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    async with IotClient(_settings(f"https://127.0.0.1:{server.port}")) as client:
        product = await client.query_product("a1TlsPK")
    assert product.product_name == "tls_product"


async def test_an_unreadable_ssl_cert_file_is_a_usage_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "missing.pem"))
    with pytest.raises(UsageError, match="SSL_CERT_FILE=") as info:
        IotClient(_settings("https://127.0.0.1:1"))
    assert "\n" not in str(info.value)


# --- 17: https to a plain-HTTP server ---------------------------------------------------


@pytest.mark.usefixtures("_no_trust_env")
async def test_a_bare_host_against_plain_http_says_what_to_write(serving: Any) -> None:
    server = serving(None)
    bare = f"127.0.0.1:{server.port}"
    settings = load_api_settings(endpoint=bare, env=KEYS)  # no scheme: https
    assert settings.endpoint == f"https://{bare}"
    async with IotClient(settings) as client:
        with pytest.raises(TlsError) as info:
            await client.query_product("a1PK")
    assert not isinstance(info.value, CertificateError)
    assert str(info.value) == (
        f"TLS handshake with https://{bare} failed "
        f"(wrong version number: is it a plain-HTTP server? write http://{bare})"
    )
    # Was: a ConnectError, retried eight times.
    assert server.connections == 1
    assert client.retry_stats.retries == 0
    # What it says to write works.
    async with IotClient(load_api_settings(endpoint=f"http://{bare}", env=KEYS)) as client:
        assert (await client.query_product("a1TlsPK")).product_key == "a1TlsPK"


# --- 5: two processes on one AccessKey --------------------------------------------------


async def test_two_processes_on_one_access_key_both_finish() -> None:
    """Each client paces itself to the whole account limit, as a second factory line on
    the same AccessKey does: the server throttles about half of the calls. With
    ``max_attempts=1`` a single throttle used to be fatal; now none is."""
    scale = 2.0  # BatchQueryDeviceDetail: 10 a second for the account
    app = create_app(EmulatorConfig(qps_scale=scale, seed=11))
    emulator = app.state.emulator
    transport = httpx.ASGITransport(app=app)
    calls = 12
    results: dict[str, int] = {}
    pk = emulator.world.create_product(time.time(), "two_lines", 0).product_key

    async def line(name: str) -> None:
        settings = _settings("http://iot.emulator.test", qps_scale=scale, deadline_seconds=60)
        async with IotClient(
            settings,
            transport=transport,
            limiter=SlidingWindowLimiter("testid", scale=scale),
            retry=RetryPolicy(max_attempts=1),
        ) as client:
            for _ in range(calls):
                await client.batch_query_device_detail(pk, ["dev-0001"])
            results[name] = client.retry_stats.throttled

    with anyio.fail_after(30):
        async with anyio.create_task_group() as tg:
            tg.start_soon(line, "line-1")
            tg.start_soon(line, "line-2")
    stats = emulator.stats()
    assert set(results) == {"line-1", "line-2"}
    assert stats["throttled"] > 0
    assert sum(results.values()) == stats["throttled"]
    assert stats["max_window"]["testid"]["BatchQueryDeviceDetail"] <= 10
