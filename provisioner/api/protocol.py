"""The IoT Platform RPC protocol without I/O: requests, signatures and error answers.

Pure steps, each testable without a network, in the way httpx's ``_auth.py`` is:

1. An :class:`ApiRequest` holds the API parameters of one call; the builders in
   :mod:`provisioner.api.operations` make one per operation, and :func:`with_instance`
   adds the IotInstanceId.
2. :func:`signed_request` adds the common parameters or headers of the V1 or V3
   signature scheme for a given timestamp and nonce and returns the exact bytes to
   send as a :class:`PreparedRequest`.
3. :func:`classify` turns an HTTP answer into ``None`` (success) or the
   :class:`~provisioner.errors.ApiError` subclass the retry policy acts on;
   :func:`read_response` returns the decoded JSON of a success or raises that error.

Parsing successful answers into typed records is in :mod:`provisioner.api.models`.

Secrets travel in parameters (ImportDevice's DeviceSecret), so nothing here puts a
parameter value into a ``repr()`` or an exception message. What the server sends back
(message, ``Code``, ``RequestId``, headers) goes through :mod:`provisioner.api.scrub`
before it is put in an error: no request value or secret in any encoding, no control
character, one line.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from provisioner.api import signing
from provisioner.api.scrub import safe_code, safe_request_id, scrub_message
from provisioner.errors import (
    ApiError,
    AuthenticationError,
    TerminalApiError,
    ThrottledError,
    TransientApiError,
)

__all__ = [
    "API_VERSION",
    "FORM_CONTENT_TYPE",
    "ApiRequest",
    "PreparedRequest",
    "classify",
    "read_response",
    "scrub_message",
    "signed_request",
    "v1_params",
    "v3_headers",
    "with_instance",
]

API_VERSION = "2018-01-20"
FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"

# Parameters the V1 scheme adds itself; an API parameter of the same name is a bug.
_V1_COMMON = frozenset(
    {
        "Action",
        "Version",
        "Format",
        "AccessKeyId",
        "SignatureMethod",
        "SignatureVersion",
        "SignatureNonce",
        "Timestamp",
        "RegionId",
        "Signature",
    }
)


# --- requests -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, repr=False)
class ApiRequest:
    """The API parameters of one call.

    ``query`` goes in the query string; ``form`` in an ``x-www-form-urlencoded`` body,
    as the official SDK sends BatchCheckDeviceNames' ``DeviceNameList.N.*``. Both are
    signed. ``repr()`` shows parameter names only: values can be secrets.
    """

    action: str
    query: dict[str, str] = field(default_factory=dict)
    form: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.action:
            raise ValueError("an API request needs an action")
        overlap = self.query.keys() & self.form.keys()
        if overlap:
            raise ValueError(f"parameters both in query and form: {sorted(overlap)}")

    @property
    def params(self) -> dict[str, str]:
        """Every API parameter, query and form together."""
        return {**self.query, **self.form}

    def __repr__(self) -> str:
        return (
            f"ApiRequest(action={self.action!r}, query={sorted(self.query)}, "
            f"form=<{len(self.form)} parameters>)"
        )


def with_instance(request: ApiRequest, iot_instance_id: str | None) -> ApiRequest:
    """``request`` with ``IotInstanceId`` added when an instance is configured.

    Every operation of this API takes the parameter; an instance that has an ID
    refuses calls without it. An ``IotInstanceId`` already in the request is kept.
    """
    if not iot_instance_id or "IotInstanceId" in request.params:
        return request
    return ApiRequest(
        request.action, {**request.query, "IotInstanceId": iot_instance_id}, dict(request.form)
    )


# --- signatures -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True, repr=False)
class PreparedRequest:
    """A signed request, byte for byte: ``method path?query``, headers and body.

    ``repr()`` leaves out the query and body: they hold parameter values and the
    signature.
    """

    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes

    @property
    def url(self) -> str:
        """Path and query string, relative to the endpoint."""
        return f"{self.path}?{self.query}" if self.query else self.path

    def __repr__(self) -> str:
        return (
            f"PreparedRequest(method={self.method!r}, path={self.path!r}, "
            f"headers={sorted(self.headers)}, body=<{len(self.body)} bytes>)"
        )


def _encode_form(form: Mapping[str, str]) -> bytes:
    # urlencode writes a space as '+' and '*' as '%2A', byte for byte what the official
    # SDK sends, so the body hash of a capture can be reproduced.
    return urlencode(list(form.items())).encode("ascii") if form else b""


def v1_params(
    request: ApiRequest,
    *,
    access_key_id: str,
    access_key_secret: str,
    timestamp: datetime,
    nonce: str,
    region: str | None,
    method: str = "POST",
    response_format: str = "JSON",
) -> dict[str, str]:
    """The query parameters of a V1 request: API and common parameters plus Signature.

    The signature covers the form parameters too, which stay in the body.
    ``region=None`` leaves RegionId out, as the current official SDK does.
    """
    clash = request.params.keys() & _V1_COMMON
    if clash:
        raise ValueError(f"API parameters clash with V1 common parameters: {sorted(clash)}")
    params = dict(request.query)
    params.update(
        {
            "Action": request.action,
            "Version": API_VERSION,
            "Format": response_format,
            "AccessKeyId": access_key_id,
            "SignatureMethod": "HMAC-SHA1",
            "SignatureVersion": "1.0",
            "SignatureNonce": nonce,
            "Timestamp": signing.format_timestamp(timestamp),
        }
    )
    if region:
        params["RegionId"] = region
    to_sign = signing.v1_string_to_sign(method, {**params, **request.form})
    params["Signature"] = signing.v1_signature(access_key_secret, to_sign)
    return params


def v3_headers(
    request: ApiRequest,
    *,
    access_key_id: str,
    access_key_secret: str,
    host: str,
    timestamp: datetime,
    nonce: str,
    body: bytes,
    method: str = "POST",
    extra_headers: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The headers of a V3 request, Authorization included.

    Every header returned is signed (``extra_headers`` too, lower-cased): what is
    signed is exactly what is sent, so a proxy that rewrites one is detected.
    """
    headers = {k.lower(): v for k, v in (extra_headers or {}).items()}
    headers.update(
        {
            "host": host,
            "accept": "application/json",
            "x-acs-action": request.action,
            "x-acs-version": API_VERSION,
            "x-acs-date": signing.format_timestamp(timestamp),
            "x-acs-signature-nonce": nonce,
            "x-acs-content-sha256": signing.sha256_hex(body),
        }
    )
    if body:
        headers["content-type"] = FORM_CONTENT_TYPE
    signed = sorted(headers)
    canonical = signing.v3_canonical_request(
        method, "/", request.query, headers, signed, headers["x-acs-content-sha256"]
    )
    signature = signing.v3_signature(access_key_secret, signing.v3_string_to_sign(canonical))
    headers["authorization"] = signing.v3_authorization(access_key_id, signed, signature)
    return headers


