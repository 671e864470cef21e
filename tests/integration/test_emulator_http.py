"""The emulator over HTTP, in-process (httpx ASGITransport), with a fake clock.

Requests are signed here with :mod:`provisioner.api.signing`, independently of the
project's client, for both the V1 and the V3 scheme.
"""

from __future__ import annotations

import json
import string
import uuid
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
import structlog
from starlette.applications import Starlette

from provisioner.api.signing import (
    format_timestamp,
    sha256_hex,
    v1_signature,
    v1_string_to_sign,
    v3_authorization,
    v3_canonical_request,
    v3_signature,
    v3_string_to_sign,
)
from provisioner.emulator import actions
from provisioner.emulator.app import Emulator, create_app
from provisioner.emulator.config import EmulatorConfig

pytestmark = pytest.mark.anyio

T0 = 1_780_000_000.0
HOST = "iot.test"
SECRET = "testsecret"
CAPTURES = Path("/work/shared/docs/wire-captures")
ALNUM = set(string.ascii_letters + string.digits)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class FakeClock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Env:
    """An app, its fake clock and a client that signs its requests."""

    def __init__(self, app: Starlette, clock: FakeClock, client: httpx.AsyncClient) -> None:
        self.app = app
        self.clock = clock
        self.client = client

    @property
    def emulator(self) -> Emulator:
        emulator: Emulator = self.app.state.emulator
        return emulator

    def timestamp(self, offset: float = 0.0) -> str:
        return format_timestamp(datetime.fromtimestamp(self.clock.now + offset, UTC))

    async def v1(
        self,
        action: str,
        params: Mapping[str, str] | None = None,
        *,
        method: str = "GET",
        form: Mapping[str, str] | None = None,
        fmt: str | None = "JSON",
        key_id: str = "testid",
        secret: str = SECRET,
        nonce: str | None = None,
        timestamp: str | None = None,
        drop: tuple[str, ...] = (),
        form_content_type: bool = True,
        plus_for_space: bool = False,
    ) -> httpx.Response:
        query = {
            "Action": action,
            "Version": "2018-01-20",
            "AccessKeyId": key_id,
            "SignatureMethod": "HMAC-SHA1",
            "SignatureVersion": "1.0",
            "SignatureNonce": nonce or uuid.uuid4().hex,
            "Timestamp": timestamp or self.timestamp(),
            **(params or {}),
        }
        if fmt is not None:
            query["Format"] = fmt
        for name in drop:
            query.pop(name, None)
        signed = {**query, **(form or {})}
        query["Signature"] = v1_signature(secret, v1_string_to_sign(method, signed))
        url = "/?" + encode(query, plus_for_space)
        headers = {}
        body = b""
        if form:
            body = encode(form, plus_for_space).encode()
            if form_content_type:
                headers["content-type"] = "application/x-www-form-urlencoded"
        return await self.client.request(method, url, content=body, headers=headers)

    async def v3(
        self,
        action: str,
        params: Mapping[str, str] | None = None,
        *,
        form: Mapping[str, str] | None = None,
        key_id: str = "testid",
        secret: str = SECRET,
        nonce: str | None = None,
        timestamp: str | None = None,
        tamper_body: bool = False,
    ) -> httpx.Response:
        query = dict(params or {})
        body = encode(form).encode() if form else b""
        headers = {
            "host": HOST,
            "x-acs-action": action,
            "x-acs-version": "2018-01-20",
            "x-acs-date": timestamp or self.timestamp(),
            "x-acs-signature-nonce": nonce or uuid.uuid4().hex,
            "x-acs-content-sha256": sha256_hex(body),
        }
        if form:
            headers["content-type"] = "application/x-www-form-urlencoded"
        canonical = v3_canonical_request("POST", "/", query, headers, headers, sha256_hex(body))
        signature = v3_signature(secret, v3_string_to_sign(canonical))
        headers["authorization"] = v3_authorization(key_id, headers, signature)
        if tamper_body:
            body += b"&x=1"
        url = "/?" + encode(query) if query else "/"
        return await self.client.post(url, content=body, headers=headers)


def encode(params: Mapping[str, str], plus_for_space: bool = False) -> str:
    """A query string; a space is ``%20``, or ``+`` as form encoders write it."""
    text = "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in params.items())
    return text.replace("%20", "+") if plus_for_space else text


