"""provisioner.api.protocol, operations and models: requests, signatures, answers.

The captured requests of the official SDKs are rebuilt from our builders with the
captured timestamp, nonce and host, and must come out byte for byte.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import pytest

from provisioner.api import operations, protocol, signing
from provisioner.api.protocol import ApiRequest
from provisioner.errors import (
    ApiError,
    AuthenticationError,
    TerminalApiError,
    ThrottledError,
    TransientApiError,
    UsageError,
)

CAPTURES = Path("/work/shared/docs/wire-captures")
PK = "a1testPK000"
SECRET = "testsecret"


def _load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((CAPTURES / name).read_text(encoding="utf-8"))
    return data


NEW_V3 = _load("cap_new_default.json")
NEW_V1 = _load("cap_new_v2.json")
OLD_V1 = _load("cap_old_default.json")

# The calls the capture script made, in order, as our builders spell them.
BUILT: list[ApiRequest] = [
    operations.batch_check_device_names(PK, [("dev-a", None), ("dev b*~", "Nick 名"), "dev-c"]),
    operations.query_batch_register_device_status(PK, 1295006),
    operations.batch_register_device_with_apply_id(PK, "1295006"),
    operations.query_page_by_apply_id(1295006, 2, 50),
    operations.batch_register_device(PK, 10),
    operations.import_device(PK, "imp-1", "s3cr3t+/=", nickname="n 1", sn="SN1"),
    operations.create_product("Prod 1", 0, data_format=1, aliyun_commodity_code="iothub_senior"),
    # The legacy DeviceName.N form has no builder of ours: the request is spelled out.
    ApiRequest(
        "BatchCheckDeviceNames", {"ProductKey": PK}, {"DeviceName.1": "x1", "DeviceName.2": "x2"}
    ),
]


def _ids(captures: list[dict[str, Any]]) -> list[str]:
    return [f"{i}-{b.action}" for i, b in enumerate(BUILT[: len(captures)])]


# --- V3 (new SDK, default) ------------------------------------------------------------


@pytest.mark.parametrize(
    ("built", "cap"),
    list(zip(BUILT, NEW_V3["captures"], strict=True)),
    ids=_ids(NEW_V3["captures"]),
)
def test_v3_captures_are_rebuilt_exactly(built: ApiRequest, cap: dict[str, Any]) -> None:
    headers = cap["headers"]
    assert built.action == headers["x-acs-action"]
    assert built.query == cap["query"]
    assert built.form == cap["form"]
    prepared = protocol.signed_request(
        built,
        access_key_id="testid",
        access_key_secret=SECRET,
        signature_version="v3",
        host=headers["host"],
        timestamp=signing.parse_timestamp(headers["x-acs-date"]),
        nonce=headers["x-acs-signature-nonce"],
        region="cn-shanghai",
        # The SDK also signs these two; with them our signature must be theirs.
        extra_headers={
            "user-agent": headers["user-agent"],
            "x-acs-credentials-provider": headers["x-acs-credentials-provider"],
        },
    )
    assert prepared.headers["authorization"] == headers["Authorization"]
    assert prepared.body == cap["raw_body"].encode()
    assert prepared.method == cap["method"]
    for name, value in prepared.headers.items():
        if name != "authorization":
            assert headers[name] == value
    # Our query string is RFC 3986 (%20), the SDK's uses '+': same parameters.
    assert dict(parse_qsl(prepared.query)) == cap["query"]


def test_v3_without_extra_headers_signs_what_it_sends() -> None:
    built = operations.import_device(PK, "imp-1", "s3cr3t+/=")
    prepared = protocol.signed_request(
        built,
        access_key_id="testid",
        access_key_secret=SECRET,
        signature_version="v3",
        host="iot.cn-shanghai.aliyuncs.com",
        timestamp=signing.parse_timestamp("2026-11-22T10:54:10Z"),
        nonce="n1",
        region="cn-shanghai",
    )
    auth = signing.parse_v3_authorization(prepared.headers["authorization"])
    assert auth is not None
    assert set(auth.signed_headers) == set(prepared.headers) - {"authorization"}
    assert "content-type" not in prepared.headers  # no body, no content type
    canonical = signing.v3_canonical_request(
        "POST",
        "/",
        dict(parse_qsl(prepared.query)),
        prepared.headers,
        auth.signed_headers,
        signing.sha256_hex(b""),
    )
    assert auth.signature == signing.v3_signature(SECRET, signing.v3_string_to_sign(canonical))
    assert "Action" not in prepared.query  # V3: the query holds API parameters only


# --- V1 (new SDK with v2 signing, and the old SDK) -------------------------------------


@pytest.mark.parametrize(
    ("built", "cap"),
    list(zip(BUILT, NEW_V1["captures"], strict=True)),
    ids=_ids(NEW_V1["captures"]),
)
def test_v1_new_sdk_captures_are_rebuilt_exactly(built: ApiRequest, cap: dict[str, Any]) -> None:
    query = dict(parse_qsl(cap["raw_query"]))
    # The new SDK sends Format=json and no RegionId; with those choices we match it.
    params = protocol.v1_params(
        built,
        access_key_id="testid",
        access_key_secret=SECRET,
        timestamp=signing.parse_timestamp(query["Timestamp"]),
        nonce=query["SignatureNonce"],
        region=None,
        response_format="json",
    )
    assert params == query
    assert built.form == cap["form"]


@pytest.mark.parametrize(
    ("built", "cap"),
    list(zip(BUILT, OLD_V1["captures"], strict=True)),
    ids=_ids(OLD_V1["captures"]),
)
def test_v1_old_sdk_captures_are_rebuilt_exactly(built: ApiRequest, cap: dict[str, Any]) -> None:
    query = dict(parse_qsl(cap["raw_query"], keep_blank_values=True))
    # The old SDK adds an empty SignatureType; everything else is our default set.
    with_type = ApiRequest(built.action, {**built.query, "SignatureType": ""}, built.form)
    params = protocol.v1_params(
        with_type,
        access_key_id="testid",
        access_key_secret=SECRET,
        timestamp=signing.parse_timestamp(query["Timestamp"]),
        nonce=query["SignatureNonce"],
        region="cn-shanghai",
    )
    assert params == query


@pytest.mark.parametrize("built", BUILT, ids=[b.action for b in BUILT])
def test_our_v1_requests_verify(built: ApiRequest) -> None:
    prepared = protocol.signed_request(
        built,
        access_key_id="testid",
        access_key_secret=SECRET,
        signature_version="v1",
        host="127.0.0.1:8080",
        timestamp=signing.parse_timestamp("2026-11-22T10:54:11Z"),
        nonce="abc",
        region="cn-shanghai",
    )
    query = dict(parse_qsl(prepared.query, keep_blank_values=True))
    form = dict(parse_qsl(prepared.body.decode(), keep_blank_values=True))
    assert form == built.form
    assert query["Format"] == "JSON"
    assert query["RegionId"] == "cn-shanghai"
    assert query["Action"] == built.action
    to_sign = signing.v1_string_to_sign("POST", {**query, **form})
    assert signing.v1_signature(SECRET, to_sign) == query["Signature"]
    assert ("content-type" in prepared.headers) == bool(built.form)


def test_unknown_signature_version() -> None:
    with pytest.raises(ValueError, match="signature version"):
        protocol.signed_request(
            BUILT[1],
            access_key_id="a",
            access_key_secret="b",
            signature_version="v2",
            host="h",
            timestamp=signing.parse_timestamp("2026-11-22T10:54:11Z"),
            nonce="n",
            region=None,
        )


def test_reprs_hide_parameter_values() -> None:
    built = operations.import_device(PK, "imp-1", "TopSecretValue")
    assert "TopSecretValue" not in repr(built)
    prepared = protocol.signed_request(
        built,
        access_key_id="testid",
        access_key_secret=SECRET,
        signature_version="v1",
        host="h",
        timestamp=signing.parse_timestamp("2026-11-22T10:54:11Z"),
        nonce="n",
        region="cn-shanghai",
    )
    assert "TopSecretValue" not in repr(prepared)
    assert "Signature" not in repr(prepared)


# --- builders ---------------------------------------------------------------------------


def test_with_instance() -> None:
    request = operations.query_product(PK)
    assert protocol.with_instance(request, None) is request
    added = protocol.with_instance(request, "iot-123")
    assert added.query == {"ProductKey": PK, "IotInstanceId": "iot-123"}
    assert protocol.with_instance(added, "iot-other").query["IotInstanceId"] == "iot-123"
    check = protocol.with_instance(operations.batch_check_device_names(PK, ["abcd"]), "iot-1")
    assert check.query["IotInstanceId"] == "iot-1"
    assert "IotInstanceId" not in check.form


def test_device_refs() -> None:
    assert operations.query_device_detail(iot_id="i1").query == {"IotId": "i1"}
    assert operations.delete_device(product_key=PK, device_name="d1").query == {
        "ProductKey": PK,
        "DeviceName": "d1",
    }
    batch = operations.batch_query_device_detail(PK, ["a1", "a2"])
    assert batch.query == {"ProductKey": PK, "DeviceName.1": "a1", "DeviceName.2": "a2"}
    assert operations.register_device(PK).query == {"ProductKey": PK}
    full = operations.create_product(
        "Prod_2",
        1,
        publish_auto=False,
        id2=True,
        validate_type=2,
        net_type="WIFI",
        description="d",
        auth_type="secret",
        protocol_type="modbus",
        category_key="Lighting",
        resource_group_id="rg-1",
    )
    assert full.query["PublishAuto"] == "false"
    assert full.query["Id2"] == "true"
    assert full.query["NodeType"] == "1"


BAD_BUILDS: list[tuple[str, Callable[[], object]]] = [
    ("1-10000 names", lambda: operations.batch_check_device_names(PK, [])),
    (
        "1-10000 names",
        lambda: operations.batch_check_device_names(PK, [f"n{i:05d}" for i in range(10_001)]),
    ),
    ("repeats", lambda: operations.batch_check_device_names(PK, ["abcd", ("abcd", "x")])),
    (
        "DeviceNameList.2.DeviceName is empty",
        lambda: operations.batch_check_device_names(PK, ["abcd", ""]),
    ),
    ("ProductKey is required", lambda: operations.batch_check_device_names("", ["abcd"])),
    ("ApplyId", lambda: operations.query_batch_register_device_status(PK, "12a")),
    ("ApplyId", lambda: operations.batch_register_device_with_apply_id(PK, 0)),
    ("Count", lambda: operations.batch_register_device(PK, 0)),
    ("Count", lambda: operations.batch_register_device(PK, 10_001)),
    ("PageSize", lambda: operations.query_page_by_apply_id(1, 1, 51)),
    ("CurrentPage", lambda: operations.query_page_by_apply_id(1, 0)),
    ("DeviceSecret is required", lambda: operations.import_device(PK, "abcd", "")),
    ("not both", lambda: operations.query_device_detail(iot_id="i", product_key=PK)),
    ("ProductKey \\+ DeviceName", lambda: operations.delete_device(product_key=PK)),
    ("1-100 names", lambda: operations.batch_query_device_detail(PK, ["a"] * 101)),
    ("NodeType", lambda: operations.create_product("Prod", 2)),
    ("DataFormat", lambda: operations.create_product("Prod", 0, data_format=3)),
    ("Description", lambda: operations.create_product("Prod", 0, description="x" * 101)),
    ("ValidateType must be 1", lambda: operations.create_product("Prod", 0, validate_type=0)),
]


@pytest.mark.parametrize(("match", "build"), BAD_BUILDS)
def test_builders_refuse_bad_arguments(match: str, build: Callable[[], object]) -> None:
    with pytest.raises(UsageError, match=match):
        build()


def test_builder_errors_never_quote_values() -> None:
    with pytest.raises(UsageError) as info:
        operations.batch_check_device_names(PK, ["SecretishName", "SecretishName"])
    assert "SecretishName" not in str(info.value)


def test_api_request_refuses_overlap() -> None:
    with pytest.raises(ValueError, match="both in query and form"):
        ApiRequest("X", {"a": "1"}, {"a": "2"})
    with pytest.raises(ValueError, match="clash"):
        protocol.v1_params(
            ApiRequest("X", {"Action": "Y"}),
            access_key_id="a",
            access_key_secret="b",
            timestamp=signing.parse_timestamp("2026-11-22T10:54:11Z"),
            nonce="n",
            region=None,
        )


# --- classify ---------------------------------------------------------------------------


def _body(code: str | None = None, message: str = "msg", **extra: Any) -> bytes:
    data: dict[str, Any] = {"RequestId": "RID-1", **extra}
    if code is not None:
        data.update({"Code": code, "Message": message})
    return json.dumps(data).encode()


def _biz(code: str, message: str = "msg") -> bytes:
    return json.dumps(
        {"RequestId": "RID-1", "Success": False, "Code": code, "ErrorMessage": message}
    ).encode()


OK = json.dumps({"RequestId": "r", "Success": True, "Data": {}}).encode()

TABLE: list[tuple[str, int, bytes, dict[str, str], type[ApiError] | None]] = [
    ("success", 200, OK, {}, None),
    ("success-no-flag", 200, b'{"RequestId": "r", "Page": 1}', {}, None),
    ("success-string-flag", 200, b'{"Success": "true"}', {}, None),
    ("business-error", 200, _biz("iot.device.AlreadyExistedDeviceName"), {}, TerminalApiError),
    ("apply-failed", 200, _biz("iot.device.ApplyManyDevicesFailed"), {}, TerminalApiError),
    ("create-failed", 200, _biz("iot.device.CreateDeviceFailed"), {}, TerminalApiError),
    ("page-params", 200, _biz("iot.common.InvalidPageParams"), {}, TerminalApiError),
    ("instance", 200, _biz("iot.system.InstanceNotFound"), {}, TerminalApiError),
    ("system-exception", 200, _biz("iot.system.SystemException"), {}, TransientApiError),
    ("throttling", 400, _body("Throttling"), {}, ThrottledError),
    ("throttling-user", 400, _body("Throttling.User"), {}, ThrottledError),
    ("throttling-api", 503, _body("Throttling.Api"), {}, ThrottledError),
    ("retry-after-any-code", 400, _body("Whatever"), {"x-acs-retry-after": "1500"}, ThrottledError),
    ("http-429", 429, _body("TooMany"), {}, ThrottledError),
    ("service-unavailable", 503, _body("ServiceUnavailable"), {}, TransientApiError),
    ("internal-error", 500, _body("InternalError"), {}, TransientApiError),
    ("any-5xx", 502, _body("Odd"), {}, TransientApiError),
    ("signature", 400, _body("SignatureDoesNotMatch"), {}, AuthenticationError),
    ("incomplete", 400, _body("IncompleteSignature"), {}, AuthenticationError),
    ("ak-not-found", 404, _body("InvalidAccessKeyId.NotFound"), {}, AuthenticationError),
    ("ak-inactive", 400, _body("InvalidAccessKeyId.Inactive"), {}, AuthenticationError),
    ("forbidden-ram", 403, _body("Forbidden.RAM"), {}, AuthenticationError),
    ("no-permission", 403, _body("NoPermission"), {}, AuthenticationError),
    ("timestamp", 400, _body("InvalidTimeStamp.Expired"), {}, TransientApiError),
    ("nonce", 400, _body("SignatureNonceUsed"), {}, TransientApiError),
    ("missing-param", 400, _body("MissingProductKey"), {}, TerminalApiError),
    (
        "html-502",
        502,
        b"<html>bad gateway</html>",
        {"content-type": "text/html"},
        TransientApiError,
    ),
    ("html-404", 404, b"<html>nope</html>", {"content-type": "text/html"}, TerminalApiError),
    ("html-200", 200, b"<html>portal</html>", {}, TerminalApiError),
    ("json-list", 200, b"[1, 2]", {}, TerminalApiError),
    ("success-with-error-status", 500, OK, {}, TransientApiError),
]


@pytest.mark.parametrize(
    ("status", "body", "headers", "expected"), [t[1:] for t in TABLE], ids=[t[0] for t in TABLE]
)
def test_classify_table(
    status: int, body: bytes, headers: dict[str, str], expected: type[ApiError] | None
) -> None:
    error = protocol.classify("ImportDevice", status, body, headers)
    if expected is None:
        assert error is None
    else:
        assert type(error) is expected
        assert error.action == "ImportDevice"
        assert error.http_status == status


def test_classify_details() -> None:
    throttled = protocol.classify("A", 400, _body("Throttling.User"), {"X-Acs-Retry-After": "250"})
    assert isinstance(throttled, ThrottledError)
    assert throttled.retry_after == pytest.approx(0.25)
    assert throttled.request_id == "RID-1"
    no_hint = protocol.classify("A", 400, _body("Throttling"), {})
    assert isinstance(no_hint, ThrottledError)
    assert no_hint.retry_after is None
    garbage = protocol.classify("A", 400, _body("Throttling"), {"x-acs-retry-after": "soon"})
    assert isinstance(garbage, ThrottledError)
    assert garbage.retry_after is None
    skew = protocol.classify("A", 400, _body("InvalidTimeStamp.Expired"), {})
    assert skew is not None
    assert "clock" in skew.message
    business = protocol.classify("A", 200, _biz("iot.device.X", "bad thing"), {})
    assert business is not None
    assert business.code == "iot.device.X"
    assert business.message == "bad thing"
    assert "RID-1" in str(business)
    assert str(business).startswith("A failed: iot.device.X: bad thing")


def test_signature_error_message_loses_the_string_to_sign() -> None:
    leaked = (
        "Specified signature is not matched with our calculation. server string to sign is:"
        "POST&%2F&DeviceSecret%3DTopSecret123%26ProductKey%3Da1"
    )
    error = protocol.classify("ImportDevice", 400, _body("SignatureDoesNotMatch", leaked), {})
    assert isinstance(error, AuthenticationError)
    assert "TopSecret123" not in error.message
    assert "TopSecret123" not in str(error)
    assert error.message == "Specified signature is not matched with our calculation."
    incomplete = protocol.classify(
        "ImportDevice",
        400,
        _body("IncompleteSignature", "Nope. Server String To Sign Is:\nX&Y"),
        {},
    )
    assert incomplete is not None
    assert incomplete.message == "Nope."


def test_html_body_is_never_echoed() -> None:
    error = protocol.classify("A", 502, b"<html>DeviceSecret=TopSecret123</html>", {})
    assert error is not None
    assert "TopSecret123" not in str(error)
    assert error.code == "HTTP502"


def test_redact_and_bound_messages() -> None:
    error = protocol.classify(
        "A",
        200,
        _biz("iot.x", "value TopSecret123 refused\n" + "y" * 1000),
        {},
        redact=["TopSecret123"],
    )
    assert error is not None
    assert "TopSecret123" not in error.message
    assert "\n" not in error.message
    assert len(error.message) <= 300


def test_read_response() -> None:
    assert protocol.read_response("A", 200, OK, {})["Success"] is True
    with pytest.raises(TransientApiError):
        protocol.read_response("A", 200, _biz("iot.system.SystemException"), {})