def signed_request(
    request: ApiRequest,
    *,
    access_key_id: str,
    access_key_secret: str,
    signature_version: str,
    host: str,
    timestamp: datetime,
    nonce: str,
    region: str | None,
    extra_headers: Mapping[str, str] | None = None,
) -> PreparedRequest:
    """Sign ``request`` for ``timestamp`` and ``nonce``: the exact POST to send to ``/``.

    ``host`` is the Host header as sent (``host[:port]``). ``extra_headers`` are sent
    as they are, and signed under V3.
    """
    body = _encode_form(request.form)
    if signature_version == "v1":
        params = v1_params(
            request,
            access_key_id=access_key_id,
            access_key_secret=access_key_secret,
            timestamp=timestamp,
            nonce=nonce,
            region=region,
        )
        headers = {k.lower(): v for k, v in (extra_headers or {}).items()}
        headers.update({"host": host, "accept": "application/json"})
        if body:
            headers["content-type"] = FORM_CONTENT_TYPE
    elif signature_version == "v3":
        params = dict(request.query)
        headers = v3_headers(
            request,
            access_key_id=access_key_id,
            access_key_secret=access_key_secret,
            host=host,
            timestamp=timestamp,
            nonce=nonce,
            body=body,
            extra_headers=extra_headers,
        )
    else:
        raise ValueError(f"unknown signature version {signature_version!r}")
    return PreparedRequest(
        method="POST",
        path="/",
        query=signing.canonical_query(params.items()),
        headers=headers,
        body=body,
    )


# --- answers --------------------------------------------------------------------------

_AUTH_CODES = frozenset(
    {
        "SignatureDoesNotMatch",
        "IncompleteSignature",
        "InvalidAccessKeyId",
        "InvalidAccessKeyId.NotFound",
        "InvalidAccessKeyId.Inactive",
        "InvalidAccessKeySecret",
        "Forbidden",
        "Forbidden.RAM",
        "Forbidden.AccessKeyDisabled",
        "Forbidden.NoPermission",
        "NoPermission",
        "iot.common.RamActionPermissionDeny",
    }
)
# A fresh timestamp and nonce fix these, and every retry is signed afresh.
_REPLAY_CODES: Mapping[str, str] = {
    "InvalidTimeStamp.Expired": (
        "the request timestamp was refused; check that this machine's clock is right "
        "(at most 15 minutes off)"
    ),
    "SignatureNonceUsed": "the signature nonce was refused as already used",
}
_TRANSIENT_CODES = frozenset(
    {
        "ServiceUnavailable",
        "ServiceUnavailableTemporary",
        "InternalError",
        "InternalFailure",
        "UnknownError",
        "ServiceTimeout",
        "iot.system.SystemException",
        "iot.common.ServiceUnavailable",
        "iot.system.ServiceUnavailable",
    }
)
_RETRY_AFTER_HEADER = "x-acs-retry-after"


