"""Async client of the IoT Platform API: the only module here that does I/O.

One :class:`httpx.AsyncClient` per :class:`IotClient`, over a transport that can be
injected: tests and the emulator pass ``httpx.ASGITransport(app)`` or a
``httpx.MockTransport`` and exercise exactly the code path of a real socket.

Each attempt of a call, inside the retry policy, waits for the rate limiter, signs the
request afresh (a new nonce and timestamp: the gateway refuses a nonce it has seen and
a retry is a new request), sends it, translates httpx's transport errors into
:class:`~provisioner.errors.TransportError` and classifies the answer. Logs carry the
action, status, latency and attempt, never a parameter value.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Self

import httpx
import structlog

from provisioner import __version__
from provisioner.api import models, operations
from provisioner.api.limits import Limiter, SlidingWindowLimiter
from provisioner.api.protocol import ApiRequest, read_response, signed_request, with_instance
from provisioner.api.retry import RetryPolicy, RetryStats
from provisioner.config import ApiSettings
from provisioner.errors import TransportError

__all__ = ["USER_AGENT", "IotClient", "new_nonce", "now_utc"]

USER_AGENT = f"provisioner/{__version__}"

logger = structlog.get_logger(__name__)

# Parameter values shorter than this are not scrubbed from server messages: a "1"
# or "50" would shred every message. Secrets are scrubbed whatever their length.
_MIN_REDACT_LENGTH = 4


def now_utc() -> datetime:
    return datetime.now(UTC)


def new_nonce() -> str:
    """A signature nonce: 128 random bits, as the official SDK sends them."""
    return uuid.uuid4().hex


def _redactions(request: ApiRequest) -> list[str]:
    """Values of ``request`` that must not survive in an error message."""
    return [
        value
        for name, value in request.params.items()
        if value and ("secret" in name.lower() or len(value) >= _MIN_REDACT_LENGTH)
    ]


class IotClient:
    """IoT Platform over HTTP, with rate limiting, signing and retries.

    Use as ``async with IotClient(settings) as client: ...``. ``transport`` replaces the
    network (then ``settings.verify_tls`` and ``max_connections`` belong to that
    transport); ``limiter`` defaults to an in-process sliding window keyed by the
    AccessKey ID; ``retry`` to a :class:`RetryPolicy` from the settings. ``clock`` and
    ``nonce`` feed the signatures.
    """

    def __init__(
        self,
        settings: ApiSettings,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        limiter: Limiter | None = None,
        retry: RetryPolicy | None = None,
        clock: Callable[[], datetime] = now_utc,
        nonce: Callable[[], str] = new_nonce,
    ) -> None:
        self.settings = settings
        self._limiter: Limiter = limiter or SlidingWindowLimiter(
            settings.credentials.access_key_id, scale=settings.qps_scale
        )
        self._retry = retry or RetryPolicy(
            max_attempts=settings.max_attempts, max_total_seconds=settings.max_retry_seconds
        )
        self._clock = clock
        self._nonce = nonce
        self._host = settings.host
        self._http = httpx.AsyncClient(
            base_url=settings.endpoint,
            transport=transport,
            timeout=httpx.Timeout(settings.timeout),
            limits=httpx.Limits(
                max_connections=settings.max_connections,
                max_keepalive_connections=settings.max_connections,
            ),
            verify=settings.verify_tls,
            headers={"user-agent": USER_AGENT},
        )
        # httpx logs every request URL at INFO, and an ImportDevice URL holds the
        # DeviceSecret. Quieten it unless someone configured that logger on purpose.
        httpx_logger = logging.getLogger("httpx")
        if httpx_logger.level == logging.NOTSET:
            httpx_logger.setLevel(logging.WARNING)

    async def __aenter__(self) -> Self:
        await self._http.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._http.__aexit__(exc_type, exc, tb)

    async def aclose(self) -> None:
        await self._http.aclose()

    @property
    def retry_policy(self) -> RetryPolicy:
        return self._retry

    @property
    def retry_stats(self) -> RetryStats:
        """Retries and throttled answers seen so far by this client's retry policy."""
        return self._retry.stats

    # --- the generic call -------------------------------------------------------------

    async def call(self, request: ApiRequest) -> dict[str, Any]:
        """Send ``request`` (retrying transient failures); the decoded JSON of the success."""
        request = with_instance(request, self.settings.iot_instance_id)
        redact = _redactions(request)
        attempt = 0

        async def once() -> dict[str, Any]:
            nonlocal attempt
            attempt += 1
            return await self._send(request, attempt, redact)

        return await self._retry.call(once, action=request.action)

    async def _send(self, request: ApiRequest, attempt: int, redact: list[str]) -> dict[str, Any]:
        action = request.action
        await self._limiter.acquire(action)
        credentials = self.settings.credentials
        prepared = signed_request(
            request,
            access_key_id=credentials.access_key_id,
            access_key_secret=credentials.access_key_secret,
            signature_version=self.settings.signature_version,
            host=self._host,
            timestamp=self._clock(),
            nonce=self._nonce(),
            region=self.settings.region,
        )
        started = time.perf_counter()
        try:
            response = await self._http.post(
                prepared.url, headers=prepared.headers, content=prepared.body
            )
        except httpx.RequestError as exc:  # transport errors, and a body that cannot be decoded
            latency_ms = round((time.perf_counter() - started) * 1000, 1)
            logger.debug(
                "api.call",
                action=action,
                status=None,
                error=type(exc).__name__,
                latency_ms=latency_ms,
                attempt=attempt,
            )
            # The httpx message is left out on purpose: it may quote the URL.
            raise TransportError(
                f"{action}: no answer from {self._host} ({type(exc).__name__})"
            ) from exc
        latency_ms = round((time.perf_counter() - started) * 1000, 1)
        logger.debug(
            "api.call",
            action=action,
            status=response.status_code,
            latency_ms=latency_ms,
            attempt=attempt,
            request_id=response.headers.get("x-acs-request-id"),
        )
        return read_response(
            action, response.status_code, response.content, response.headers, redact=redact
        )

    # --- typed operations -------------------------------------------------------------

    async def create_product(
        self,
        product_name: str,
        node_type: int,
        *,
        data_format: int | None = None,
        description: str | None = None,
        aliyun_commodity_code: str | None = None,
        auth_type: str | None = None,
        protocol_type: str | None = None,
        net_type: str | None = None,
        category_key: str | None = None,
        publish_auto: bool | None = None,
        validate_type: int | None = None,
        resource_group_id: str | None = None,
    ) -> models.ProductCreated:
        request = operations.create_product(
            product_name,
            node_type,
            data_format=data_format,
            description=description,
            aliyun_commodity_code=aliyun_commodity_code,
            auth_type=auth_type,
            protocol_type=protocol_type,
            net_type=net_type,
            category_key=category_key,
            publish_auto=publish_auto,
            validate_type=validate_type,
            resource_group_id=resource_group_id,
        )
        return models.parse_product_created(await self.call(request))

    async def query_product(self, product_key: str) -> models.Product:
        return models.parse_product(await self.call(operations.query_product(product_key)))

    async def batch_check_device_names(
        self, product_key: str, names: Sequence[tuple[str, str | None] | str]
    ) -> models.CheckResult:
        request = operations.batch_check_device_names(product_key, names)
        return models.parse_check_result(await self.call(request))

    async def query_batch_register_device_status(
        self, product_key: str, apply_id: int | str
    ) -> models.ApplyStatus:
        request = operations.query_batch_register_device_status(product_key, apply_id)
        return models.parse_apply_status(await self.call(request))

    async def batch_register_device_with_apply_id(
        self, product_key: str, apply_id: int | str
    ) -> models.ApplyAccepted:
        request = operations.batch_register_device_with_apply_id(product_key, apply_id)
        return models.parse_apply_accepted(await self.call(request), request.action)

    async def batch_register_device(self, product_key: str, count: int) -> models.ApplyAccepted:
        request = operations.batch_register_device(product_key, count)
        return models.parse_apply_accepted(await self.call(request), request.action)

    async def query_page_by_apply_id(
        self, apply_id: int | str, page: int, page_size: int = operations.MAX_PAGE_SIZE
    ) -> models.DevicePage:
        request = operations.query_page_by_apply_id(apply_id, page, page_size)
        return models.parse_device_page(await self.call(request))

    async def import_device(
        self,
        product_key: str,
        device_name: str,
        device_secret: str,
        nickname: str | None = None,
        sn: str | None = None,
    ) -> models.ImportedDevice:
        request = operations.import_device(product_key, device_name, device_secret, nickname, sn)
        return models.parse_imported_device(await self.call(request))

    async def register_device(
        self, product_key: str, device_name: str | None = None, nickname: str | None = None
    ) -> models.RegisteredDevice:
        request = operations.register_device(product_key, device_name, nickname)
        return models.parse_registered_device(await self.call(request))

    async def query_device_detail(
        self,
        *,
        product_key: str | None = None,
        device_name: str | None = None,
        iot_id: str | None = None,
    ) -> models.DeviceDetail:
        request = operations.query_device_detail(
            product_key=product_key, device_name=device_name, iot_id=iot_id
        )
        return models.parse_device_detail(await self.call(request))

    async def batch_query_device_detail(
        self, product_key: str, device_names: Sequence[str]
    ) -> list[models.DeviceDetail]:
        request = operations.batch_query_device_detail(product_key, device_names)
        return models.parse_device_details(await self.call(request))

    async def delete_device(
        self,
        *,
        product_key: str | None = None,
        device_name: str | None = None,
        iot_id: str | None = None,
    ) -> None:
        request = operations.delete_device(
            product_key=product_key, device_name=device_name, iot_id=iot_id
        )
        await self.call(request)
