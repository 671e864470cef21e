"""Request signatures of Alibaba Cloud RPC APIs, as pure functions.

Two schemes are in use by real clients and both are verified by the emulator:

* V1 (``HMAC-SHA1``, SignatureVersion 1.0): every API and common parameter, from the
  query string and the form body alike, is signed; the signature travels as the
  ``Signature`` parameter.
* V3 (``ACS3-HMAC-SHA256``): the query string, a chosen set of headers and the SHA-256
  of the body are signed; the signature travels in the ``Authorization`` header.

Nothing here reads a clock or a random source: callers pass the timestamp and nonce,
so the same inputs always give the same signature and the captured requests of the
official SDKs can be checked byte for byte.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import quote

__all__ = [
    "V3_ALGORITHM",
    "V3Authorization",
    "canonical_query",
    "format_timestamp",
    "parse_timestamp",
    "parse_v3_authorization",
    "percent_encode",
    "sha256_hex",
    "v1_signature",
    "v1_string_to_sign",
    "v3_authorization",
    "v3_canonical_request",
    "v3_signature",
    "v3_string_to_sign",
]

V3_ALGORITHM = "ACS3-HMAC-SHA256"
_TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def percent_encode(value: str) -> str:
    """RFC 3986 encoding in UTF-8: only ``A-Z a-z 0-9 - _ . ~`` stay as they are."""
    # quote() with no safe characters leaves exactly the unreserved set alone,
    # and already writes a space as %20 and '*' as %2A.
    return quote(value, safe="", encoding="utf-8")


def canonical_query(params: Iterable[tuple[str, str]]) -> str:
    """Sorted ``name=value`` pairs joined by ``&``, names and values percent-encoded."""
    encoded = sorted((percent_encode(k), percent_encode(v)) for k, v in params)
    return "&".join(f"{k}={v}" for k, v in encoded)


def format_timestamp(moment: datetime) -> str:
    """ISO 8601 in UTC to the second, as the ``Timestamp`` and ``x-acs-date`` values."""
    return moment.astimezone(UTC).strftime(_TIMESTAMP_FORMAT)


def parse_timestamp(text: str) -> datetime:
    """Inverse of :func:`format_timestamp`; raises ``ValueError`` on any other shape."""
    return datetime.strptime(text, _TIMESTAMP_FORMAT).replace(tzinfo=UTC)


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --- V1 -------------------------------------------------------------------------------


def v1_string_to_sign(method: str, params: Mapping[str, str]) -> str:
    """``METHOD&%2F&enc(canonical query)`` over every parameter except ``Signature``."""
    pairs = ((k, v) for k, v in params.items() if k != "Signature")
    return f"{method.upper()}&{percent_encode('/')}&{percent_encode(canonical_query(pairs))}"


def v1_signature(secret: str, string_to_sign: str) -> str:
    """base64(HMAC-SHA1(secret + "&", string_to_sign))."""
    key = (secret + "&").encode("utf-8")
    digest = hmac.new(key, string_to_sign.encode("utf-8"), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


# --- V3 -------------------------------------------------------------------------------


def v3_canonical_request(
    method: str,
    path: str,
    query: Mapping[str, str],
    headers: Mapping[str, str],
    signed_headers: Iterable[str],
    payload_hash: str,
) -> str:
    """The canonical request: method, path, query, headers, header list and body hash.

    ``headers`` may use any letter case; ``signed_headers`` names the ones to sign.
    A signed header that is absent is signed with an empty value, as the server
    would see it.
    """
    lowered = {k.lower(): v for k, v in headers.items()}
    names = sorted({h.strip().lower() for h in signed_headers if h.strip()})
    canonical_headers = "".join(f"{n}:{lowered.get(n, '').strip()}\n" for n in names)
    return "\n".join(
        [
            method.upper(),
            path or "/",
            canonical_query(query.items()),
            canonical_headers,
            ";".join(names),
            payload_hash,
        ]
    )


def v3_string_to_sign(canonical_request: str) -> str:
    return f"{V3_ALGORITHM}\n{sha256_hex(canonical_request.encode('utf-8'))}"


def v3_signature(secret: str, string_to_sign: str) -> str:
    """hex(HMAC-SHA256(secret, string_to_sign))."""
    mac = hmac.new(secret.encode("utf-8"), string_to_sign.encode("utf-8"), hashlib.sha256)
    return mac.hexdigest()


@dataclass(frozen=True, slots=True)
class V3Authorization:
    """The parts of an ``Authorization: ACS3-HMAC-SHA256 ...`` header."""

    access_key_id: str
    signed_headers: tuple[str, ...]
    signature: str


def v3_authorization(access_key_id: str, signed_headers: Iterable[str], signature: str) -> str:
    names = ";".join(sorted(h.lower() for h in signed_headers))
    return f"{V3_ALGORITHM} Credential={access_key_id},SignedHeaders={names},Signature={signature}"


def parse_v3_authorization(value: str) -> V3Authorization | None:
    """Split an Authorization header; ``None`` when it is not a well-formed V3 header."""
    algorithm, _, rest = value.strip().partition(" ")
    if algorithm != V3_ALGORITHM:
        return None
    fields: dict[str, str] = {}
    for part in rest.split(","):
        name, sep, val = part.strip().partition("=")
        if not sep:
            return None
        fields[name] = val
    try:
        return V3Authorization(
            access_key_id=fields["Credential"],
            signed_headers=tuple(h for h in fields["SignedHeaders"].split(";") if h),
            signature=fields["Signature"],
        )
    except KeyError:
        return None
