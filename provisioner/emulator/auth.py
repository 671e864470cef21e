"""Request parsing and authentication, as the API gateway does it before any API runs.

Both signature schemes of real clients are verified (see :mod:`provisioner.api.signing`):

* V3 (``Authorization: ACS3-HMAC-SHA256 ...``): action, version, date and nonce come
  from the ``x-acs-*`` headers; exactly the headers named in ``SignedHeaders`` are
  signed, with the Host as sent, and the body hash is computed from the raw body
  (so a body that does not match ``x-acs-content-sha256`` fails the signature).
* V1 (``Signature`` parameter, HMAC-SHA1): every parameter of the query and the form
  body except ``Signature`` is signed, empty ones included.

Checks run in the gateway's order: AccessKeyId, timestamp, signature, and only for a
valid signature the nonce, which is then remembered for ``nonce_ttl`` seconds.
Failures raise :class:`GatewayError` (HTTP 4xx/5xx with ``Code`` and ``Message``).
"""

from __future__ import annotations

import hmac
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Literal
from urllib.parse import parse_qsl

from provisioner.api.signing import (
    V3_ALGORITHM,
    V3Authorization,
    parse_timestamp,
    parse_v3_authorization,
    sha256_hex,
    v1_signature,
    v1_string_to_sign,
    v3_canonical_request,
    v3_signature,
    v3_string_to_sign,
)

__all__ = [
    "API_VERSION",
    "Authenticator",
    "GatewayError",
    "ParsedRequest",
    "ResponseFormat",
    "missing_parameter",
    "parse_request",
    "split_params",
]

API_VERSION = "2018-01-20"

ResponseFormat = Literal["JSON", "XML"]
Scheme = Literal["V1", "V3"]

_V1_REQUIRED = (
    "Action",
    "Version",
    "AccessKeyId",
    "Signature",
    "SignatureMethod",
    "SignatureNonce",
    "Timestamp",
)
_V3_REQUIRED = (
    ("x-acs-action", "Action"),
    ("x-acs-version", "Version"),
    ("x-acs-date", "x-acs-date"),
    ("x-acs-signature-nonce", "x-acs-signature-nonce"),
    ("x-acs-content-sha256", "x-acs-content-sha256"),
)
_MISMATCH = "Specified signature is not matched with our calculation. server string to sign is:"
_INCOMPLETE = (
    "The request signature does not conform to Aliyun standards. server string to sign is:"
)


