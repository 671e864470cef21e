"""provisioner.api.scrub: no secret in any encoding, no control character, one line.

The property tests generate secrets, wrap them in the encodings a gateway echoes
(raw, percent-encoded in either hex case, form-encoded, percent-encoded twice,
JSON-escaped, HTML entities), embed them in generated messages full of control and
format characters, and check what comes out: no form of the secret, no control
character, one bounded line. The same for Code and RequestId values.
"""

from __future__ import annotations

import html
import json
import re
import unicodedata
from collections.abc import Callable
from typing import Any
from urllib.parse import quote, quote_plus, unquote, unquote_plus

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from provisioner.api import models, protocol
from provisioner.api.scrub import (
    PLACEHOLDER,
    REDACTED,
    clean_text,
    contains_any,
    safe_code,
    safe_request_id,
    scrub_message,
)

# Never in a generated secret: stands in for the placeholder when checking the output.
SEP = "\uffff"

# --- encodings a server may echo a value in ---------------------------------------------


def _pct_lower(value: str) -> str:
    return re.sub(r"%[0-9A-F]{2}", lambda m: m.group().lower(), quote(value, safe=""))


def _json(value: str) -> str:
    return json.dumps(value)[1:-1]


def _json_raw(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)[1:-1]


def _entities(value: str) -> str:
    return "".join(f"&#{ord(c)};" if not c.isalnum() else c for c in value)


def _mixed(value: str) -> str:
    # Every other character percent-encoded, the rest raw: an echo of a half-encoder.
    return "".join(quote(c, safe="") if i % 2 else c for i, c in enumerate(value))


ENCODINGS: dict[str, Callable[[str], str]] = {
    "raw": lambda v: v,
    "percent-upper": lambda v: quote(v, safe=""),
    "percent-lower": _pct_lower,
    "percent-keep-slash": quote,
    "form": lambda v: quote_plus(v, safe=""),
    "percent-twice": lambda v: quote(quote(v, safe=""), safe=""),
    "json": _json,
    "json-unicode": _json_raw,
    "html": _entities,
    "html-escape": lambda v: html.escape(v, quote=True),
    "mixed": _mixed,
}

_JSON_ESCAPE = re.compile(r"\\u([0-9a-fA-F]{4})|\\([\"\\/bfnrt])")


def _json_unescape(text: str) -> str:
    def one(match: re.Match[str]) -> str:
        if match.group(1):
            return chr(int(match.group(1), 16))
        return {"b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}.get(
            match.group(2), match.group(2)
        )

    return _JSON_ESCAPE.sub(one, text)


def _decodings(text: str) -> list[str]:
    """``text`` as a reader could decode it."""
    return [
        text,
        unquote(text),
        unquote_plus(text),
        unquote(unquote(text)),
        unquote_plus(unquote_plus(text)),
        _json_unescape(text),
        html.unescape(text),
    ]


def _assert_clean(text: str, secret: str) -> None:
    """No form of ``secret`` and no control character in ``text``."""
    assert "\n" not in text
    for c in text:
        assert unicodedata.category(c) not in ("Cc", "Cf", "Cs"), f"control {c!r} in {text!r}"
    # The placeholder itself may spell part of a secret ("dact"): it is taken out first.
    shown = text.replace(REDACTED, SEP).replace(PLACEHOLDER, SEP)
    for name, encode in ENCODINGS.items():
        form = encode(secret)
        assert form not in shown, f"the secret survived {name}-encoded: {text!r}"
    for decoded in _decodings(shown):
        assert secret not in decoded, f"the secret survived: {text!r}"


# --- strategies -------------------------------------------------------------------------

