"""Running the emulator over a real socket with uvicorn.

* :func:`serve` runs in the foreground until interrupted (``provisioner emulator``).
* :func:`running_emulator` runs it on a background thread for tests and benchmarks:
  it binds a free port first, waits until uvicorn accepts connections, yields the
  base URL and shuts the server down on exit.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import structlog
import uvicorn
from starlette.applications import Starlette

from provisioner.emulator.app import create_app
from provisioner.emulator.config import EmulatorConfig

__all__ = ["running_emulator", "serve"]

_STARTUP_TIMEOUT = 10.0
_SHUTDOWN_TIMEOUT = 10.0


class _DropNoise(logging.Filter):
    """Hide uvicorn's complaint about the responses the drop faults cut short on purpose."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != "ASGI callable returned without completing response."


def _quiet_uvicorn() -> None:
    logger = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _DropNoise) for f in logger.filters):
        logger.addFilter(_DropNoise())


def _uvicorn_config(app: Starlette, log_level: str) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        log_level=log_level,
        access_log=False,  # the app logs one structured line per request itself
        timeout_graceful_shutdown=2,
        server_header=False,
    )


def serve(config: EmulatorConfig, host: str = "127.0.0.1", port: int = 8080) -> None:
    """Serve the emulator until interrupted (Ctrl-C / SIGTERM)."""
    if not structlog.is_configured():
        structlog.configure(
            processors=[
                structlog.processors.add_log_level,
                structlog.processors.TimeStamper(fmt="iso", utc=True),
                structlog.processors.JSONRenderer(),
            ]
        )
    _quiet_uvicorn()
    app = create_app(config)
    server = uvicorn.Server(_uvicorn_config(app, "info"))
    sock = _bind(host, port)
    server.run(sockets=[sock])


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP explicitly: asyncio disables Nagle (TCP_NODELAY) only on sockets that
    # say so, and without it every response waits ~40 ms for the client's delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


@contextmanager
def running_emulator(
    config: EmulatorConfig,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    app: Starlette | None = None,
) -> Iterator[str]:
    """Serve on a background thread; yields ``"http://HOST:PORT"``.

    ``port=0`` picks a free port. Pass ``app`` (from :func:`create_app`) to keep a
    handle on ``app.state.emulator``; by default a new app is made from ``config``.
    """
    _quiet_uvicorn()
    the_app = app if app is not None else create_app(config)
    sock = _bind(host, port)
    bound_port = sock.getsockname()[1]
    server = uvicorn.Server(_uvicorn_config(the_app, "warning"))
    failure: list[BaseException] = []

    def run() -> None:
        try:
            server.run(sockets=[sock])
        except BaseException as exc:  # reported to the waiting thread
            failure.append(exc)

    thread = threading.Thread(target=run, name=f"emulator-{bound_port}", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + _STARTUP_TIMEOUT
        while not server.started:
            if not thread.is_alive():
                raise RuntimeError(f"the emulator did not start: {failure[:1]!r}")
            if time.monotonic() > deadline:
                raise RuntimeError("the emulator did not start within 10 s")
            time.sleep(0.002)
        url_host = f"[{host}]" if ":" in host else host
        yield f"http://{url_host}:{bound_port}"
    finally:
        server.should_exit = True
        thread.join(_SHUTDOWN_TIMEOUT)
        sock.close()
