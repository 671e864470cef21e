"""Settings of the IoT Platform API client: credentials, endpoint, region, limits.

Precedence is arguments (the command line) > environment > defaults. Credentials come
only from the environment (``ALIBABA_CLOUD_ACCESS_KEY_ID`` / ``ALIBABA_CLOUD_ACCESS_KEY_SECRET``,
the names every Alibaba Cloud tool reads), never from arguments, so they do not end up
in shell history or ``ps`` output.

The AccessKey secret is kept out of ``repr()``/``str()`` of every object here, so a
settings object can be logged or shown in a traceback without leaking it.

Plain ``http://`` is refused unless the host is this machine (127.0.0.0/8, ``::1``,
``localhost``) or ``--insecure-http`` / ``PROVISIONER_INSECURE_HTTP=1`` says otherwise
(:func:`check_endpoint_security`): every request carries the AccessKey ID and a signature,
and ImportDevice carries a DeviceSecret, so the network must not read them. The decision
is on the name as written, never on what DNS answers.
"""

from __future__ import annotations

import ipaddress
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import urlsplit

import structlog

from provisioner.errors import UsageError

__all__ = [
    "DEFAULT_REGION",
    "DEFAULT_TIMEOUT",
    "ENV_ACCESS_KEY_ID",
    "ENV_ACCESS_KEY_SECRET",
    "ENV_DEADLINE",
    "ENV_ENDPOINT",
    "ENV_INSECURE_HTTP",
    "ENV_IOT_INSTANCE_ID",
    "ENV_QPS_SCALE",
    "ENV_REGION",
    "ENV_SIGNATURE_VERSION",
    "ENV_TIMEOUT",
    "ApiSettings",
    "Credentials",
    "EndpointSecurity",
    "SignatureVersion",
    "check_endpoint_security",
    "default_endpoint",
    "is_loopback_host",
    "load_api_settings",
    "normalize_endpoint",
]

SignatureVersion = Literal["v1", "v3"]
#: How an endpoint is reached: TLS, plain HTTP to this machine, or plain HTTP allowed
#: across the network by ``--insecure-http``.
EndpointSecurity = Literal["tls", "loopback", "insecure"]

logger = structlog.get_logger(__name__)

ENV_ACCESS_KEY_ID = "ALIBABA_CLOUD_ACCESS_KEY_ID"
ENV_ACCESS_KEY_SECRET = "ALIBABA_CLOUD_ACCESS_KEY_SECRET"  # noqa: S105 - a variable name
ENV_ENDPOINT = "PROVISIONER_ENDPOINT"
ENV_REGION = "PROVISIONER_REGION"
ENV_IOT_INSTANCE_ID = "PROVISIONER_IOT_INSTANCE_ID"
ENV_SIGNATURE_VERSION = "PROVISIONER_SIGNATURE_VERSION"
ENV_QPS_SCALE = "PROVISIONER_QPS_SCALE"
ENV_TIMEOUT = "PROVISIONER_TIMEOUT"
ENV_DEADLINE = "PROVISIONER_DEADLINE"
ENV_INSECURE_HTTP = "PROVISIONER_INSECURE_HTTP"

DEFAULT_REGION = "cn-shanghai"
#: Seconds the client keeps trying an endpoint from which no answer at all comes.
DEFAULT_TIMEOUT = 60.0

# Region ids are lower-case words joined by hyphens (cn-shanghai, ap-southeast-1); the
# region becomes part of a host name, so anything else is refused early.
_REGION_RE = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")
_HOST_RE = re.compile(
    r"^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*$"
)
_SIGNATURE_VERSIONS: tuple[SignatureVersion, ...] = ("v1", "v3")


@dataclass(frozen=True, slots=True)
class Credentials:
    """An AccessKey pair. The secret is left out of ``repr()`` so it never reaches a log."""

    access_key_id: str
    access_key_secret: str = field(repr=False)

    def __post_init__(self) -> None:
        if not self.access_key_id:
            raise UsageError(f"the AccessKey ID is empty: set {ENV_ACCESS_KEY_ID}")
        if not self.access_key_secret:
            raise UsageError(f"the AccessKey secret is empty: set {ENV_ACCESS_KEY_SECRET}")

    def secret_values(self) -> tuple[str, ...]:
        """Every secret of the credential, for scrubbing server messages: the AccessKey
        secret (and a SecurityToken, once temporary credentials are supported)."""
        return (self.access_key_secret,)