def _decode(body: bytes) -> dict[str, Any] | None:
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    return data if isinstance(data, dict) else None


def _is_success(data: Mapping[str, Any]) -> bool:
    success = data.get("Success")
    if success is None:
        # Some answers carry no Success flag at all; only an error Code marks a failure.
        return "Code" not in data
    return success is True or (isinstance(success, str) and success.lower() == "true")


def _retry_after(headers: Mapping[str, str]) -> float | None:
    """The ``x-acs-retry-after`` hint (milliseconds) in seconds, if there is a sane one."""
    for name, value in headers.items():
        if name.lower() == _RETRY_AFTER_HEADER:
            try:
                millis = float(value)
            except ValueError:
                return None
            return millis / 1000.0 if millis >= 0 and millis == millis else None
    return None


def classify(
    action: str,
    http_status: int,
    body: bytes,
    headers: Mapping[str, str],
    *,
    redact: Sequence[str] = (),
    secrets: Sequence[str] = (),
) -> ApiError | None:
    """``None`` for a success, else the error the answer means (not raised).

    ``redact`` lists values (request parameters) and ``secrets`` the secrets (the
    AccessKey secret, DeviceSecrets) that must not appear in the error in any encoding,
    even if the server echoes them; a ``Code`` or ``RequestId`` holding a secret, or not
    shaped like one, is replaced by a placeholder.
    """
    return _classify(action, http_status, _decode(body), headers, redact, secrets)


def _classify(
    action: str,
    http_status: int,
    data: dict[str, Any] | None,
    headers: Mapping[str, str],
    redact: Sequence[str],
    secrets: Sequence[str],
) -> ApiError | None:
    if 200 <= http_status < 300 and data is not None and _is_success(data):
        return None
    retry_after = _retry_after(headers)
    if data is None:
        # HTML from a proxy or load balancer: never echoed, it may quote the request.
        code = f"HTTP{http_status}"
        ctype = next((v for k, v in headers.items() if k.lower() == "content-type"), "none")
        ctype = scrub_message(ctype[:60], redact, secrets)
        message = f"unexpected non-JSON answer (HTTP {http_status}, content-type {ctype})"
        if retry_after is not None or http_status == 429:
            return ThrottledError(
                action, code, message, http_status=http_status, retry_after=retry_after
            )
        if http_status >= 500:
            return TransientApiError(action, code, message, http_status=http_status)
        return TerminalApiError(action, code, message, http_status=http_status)

    # The code decides the class, so it is the checked code that does: a Code that is
    # not shaped like one (or holds a secret) is classified by the HTTP status alone.
    code = safe_code(data.get("Code"), secrets) or (
        f"HTTP{http_status}" if http_status >= 300 else "Unknown"
    )
    raw_message = data.get("Message") or data.get("ErrorMessage") or ""
    message = scrub_message(str(raw_message), redact, secrets) or "no message"
    rid = safe_request_id(data.get("RequestId"), secrets)
    kw: dict[str, Any] = {"http_status": http_status, "request_id": rid}

    if code == "Throttling" or code.startswith("Throttling.") or http_status == 429:
        return ThrottledError(action, code, message, retry_after=retry_after, **kw)
    if retry_after is not None:
        # The current official SDK reads any error with this header as throttling.
        return ThrottledError(action, code, message, retry_after=retry_after, **kw)
    if code in _AUTH_CODES or code.startswith(("InvalidAccessKeyId.", "Forbidden.")):
        return AuthenticationError(action, code, message, **kw)
    if code in _REPLAY_CODES:
        return TransientApiError(action, code, _REPLAY_CODES[code], **kw)
    if code in _TRANSIENT_CODES or http_status >= 500:
        return TransientApiError(action, code, message, **kw)
    return TerminalApiError(action, code, message, **kw)


def read_response(
    action: str,
    http_status: int,
    body: bytes,
    headers: Mapping[str, str],
    *,
    redact: Sequence[str] = (),
    secrets: Sequence[str] = (),
) -> dict[str, Any]:
    """The decoded JSON object of a successful answer; raises the classified error."""
    data = _decode(body)
    error = _classify(action, http_status, data, headers, redact, secrets)
    if error is not None:
        raise error
    if data is None:  # _classify() passes only a JSON object; this keeps mypy and -O honest
        raise TerminalApiError(action, "MalformedResponse", "the answer is not a JSON object")
    return data
