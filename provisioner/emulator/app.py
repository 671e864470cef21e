"""The emulator's ASGI application (Starlette).

``/`` (GET and POST) is the RPC endpoint. Every request goes through the gateway's
steps in order::

    parse -> action/version known -> authenticate (AccessKeyId, timestamp,
    signature, nonce) -> throttle -> faults -> latency -> action

and is answered in the requested format (``Format`` parameter, else JSON for V3
requests and XML for V1, as the real service). Gateway errors are HTTP 4xx/5xx
with ``RequestId``, ``HostId``, ``Code``, ``Message`` and ``Recommend``; business
errors are HTTP 200 with ``Success: false``, ``Code`` and ``ErrorMessage``.

``GET /_emulator/stats`` (no authentication) reports counters for tests and
benchmarks; ``app.state.emulator`` is the :class:`Emulator` itself.

One structured log line ``emulator.request`` is written per request, with the
action, HTTP status, code, latency and AccessKeyId: never parameters or secrets.
"""

from __future__ import annotations

import contextlib
import random
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
import structlog
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Message, Receive, Scope, Send

from provisioner.emulator.actions import ACTIONS, dispatch
from provisioner.emulator.auth import API_VERSION, Authenticator, GatewayError, parse_request
from provisioner.emulator.config import EmulatorConfig
from provisioner.emulator.model import BusinessError
from provisioner.emulator.render import content_type, render
from provisioner.emulator.store import Store
from provisioner.emulator.throttle import Throttle
from provisioner.emulator.world import World

__all__ = ["STATS_PATH", "Clock", "Emulator", "create_app"]

Clock = Callable[[], float]
STATS_PATH = "/_emulator/stats"

log = structlog.get_logger(__name__)

_UNAVAILABLE = "The request has failed due to a temporary failure of the server."
_INTERNAL = "The request processing has failed due to some unknown error."
_DROP_LENGTH = b"4096"


class Emulator:
    """The state behind the app: world, authenticator, throttle and counters."""

    def __init__(self, config: EmulatorConfig, *, clock: Clock = time.time) -> None:
        self.config = config
        self.clock = clock
        seed = config.seed
        self.fault_rng = random.Random(None if seed is None else f"{seed}:faults")
        self.store = Store(config.state_path) if config.state_path is not None else None
        self.world = World(config, rng=random.Random(seed), listener=self.store)
        if self.store is not None:
            self.store.load_into(self.world)
        self.auth = Authenticator(
            config.accounts, nonce_ttl=config.nonce_ttl, max_clock_skew=config.max_clock_skew
        )
        self.throttle = Throttle(config.qps_scale)
        self.requests: Counter[str] = Counter()
        self.codes: Counter[str] = Counter()
        self.statuses: Counter[int] = Counter()
        self.faults: Counter[str] = Counter()
        self.started_at = clock()

    def close(self) -> None:
        if self.store is not None:
            self.store.close()

    def _faulty(self, action: str) -> bool:
        actions = self.config.fault_actions
        return actions is None or action in actions

    def draw_fault(self, action: str) -> str | None:
        """``"drop"``, ``"unavailable"``, ``"system_error"`` or ``None``, by the configured odds."""
        cfg, rng = self.config, self.fault_rng
        if not self._faulty(action):
            return None
        if cfg.fault_drop and rng.random() < cfg.fault_drop:
            return "drop"
        if cfg.fault_503 and rng.random() < cfg.fault_503:
            return "unavailable"
        if cfg.fault_system_error and rng.random() < cfg.fault_system_error:
            return "system_error"
        return None

    def draw_drop_after(self, action: str) -> bool:
        p = self.config.fault_drop_after
        return bool(p) and self._faulty(action) and self.fault_rng.random() < p

    def stats(self) -> dict[str, Any]:
        """Counters as JSON-ready data; no secrets, no parameters."""
        max_window: dict[str, dict[str, int]] = {}
        for (key_id, action), n in self.throttle.max_in_window.items():
            max_window.setdefault(key_id, {})[action] = n
        throttled: dict[str, dict[str, int]] = {}
        for (key_id, action), n in self.throttle.throttled.items():
            throttled.setdefault(key_id, {})[action] = n
        return {
            "requests_total": sum(self.requests.values()),
            "requests": dict(self.requests),
            "codes": dict(self.codes),
            "statuses": {str(k): v for k, v in self.statuses.items()},
            "throttled": self.throttle.total_throttled(),
            "throttled_by_key": throttled,
            "faults": {
                name: self.faults[name]
                for name in ("drop", "unavailable", "system_error", "drop_after")
            },
            "max_window": max_window,
            "limits": {action: self.throttle.limit(action) for action in ACTIONS},
            "world": self.world.counts(),
            "uptime_seconds": round(self.clock() - self.started_at, 3),
        }