@dataclass(frozen=True, slots=True)
class ApiSettings:
    """Everything the API client needs to reach one account of IoT Platform.

    ``endpoint`` is a normalized URL (``https://host[:port]`` without a trailing slash);
    ``qps_scale`` multiplies every per-operation QPS limit (for an emulator started
    with a scaled limit, or to leave headroom to other users of the account).

    ``timeout`` is the longest the client keeps trying an endpoint from which no answer
    at all comes (one attempt waits a third of it; see :mod:`provisioner.api.retry`).
    ``deadline_seconds``, measured from the creation of the API client (when a command
    starts calling the API), bounds how long throttled calls keep waiting; ``None`` is no
    deadline. ``insecure_http`` allows plain ``http://`` to a host other than this machine.
    """

    credentials: Credentials
    endpoint: str
    region: str = DEFAULT_REGION
    iot_instance_id: str | None = None
    signature_version: SignatureVersion = "v1"
    qps_scale: float = 1.0
    timeout: float = DEFAULT_TIMEOUT
    max_attempts: int = 8
    max_retry_seconds: float = 300.0
    verify_tls: bool = True
    max_connections: int = 64
    deadline_seconds: float | None = None
    insecure_http: bool = False

    def __post_init__(self) -> None:
        if self.signature_version not in _SIGNATURE_VERSIONS:
            raise UsageError(f"unknown signature version {self.signature_version!r}: use v1 or v3")
        if not self.qps_scale > 0:
            raise UsageError(f"qps scale must be above 0, got {self.qps_scale}")
        if not 0 < self.timeout < math.inf:
            raise UsageError(f"timeout must be above 0 seconds, got {self.timeout}")
        if self.max_attempts < 1:
            raise UsageError(f"max attempts must be at least 1, got {self.max_attempts}")
        if self.max_retry_seconds < 0:
            raise UsageError(f"max retry time must not be negative, got {self.max_retry_seconds}")
        if self.max_connections < 1:
            raise UsageError(f"max connections must be at least 1, got {self.max_connections}")
        if self.deadline_seconds is not None and not 0 < self.deadline_seconds < math.inf:
            raise UsageError(f"deadline must be above 0 seconds, got {self.deadline_seconds}")

    @property
    def host(self) -> str:
        """``host[:port]`` of the endpoint, as sent in the Host header."""
        return urlsplit(self.endpoint).netloc


def default_endpoint(region: str) -> str:
    """The public endpoint of IoT Platform in ``region``."""
    return f"https://iot.{region}.aliyuncs.com"


def normalize_endpoint(endpoint: str) -> str:
    """``scheme://host[:port]`` from what a person typed; :class:`UsageError` if malformed.

    A bare host gets ``https://``. Only ``http`` and ``https`` are accepted; ``http`` is
    meant for a local emulator (it has no TLS to verify). A path other than ``/``, a
    query, a fragment or user info is refused: RPC requests always go to ``/`` and a
    password in a URL would be logged.
    """
    text = endpoint.strip()
    if not text:
        raise UsageError(f"the endpoint is empty: pass --endpoint or set {ENV_ENDPOINT}")
    if "://" not in text:
        text = "https://" + text
    try:
        parts = urlsplit(text)
        port = parts.port  # raises ValueError on a port that is not a number in range
    except ValueError as exc:
        raise UsageError(f"malformed endpoint {endpoint!r}: {exc}") from exc
    problem: str | None = None
    if parts.scheme not in ("http", "https"):
        problem = "the scheme must be http or https"
    elif not parts.hostname or not _is_host(parts.hostname):
        problem = "it has no valid host name"
    elif parts.username is not None or parts.password is not None:
        problem = "it must not contain user info"
    elif parts.path not in ("", "/") or parts.query or parts.fragment:
        problem = "it must not have a path, query or fragment"
    if problem is not None:
        # The user info is never echoed: it could be a password.
        shown = endpoint if parts.username is None else "<endpoint with user info>"
        raise UsageError(f"malformed endpoint {shown!r}: {problem}")
    host = parts.hostname or ""
    if ":" in host:  # an IPv6 literal goes back in brackets
        host = f"[{host}]"
    netloc = host if port is None else f"{host}:{port}"
    return f"{parts.scheme}://{netloc}"


def _is_host(hostname: str) -> bool:
    if ":" in hostname:  # IPv6 literal, already checked by urlsplit's bracket parsing
        return True
    return bool(_HOST_RE.match(hostname))


def is_loopback_host(hostname: str) -> bool:
    """True for a name that reaches this machine without a network: ``localhost`` or an
    address of 127.0.0.0/8 or ``::1`` (also as an IPv4-mapped IPv6 address).

    Only the name as written counts: a name that merely resolves to 127.0.0.1 is not
    trusted (DNS and /etc/hosts can say anything), nor are shorthand forms like ``127.1``.
    """
    name = hostname.strip().lower().removeprefix("[").removesuffix("]")
    if name in ("localhost", "localhost."):
        return True
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


