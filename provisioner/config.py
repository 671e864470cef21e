"""Settings of the IoT Platform API client: credentials, endpoint, region, limits.

Precedence is arguments (the command line) > environment > defaults. Credentials come
only from the environment (``ALIBABA_CLOUD_ACCESS_KEY_ID`` / ``ALIBABA_CLOUD_ACCESS_KEY_SECRET``,
the names every Alibaba Cloud tool reads), never from arguments, so they do not end up
in shell history or ``ps`` output.

The AccessKey secret is kept out of ``repr()``/``str()`` of every object here, so a
settings object can be logged or shown in a traceback without leaking it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import urlsplit

from provisioner.errors import UsageError

__all__ = [
    "DEFAULT_REGION",
    "ENV_ACCESS_KEY_ID",
    "ENV_ACCESS_KEY_SECRET",
    "ENV_ENDPOINT",
    "ENV_IOT_INSTANCE_ID",
    "ENV_QPS_SCALE",
    "ENV_REGION",
    "ENV_SIGNATURE_VERSION",
    "ApiSettings",
    "Credentials",
    "SignatureVersion",
    "default_endpoint",
    "load_api_settings",
    "normalize_endpoint",
]

SignatureVersion = Literal["v1", "v3"]

ENV_ACCESS_KEY_ID = "ALIBABA_CLOUD_ACCESS_KEY_ID"
ENV_ACCESS_KEY_SECRET = "ALIBABA_CLOUD_ACCESS_KEY_SECRET"  # noqa: S105 - a variable name
ENV_ENDPOINT = "PROVISIONER_ENDPOINT"
ENV_REGION = "PROVISIONER_REGION"
ENV_IOT_INSTANCE_ID = "PROVISIONER_IOT_INSTANCE_ID"
ENV_SIGNATURE_VERSION = "PROVISIONER_SIGNATURE_VERSION"
ENV_QPS_SCALE = "PROVISIONER_QPS_SCALE"

DEFAULT_REGION = "cn-shanghai"

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


@dataclass(frozen=True, slots=True)
class ApiSettings:
    """Everything the API client needs to reach one account of IoT Platform.

    ``endpoint`` is a normalized URL (``https://host[:port]`` without a trailing slash);
    ``qps_scale`` multiplies every per-operation QPS limit (for an emulator started
    with a scaled limit, or to leave headroom to other users of the account).
    """

    credentials: Credentials
    endpoint: str
    region: str = DEFAULT_REGION
    iot_instance_id: str | None = None
    signature_version: SignatureVersion = "v1"
    qps_scale: float = 1.0
    timeout: float = 30.0
    max_attempts: int = 8
    max_retry_seconds: float = 300.0
    verify_tls: bool = True
    max_connections: int = 64

    def __post_init__(self) -> None:
        if self.signature_version not in _SIGNATURE_VERSIONS:
            raise UsageError(f"unknown signature version {self.signature_version!r}: use v1 or v3")
        if not self.qps_scale > 0:
            raise UsageError(f"qps scale must be above 0, got {self.qps_scale}")
        if not self.timeout > 0:
            raise UsageError(f"timeout must be above 0 seconds, got {self.timeout}")
        if self.max_attempts < 1:
            raise UsageError(f"max attempts must be at least 1, got {self.max_attempts}")
        if self.max_retry_seconds < 0:
            raise UsageError(f"max retry time must not be negative, got {self.max_retry_seconds}")
        if self.max_connections < 1:
            raise UsageError(f"max connections must be at least 1, got {self.max_connections}")

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


def load_api_settings(
    *,
    endpoint: str | None = None,
    region: str | None = None,
    iot_instance_id: str | None = None,
    signature_version: SignatureVersion | None = None,
    qps_scale: float | None = None,
    env: Mapping[str, str] = os.environ,
) -> ApiSettings:
    """Build :class:`ApiSettings` from arguments, then ``env``, then defaults.

    Raises :class:`UsageError` with a one-line message naming what to set or fix.
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

    instance = _pick(iot_instance_id, env, ENV_IOT_INSTANCE_ID)
    instance = instance.strip() if instance is not None else None

    version_text = _pick(signature_version, env, ENV_SIGNATURE_VERSION) or "v1"
    version_text = version_text.strip().lower()
    if version_text not in _SIGNATURE_VERSIONS:
        raise UsageError(f"unknown signature version {version_text!r}: use v1 or v3")

    if qps_scale is None:
        scale_text = env.get(ENV_QPS_SCALE, "").strip()
        try:
            scale = float(scale_text) if scale_text else 1.0
        except ValueError as exc:
            raise UsageError(f"{ENV_QPS_SCALE} must be a number, got {scale_text!r}") from exc
    else:
        scale = qps_scale

    return ApiSettings(
        credentials=credentials,
        endpoint=chosen_endpoint,
        region=chosen_region,
        iot_instance_id=instance or None,
        signature_version=version_text,
        qps_scale=scale,
    )