def xml_root(content: bytes) -> ET.Element:
    return ET.fromstring(content)  # noqa: S314 (the emulator's own output)


@asynccontextmanager
async def emulator(**settings: Any) -> AsyncIterator[Env]:
    settings.setdefault("check_seconds", 1.0)
    settings.setdefault("create_seconds", 2.0)
    clock = FakeClock()
    app = create_app(EmulatorConfig(**settings), clock=clock)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=f"http://{HOST}") as client:
        yield Env(app, clock, client)


async def new_product(env: Env, name: str = "Prod_1") -> str:
    response = await env.v1("CreateProduct", {"ProductName": name, "NodeType": "0"})
    body = response.json()
    assert body["Success"] is True, body
    product_key: str = body["ProductKey"]
    return product_key


def names_form(names: list[str]) -> dict[str, str]:
    return {f"DeviceNameList.{i}.DeviceName": n for i, n in enumerate(names, 1)}


# --- signatures and the gateway ----------------------------------------------------------


async def test_v1_and_v3_both_authenticate() -> None:
    async with emulator() as env:
        pk = await new_product(env)
        v1 = await env.v1("QueryProduct", {"ProductKey": pk})
        v3 = await env.v3("QueryProduct", {"ProductKey": pk})
        for response in (v1, v3):
            assert response.status_code == 200
            assert response.json()["Data"]["ProductKey"] == pk
            assert response.headers["content-type"].startswith("application/json")


async def test_wrong_secret_v1_shows_the_server_string_to_sign() -> None:
    async with emulator() as env:
        timestamp, nonce = env.timestamp(), "nonce-1"
        response = await env.v1(
            "QueryProduct", {"ProductKey": "a1x"}, secret="wrong", nonce=nonce, timestamp=timestamp
        )
        assert response.status_code == 400
        body = response.json()
        assert body["Code"] == "SignatureDoesNotMatch"
        expected = v1_string_to_sign(
            "GET",
            {
                "Action": "QueryProduct",
                "Version": "2018-01-20",
                "AccessKeyId": "testid",
                "SignatureMethod": "HMAC-SHA1",
                "SignatureVersion": "1.0",
                "SignatureNonce": nonce,
                "Timestamp": timestamp,
                "ProductKey": "a1x",
                "Format": "JSON",
            },
        )
        assert body["Message"] == (
            "Specified signature is not matched with our calculation. server string to sign is:"
            + expected
        )
        assert set(body) == {"RequestId", "HostId", "Code", "Message", "Recommend"}
        assert body["HostId"] == HOST


async def test_v3_wrong_secret_and_tampered_body() -> None:
    async with emulator() as env:
        pk = await new_product(env)
        wrong = await env.v3("QueryProduct", {"ProductKey": pk}, secret="wrong")
        assert wrong.status_code == 400
        assert wrong.json()["Code"] == "SignatureDoesNotMatch"
        assert "server string to sign is:ACS3-HMAC-SHA256\n" in wrong.json()["Message"]
        tampered = await env.v3(
            "BatchCheckDeviceNames",
            {"ProductKey": pk},
            form=names_form(["dev-1"]),
            tamper_body=True,
        )
        assert tampered.json()["Code"] == "SignatureDoesNotMatch"


async def test_nonce_reuse_is_rejected_but_a_bad_signature_does_not_burn_it() -> None:
    async with emulator() as env:
        pk = await new_product(env)
        bad = await env.v1("QueryProduct", {"ProductKey": pk}, nonce="n-1", secret="nope")
        assert bad.json()["Code"] == "SignatureDoesNotMatch"
        first = await env.v1("QueryProduct", {"ProductKey": pk}, nonce="n-1")
        assert first.status_code == 200
        again = await env.v1("QueryProduct", {"ProductKey": pk}, nonce="n-1")
        assert again.status_code == 400
        assert again.json()["Code"] == "SignatureNonceUsed"
        v3_first = await env.v3("QueryProduct", {"ProductKey": pk}, nonce="n-3")
        v3_again = await env.v3("QueryProduct", {"ProductKey": pk}, nonce="n-3")
        assert v3_first.status_code == 200
        assert v3_again.json()["Code"] == "SignatureNonceUsed"