def check_endpoint_security(endpoint: str, *, insecure_http: bool) -> EndpointSecurity:
    """How ``endpoint`` (normalized) would be reached; :class:`UsageError` when that is
    plain HTTP across a network and ``insecure_http`` is not set."""
    parts = urlsplit(endpoint)
    if parts.scheme != "http":
        return "tls"
    if is_loopback_host(parts.hostname or ""):
        return "loopback"
    if insecure_http:
        return "insecure"
    secure = endpoint.replace("http://", "https://", 1)
    raise UsageError(
        f"refusing plain HTTP to {parts.netloc}: the AccessKey and device secrets would cross "
        f"the network unencrypted; use {secure}, or pass --insecure-http "
        f"({ENV_INSECURE_HTTP}=1) if you accept that"
    )


def _pick(argument: str | None, env: Mapping[str, str], name: str) -> str | None:
    """The argument if given, else a non-empty environment variable, else ``None``."""
    if argument is not None:
        return argument
    value = env.get(name, "").strip()
    return value or None


def _required_env(env: Mapping[str, str], name: str, what: str) -> str:
    value = env.get(name, "").strip()
    if not value:
        raise UsageError(f"no {what}: set the environment variable {name}")
    return value


def _env_float(env: Mapping[str, str], name: str) -> float | None:
    text = env.get(name, "").strip()
    if not text:
        return None
    try:
        return float(text)
    except ValueError as exc:
        raise UsageError(f"{name} must be a number, got {text!r}") from exc


_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"", "0", "false", "no", "off"})


def _env_flag(env: Mapping[str, str], name: str) -> bool:
    text = env.get(name, "").strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise UsageError(f"{name} must be 1 or 0, got {text!r}")


def load_api_settings(
    *,
    endpoint: str | None = None,
    region: str | None = None,
    iot_instance_id: str | None = None,
    signature_version: SignatureVersion | None = None,
    qps_scale: float | None = None,
    timeout: float | None = None,
    deadline: float | None = None,
    insecure_http: bool | None = None,
    env: Mapping[str, str] = os.environ,
) -> ApiSettings:
    """Build :class:`ApiSettings` from arguments, then ``env``, then defaults.

    Raises :class:`UsageError` with a one-line message naming what to set or fix, among
    them plain HTTP to a host other than this machine without ``insecure_http``; when
    that is allowed, an ``api.insecure_http`` warning is logged (once per command).
    """
    credentials = Credentials(
        access_key_id=_required_env(env, ENV_ACCESS_KEY_ID, "AccessKey ID"),
        access_key_secret=_required_env(env, ENV_ACCESS_KEY_SECRET, "AccessKey secret"),
    )

    chosen_region = (_pick(region, env, ENV_REGION) or DEFAULT_REGION).strip()
    if not _REGION_RE.match(chosen_region):
        raise UsageError(f"malformed region {chosen_region!r}: expected an id like cn-shanghai")

    raw_endpoint = _pick(endpoint, env, ENV_ENDPOINT)
    chosen_endpoint = normalize_endpoint(
        raw_endpoint if raw_endpoint is not None else default_endpoint(chosen_region)
    )
    insecure = insecure_http if insecure_http is not None else _env_flag(env, ENV_INSECURE_HTTP)
    security = check_endpoint_security(chosen_endpoint, insecure_http=insecure)

    instance = _pick(iot_instance_id, env, ENV_IOT_INSTANCE_ID)
    instance = instance.strip() if instance is not None else None

    version_text = _pick(signature_version, env, ENV_SIGNATURE_VERSION) or "v1"
    version_text = version_text.strip().lower()
    if version_text not in _SIGNATURE_VERSIONS:
        raise UsageError(f"unknown signature version {version_text!r}: use v1 or v3")

    scale = qps_scale if qps_scale is not None else _env_float(env, ENV_QPS_SCALE)
    chosen_timeout = timeout if timeout is not None else _env_float(env, ENV_TIMEOUT)
    chosen_deadline = deadline if deadline is not None else _env_float(env, ENV_DEADLINE)

    settings = ApiSettings(
        credentials=credentials,
        endpoint=chosen_endpoint,
        region=chosen_region,
        iot_instance_id=instance or None,
        signature_version=version_text,
        qps_scale=1.0 if scale is None else scale,
        timeout=DEFAULT_TIMEOUT if chosen_timeout is None else chosen_timeout,
        deadline_seconds=chosen_deadline,
        insecure_http=insecure,
    )
    if security == "insecure":
        logger.warning(
            "api.insecure_http",
            endpoint=chosen_endpoint,
            detail="plain HTTP across the network: the AccessKey ID, signatures and device "
            "secrets can be read on the way",
        )
    return settings
