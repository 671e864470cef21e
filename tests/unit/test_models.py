"""provisioner.api.models: answers of the captures and the seed, in every shape seen."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from provisioner.api import models
from provisioner.errors import TerminalApiError

CAPTURES = Path("/work/shared/docs/wire-captures")
PK = "a1testPK000"


def _load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((CAPTURES / name).read_text(encoding="utf-8"))
    return data


NEW_V3 = _load("cap_new_default.json")
NEW_V1 = _load("cap_new_v2.json")
OLD_V1 = _load("cap_old_default.json")


@pytest.mark.parametrize("capture", [NEW_V3, NEW_V1, OLD_V1], ids=["new-v3", "new-v1", "old-v1"])
def test_parse_captured_answers(capture: dict[str, Any]) -> None:
    parsed = capture["parsed"]
    check = models.parse_check_result(parsed["BatchCheckDeviceNames"])
    assert check == models.CheckResult(apply_id=1295006)
    assert (
        models.parse_check_result(parsed["BatchCheckDeviceNames(DeviceName.N)"]).apply_id == 1295006
    )
    status = models.parse_apply_status(parsed["QueryBatchRegisterDeviceStatus"])
    assert status == models.ApplyStatus(status="CHECK_SUCCESS", valid_names=["a", "b"])
    assert status.is_final
    assert status.status == models.ApplyState.CHECK_SUCCESS
    for action in ("BatchRegisterDeviceWithApplyId", "BatchRegisterDevice"):
        assert models.parse_apply_accepted(parsed[action], action).apply_id == 1295006
    page = models.parse_device_page(parsed["QueryPageByApplyId"])
    assert (page.page, page.page_size, page.page_count, page.total) == (2, 50, 2, 51)
    assert page.devices == [models.DeviceCredential("n1", "s1", "i1")]
    assert page.is_last
    imported = models.parse_imported_device(parsed["ImportDevice"])
    assert imported == models.ImportedDevice(
        product_key=PK,
        device_name="imp-1",
        device_secret="s3cr3t+/=",
        iot_id="iot1",
        nickname="n 1",
        sn="SN1",
    )
    created = models.parse_product_created(parsed["CreateProduct"])
    assert created.product_key == "a1BwAGV****"
    assert created.product_name == "Prod 1"
    assert created.node_type == 0
    assert created.product_secret is None


def test_parse_seed_samples() -> None:
    product = models.parse_product(
        {
            "Data": {
                "Owner": True,
                "DataFormat": 1,
                "ProductKey": "a1BwAGV****",
                "ProductStatus": "DEVELOPMENT_STATUS",
                "GmtCreate": 1581595942000,
                "ProductSecret": "U5tW7i44uilc****",
                "NodeType": 0,
                "ProductName": "Street light",
                "DeviceCount": 0,
                "NetType": 3,
                "AuthType": "secret",
            },
            "RequestId": "DA5A3C45",
            "Success": True,
        }
    )
    assert product.product_key == "a1BwAGV****"
    assert product.net_type == "3"
    assert product.gmt_create == 1581595942000
    assert "U5tW7i44uilc" not in repr(product)
    detail = models.parse_device_detail(
        {
            "Data": {
                "DeviceName": "Humidity",
                "ProductKey": "a1ttsqu****",
                "DeviceSecret": "sLef",
                "IotId": "dwn",
                "Status": "OFFLINE",
                "NickName": "Temperature",
                "NodeType": 0,
            }
        }
    )
    assert detail.nickname == "Temperature"
    assert detail.status == "OFFLINE"
    assert "sLef" not in repr(detail)
    details = models.parse_device_details(
        {
            "Data": {
                "Data": [
                    {"DeviceName": "Humidity", "DeviceSecret": "a"},
                    {"DeviceName": "TH_sensor"},
                ]
            }
        }
    )
    assert [d.device_name for d in details] == ["Humidity", "TH_sensor"]
    assert models.parse_device_details({"Data": {"Data": []}}) == []
    assert models.parse_device_details({"Data": {}}) == []
    single = models.parse_device_details({"Data": {"Data": {"DeviceName": "only"}}})
    assert [d.device_name for d in single] == ["only"]
    registered = models.parse_registered_device(
        {
            "Data": {
                "DeviceName": "device1",
                "ProductKey": "a1r",
                "DeviceSecret": "tXH",
                "IotId": "CqX",
                "Nickname": "detectors",
            }
        }
    )
    assert registered.nickname == "detectors"
    assert "tXH" not in repr(registered)


@pytest.mark.parametrize(
    ("invalid", "expected"),
    [
        ({}, []),
        ({"Name": []}, []),
        ({"InvalidDeviceName": ["APT$", "aw"]}, ["APT$", "aw"]),
        (["x1"], ["x1"]),
        (None, []),
    ],
)
def test_check_result_list_shapes(invalid: object, expected: list[str]) -> None:
    data: dict[str, object] = {"ApplyId": "1295006"}
    if invalid is not None:
        data["InvalidDeviceNameList"] = invalid
    result = models.parse_check_result({"Data": data})
    assert result.apply_id == 1295006
    assert result.invalid_names == expected


def test_apply_status_shapes() -> None:
    failed = models.parse_apply_status(
        {
            "Data": {
                "Status": "CHECK_FAILED",
                "InvalidList": {"Name": ["bad1", "bad2"]},
                "InvalidDetailList": {
                    "InvalidDetailList": [
                        {"DeviceName": "bad1", "ErrorMsg": "exists"},
                        {"DeviceName": "bad2"},
                    ]
                },
            }
        }
    )
    assert failed.invalid_names == ["bad1", "bad2"]
    assert failed.valid_names == []
    assert failed.invalid_details[0] == models.InvalidDetail("bad1", "exists")
    assert failed.invalid_details[1].error_message == ""
    assert not models.parse_apply_status({"Data": {"Status": "CHECK"}}).is_final
    assert (
        models.parse_apply_status(
            {"Data": {"Status": "CREATE_SUCCESS", "ValidList": "", "InvalidList": {}}}
        ).valid_names
        == []
    )


@pytest.mark.parametrize(
    ("parse", "payload"),
    [
        (models.parse_check_result, {"Data": {}}),
        (models.parse_check_result, {"Data": {"ApplyId": "x"}}),
        (models.parse_apply_status, {"Data": {}}),
        (
            models.parse_device_page,
            {"Page": 1, "Total": 1, "ApplyDeviceList": {"ApplyDeviceInfo": [{"DeviceName": "n"}]}},
        ),
        (models.parse_device_page, {"ApplyDeviceList": {}}),
        (models.parse_imported_device, {"Data": {"DeviceName": "x"}}),
        (models.parse_product_created, {"Data": {}}),
        (models.parse_product, {}),
    ],
)
def test_missing_essentials_are_malformed(
    parse: Callable[[dict[str, Any]], object], payload: dict[str, Any]
) -> None:
    with pytest.raises(TerminalApiError) as info:
        parse(payload)
    assert info.value.code == "MalformedResponse"


def test_page_without_page_count() -> None:
    page = models.parse_device_page(
        {"Page": "1", "PageSize": 50, "Total": 101, "ApplyDeviceList": []}
    )
    assert page.page_count == 3
    assert not page.is_last


def test_credential_repr_hides_secret() -> None:
    cred = models.DeviceCredential("n1", "very-secret", "i1")
    assert "very-secret" not in repr(cred)
    assert "very-secret" not in str(cred)


def test_parse_product_reads_the_later_fields_from_json_and_xml_text() -> None:
    data = {
        "ProductKey": "a1BwAGV****",
        "ProtocolType": "modbus",
        "CategoryName": "Street Lamp",
    }
    from_json = models.parse_product(
        {"Data": {**data, "ValidateType": 2, "Id2": False, "Owner": True}}
    )
    # XML answers carry every value as text.
    from_xml = models.parse_product(
        {"Data": {**data, "ValidateType": "2", "Id2": "false", "Owner": "true"}}
    )
    for product in (from_json, from_xml):
        assert (product.protocol_type, product.category_name) == ("modbus", "Street Lamp")
        assert (product.validate_type, product.id2, product.owner) == (2, False, True)
    assert models.parse_product({"Data": {**data, "Id2": "maybe"}}).id2 is None