async def test_timestamps_out_of_the_window_expire() -> None:
    async with emulator() as env:
        pk = await new_product(env)
        old = env.timestamp(-901)
        expired = await env.v1("QueryProduct", {"ProductKey": pk}, timestamp=old)
        assert expired.status_code == 400
        assert expired.json()["Code"] == "InvalidTimeStamp.Expired"
        future = await env.v3("QueryProduct", {"ProductKey": pk}, timestamp=env.timestamp(901))
        assert future.json()["Code"] == "InvalidTimeStamp.Expired"
        ok = await env.v1("QueryProduct", {"ProductKey": pk}, timestamp=env.timestamp(-899))
        assert ok.status_code == 200
        garbled = await env.v1("QueryProduct", {"ProductKey": pk}, timestamp="yesterday")
        assert garbled.json()["Code"] == "InvalidTimeStamp.Format"


async def test_unknown_access_key_and_missing_parameters() -> None:
    async with emulator() as env:
        unknown = await env.v1("QueryProduct", {"ProductKey": "a1x"}, key_id="nobody")
        assert unknown.status_code == 404
        assert unknown.json()["Code"] == "InvalidAccessKeyId.NotFound"
        no_nonce = await env.v1("QueryProduct", {"ProductKey": "a1x"}, drop=("SignatureNonce",))
        assert no_nonce.status_code == 400
        assert no_nonce.json()["Code"] == "MissingParameter"
        assert no_nonce.json()["Message"] == "SignatureNonce is mandatory for this action."
        no_key = await env.v1("QueryProduct")
        assert no_key.status_code == 400
        assert no_key.json()["Message"] == "ProductKey is mandatory for this action."
        no_action = await env.client.get("/?Format=JSON")
        assert no_action.json()["Code"] == "MissingParameter"
        unknown_action = await env.v1("Pub", {"ProductKey": "a1x"})
        assert unknown_action.status_code == 400
        assert unknown_action.json()["Code"] == "InvalidAction.NotFound"


async def test_xml_by_default_for_v1_and_on_request() -> None:
    async with emulator() as env:
        pk = await new_product(env)
        response = await env.v1("QueryProduct", {"ProductKey": pk}, fmt=None)
        assert response.headers["content-type"] == "text/xml;charset=utf-8"
        root = xml_root(response.content)
        assert root.tag == "QueryProductResponse"
        assert root.findtext("Success") == "true"
        assert root.findtext("Data/ProductKey") == pk
        lower = await env.v1("QueryProduct", {"ProductKey": pk}, fmt="xml")
        assert xml_root(lower.content).tag == "QueryProductResponse"
        error = await env.v1("QueryProduct", {"ProductKey": pk}, fmt=None, secret="bad")
        root = xml_root(error.content)
        assert error.status_code == 400
        assert root.tag == "Error"
        assert root.findtext("Code") == "SignatureDoesNotMatch"


async def test_get_and_post_form_and_both_space_encodings() -> None:
    async with emulator() as env:
        pk = await new_product(env)
        names = ["dev-1", "dev-2"]
        by_get = await env.v1("BatchCheckDeviceNames", {"ProductKey": pk, **names_form(names)})
        by_post = await env.v1(
            "BatchCheckDeviceNames", {"ProductKey": pk}, method="POST", form=names_form(names)
        )
        bare = await env.v1(
            "BatchCheckDeviceNames",
            {"ProductKey": pk},
            method="POST",
            form=names_form(names),
            form_content_type=False,
        )
        by_v3 = await env.v3("BatchCheckDeviceNames", {"ProductKey": pk}, form=names_form(names))
        ids = [r.json()["Data"]["ApplyId"] for r in (by_get, by_post, bare, by_v3)]
        assert ids == sorted(ids)
        assert len(set(ids)) == 4
        for plus in (False, True):
            created = await env.v1(
                "CreateProduct",
                {"ProductName": f"Spaces_{plus}", "NodeType": "1", "Description": "a b c"},
                plus_for_space=plus,
            )
            assert created.json()["Data"]["Description"] == "a b c"


