"""Async client of the IoT Platform API: the only module here that does I/O.

One :class:`httpx.AsyncClient` per :class:`IotClient`, over a transport that can be
injected: tests and the emulator pass ``httpx.ASGITransport(app)`` or a
``httpx.MockTransport`` and exercise exactly the code path of a real socket.

Each attempt of a call, inside the retry policy, waits for the rate limiter, signs the
request afresh (a new nonce and timestamp: the gateway refuses a nonce it has seen and
a retry is a new request), sends it with the attempt's timeout, translates httpx's
transport errors into :class:`~provisioner.errors.TransportError` and classifies the
answer. A throttled answer also holds the operation in the limiter until the server's
``retry_after`` has passed, so the rest of the process stops sending into a closed
window. Logs carry the action, status, latency and attempt, never a parameter value.

Failures that retrying cannot fix end the call at once with a message saying what to
check: a certificate the trust store does not accept
(:class:`~provisioner.errors.CertificateError`; ``SSL_CERT_FILE`` names a private CA,
read here as httpx 0.28 reads it, but with a clear error for a file that is not there),
any other failed TLS handshake (:class:`~provisioner.errors.TlsError`, with the
``http://`` to write when the server speaks plain HTTP). An endpoint that never answers
ends with :class:`~provisioner.errors.NoAnswerError` after ``settings.timeout`` seconds.
Plain HTTP to a host other than this machine is refused unless
``settings.insecure_http`` (see :func:`provisioner.config.check_endpoint_security`).
"""

from __future__ import annotations

import logging
import os
import ssl
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Self, Unpack

import certifi
import httpx
import structlog

from provisioner import __version__
from provisioner.api import models, operations, records
from provisioner.api.limits import Limiter, SlidingWindowLimiter
from provisioner.api.protocol import ApiRequest, read_response, signed_request, with_instance
from provisioner.api.retry import ATTEMPTS_PER_NO_ANSWER, RetryPolicy, RetryStats
from provisioner.api.scrub import safe_request_id
from provisioner.config import ApiSettings, check_endpoint_security
from provisioner.errors import (
    CertificateError,
    ThrottledError,
    TlsError,
    TransportError,
    UsageError,
)

__all__ = [
    "USER_AGENT",
    "IotClient",
    "new_nonce",
    "now_utc",
    "tls_context",
    "transport_error",
]

USER_AGENT = f"provisioner/{__version__}"

logger = structlog.get_logger(__name__)

# Parameter values shorter than this are not scrubbed from server messages: a "1"
# or "50" would shred every message. Secrets are scrubbed whatever their length.
_MIN_REDACT_LENGTH = 4

# OpenSSL's reasons when a TLS client hello is answered in plain HTTP.
_PLAIN_HTTP_REASONS = frozenset(
    {"WRONG_VERSION_NUMBER", "HTTP_REQUEST", "RECORD_LAYER_FAILURE", "PACKET_LENGTH_TOO_LONG"}
)
# Handshakes that fail the same way every time: the two sides share no protocol or cipher.
# Others (an EOF or reset in the middle of a handshake) may pass on the next try.
_PERMANENT_TLS_REASONS = _PLAIN_HTTP_REASONS | {
    "UNSUPPORTED_PROTOCOL",
    "NO_PROTOCOLS_AVAILABLE",
    "TLSV1_ALERT_PROTOCOL_VERSION",
    "SSLV3_ALERT_HANDSHAKE_FAILURE",
    "NO_SHARED_CIPHER",
    "NO_CIPHERS_AVAILABLE",
}


_KINDS: Mapping[type[httpx.RequestError], str] = {
    httpx.ConnectTimeout: "connect timed out",
    httpx.ReadTimeout: "read timed out",
    httpx.WriteTimeout: "write timed out",
    httpx.PoolTimeout: "no free connection",
    httpx.ConnectError: "connection failed",
    httpx.RemoteProtocolError: "connection closed",
}


def now_utc() -> datetime:
    return datetime.now(UTC)


def new_nonce() -> str:
    """A signature nonce: 128 random bits, as the official SDK sends them."""
    return uuid.uuid4().hex


def _redactions(request: ApiRequest, secrets: tuple[str, ...]) -> tuple[list[str], list[str]]:
    """Values of ``request`` that must not survive in an error: (values, secrets).

    ``secrets`` are the credential's; parameters named like a secret join them (scrubbed
    whatever their length, and from a Code or RequestId too), other values of at least
    four characters are scrubbed from messages.
    """
    values: list[str] = []
    all_secrets = [s for s in secrets if s]
    for name, value in request.params.items():
        if not value:
            continue
        if "secret" in name.lower():
            all_secrets.append(value)
        elif len(value) >= _MIN_REDACT_LENGTH:
            values.append(value)
    return values, all_secrets


