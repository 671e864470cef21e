"""provisioner.api.signing against the seed's test vector and every captured SDK request."""

from __future__ import annotations

import json
import string
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from provisioner.api import signing

CAPTURES = Path("/work/shared/docs/wire-captures")
CAPTURE_FILES = ["cap_new_default.json", "cap_new_v2.json", "cap_old_default.json"]
SECRET = "testsecret"
UNRESERVED = set(string.ascii_letters + string.digits + "-_.~")


def _captures() -> list[tuple[str, int, dict[str, Any]]]:
    out: list[tuple[str, int, dict[str, Any]]] = []
    for name in CAPTURE_FILES:
        data = json.loads((CAPTURES / name).read_text(encoding="utf-8"))
        out.extend((name, i, cap) for i, cap in enumerate(data["captures"]))
    return out


ALL_CAPTURES = _captures()


def _header(cap: dict[str, Any], name: str) -> str | None:
    return next((v for k, v in cap["headers"].items() if k.lower() == name), None)


def test_seed_vector() -> None:
    params = {
        "AccessKeyId": "testid",
        "Action": "Pub",
        "Format": "XML",
        "MessageContent": "aGVsbG8gd29ybGQ",
        "ProductKey": "12345abcde",
        "Qos": "0",
        "RegionId": "cn-shanghai",
        "SignatureMethod": "HMAC-SHA1",
        "SignatureNonce": "3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf",
        "SignatureVersion": "1.0",
        "Timestamp": "2018-07-31T07:43:57Z",
        "TopicFullName": "/12345abcde/testdevice/user/get",
        "Version": "2018-01-20",
    }
    to_sign = signing.v1_string_to_sign("GET", params)
    assert signing.v1_signature(SECRET, to_sign) == "NUh3otvAoXOZmG/a2gDShh6Ze9w="


def test_capture_files_cover_three_clients() -> None:
    assert len(ALL_CAPTURES) == 24
    assert {name for name, _, _ in ALL_CAPTURES} == set(CAPTURE_FILES)


@pytest.mark.parametrize(
    "cap", [c for _, _, c in ALL_CAPTURES], ids=[f"{n}-{i}" for n, i, _ in ALL_CAPTURES]
)
def test_every_captured_request_verifies(cap: dict[str, Any]) -> None:
    query = dict(parse_qsl(cap["raw_query"], keep_blank_values=True))
    form = dict(parse_qsl(cap["raw_body"], keep_blank_values=True))
    assert form == cap["form"]
    authorization = _header(cap, "authorization")
    if authorization is not None:
        parsed = signing.parse_v3_authorization(authorization)
        assert parsed is not None
        assert parsed.access_key_id == "testid"
        body = cap["raw_body"].encode("utf-8")
        assert _header(cap, "x-acs-content-sha256") == signing.sha256_hex(body)
        canonical = signing.v3_canonical_request(
            cap["method"],
            cap["path"],
            query,
            cap["headers"],
            parsed.signed_headers,
            signing.sha256_hex(body),
        )
        expected = signing.v3_signature(SECRET, signing.v3_string_to_sign(canonical))
        assert parsed.signature == expected
    else:
        signature = query["Signature"]
        to_sign = signing.v1_string_to_sign(cap["method"], {**query, **form})
        assert signing.v1_signature(SECRET, to_sign) == signature


def test_a_changed_parameter_breaks_the_v1_signature() -> None:
    cap = next(c for n, _, c in ALL_CAPTURES if n == "cap_new_v2.json" and c["form"])
    query = dict(parse_qsl(cap["raw_query"]))
    form = dict(cap["form"], **{"DeviceNameList.1.DeviceName": "dev-z"})
    to_sign = signing.v1_string_to_sign("POST", {**query, **form})
    assert signing.v1_signature(SECRET, to_sign) != query["Signature"]


@given(st.text())
def test_percent_encode_round_trips_and_leaves_only_unreserved(value: str) -> None:
    encoded = signing.percent_encode(value)
    assert unquote(encoded, encoding="utf-8", errors="surrogatepass") == value
    # Every escape is %XX with upper-case hex; everything else is unreserved.
    parts = encoded.split("%")
    assert set(parts[0]) <= UNRESERVED
    for part in parts[1:]:
        assert len(part) >= 2
        assert set(part[:2]) <= set("0123456789ABCDEF")
        assert set(part[2:]) <= UNRESERVED


def test_percent_encode_special_cases() -> None:
    assert signing.percent_encode(" ") == "%20"
    assert signing.percent_encode("*") == "%2A"
    assert signing.percent_encode("~") == "~"
    assert signing.percent_encode("/") == "%2F"
    assert signing.percent_encode("名") == "%E5%90%8D"


@given(
    st.dictionaries(
        st.sampled_from(["Host", "X-Acs-Date", "x-acs-action", "Content-Type", "Accept"]),
        st.text(alphabet=string.ascii_letters + " :;/-", max_size=20),
        min_size=1,
    ),
    st.data(),
)
def test_v3_header_names_are_case_insensitive(headers: dict[str, str], data: st.DataObject) -> None:
    flipped = {
        data.draw(st.sampled_from([k.upper(), k.lower(), k.title()])): v for k, v in headers.items()
    }
    signed = list(headers)
    signed_flipped = [h.upper() for h in signed]
    first = signing.v3_canonical_request("POST", "/", {"a": "b"}, headers, signed, "x")
    second = signing.v3_canonical_request("POST", "/", {"a": "b"}, flipped, signed_flipped, "x")
    assert first == second


def test_timestamp_round_trip() -> None:
    moment = signing.parse_timestamp("2026-11-22T10:54:10Z")
    assert signing.format_timestamp(moment) == "2026-11-22T10:54:10Z"
    with pytest.raises(ValueError, match="does not match"):
        signing.parse_timestamp("2026-11-22 10:54:10")