async def test_legacy_device_name_n_and_list_precedence() -> None:
    async with emulator() as env:
        pk = await new_product(env)
        both = await env.v1(
            "BatchCheckDeviceNames",
            {"ProductKey": pk, "DeviceName.1": "legacy-1", **names_form(["listed-1"])},
        )
        apply_id = str(both.json()["Data"]["ApplyId"])
        env.clock.now += 1
        status = await env.v1(
            "QueryBatchRegisterDeviceStatus", {"ProductKey": pk, "ApplyId": apply_id}
        )
        assert status.json()["Data"]["ValidList"]["Name"] == ["listed-1"]


# --- throttling ---------------------------------------------------------------------------


async def test_throttling_in_a_strict_one_second_window() -> None:
    async with emulator(accounts={"testid": "testsecret", "other": "othersecret"}) as env:
        pk = await new_product(env)
        params = {"ProductKey": pk, "DeviceName.1": "dev-1"}
        for _ in range(5):  # BatchQueryDeviceDetail: 5 QPS
            assert (await env.v1("BatchQueryDeviceDetail", params)).status_code == 200
        throttled = await env.v1("BatchQueryDeviceDetail", params)
        assert throttled.status_code == 400
        assert throttled.json()["Code"] == "Throttling.User"
        assert throttled.json()["Message"] == "Request was denied due to user flow control."
        assert throttled.headers["x-acs-retry-after"] == "1000"
        other = await env.v1("BatchQueryDeviceDetail", params, key_id="other", secret="othersecret")
        assert other.status_code == 200  # the limit is per account
        env.clock.now += 0.4
        still = await env.v1("BatchQueryDeviceDetail", params)
        assert still.json()["Code"] == "Throttling.User"
        assert still.headers["x-acs-retry-after"] == "600"
        env.clock.now += 0.6  # the first five leave the window now
        assert (await env.v1("BatchQueryDeviceDetail", params)).status_code == 200
        throttle = env.emulator.throttle
        assert throttle.max_per_window("testid", "BatchQueryDeviceDetail") == 5
        assert len(throttle.arrivals("testid", "BatchQueryDeviceDetail")) == 6
        assert throttle.throttled[("testid", "BatchQueryDeviceDetail")] == 2


async def test_qps_scale_multiplies_the_limits() -> None:
    async with emulator(qps_scale=0.5) as env:
        pk = await new_product(env)
        params = {"ProductKey": pk, "DeviceName.1": "dev-1"}
        codes = [(await env.v1("BatchQueryDeviceDetail", params)).status_code for _ in range(3)]
        assert codes == [200, 200, 400]


# --- the custom-name flow ----------------------------------------------------------------


async def test_whole_custom_name_flow_and_stable_paging() -> None:
    async with emulator() as env:
        pk = await new_product(env)
        names = [f"dev-{i:03d}" for i in range(120)]
        checked = await env.v3("BatchCheckDeviceNames", {"ProductKey": pk}, form=names_form(names))
        apply_id = str(checked.json()["Data"]["ApplyId"])
        query = {"ProductKey": pk, "ApplyId": apply_id}

        status = await env.v1("QueryBatchRegisterDeviceStatus", query)
        assert status.json()["Data"]["Status"] == "CHECK"
        early = await env.v1("BatchRegisterDeviceWithApplyId", query)
        assert early.json()["Code"] == "iot.device.IncorrentDeviceApplyInfo"
        env.clock.now += 1
        status = await env.v1("QueryBatchRegisterDeviceStatus", query)
        assert status.json()["Data"]["Status"] == "CHECK_SUCCESS"
        assert status.json()["Data"]["ValidList"]["Name"] == names

        started = await env.v1("BatchRegisterDeviceWithApplyId", query)
        assert started.json()["Data"]["ApplyId"] == int(apply_id)
        repeated = await env.v1("BatchRegisterDeviceWithApplyId", query)
        assert repeated.json()["Code"] == "iot.device.CreateDeviceTaskIsRunning"
        env.clock.now += 1.5
        status = await env.v1("QueryBatchRegisterDeviceStatus", query)
        assert status.json()["Data"]["Status"] == "CREATE"
        env.clock.now += 0.5
        status = await env.v1("QueryBatchRegisterDeviceStatus", query)
        assert status.json()["Data"]["Status"] == "CREATE_SUCCESS"

        async def page(n: int, size: int = 50) -> dict[str, Any]:
            params = {"ApplyId": apply_id, "PageSize": str(size), "CurrentPage": str(n)}
            body: dict[str, Any] = (await env.v1("QueryPageByApplyId", params)).json()
            return body

        pages = [await page(n) for n in (1, 2, 3)]
        assert [p["Total"] for p in pages] == [120] * 3
        assert [p["PageCount"] for p in pages] == [3] * 3
        rows = [row for p in pages for row in p["ApplyDeviceList"]["ApplyDeviceInfo"]]
        assert [r["DeviceName"] for r in rows] == names
        assert all(len(r["DeviceSecret"]) == 32 and set(r["DeviceSecret"]) <= ALNUM for r in rows)
        assert len({r["IotId"] for r in rows}) == 120
        again = await page(2)
        assert again["ApplyDeviceList"] == pages[1]["ApplyDeviceList"]
        default = (await env.v1("QueryPageByApplyId", {"ApplyId": apply_id})).json()
        assert default["PageSize"] == 10
        assert len(default["ApplyDeviceList"]["ApplyDeviceInfo"]) == 10
        too_big = await page(1, size=51)
        assert too_big["Success"] is False
        assert too_big["Code"] == "iot.common.InvalidPageParams"
        assert (await page(0))["Code"] == "iot.common.InvalidPageParams"

        detail = await env.v1("QueryDeviceDetail", {"ProductKey": pk, "DeviceName": "dev-007"})
        data = detail.json()["Data"]
        assert data["DeviceSecret"] == rows[7]["DeviceSecret"]
        assert data["Status"] == "UNACTIVE"
        batch = await env.v1(
            "BatchQueryDeviceDetail",
            {"ProductKey": pk, "DeviceName.1": "dev-001", "DeviceName.2": "missing"},
        )
        assert [d["DeviceName"] for d in batch.json()["Data"]["Data"]] == ["dev-001"]