class GatewayError(Exception):
    """A gateway rejection: HTTP ``status`` with ``Code`` and ``Message``."""

    def __init__(
        self, status: int, code: str, message: str, *, retry_after_ms: int | None = None
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.retry_after_ms = retry_after_ms


def missing_parameter(name: str) -> GatewayError:
    return GatewayError(400, "MissingParameter", f"{name} is mandatory for this action.")


@dataclass(frozen=True, slots=True)
class ParsedRequest:
    """What the gateway knows about a request once it has been read."""

    method: str
    scheme: Scheme
    action: str
    version: str
    access_key_id: str
    timestamp: str
    nonce: str
    #: The query string alone (what V3 signs).
    query: dict[str, str]
    #: Query and form body together (form wins), common parameters included.
    params: dict[str, str]
    #: Header names in lower case.
    headers: Mapping[str, str]
    body: bytes
    path: str
    response_format: ResponseFormat
    authorization: V3Authorization | None


def split_params(
    raw_query: str, content_type: str | None, body: bytes
) -> tuple[dict[str, str], dict[str, str]]:
    """The query and the form body as name -> value (``+`` and ``%20`` both mean space).

    The body is read as a form when it has no content type (the old SDK sends one
    without) or a form content type; any other body is only hashed, never read.
    """
    query = dict(parse_qsl(raw_query, keep_blank_values=True))
    form: dict[str, str] = {}
    if body and (not content_type or "x-www-form-urlencoded" in content_type.lower()):
        text = body.decode("utf-8", errors="replace")
        form = dict(parse_qsl(text, keep_blank_values=True))
    return query, form


def _format(params: Mapping[str, str], scheme: Scheme) -> ResponseFormat:
    wanted = params.get("Format", "").strip().upper()
    if wanted == "JSON" or (wanted != "XML" and scheme == "V3"):
        return "JSON"
    return "XML"


def parse_request(
    method: str,
    path: str,
    raw_query: str,
    headers: Mapping[str, str],
    body: bytes,
) -> tuple[ParsedRequest | None, ResponseFormat, GatewayError | None]:
    """Read a request; on a missing mandatory parameter return the error to answer with.

    ``headers`` must map lower-case names to values. The response format is
    returned in every case so that even a malformed request gets the answer
    format it asked for.
    """
    query, form = split_params(raw_query, headers.get("content-type"), body)
    params = {**query, **form}
    auth_header = headers.get("authorization", "")
    scheme: Scheme = "V3" if auth_header.strip().startswith(V3_ALGORITHM) else "V1"
    fmt = _format(params, scheme)
    authorization: V3Authorization | None = None
    if scheme == "V3":
        for header, name in _V3_REQUIRED:
            if not headers.get(header):
                return None, fmt, missing_parameter(name)
        authorization = parse_v3_authorization(auth_header)
        if authorization is None:
            return None, fmt, GatewayError(400, "IncompleteSignature", _INCOMPLETE)
        action = headers["x-acs-action"]
        version = headers["x-acs-version"]
        access_key_id = authorization.access_key_id
        timestamp = headers["x-acs-date"]
        nonce = headers["x-acs-signature-nonce"]
    else:
        for name in _V1_REQUIRED:
            if not params.get(name):
                return None, fmt, missing_parameter(name)
        action = params["Action"]
        version = params["Version"]
        access_key_id = params["AccessKeyId"]
        timestamp = params["Timestamp"]
        nonce = params["SignatureNonce"]
    parsed = ParsedRequest(
        method=method.upper(),
        scheme=scheme,
        action=action,
        version=version,
        access_key_id=access_key_id,
        timestamp=timestamp,
        nonce=nonce,
        query=query,
        params=params,
        headers=headers,
        body=body,
        path=path or "/",
        response_format=fmt,
        authorization=authorization,
    )
    return parsed, fmt, None


def _parse_time(text: str) -> float | None:
    try:
        return parse_timestamp(text).timestamp()
    except ValueError:
        pass
    try:  # also accept fractions of a second and explicit offsets
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment.timestamp() if moment.tzinfo is not None else None


class Authenticator:
    """Verifies signatures, timestamps and nonces for the configured AccessKey pairs."""

    def __init__(
        self, accounts: Mapping[str, str], *, nonce_ttl: float, max_clock_skew: float
    ) -> None:
        self._accounts = dict(accounts)
        self._nonce_ttl = nonce_ttl
        self._skew = max_clock_skew
        self._nonces: dict[tuple[str, str], float] = {}
        self._expiry: deque[tuple[float, tuple[str, str]]] = deque()

    def authenticate(self, request: ParsedRequest, now: float) -> str:
        """The AccessKeyId of a genuine request; raises :class:`GatewayError` otherwise."""
        secret = self._accounts.get(request.access_key_id)
        if secret is None:
            raise GatewayError(
                404, "InvalidAccessKeyId.NotFound", "Specified access key is not found."
            )
        moment = _parse_time(request.timestamp)
        if moment is None:
            raise GatewayError(
                400,
                "InvalidTimeStamp.Format",
                "Specified time stamp or date value is not well formatted.",
            )
        if abs(now - moment) > self._skew:
            raise GatewayError(
                400, "InvalidTimeStamp.Expired", "Specified time stamp or date value is expired."
            )
        if request.scheme == "V3":
            self._verify_v3(request, secret)
        else:
            self._verify_v1(request, secret)
        self._use_nonce(request.access_key_id, request.nonce, now)
        return request.access_key_id

    @staticmethod
    def _verify_v1(request: ParsedRequest, secret: str) -> None:
        string_to_sign = v1_string_to_sign(request.method, request.params)
        if request.params.get("SignatureMethod") != "HMAC-SHA1":
            raise GatewayError(400, "IncompleteSignature", _INCOMPLETE + string_to_sign)
        expected = v1_signature(secret, string_to_sign)
        if not hmac.compare_digest(expected, request.params.get("Signature", "")):
            raise GatewayError(400, "SignatureDoesNotMatch", _MISMATCH + string_to_sign)

    @staticmethod
    def _verify_v3(request: ParsedRequest, secret: str) -> None:
        auth = request.authorization
        assert auth is not None
        signed = {h.strip().lower() for h in auth.signed_headers}
        canonical = v3_canonical_request(
            request.method,
            request.path,
            request.query,
            request.headers,
            signed,
            sha256_hex(request.body),
        )
        string_to_sign = v3_string_to_sign(canonical)
        # host and every x-acs-* header must be covered, or a replay could alter them.
        must_sign = {h for h in request.headers if h.startswith("x-acs-")} | {"host"}
        if not must_sign <= signed:
            raise GatewayError(400, "IncompleteSignature", _INCOMPLETE + string_to_sign)
        expected = v3_signature(secret, string_to_sign)
        if not hmac.compare_digest(expected, auth.signature.lower()):
            raise GatewayError(400, "SignatureDoesNotMatch", _MISMATCH + string_to_sign)

    def _use_nonce(self, access_key_id: str, nonce: str, now: float) -> None:
        expiry = self._expiry
        while expiry and expiry[0][0] <= now:
            _, old = expiry.popleft()
            if self._nonces.get(old, now + 1) <= now:
                del self._nonces[old]
        key = (access_key_id, nonce)
        until = self._nonces.get(key)
        if until is not None and until > now:
            raise GatewayError(
                400, "SignatureNonceUsed", "Specified signature nonce was used already."
            )
        self._nonces[key] = now + self._nonce_ttl
        expiry.append((now + self._nonce_ttl, key))

    def remembered_nonces(self) -> int:
        return len(self._nonces)