# Control, format (bidi, zero-width) and whitespace characters a server could slip in.
NASTY = st.sampled_from(
    [
        *["\x1b", "\x07", "\x00", "\x7f", "\x85", "\x9b", "\u202e", "\u200b", "\u2028"],
        *["\ufeff", "\n", "\r", "\t", "\x1b[31m", "\x1b]0;title\x07"],
    ]
)
FILLER = st.lists(
    st.one_of(
        st.text(
            alphabet=st.characters(
                blacklist_categories=("Cs",), blacklist_characters=SEP, max_codepoint=0x2FFF
            ),
            max_size=12,
        ),
        st.text(alphabet="%&#;\\+u0123456789abcdefABCDEF", max_size=6),
        NASTY,
    ),
    max_size=8,
).map("".join)
# What separates an echoed value from the text around it in real messages. Secrets are
# found even glued to the text around them ("").
DELIM = st.sampled_from([" ", "=", ": ", ",", "(", ")", "'"])
GLUED = st.sampled_from(["", " ", "=", "'"])
SECRET = st.text(
    alphabet=st.characters(
        blacklist_categories=("Cs", "Cc", "Cf", "Zs", "Zl", "Zp"), blacklist_characters=SEP
    ),
    min_size=4,
    max_size=24,
)
# DeviceSecrets and AccessKey secrets as they really are, spaces and punctuation added.
PLAIN_SECRET = st.text(
    alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_@.:+/= %",
    min_size=4,
    max_size=32,
).filter(lambda s: s.strip() == s and "  " not in s)
ENCODING = st.sampled_from(sorted(ENCODINGS))


@st.composite
def messages(draw: st.DrawFn, secret: str, delim: st.SearchStrategy[str] = DELIM) -> str:
    parts = [draw(FILLER)]
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        encoded = ENCODINGS[draw(ENCODING)](secret)
        parts += [draw(delim), encoded, draw(delim), draw(FILLER)]
    return "".join(parts)


# --- properties -------------------------------------------------------------------------


@settings(max_examples=400, deadline=None)
@given(data=st.data(), secret=st.one_of(PLAIN_SECRET, SECRET))
@example(data=None, secret="TopSecret123")  # type: ignore[arg-type]
def test_no_form_of_a_secret_survives_a_message(data: Any, secret: str) -> None:
    if data is None:  # the explicit example: every encoding in one message
        message = " ".join(f"{n}={e(secret)}" for n, e in ENCODINGS.items())
    else:
        message = data.draw(messages(secret, GLUED))
    out = scrub_message(message, redact=["other-value"], secrets=[secret])
    _assert_clean(out, secret)
    assert len(out) <= 300 + len(REDACTED)


@settings(max_examples=300, deadline=None)
@given(data=st.data(), secret=PLAIN_SECRET)
def test_a_non_secret_value_is_scrubbed_the_same_way(data: Any, secret: str) -> None:
    message = data.draw(messages(secret))
    _assert_clean(scrub_message(message, redact=[secret]), secret)


@settings(max_examples=300, deadline=None)
@given(text=st.text(max_size=400), extra=st.lists(NASTY, max_size=5))
def test_no_control_character_survives(text: str, extra: list[str]) -> None:
    out = scrub_message(text + "".join(extra) + text)
    assert all(unicodedata.category(c) not in ("Cc", "Cf", "Cs") for c in out)
    assert out == out.strip()
    assert "  " not in out
    cleaned = clean_text(text)
    assert all(unicodedata.category(c) not in ("Cc", "Cf", "Cs") for c in cleaned)
    assert "\n" not in cleaned


@st.composite
def codes(draw: st.DrawFn, secret: str) -> str:
    word = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEF0123456789", min_size=1, max_size=10)
    return draw(
        st.one_of(
            st.just(f"iot.{draw(word)}.{secret}"),
            st.just(f"{draw(word)}{draw(NASTY)}{draw(word)}"),
            st.just(draw(word) + ENCODINGS[draw(ENCODING)](secret)),
            st.text(max_size=100),
            st.just("x" * 81),
        )
    )


@settings(max_examples=400, deadline=None)
@given(data=st.data(), secret=PLAIN_SECRET)
def test_code_and_request_id_pass_only_when_strict_and_secret_free(data: Any, secret: str) -> None:
    code = data.draw(codes(secret))
    rid = data.draw(st.one_of(codes(secret), st.uuids().map(str)))
    for value, check, pattern in (
        (code, safe_code, r"[A-Za-z0-9][A-Za-z0-9._:-]{0,79}"),
        (rid, safe_request_id, r"[A-Za-z0-9-]{1,64}"),
    ):
        out = check(value, [secret])
        if out is None:
            assert value == ""
            continue
        assert out == PLACEHOLDER or (out == value and re.fullmatch(pattern, out))
        _assert_clean(out, secret)