def _request_id() -> str:
    return str(uuid.uuid4()).upper()


class _Endpoint:
    """The RPC endpoint as a raw ASGI app (so that a response can be cut short)."""

    def __init__(self, emulator: Emulator) -> None:
        self.emulator = emulator

    async def __call__(self, scope: Scope, receive: Receive, raw_send: Send) -> None:
        started = time.perf_counter()
        response_started = False

        async def send(message: Message) -> None:
            nonlocal response_started
            response_started = True
            await raw_send(message)

        emu = self.emulator
        body = await Request(scope, receive).body()
        headers = {
            k.decode("latin-1").lower(): v.decode("utf-8", errors="replace")
            for k, v in scope["headers"]
        }
        raw_query = scope.get("query_string", b"").decode("latin-1")
        parsed, fmt, error = parse_request(scope["method"], scope["path"], raw_query, headers, body)
        action = parsed.action if parsed is not None else "-"
        access_key_id: str | None = None
        request_id = _request_id()
        emu.requests[action] += 1
        try:
            if error is not None:
                raise error
            assert parsed is not None
            if action not in ACTIONS:
                raise GatewayError(
                    400,
                    "InvalidAction.NotFound",
                    "Specified api is not found, please check your url and method.",
                )
            if parsed.version != API_VERSION:
                raise GatewayError(
                    400, "InvalidVersion", "Specified parameter Version is not valid."
                )
            now = emu.clock()
            access_key_id = emu.auth.authenticate(parsed, now)
            retry_after = emu.throttle.admit(access_key_id, action, now)
            if retry_after is not None:
                raise GatewayError(
                    400,
                    "Throttling.User",
                    "Request was denied due to user flow control.",
                    retry_after_ms=retry_after,
                )
            fault = emu.draw_fault(action)
            if emu.config.latency_ms:
                await anyio.sleep(emu.config.latency_ms / 1000)
            if fault == "drop":
                emu.faults["drop"] += 1
                await self._drop(send, fmt)
                self._log(action, 200, "DROPPED", started, access_key_id)
                return
            if fault == "unavailable":
                emu.faults["unavailable"] += 1
                raise GatewayError(503, "ServiceUnavailable", _UNAVAILABLE)
            if fault == "system_error":
                emu.faults["system_error"] += 1
                result: dict[str, Any] = {
                    "RequestId": request_id,
                    "Success": False,
                    "Code": "iot.system.SystemException",
                    "ErrorMessage": "A system exception occurred.",
                }
            else:
                result = self._run(action, parsed.params, request_id)
            code = str(result.get("Code", "OK"))
            if emu.draw_drop_after(action):
                emu.faults["drop_after"] += 1
                await self._drop(send, fmt)
                self._log(action, 200, "DROPPED_AFTER", started, access_key_id, result_code=code)
                return
            response = Response(
                render(fmt, f"{action}Response", result),
                200,
                headers={"x-acs-request-id": request_id},
                media_type=content_type(fmt),
            )
            await response(scope, receive, send)
            self._log(action, 200, code, started, access_key_id)
        except GatewayError as exc:
            response = self._gateway_error(exc, fmt, request_id, headers)
            await response(scope, receive, send)
            self._log(action, exc.status, exc.code, started, access_key_id)
        except Exception:  # an emulator bug: answer as the gateway would, and say so
            if response_started:
                raise
            with contextlib.suppress(OSError, ValueError):  # see _log
                log.exception("emulator.internal_error", action=action)
            error = GatewayError(500, "InternalError", _INTERNAL)
            response = self._gateway_error(error, fmt, request_id, headers)
            await response(scope, receive, send)
            self._log(action, 500, "InternalError", started, access_key_id)

    def _run(self, action: str, params: dict[str, str], request_id: str) -> dict[str, Any]:
        emu = self.emulator
        try:
            payload = dispatch(emu.world, action, params, emu.clock())
        except BusinessError as exc:
            result: dict[str, Any] = {
                "RequestId": request_id,
                "Success": False,
                "Code": exc.code,
                "ErrorMessage": exc.message,
            }
            if exc.data is not None:
                result["Data"] = exc.data
            return result
        return {"RequestId": request_id, "Success": True, **payload}

    def _gateway_error(
        self, exc: GatewayError, fmt: str, request_id: str, headers: dict[str, str]
    ) -> Response:
        host = headers.get("host") or f"iot.{self.emulator.config.region}.aliyuncs.com"
        body = {
            "RequestId": request_id,
            "HostId": host,
            "Code": exc.code,
            "Message": exc.message,
            "Recommend": (
                f"https://api.aliyun.com/troubleshoot?q={exc.code}&product=Iot"
                f"&requestId={request_id}"
            ),
        }
        extra = {"x-acs-request-id": request_id}
        if exc.retry_after_ms is not None:
            extra["x-acs-retry-after"] = str(exc.retry_after_ms)
        return Response(
            render(fmt, "Error", body), exc.status, headers=extra, media_type=content_type(fmt)
        )

    @staticmethod
    async def _drop(send: Send, fmt: str) -> None:
        """Promise a body, send one byte of it, and end without completing the response.

        A real server (uvicorn) then closes the connection, so the client sees an
        incomplete message (httpx: ``RemoteProtocolError``).
        """
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", content_type(fmt).encode("latin-1")),
                    (b"content-length", _DROP_LENGTH),
                ],
            }
        )
        await send({"type": "http.response.body", "body": b"<", "more_body": True})

    def _log(
        self,
        action: str,
        status: int,
        code: str,
        started: float,
        access_key_id: str | None,
        **extra: str,
    ) -> None:
        emu = self.emulator
        emu.codes[code] += 1
        emu.statuses[status] += 1
        # A closed or broken log sink must not fail an API call that was answered
        # already (the stdlib's logging ignores such errors the same way).
        with contextlib.suppress(OSError, ValueError):
            log.info(
                "emulator.request",
                action=action,
                status=status,
                code=code,
                **extra,
                latency_ms=round((time.perf_counter() - started) * 1000, 3),
                access_key_id=access_key_id,
            )


# Devices built ahead per step: about a millisecond of work, so a request waits at most
# that long behind the builder (see World.prepare).
_PREPARE_STEP = 300


async def _prepare_devices(emulator: Emulator) -> None:
    """Build the devices of applications being created ahead of their due time."""
    while True:
        built = emulator.world.prepare(_PREPARE_STEP)
        await anyio.sleep(0.002 if built else 0.05)


def create_app(config: EmulatorConfig, *, clock: Clock = time.time) -> Starlette:
    """A new emulator app with its own world; ``clock`` drives every timed behaviour."""
    emulator = Emulator(config, clock=clock)

    async def stats(request: Request) -> Response:
        return JSONResponse(emulator.stats())

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            async with anyio.create_task_group() as background:
                background.start_soon(_prepare_devices, emulator)
                yield
                background.cancel_scope.cancel()
        finally:
            emulator.close()

    app = Starlette(
        routes=[
            Route("/", _Endpoint(emulator), methods=["GET", "POST"]),
            Route(STATS_PATH, stats, methods=["GET"]),
        ],
        lifespan=lifespan,
    )
    app.state.emulator = emulator
    return app