def tls_context(env: Mapping[str, str] = os.environ) -> ssl.SSLContext:
    """The trust store of the client: ``SSL_CERT_FILE`` or ``SSL_CERT_DIR`` when set (as
    httpx 0.28 does with ``verify=True``), else certifi's CAs.

    A file or directory that cannot be read is a :class:`UsageError` naming it, rather
    than a traceback from deep inside httpx.
    """
    cafile = env.get("SSL_CERT_FILE", "").strip()
    capath = env.get("SSL_CERT_DIR", "").strip()
    try:
        if cafile:
            return ssl.create_default_context(cafile=cafile)
        if capath:
            return ssl.create_default_context(capath=capath)
        return ssl.create_default_context(cafile=certifi.where())
    except (OSError, ssl.SSLError) as exc:
        name, value = ("SSL_CERT_FILE", cafile) if cafile else ("SSL_CERT_DIR", capath)
        raise UsageError(
            f"{name}={value} cannot be used as CA certificates "
            f"({type(exc).__name__}): point it at a PEM file of the CA that signed the "
            "endpoint's certificate"
        ) from exc


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def transport_error(exc: httpx.RequestError, *, action: str, endpoint: str) -> TransportError:
    """The error of ours for an httpx transport failure of ``action`` against ``endpoint``.

    A refused certificate, or a handshake that cannot succeed (plain HTTP on the other end,
    no common protocol), is terminal and says what to do; any other failure, an
    interrupted handshake among them, is a transient :class:`TransportError`. The httpx
    message is left out on purpose: it may quote the URL, and the URL of ImportDevice
    holds a DeviceSecret.
    """
    for cause in _chain(exc):
        if isinstance(cause, ssl.SSLCertVerificationError):
            reason = cause.verify_message or cause.reason or "certificate verify failed"
            return CertificateError(endpoint, str(reason))
        if isinstance(cause, ssl.SSLError):
            code = str(cause.reason or "")
            reason = code.lower().replace("_", " ") if code else type(cause).__name__
            if code in _PLAIN_HTTP_REASONS:
                plain = endpoint.replace("https://", "http://", 1)
                return TlsError(endpoint, reason, hint=f"is it a plain-HTTP server? write {plain}")
            if code in _PERMANENT_TLS_REASONS:
                return TlsError(endpoint, reason)
            return TransportError(f"{action}: TLS handshake with {endpoint} failed ({reason})")
    kind = _KINDS.get(type(exc), type(exc).__name__)
    return TransportError(f"{action}: no answer from {endpoint} ({kind})")