async def test_existing_names_fail_the_check() -> None:
    async with emulator() as env:
        pk = await new_product(env)
        imported = await env.v1(
            "ImportDevice", {"ProductKey": pk, "DeviceName": "dev-2", "DeviceSecret": "s3cr3t"}
        )
        assert imported.json()["Data"]["DeviceSecret"] == "s3cr3t"
        checked = await env.v1(
            "BatchCheckDeviceNames", {"ProductKey": pk, **names_form(["dev-1", "dev-2"])}
        )
        query = {"ProductKey": pk, "ApplyId": str(checked.json()["Data"]["ApplyId"])}
        env.clock.now += 1
        data = (await env.v1("QueryBatchRegisterDeviceStatus", query)).json()["Data"]
        assert data["Status"] == "CHECK_FAILED"
        assert data["InvalidList"]["Name"] == ["dev-2"]
        assert data["ValidList"]["Name"] == []
        refused = await env.v1("BatchRegisterDeviceWithApplyId", query)
        assert refused.json()["Code"] == "iot.device.IncorrentDeviceApplyInfo"


async def test_malformed_names_fail_at_once() -> None:
    async with emulator() as env:
        pk = await new_product(env)
        form = {
            **names_form(["good-1", "b@d!", "x", "good-1"]),
            "DeviceNameList.1.DeviceNickname": "bad nick",
        }
        response = await env.v3("BatchCheckDeviceNames", {"ProductKey": pk}, form=form)
        body = response.json()
        assert response.status_code == 200
        assert body["Success"] is False
        assert body["Code"] == "iot.device.InvalidFormattedDeviceNameInNameList"
        assert body["Data"]["InvalidDeviceNameList"]["InvalidDeviceName"] == ["b@d!", "x"]
        assert body["Data"]["InvalidDeviceNicknameList"]["InvalidDeviceNickname"] == ["bad nick"]
        assert body["Data"]["RepeatedDeviceNameList"]["RepeatedDeviceName"] == ["good-1"]
        assert env.emulator.world.applications == {}