@settings(max_examples=300, deadline=None)
@given(data=st.data(), secret=PLAIN_SECRET, status=st.sampled_from([200, 400, 404, 503]))
def test_a_classified_error_carries_no_secret_and_no_control(
    data: Any, secret: str, status: int
) -> None:
    body = {
        "RequestId": data.draw(st.one_of(codes(secret), st.uuids().map(str))),
        "Code": data.draw(codes(secret)),
        "Message": data.draw(messages(secret)),
        "HostId": "iot.cn-shanghai.aliyuncs.com",
    }
    if status == 200:
        body["Success"] = False
    error = protocol.classify(
        "ImportDevice", status, json.dumps(body).encode(), {}, secrets=[secret]
    )
    assert error is not None
    for text in (str(error), error.code, error.message, error.request_id or ""):
        _assert_clean(text, secret)


# --- examples ---------------------------------------------------------------------------


def test_the_classes_of_the_issue() -> None:
    secret = "Top Secret/4711"
    message = (
        f"bad value {quote(secret)} and {_pct_lower(secret)} and {quote_plus(secret)} "
        f"and {json.dumps(secret)}\x1b[2J\a\u202eevil"
    )
    out = scrub_message(message, secrets=[secret])
    assert out == (f'bad value {REDACTED} and {REDACTED} and {REDACTED} and "{REDACTED}"[2Jevil')
    assert safe_code("iot.device.Bad", [secret]) == "iot.device.Bad"
    assert safe_code("Throttling.User\x1b[31m", []) == PLACEHOLDER
    assert safe_code("iot.Top_Secret_4711", ["Top_Secret_4711"]) == PLACEHOLDER
    assert safe_request_id("E4EA29B0-1DDB-4B5F-9A3C-3B8B3F5F5F5F") is not None
    assert safe_request_id("RID Top", []) == PLACEHOLDER
    assert safe_request_id(None) is None


def test_a_short_secret_leaves_codes_readable() -> None:
    # A one-letter DeviceSecret would otherwise make every Code unreadable.
    assert safe_code("iot.device.AlreadyExistedDeviceName", ["e"]) == (
        "iot.device.AlreadyExistedDeviceName"
    )
    assert REDACTED in scrub_message("e", secrets=["e"])


def test_a_malformed_code_is_classified_by_status() -> None:
    body = json.dumps({"Code": "Throttling.User\u202e", "Message": "m", "RequestId": "R"})
    error = protocol.classify("A", 503, body.encode(), {})
    assert error is not None
    assert error.code == PLACEHOLDER
    assert type(error).__name__ == "TransientApiError"


def test_huge_messages_are_not_shown() -> None:
    out = scrub_message("x" * 20_000)
    assert out.startswith("(a message of 20000 characters")


def test_contains_any_sees_every_encoding() -> None:
    for encode in ENCODINGS.values():
        assert contains_any(f"a {encode('s3cr3t+/= x')} b", ["s3cr3t+/= x"])
    assert not contains_any("nothing here", ["s3cr3t"])


@pytest.mark.parametrize(
    ("parse", "payload", "field"),
    [
        (
            models.parse_apply_status,
            {
                "Data": {
                    "Status": "CHECK_FAILED",
                    "InvalidDetailList": {
                        "InvalidDetailList": [
                            {"DeviceName": "d\x1b[2J-1", "ErrorMsg": "exists\x1b]0;pwn\x07\u202e"}
                        ]
                    },
                }
            },
            lambda r: [r.invalid_details[0].error_message, r.invalid_details[0].device_name],
        ),
        (
            models.parse_product,
            {
                "Data": {
                    "ProductKey": "a1\u200bPK",
                    "ProductName": "Lamp\r\nInjected: yes",
                    "Description": "\x1b[31mred\x1b[0m \u2066text",
                    "CategoryName": "x\x00y",
                }
            },
            lambda r: [r.product_key, r.product_name, r.description, r.category_name],
        ),
    ],
    ids=["invalid-detail", "product"],
)
def test_free_text_of_answers_is_cleaned(
    parse: Callable[[dict[str, Any]], Any], payload: dict[str, Any], field: Callable[[Any], Any]
) -> None:
    for text in field(parse(payload)):
        assert text
        assert all(unicodedata.category(c) not in ("Cc", "Cf") for c in text), text
        assert "\n" not in text


def test_secrets_of_answers_are_kept_byte_for_byte() -> None:
    page = models.parse_device_page(
        {
            "Page": 1,
            "PageSize": 1,
            "Total": 1,
            "ApplyDeviceList": [
                {"DeviceName": "d-1", "DeviceSecret": " odd\tsecret ", "IotId": "i"}
            ],
        }
    )
    assert page.devices[0].device_secret == " odd\tsecret "
