"""The official SDK (``alibabacloud-iot20180120``) drives the emulator over a real socket.

Both of the SDK's signature schemes are used: its default V3 (ACS3-HMAC-SHA256) and
V1 (``signature_algorithm='v2'``, HMAC-SHA1). Nothing in the SDK is patched.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from provisioner.api.signing import format_timestamp, v1_signature, v1_string_to_sign
from provisioner.emulator.app import Emulator, create_app
from provisioner.emulator.config import EmulatorConfig
from provisioner.emulator.serve import running_emulator

models = pytest.importorskip("alibabacloud_iot20180120.models")
sdk_client = pytest.importorskip("alibabacloud_iot20180120.client")
openapi_models = pytest.importorskip("alibabacloud_tea_openapi.models")
openapi_errors = pytest.importorskip("alibabacloud_tea_openapi.exceptions")

SECRET = "testsecret"
# Limits scaled out of the way: these tests poll quickly (throttling has its own test).
FAST = EmulatorConfig(check_seconds=0.05, create_seconds=0.05, seed=5, qps_scale=100)
SCHEMES = [pytest.param(None, id="v3-default"), pytest.param("v2", id="v1-hmac-sha1")]


def make_client(url: str, algorithm: str | None, secret: str = SECRET) -> Any:
    config = openapi_models.Config(
        access_key_id="testid",
        access_key_secret=secret,
        endpoint=url.removeprefix("http://"),
        protocol="http",
        region_id="cn-shanghai",
        read_timeout=5000,
        connect_timeout=2000,
    )
    if algorithm is not None:
        config.signature_algorithm = algorithm
    return sdk_client.Client(config)


@pytest.fixture(scope="module")
def emulator_url() -> Iterator[str]:
    with running_emulator(FAST) as url:
        yield url


def wait_for(query: Callable[[], Any], done: Callable[[Any], bool], attempts: int = 200) -> Any:
    """Poll until ``done``; the bound is on attempts, the pause only spares the CPU."""
    for _ in range(attempts):
        result = query()
        if done(result):
            return result
        time.sleep(0.01)
    raise AssertionError(f"never done: {result!r}")


@pytest.mark.parametrize("algorithm", SCHEMES)
def test_sdk_runs_the_whole_flow(emulator_url: str, algorithm: str | None) -> None:
    client = make_client(emulator_url, algorithm)
    suffix = algorithm or "v3"
    created = client.create_product(
        models.CreateProductRequest(
            product_name=f"Lights_{suffix}",
            node_type=0,
            aliyun_commodity_code="iothub_senior",
            data_format=1,
        )
    ).body
    assert created.success is True
    pk = created.product_key
    assert created.data.product_key == pk
    assert pk.startswith("a1")

    names = [f"lamp-{suffix}-{i:02d}" for i in range(60)]
    entries = [
        models.BatchCheckDeviceNamesRequestDeviceNameList(
            device_name=n, device_nickname=f"Lamp_{i}"
        )
        for i, n in enumerate(names)
    ]
    checked = client.batch_check_device_names(
        models.BatchCheckDeviceNamesRequest(product_key=pk, device_name_list=entries)
    ).body
    assert checked.success is True, checked.to_map()
    apply_id = checked.data.apply_id
    assert isinstance(apply_id, int)

    def status() -> Any:
        request = models.QueryBatchRegisterDeviceStatusRequest(product_key=pk, apply_id=apply_id)
        return client.query_batch_register_device_status(request).body

    body = wait_for(status, lambda b: b.data.status != "CHECK")
    assert body.data.status == "CHECK_SUCCESS"
    assert body.data.valid_list.name == names

    started = client.batch_register_device_with_apply_id(
        models.BatchRegisterDeviceWithApplyIdRequest(product_key=pk, apply_id=apply_id)
    ).body
    assert started.success is True
    assert started.data.apply_id == apply_id
    body = wait_for(status, lambda b: b.data.status != "CREATE")
    assert body.data.status == "CREATE_SUCCESS"

    rows = []
    for page in (1, 2):
        listed = client.query_page_by_apply_id(
            models.QueryPageByApplyIdRequest(apply_id=apply_id, page_size=50, current_page=page)
        ).body
        assert listed.success is True
        assert listed.total == 60
        assert listed.page_count == 2
        assert listed.page == page
        rows.extend(listed.apply_device_list.apply_device_info)
    assert [r.device_name for r in rows] == names
    assert all(len(r.device_secret) == 32 for r in rows)

    random_apply = client.batch_register_device(
        models.BatchRegisterDeviceRequest(product_key=pk, count=5)
    ).body
    assert random_apply.success is True

    def random_status() -> Any:
        request = models.QueryBatchRegisterDeviceStatusRequest(
            product_key=pk, apply_id=random_apply.data.apply_id
        )
        return client.query_batch_register_device_status(request).body

    assert wait_for(random_status, lambda b: b.data.status != "CREATE").data.status == (
        "CREATE_SUCCESS"
    )

    imported = client.import_device(
        models.ImportDeviceRequest(
            product_key=pk, device_name=f"imp-{suffix}", device_secret="s3cr3t", sn="SN1"
        )
    ).body
    assert imported.success is True
    assert imported.data.device_secret == "s3cr3t"
    assert imported.data.sn == "SN1"

    product = client.query_product(models.QueryProductRequest(product_key=pk)).body
    assert product.success is True
    assert product.data.device_count == 66
    assert product.data.product_name == f"Lights_{suffix}"

    detail = client.query_device_detail(
        models.QueryDeviceDetailRequest(product_key=pk, device_name=names[3])
    ).body
    assert detail.data.device_secret == rows[3].device_secret


@pytest.mark.parametrize("algorithm", SCHEMES)
def test_sdk_business_errors_come_back_as_bodies(emulator_url: str, algorithm: str | None) -> None:
    client = make_client(emulator_url, algorithm)
    body = client.query_product(models.QueryProductRequest(product_key="a1doesnotexist")).body
    assert body.success is False
    assert body.code == "iot.prod.NotExistedProduct"
    assert body.error_message


@pytest.mark.parametrize("algorithm", SCHEMES)
def test_sdk_wrong_secret_gets_signature_does_not_match(
    emulator_url: str, algorithm: str | None
) -> None:
    client = make_client(emulator_url, algorithm, secret="not-the-secret")
    with pytest.raises(openapi_errors.ClientException) as caught:
        client.query_product(models.QueryProductRequest(product_key="a1whatever0"))
    error = caught.value
    assert getattr(error, "code", None) == "SignatureDoesNotMatch"
    assert getattr(error, "status_code", None) == 400
    assert "server string to sign is:" in str(error)


def test_sdk_sees_throttling_with_retry_after() -> None:
    config = EmulatorConfig(qps_scale=0.2)  # BatchQueryDeviceDetail: 1 request a second
    with running_emulator(config) as url:
        client = make_client(url, None)
        request = models.BatchQueryDeviceDetailRequest(product_key="a1x", device_name=["d-1"])
        assert client.batch_query_device_detail(request).body.code == "iot.prod.NotExistedProduct"
        with pytest.raises(openapi_errors.ThrottlingException) as caught:
            client.batch_query_device_detail(request)
    error = caught.value
    assert getattr(error, "code", None) == "Throttling.User"
    assert 0 < getattr(error, "retry_after", 0) <= 1000


def test_dropped_connection_is_a_transport_error() -> None:
    app = create_app(EmulatorConfig(fault_drop=1.0))
    emulator: Emulator = app.state.emulator
    with running_emulator(EmulatorConfig(), app=app) as url, httpx.Client(base_url=url) as client:
        signed = _signed_v1_query("QueryProduct", {"ProductKey": "a1x"})
        with pytest.raises(httpx.TransportError):
            client.get("/", params=signed)
        stats = client.get("/_emulator/stats").json()
    assert stats["faults"]["drop"] == 1
    assert emulator.world.products == {}


def test_drop_after_runs_the_action_and_loses_the_response() -> None:
    app = create_app(EmulatorConfig(fault_drop_after=1.0))
    emulator: Emulator = app.state.emulator
    with running_emulator(EmulatorConfig(), app=app) as url, httpx.Client(base_url=url) as client:
        signed = _signed_v1_query("CreateProduct", {"ProductName": "Ghost_1", "NodeType": "0"})
        with pytest.raises(httpx.RemoteProtocolError):
            client.get("/", params=signed)
    assert [p.product_name for p in emulator.world.products.values()] == ["Ghost_1"]
    assert emulator.faults["drop_after"] == 1


def _signed_v1_query(action: str, params: dict[str, str]) -> dict[str, str]:
    query = {
        "Action": action,
        "Version": "2018-01-20",
        "AccessKeyId": "testid",
        "SignatureMethod": "HMAC-SHA1",
        "SignatureVersion": "1.0",
        "SignatureNonce": uuid.uuid4().hex,
        "Timestamp": format_timestamp(datetime.now(UTC)),
        "Format": "JSON",
        **params,
    }
    query["Signature"] = v1_signature("testsecret", v1_string_to_sign("GET", query))
    return query
