"""IotClient over httpx.MockTransport: a tiny fake server written here checks every
request the way the gateway does (signature, nonce, timestamp) and answers from a
script. The real emulator gets its own integration tests.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, quote

import httpx
import pytest
from structlog.testing import capture_logs

from provisioner.api import models, retry, signing
from provisioner.api.client import IotClient, transport_error
from provisioner.api.protocol import ApiRequest
from provisioner.api.retry import RetryPolicy
from provisioner.config import ApiSettings, Credentials
from provisioner.errors import (
    AuthenticationError,
    CertificateError,
    NoAnswerError,
    TerminalApiError,
    ThrottledError,
    TlsError,
    TransientApiError,
    TransportError,
    UsageError,
)

pytestmark = pytest.mark.anyio

AKID = "testid"
SECRET = "testsecret"
ENDPOINT = "https://iot.cn-shanghai.aliyuncs.com"
PK = "a1testPK000"
DEVICE_SECRET = "TopSecret-4711"

Outcome = tuple[int, dict[str, Any], dict[str, str]] | Exception


@dataclass
class Seen:
    action: str
    params: dict[str, str]
    query: dict[str, str]
    form: dict[str, str]
    nonce: str
    timestamp: str
    signature_ok: bool


def ok(data: Any = None, **top: Any) -> tuple[int, dict[str, Any], dict[str, str]]:
    body: dict[str, Any] = {"RequestId": "RID", "Success": True, **top}
    if data is not None:
        body["Data"] = data
    return 200, body, {}


def err(status: int, code: str, message: str = "m", **headers: str) -> Outcome:
    key = "Message" if status != 200 else "ErrorMessage"
    body: dict[str, Any] = {"RequestId": "RID-ERR", "Code": code, key: message}
    if status == 200:
        body["Success"] = False
    return status, body, headers


CANNED: dict[str, Outcome] = {
    "CreateProduct": ok(
        {"ProductKey": "a1New", "ProductName": "Prod_1", "NodeType": 0, "ProductSecret": "ps"},
        ProductKey="a1New",
    ),
    "QueryProduct": ok({"ProductKey": PK, "ProductName": "Prod_1", "NodeType": 0}),
    "BatchCheckDeviceNames": ok({"ApplyId": 1295006, "InvalidDeviceNameList": {}}),
    "QueryBatchRegisterDeviceStatus": ok(
        {"Status": "CREATE_SUCCESS", "ValidList": {"Name": ["dev-a"]}, "InvalidList": {"Name": []}}
    ),
    "BatchRegisterDeviceWithApplyId": ok({"ApplyId": 1295006}),
    "BatchRegisterDevice": ok({"ApplyId": "1295007"}),
    "QueryPageByApplyId": ok(
        None,
        Page=1,
        PageSize=50,
        PageCount=1,
        Total=1,
        ApplyDeviceList={
            "ApplyDeviceInfo": [{"DeviceName": "dev-a", "DeviceSecret": "s1", "IotId": "i1"}]
        },
    ),
    "ImportDevice": ok(
        {"ProductKey": PK, "DeviceName": "imp-1", "DeviceSecret": DEVICE_SECRET, "IotId": "iot1"}
    ),
    "RegisterDevice": ok(
        {"ProductKey": PK, "DeviceName": "reg-1", "DeviceSecret": "s", "IotId": "iot2"}
    ),
    "QueryDeviceDetail": ok(
        {
            "ProductKey": PK,
            "DeviceName": "dev-a",
            "DeviceSecret": "s1",
            "IotId": "i1",
            "Status": "UNACTIVE",
        }
    ),
    "BatchQueryDeviceDetail": ok({"Data": [{"DeviceName": "dev-a", "DeviceSecret": "s1"}]}),
    "DeleteDevice": ok(),
}


@dataclass
class FakeServer:
    """Verifies like the gateway, then answers scripted outcomes, then canned successes."""

    secret: str = SECRET
    script: list[Outcome] = field(default_factory=list)
    seen: list[Seen] = field(default_factory=list)
    nonces: set[str] = field(default_factory=set)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = request.content
        query = dict(parse_qsl(request.url.query.decode(), keep_blank_values=True))
        form = dict(parse_qsl(body.decode(), keep_blank_values=True))
        if "authorization" in request.headers:
            auth = signing.parse_v3_authorization(request.headers["authorization"])
            assert auth is not None
            canonical = signing.v3_canonical_request(
                request.method,
                request.url.path,
                query,
                dict(request.headers),
                auth.signed_headers,
                signing.sha256_hex(body),
            )
            expected = signing.v3_signature(self.secret, signing.v3_string_to_sign(canonical))
            signature_ok = expected == auth.signature and (
                request.headers["x-acs-content-sha256"] == signing.sha256_hex(body)
            )
            assert {"host", "x-acs-date", "x-acs-signature-nonce"} <= set(auth.signed_headers)
            action = request.headers["x-acs-action"]
            nonce = request.headers["x-acs-signature-nonce"]
            timestamp = request.headers["x-acs-date"]
            params = {**query, **form}
            to_sign = canonical
        else:
            all_params = {**query, **form}
            to_sign = signing.v1_string_to_sign(request.method, all_params)
            signature_ok = signing.v1_signature(self.secret, to_sign) == query.get("Signature")
            action = query["Action"]
            nonce = query["SignatureNonce"]
            timestamp = query["Timestamp"]
            params = {k: v for k, v in all_params.items() if k not in _V1_COMMON}
        assert request.headers["host"] == "iot.cn-shanghai.aliyuncs.com"
        self.seen.append(Seen(action, params, query, form, nonce, timestamp, signature_ok))
        if not signature_ok:
            # The real gateway echoes its string-to-sign: parameter values included.
            return _json(
                400,
                {
                    "RequestId": "R",
                    "Code": "SignatureDoesNotMatch",
                    "Message": f"Specified signature is not matched with our calculation. "
                    f"server string to sign is:{to_sign}",
                },
            )
        if nonce in self.nonces:
            return _json(400, {"RequestId": "R", "Code": "SignatureNonceUsed", "Message": "used"})
        self.nonces.add(nonce)
        outcome = self.script.pop(0) if self.script else CANNED[action]
        if isinstance(outcome, Exception):
            raise outcome
        status, payload, headers = outcome
        return _json(status, payload, headers)


_V1_COMMON = {
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


def _json(
    status: int, payload: dict[str, Any], headers: dict[str, str] | None = None
) -> httpx.Response:
    return httpx.Response(status, json=payload, headers=headers or {})


class Ticker:
    """A clock for signatures that moves one second per call."""

    def __init__(self) -> None:
        self.now = datetime(2026, 11, 22, 10, 54, 10, tzinfo=UTC)

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


class RecordingLimiter:
    def __init__(self) -> None:
        self.acquired: list[str] = []
        self.held: list[tuple[str, float]] = []

    async def acquire(self, operation: str) -> None:
        self.acquired.append(operation)

    def hold(self, operation: str, seconds: float) -> None:
        self.held.append((operation, seconds))


class FakeSleep:
    def __init__(self) -> None:
        self.now = 0.0
        self.waits: list[float] = []

    def clock(self) -> float:
        return self.now

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.now += seconds


@pytest.fixture(autouse=True)
def _real_waits() -> Iterator[None]:
    # Waits go to FakeSleep, so they are recorded rather than removed.
    previous = retry.is_testing()
    retry.set_testing(False)
    yield
    retry.set_testing(previous)


@dataclass
class Rig:
    server: FakeServer
    limiter: RecordingLimiter
    sleep: FakeSleep
    client: IotClient


def _settings(
    version: str = "v1",
    secret: str = SECRET,
    instance: str | None = None,
    deadline: float | None = None,
) -> ApiSettings:
    return ApiSettings(
        Credentials(AKID, secret),
        ENDPOINT,
        iot_instance_id=instance,
        signature_version=version,  # type: ignore[arg-type]
        deadline_seconds=deadline,
    )


def _rig(
    version: str = "v1",
    *,
    secret: str = SECRET,
    instance: str | None = None,
    script: list[Outcome] | None = None,
    max_attempts: int = 5,
    deadline: float | None = None,
) -> Rig:
    server = FakeServer(script=list(script or []))
    limiter = RecordingLimiter()
    sleep = FakeSleep()
    policy = RetryPolicy(
        max_attempts=max_attempts,
        max_total_seconds=60.0,
        jitter=False,
        clock=sleep.clock,
        sleep=sleep,
    )
    client = IotClient(
        _settings(version, secret, instance, deadline),
        transport=httpx.MockTransport(server),
        limiter=limiter,
        retry=policy,
        clock=Ticker(),
    )
    return Rig(server, limiter, sleep, client)


VERSIONS = pytest.mark.parametrize("version", ["v1", "v3"])


@VERSIONS
async def test_every_attempt_is_signed_afresh(version: str) -> None:
    rig = _rig(version, script=[err(503, "ServiceUnavailable"), err(503, "ServiceUnavailable")])
    async with rig.client as client:
        status = await client.query_batch_register_device_status(PK, 1295006)
    assert status.status == models.ApplyState.CREATE_SUCCESS
    seen = rig.server.seen
    assert len(seen) == 3
    assert all(s.signature_ok for s in seen)
    assert len({s.nonce for s in seen}) == 3
    assert len({s.timestamp for s in seen}) == 3
    assert all(s.params == {"ProductKey": PK, "ApplyId": "1295006"} for s in seen)
    assert rig.limiter.acquired == ["QueryBatchRegisterDeviceStatus"] * 3
    assert rig.sleep.waits == pytest.approx([0.2, 0.4])
    assert client.retry_stats.retries == 2
    assert client.retry_stats.by_code == {"ServiceUnavailable": 2}


@VERSIONS
async def test_system_exception_is_retried(version: str) -> None:
    rig = _rig(version, script=[err(200, "iot.system.SystemException")])
    async with rig.client as client:
        check = await client.batch_check_device_names(PK, [("dev-a", "Nick_1"), ("dev-b", None)])
    assert check.apply_id == 1295006
    assert len(rig.server.seen) == 2
    last = rig.server.seen[-1]
    assert last.form == {
        "DeviceNameList.1.DeviceName": "dev-a",
        "DeviceNameList.1.DeviceNickname": "Nick_1",
        "DeviceNameList.2.DeviceName": "dev-b",
    }
    assert last.query.get("ProductKey") == PK


@VERSIONS
async def test_retry_after_header_is_honoured(version: str) -> None:
    rig = _rig(version, script=[err(400, "Throttling.User", **{"x-acs-retry-after": "1500"})])
    async with rig.client as client:
        await client.query_page_by_apply_id(1295006, 1)
    assert rig.sleep.waits == [1.5]
    assert client.retry_stats.throttled == 1


async def test_throttles_are_not_attempts_and_hold_the_operation() -> None:
    # Was: three throttles with max_attempts=3 raised ThrottledError (exit 1 of a run
    # sharing its AccessKey with another). Now the call goes on until the window opens.
    throttled = err(400, "Throttling.User", **{"x-acs-retry-after": "700"})
    rig = _rig(script=[throttled] * 10, max_attempts=3)
    async with rig.client as client:
        page = await client.query_page_by_apply_id(1295006, 1)
    assert page.total == 1
    assert len(rig.server.seen) == 11
    assert client.retry_stats.throttled == 10
    # Every throttled answer held the operation for the whole process.
    assert rig.limiter.held == [("QueryPageByApplyId", 0.7)] * 10


async def test_throttling_that_outlasts_the_deadline_raises_throttled() -> None:
    throttled = err(400, "Throttling.User", **{"x-acs-retry-after": "1000"})
    rig = _rig(script=[throttled] * 100, max_attempts=3, deadline=4.5)
    async with rig.client as client:
        assert client.deadline == pytest.approx(4.5)
        with pytest.raises(ThrottledError) as info:
            await client.query_page_by_apply_id(1295006, 1)
    assert info.value.code == "Throttling.User"
    # Tries at 0, 1, 2, 3 and 4 s; the one at 5 s would start after the deadline.
    assert len(rig.server.seen) == 5
    assert rig.sleep.now == pytest.approx(4.0)


async def test_connect_error_becomes_a_retried_transport_error() -> None:
    rig = _rig(script=[httpx.ConnectError("refused"), httpx.ReadTimeout("slow")])
    async with rig.client as client:
        product = await client.query_product(PK)
    assert product.product_key == PK
    assert client.retry_stats.by_code == {"TransportError": 2}


async def test_transport_error_after_the_last_attempt() -> None:
    rig = _rig(script=[httpx.RemoteProtocolError("reset")] * 5, max_attempts=2)
    async with rig.client as client:
        with pytest.raises(TransportError) as info:
            await client.delete_device(product_key=PK, device_name="dev-a")
    assert isinstance(info.value.__cause__, httpx.RemoteProtocolError)
    assert "DeleteDevice" in str(info.value)


@VERSIONS
async def test_terminal_errors_are_not_retried(version: str) -> None:
    rig = _rig(version, script=[err(200, "iot.device.AlreadyExistedDeviceName", "exists")])
    async with rig.client as client:
        with pytest.raises(TerminalApiError) as info:
            await client.register_device(PK, "dev-a")
    assert info.value.code == "iot.device.AlreadyExistedDeviceName"
    assert info.value.request_id == "RID-ERR"
    assert len(rig.server.seen) == 1
    assert rig.sleep.waits == []


@VERSIONS
async def test_wrong_secret_is_an_authentication_error(version: str) -> None:
    rig = _rig(version, secret="wrong-secret")
    async with rig.client as client:
        with pytest.raises(AuthenticationError) as info:
            await client.import_device(PK, "imp-1", DEVICE_SECRET)
    assert len(rig.server.seen) == 1
    assert DEVICE_SECRET not in str(info.value)
    assert DEVICE_SECRET not in info.value.message
    assert "wrong-secret" not in str(info.value)


@VERSIONS
async def test_iot_instance_id_is_sent_when_configured(version: str) -> None:
    rig = _rig(version, instance="iot-cn-0pp1n8t")
    async with rig.client as client:
        await client.batch_check_device_names(PK, ["dev-a"])
        await client.query_page_by_apply_id(1295006, 1)
    assert [s.params.get("IotInstanceId") for s in rig.server.seen] == ["iot-cn-0pp1n8t"] * 2
    assert all(s.signature_ok for s in rig.server.seen)

    plain = _rig(version)
    async with plain.client as client:
        await client.query_product(PK)
    assert "IotInstanceId" not in plain.server.seen[0].params


@VERSIONS
async def test_no_parameter_value_in_logs_or_errors(version: str) -> None:
    leaky = err(200, "iot.device.Bad", f"DeviceSecret {DEVICE_SECRET} is not allowed for imp-1")
    rig = _rig(version, script=[err(503, "ServiceUnavailable"), leaky])
    with capture_logs() as logs:
        async with rig.client as client:
            with pytest.raises(TerminalApiError) as info:
                await client.import_device(PK, "imp-1", DEVICE_SECRET, nickname="Nick_1")
    assert DEVICE_SECRET not in str(info.value)
    assert "imp-1" not in str(info.value)
    assert logs, "the client logs its calls"
    for entry in logs:
        assert DEVICE_SECRET not in repr(entry)
        assert "Nick_1" not in repr(entry)
    calls = [e for e in logs if e["event"] == "api.call"]
    assert [(e["action"], e["status"], e["attempt"]) for e in calls] == [
        ("ImportDevice", 503, 1),
        ("ImportDevice", 200, 2),
    ]
    assert all(isinstance(e["latency_ms"], float) for e in calls)
    assert [e["event"] for e in logs if e["event"].startswith("api.retry")] == ["api.retry"]


@VERSIONS
async def test_typed_operations(version: str) -> None:
    rig = _rig(version)
    async with rig.client as client:
        created = await client.create_product("Prod_1", 0, data_format=1)
        assert created.product_key == "a1New"
        assert "ps" not in repr(created)
        assert (await client.query_product(PK)).product_name == "Prod_1"
        assert (await client.batch_check_device_names(PK, ["dev-a"])).apply_id == 1295006
        status = await client.query_batch_register_device_status(PK, 1295006)
        assert status.valid_names == ["dev-a"]
        assert (await client.batch_register_device_with_apply_id(PK, 1295006)).apply_id == 1295006
        assert (await client.batch_register_device(PK, 10)).apply_id == 1295007
        page = await client.query_page_by_apply_id(1295006, 1)
        assert page.devices == [models.DeviceCredential("dev-a", "s1", "i1")]
        imported = await client.import_device(PK, "imp-1", DEVICE_SECRET, sn="SN1")
        assert imported.device_secret == DEVICE_SECRET
        assert (await client.register_device(PK)).device_name == "reg-1"
        detail = await client.query_device_detail(iot_id="i1")
        assert detail.status == "UNACTIVE"
        details = await client.batch_query_device_detail(PK, ["dev-a", "dev-b"])
        assert [d.device_name for d in details] == ["dev-a"]
        await client.delete_device(iot_id="i1")
        raw = await client.call(ApiRequest("QueryProduct", {"ProductKey": PK}))
        assert raw["Success"] is True
    actions = [s.action for s in rig.server.seen]
    assert actions[:3] == ["CreateProduct", "QueryProduct", "BatchCheckDeviceNames"]
    assert len(actions) == 13
    assert all(s.signature_ok for s in rig.server.seen)
    assert rig.server.seen[7].params == {
        "ProductKey": PK,
        "DeviceName": "imp-1",
        "DeviceSecret": DEVICE_SECRET,
        "Sn": "SN1",
    }
    assert rig.server.seen[10].params == {
        "ProductKey": PK,
        "DeviceName.1": "dev-a",
        "DeviceName.2": "dev-b",
    }


async def test_transient_error_after_budget_keeps_its_type() -> None:
    rig = _rig(script=[err(200, "iot.system.SystemException")] * 5, max_attempts=2)
    async with rig.client as client:
        with pytest.raises(TransientApiError) as info:
            await client.query_product(PK)
    assert info.value.code == "iot.system.SystemException"


async def test_default_limiter_and_policy_from_settings() -> None:
    server = FakeServer()
    settings = ApiSettings(Credentials(AKID, SECRET), ENDPOINT, max_attempts=3, qps_scale=0.5)
    client = IotClient(settings, transport=httpx.MockTransport(server))
    async with client:
        await client.query_product(PK)
    assert client.retry_stats.calls == 1
    assert server.seen[0].signature_ok
    assert len(server.seen[0].nonce) == 32  # uuid4 hex
    # The default policy comes from the settings.
    assert client.retry_policy.max_attempts == 3


@VERSIONS
async def test_the_access_key_secret_is_scrubbed_in_every_encoding(version: str) -> None:
    # A gateway echoing the request: our AccessKey secret, encoded, in the message and
    # in the Code, and an escape sequence in the RequestId header and body.
    echo = (
        f"signature key {SECRET}& ({quote(SECRET + '&')}) "
        f"{DEVICE_SECRET.lower()} {quote(DEVICE_SECRET).lower()}\x1b]0;owned\x07"
    )
    body: dict[str, Any] = {
        "RequestId": "R\x1b[2J",
        "Code": f"Bad.{SECRET}",
        "Message": echo,
        "Success": False,
    }
    rig = _rig(version, script=[(200, body, {"x-acs-request-id": "X\x1b[31m"})])
    with capture_logs() as logs:
        async with rig.client as client:
            with pytest.raises(TerminalApiError) as info:
                await client.import_device(PK, "imp-1", DEVICE_SECRET)
    text = str(info.value)
    assert SECRET not in text
    assert quote(SECRET) not in text
    assert "\x1b" not in text
    assert "\x07" not in text
    assert info.value.code == "<unreadable>"
    assert info.value.request_id == "<unreadable>"
    for entry in logs:
        assert SECRET not in repr(entry)
        assert "\x1b" not in repr(entry)
        assert "\\x1b" not in repr(entry)


async def test_plain_http_across_the_network_is_refused_without_insecure_http() -> None:
    remote = "http://iot.example.com"
    with pytest.raises(UsageError, match="--insecure-http"):
        IotClient(ApiSettings(Credentials(AKID, SECRET), remote))
    allowed = IotClient(ApiSettings(Credentials(AKID, SECRET), remote, insecure_http=True))
    await allowed.aclose()
    local = IotClient(ApiSettings(Credentials(AKID, SECRET), "http://127.0.0.1:8080"))
    await local.aclose()
    # An injected transport sends nothing over a network: no check.
    injected = IotClient(
        ApiSettings(Credentials(AKID, SECRET), remote), transport=httpx.MockTransport(FakeServer())
    )
    await injected.aclose()


async def test_each_attempt_gets_a_third_of_the_timeout() -> None:
    seen: list[dict[str, Any]] = []

    def slow(request: httpx.Request) -> httpx.Response:
        seen.append(dict(request.extensions["timeout"]))
        raise httpx.ReadTimeout("slow", request=request)

    sleep = FakeSleep()
    policy = RetryPolicy(max_attempts=8, jitter=False, clock=sleep.clock, sleep=sleep)
    settings = ApiSettings(Credentials(AKID, SECRET), ENDPOINT, timeout=9.0)
    async with IotClient(settings, transport=httpx.MockTransport(slow), retry=policy) as client:
        with pytest.raises(NoAnswerError) as info:
            await client.query_product(PK)
    assert seen[0] == {"connect": 3.0, "read": 3.0, "write": 3.0, "pool": 3.0}
    # The fake clock moves only in the waits between attempts, and they count as time
    # without an answer: later attempts get what is left of the 9 s.
    reads = [t["read"] for t in seen]
    assert reads == sorted(reads, reverse=True)
    assert 0 < reads[-1] <= 3.0
    assert str(info.value).startswith(f"no answer from {ENDPOINT} in 9 s (QueryProduct, ")


def _raised_from(cause: BaseException) -> httpx.ConnectError:
    """An httpx error with ``cause`` below it, as httpcore chains them."""
    try:
        try:
            raise cause
        except BaseException as inner:
            raise httpx.ConnectError("boom") from inner
    except httpx.ConnectError as outer:
        return outer


def _ssl(kind: type[ssl.SSLError], reason: str | None, **attrs: str) -> ssl.SSLError:
    error = kind(1, "ssl")
    error.reason = reason  # type: ignore[misc]
    for name, value in attrs.items():
        setattr(error, name, value)
    return error


@pytest.mark.parametrize(
    ("cause", "expected", "transient", "text"),
    [
        (
            _ssl(ssl.SSLCertVerificationError, None, verify_message="certificate has expired"),
            CertificateError,
            False,
            f"the TLS certificate of {ENDPOINT} was not accepted (certificate has expired); "
            "if it is signed by a private CA, set SSL_CERT_FILE=/path/to/ca.pem",
        ),
        (
            _ssl(ssl.SSLError, "WRONG_VERSION_NUMBER"),
            TlsError,
            False,
            f"TLS handshake with {ENDPOINT} failed (wrong version number: is it a plain-HTTP "
            f"server? write {ENDPOINT.replace('https', 'http')})",
        ),
        (
            _ssl(ssl.SSLError, "UNSUPPORTED_PROTOCOL"),
            TlsError,
            False,
            f"TLS handshake with {ENDPOINT} failed (unsupported protocol)",
        ),
        (
            _ssl(ssl.SSLEOFError, "UNEXPECTED_EOF_WHILE_READING"),
            TransportError,
            True,
            f"A: TLS handshake with {ENDPOINT} failed (unexpected eof while reading)",
        ),
        (OSError(111, "refused"), TransportError, True, f"A: no answer from {ENDPOINT} ("),
    ],
    ids=["certificate", "plain-http", "protocol", "eof", "refused"],
)
def test_transport_errors_say_what_failed(
    cause: BaseException, expected: type[TransportError], transient: bool, text: str
) -> None:
    error = transport_error(_raised_from(cause), action="A", endpoint=ENDPOINT)
    assert type(error) is expected
    assert error.transient is transient
    assert str(error).startswith(text)