async def test_business_errors_and_random_registration() -> None:
    async with emulator() as env:
        missing = await env.v1(
            "QueryBatchRegisterDeviceStatus", {"ProductKey": "a1none", "ApplyId": "1"}
        )
        assert missing.status_code == 200
        assert missing.json()["Code"] == "iot.prod.NotExistedProduct"
        assert missing.json()["ErrorMessage"]
        pk = await new_product(env)
        null = await env.v1("QueryBatchRegisterDeviceStatus", {"ProductKey": pk})
        assert null.json()["Code"] == "iot.device.NullApplyId"
        unknown = await env.v1("QueryBatchRegisterDeviceStatus", {"ProductKey": pk, "ApplyId": "9"})
        assert unknown.json()["Code"] == "iot.device.DeviceApplyIsNotFound"
        duplicate = await env.v1("CreateProduct", {"ProductName": "Prod_1", "NodeType": "0"})
        assert duplicate.json()["Code"] == "iot.prod.AlreadyExistedProductName"

        too_many = await env.v1("BatchRegisterDevice", {"ProductKey": pk, "Count": "10001"})
        assert too_many.json()["Code"] == "iot.device.DeviceCountExceeded"
        random = await env.v1("BatchRegisterDevice", {"ProductKey": pk, "Count": "12"})
        apply_id = str(random.json()["Data"]["ApplyId"])
        env.clock.now += 2
        status = await env.v1(
            "QueryBatchRegisterDeviceStatus", {"ProductKey": pk, "ApplyId": apply_id}
        )
        assert status.json()["Data"]["Status"] == "CREATE_SUCCESS"
        assert len(status.json()["Data"]["ValidList"]["Name"]) == 12

        registered = await env.v1("RegisterDevice", {"ProductKey": pk, "DeviceName": "reg-1"})
        iot_id = registered.json()["Data"]["IotId"]
        again = await env.v1("RegisterDevice", {"ProductKey": pk, "DeviceName": "reg-1"})
        assert again.json()["Code"] == "iot.device.AlreadyExistedDeviceName"
        deleted = await env.v1("DeleteDevice", {"IotId": iot_id})
        assert deleted.json()["Success"] is True
        gone = await env.v1("QueryDeviceDetail", {"IotId": iot_id})
        assert gone.json()["Code"] == "iot.device.NotExistedDevice"
        product = (await env.v1("QueryProduct", {"ProductKey": pk})).json()["Data"]
        assert product["DeviceCount"] == 12


# --- faults, latency, stats, logs --------------------------------------------------------


async def test_fault_503_only_after_authentication() -> None:
    async with emulator(fault_503=1.0, seed=1) as env:
        unauthenticated = await env.v1("QueryProduct", {"ProductKey": "a1x"}, secret="bad")
        assert unauthenticated.json()["Code"] == "SignatureDoesNotMatch"
        response = await env.v1("QueryProduct", {"ProductKey": "a1x"})
        assert response.status_code == 503
        assert response.json()["Code"] == "ServiceUnavailable"
        assert env.emulator.faults["unavailable"] == 1


async def test_fault_system_error_is_a_business_error() -> None:
    async with emulator(fault_system_error=1.0) as env:
        response = await env.v1("CreateProduct", {"ProductName": "Prod_1", "NodeType": "0"})
        assert response.status_code == 200
        assert response.json()["Success"] is False
        assert response.json()["Code"] == "iot.system.SystemException"
        assert env.emulator.world.products == {}  # the action did not run


async def test_seeded_faults_are_reproducible() -> None:
    async def statuses() -> list[int]:
        async with emulator(fault_503=0.5, seed=42) as env:
            return [
                (await env.v1("QueryProduct", {"ProductKey": "a1x"})).status_code for _ in range(20)
            ]

    first, second = await statuses(), await statuses()
    assert first == second
    assert set(first) == {200, 503}


async def test_latency_is_added() -> None:
    async with emulator(latency_ms=60) as env:
        response = await env.v1("QueryProduct", {"ProductKey": "a1x"})
        assert response.elapsed.total_seconds() >= 0.055


async def test_stats_endpoint_and_state() -> None:
    async with emulator() as env:
        pk = await new_product(env)
        for _ in range(6):
            await env.v1("BatchQueryDeviceDetail", {"ProductKey": pk, "DeviceName.1": "d-1"})
        response = await env.client.get("/_emulator/stats")
        stats = response.json()
        assert stats["requests"]["BatchQueryDeviceDetail"] == 6
        assert stats["requests"]["CreateProduct"] == 1
        assert stats["throttled"] == 1
        assert stats["throttled_by_key"] == {"testid": {"BatchQueryDeviceDetail": 1}}
        assert stats["max_window"]["testid"]["BatchQueryDeviceDetail"] == 5
        assert stats["limits"]["QueryPageByApplyId"] == 50
        assert stats["codes"]["Throttling.User"] == 1
        assert stats["world"]["products"] == 1
        assert set(stats["faults"]) == {"drop", "unavailable", "system_error", "drop_after"}
        assert "testsecret" not in response.text
        assert env.emulator.world.products[pk].product_name == "Prod_1"