class IotClient:
    """IoT Platform over HTTP, with rate limiting, signing and retries.

    Use as ``async with IotClient(settings) as client: ...``. ``transport`` replaces the
    network (then ``settings.verify_tls`` and ``max_connections`` belong to that
    transport, and the plain-HTTP check is skipped: nothing leaves the process);
    ``limiter`` defaults to an in-process sliding window keyed by the AccessKey ID;
    ``retry`` to a :class:`RetryPolicy` from the settings. ``clock`` and ``nonce`` feed
    the signatures.

    ``settings.deadline_seconds`` is counted from here, on the retry policy's clock.
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
        verify: ssl.SSLContext | bool = settings.verify_tls
        if transport is None:
            check_endpoint_security(settings.endpoint, insecure_http=settings.insecure_http)
            if settings.verify_tls:
                verify = tls_context()
        self._limiter: Limiter = limiter or SlidingWindowLimiter(
            settings.credentials.access_key_id, scale=settings.qps_scale
        )
        self._retry = retry or RetryPolicy(
            max_attempts=settings.max_attempts, max_total_seconds=settings.max_retry_seconds
        )
        self._deadline = (
            None
            if settings.deadline_seconds is None
            else self._retry.clock() + settings.deadline_seconds
        )
        self._clock = clock
        self._nonce = nonce
        self._host = settings.host
        self._secrets = settings.credentials.secret_values()
        self._http = httpx.AsyncClient(
            base_url=settings.endpoint,
            transport=transport,
            timeout=httpx.Timeout(settings.timeout / ATTEMPTS_PER_NO_ANSWER),
            limits=httpx.Limits(
                max_connections=settings.max_connections,
                max_keepalive_connections=settings.max_connections,
            ),
            verify=verify,
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

    @property
    def deadline(self) -> float | None:
        """The run's deadline on the retry policy's clock (``None``: none)."""
        return self._deadline

    # --- the generic call -------------------------------------------------------------

    async def call(self, request: ApiRequest) -> dict[str, Any]:
        """Send ``request`` (retrying transient failures); the decoded JSON of the success."""
        request = with_instance(request, self.settings.iot_instance_id)
        redact, secrets = _redactions(request, self._secrets)
        attempt = 0

        async def once(attempt_seconds: float | None) -> dict[str, Any]:
            nonlocal attempt
            attempt += 1
            return await self._send(request, attempt, attempt_seconds, redact, secrets)

        return await self._retry.call_timed(
            once,
            action=request.action,
            deadline=self._deadline,
            no_answer_seconds=self.settings.timeout,
            endpoint=self.settings.endpoint,
        )

    async def _send(
        self,
        request: ApiRequest,
        attempt: int,
        attempt_seconds: float | None,
        redact: list[str],
        secrets: list[str],
    ) -> dict[str, Any]:
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
                prepared.url,
                headers=prepared.headers,
                content=prepared.body,
                timeout=(
                    httpx.USE_CLIENT_DEFAULT
                    if attempt_seconds is None
                    else httpx.Timeout(attempt_seconds)
                ),
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
            raise transport_error(exc, action=action, endpoint=self.settings.endpoint) from exc
        latency_ms = round((time.perf_counter() - started) * 1000, 1)
        logger.debug(
            "api.call",
            action=action,
            status=response.status_code,
            latency_ms=latency_ms,
            attempt=attempt,
            request_id=safe_request_id(response.headers.get("x-acs-request-id"), secrets),
        )
        try:
            return read_response(
                action,
                response.status_code,
                response.content,
                response.headers,
                redact=redact,
                secrets=secrets,
            )
        except ThrottledError as exc:
            if exc.retry_after is not None:
                # The window is closed for every caller of this operation, not only us.
                self._limiter.hold(action, exc.retry_after)
            raise

    # --- typed operations -------------------------------------------------------------

    async def create_product(
        self, product_name: str, node_type: int, **options: Unpack[operations.ProductOptions]
    ) -> records.ProductCreated:
        request = operations.create_product(product_name, node_type, **options)
        return models.parse_product_created(await self.call(request))

    async def query_product(self, product_key: str) -> records.Product:
        return models.parse_product(await self.call(operations.query_product(product_key)))

    async def batch_check_device_names(
        self, product_key: str, names: Sequence[tuple[str, str | None] | str]
    ) -> records.CheckResult:
        request = operations.batch_check_device_names(product_key, names)
        return models.parse_check_result(await self.call(request))

    async def query_batch_register_device_status(
        self, product_key: str, apply_id: int | str
    ) -> records.ApplyStatus:
        request = operations.query_batch_register_device_status(product_key, apply_id)
        return models.parse_apply_status(await self.call(request))

    async def batch_register_device_with_apply_id(
        self, product_key: str, apply_id: int | str
    ) -> records.ApplyAccepted:
        request = operations.batch_register_device_with_apply_id(product_key, apply_id)
        return models.parse_apply_accepted(await self.call(request), request.action)

    async def batch_register_device(self, product_key: str, count: int) -> records.ApplyAccepted:
        request = operations.batch_register_device(product_key, count)
        return models.parse_apply_accepted(await self.call(request), request.action)

    async def query_page_by_apply_id(
        self, apply_id: int | str, page: int, page_size: int = operations.MAX_PAGE_SIZE
    ) -> records.DevicePage:
        request = operations.query_page_by_apply_id(apply_id, page, page_size)
        return models.parse_device_page(await self.call(request))

    async def import_device(
        self,
        product_key: str,
        device_name: str,
        device_secret: str,
        nickname: str | None = None,
        sn: str | None = None,
    ) -> records.ImportedDevice:
        request = operations.import_device(product_key, device_name, device_secret, nickname, sn)
        return models.parse_imported_device(await self.call(request))

    async def register_device(
        self, product_key: str, device_name: str | None = None, nickname: str | None = None
    ) -> records.RegisteredDevice:
        request = operations.register_device(product_key, device_name, nickname)
        return models.parse_registered_device(await self.call(request))

    async def query_device_detail(
        self, **device: Unpack[operations.DeviceRef]
    ) -> records.DeviceDetail:
        request = operations.query_device_detail(**device)
        return models.parse_device_detail(await self.call(request))

    async def batch_query_device_detail(
        self, product_key: str, device_names: Sequence[str]
    ) -> list[records.DeviceDetail]:
        request = operations.batch_query_device_detail(product_key, device_names)
        return models.parse_device_details(await self.call(request))

    async def delete_device(self, **device: Unpack[operations.DeviceRef]) -> None:
        await self.call(operations.delete_device(**device))