async def test_one_log_line_per_request_without_secrets() -> None:
    async with emulator() as env:
        with structlog.testing.capture_logs() as logs:
            await env.v1(
                "ImportDevice",
                {"ProductKey": "a1x", "DeviceName": "dev-1", "DeviceSecret": "topsecret1"},
            )
            await env.v1("QueryProduct", {"ProductKey": "a1x"}, secret="bad")
        assert [e["event"] for e in logs] == ["emulator.request", "emulator.request"]
        assert logs[0]["action"] == "ImportDevice"
        assert logs[0]["code"] == "iot.prod.NotExistedProduct"
        assert logs[0]["status"] == 200
        assert logs[1]["code"] == "SignatureDoesNotMatch"
        assert logs[1]["status"] == 400
        assert all(isinstance(e["latency_ms"], float) for e in logs)
        text = json.dumps(logs)
        assert "topsecret1" not in text
        assert "testsecret" not in text
        assert "dev-1" not in text


# --- the official SDKs' captured requests ------------------------------------------------


def _captures() -> list[tuple[str, dict[str, Any]]]:
    found: list[tuple[str, dict[str, Any]]] = []
    for path in sorted(CAPTURES.glob("*.json")):
        for i, capture in enumerate(json.loads(path.read_text())["captures"]):
            found.append((f"{path.stem}-{i}", capture))
    return found


@pytest.mark.skipif(not CAPTURES.is_dir(), reason="wire captures not available")
async def test_captured_sdk_requests_authenticate() -> None:
    captures = _captures()
    assert len(captures) >= 24
    for name, capture in captures:
        headers = capture["headers"]
        stamp = headers.get("x-acs-date") or capture["query"]["Timestamp"]
        moment = datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()
        async with emulator() as env:
            env.clock.now = moment
            sent = [(k, v) for k, v in headers.items() if k.lower() != "content-length"]
            response = await env.client.request(
                capture["method"],
                capture["raw_path"],
                content=capture["raw_body"].encode(),
                headers=sent,
            )
            assert response.status_code == 200, (name, response.text)
            body = response.json()
            assert body["Success"] is False, name  # a1testPK000 does not exist here
            assert body["Code"].startswith("iot."), (name, body)
            if capture["raw_body"]:
                tampered = capture["raw_body"].replace("x1", "x9").replace("dev-a", "dev-z")
                env.clock.now = moment
                replay = await env.client.request(
                    capture["method"], capture["raw_path"], content=tampered.encode(), headers=sent
                )
                assert replay.json()["Code"] == "SignatureDoesNotMatch", name


async def test_an_emulator_bug_is_a_500_in_the_gateway_format(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(*_: object) -> dict[str, Any]:
        raise RuntimeError("boom")

    monkeypatch.setitem(actions.ACTIONS, "QueryProduct", broken)
    async with emulator() as env:
        response = await env.v1("QueryProduct", {"ProductKey": "a1x"})
        assert response.status_code == 500
        assert response.json()["Code"] == "InternalError"


async def test_state_file_survives_a_restart(tmp_path: Path) -> None:
    state = tmp_path / "emulator.sqlite3"
    async with emulator(state_path=state) as env:
        pk = await new_product(env)
        imported = await env.v1(
            "ImportDevice", {"ProductKey": pk, "DeviceName": "dev-1", "DeviceSecret": "s1"}
        )
        iot_id = imported.json()["Data"]["IotId"]
        env.emulator.close()
    assert state.stat().st_mode & 0o777 == 0o600
    async with emulator(state_path=state) as env:
        product = (await env.v1("QueryProduct", {"ProductKey": pk})).json()
        assert product["Data"]["DeviceCount"] == 1
        detail = (await env.v1("QueryDeviceDetail", {"IotId": iot_id})).json()
        assert detail["Data"]["DeviceSecret"] == "s1"
        env.emulator.close()
