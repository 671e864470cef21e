"""The emulator's CreateProduct and QueryProduct: every documented option, checks, answers."""

from __future__ import annotations

from pathlib import Path

import pytest

from provisioner.emulator.actions import dispatch
from provisioner.emulator.config import EmulatorConfig
from provisioner.emulator.model import BusinessError
from provisioner.emulator.store import Store
from provisioner.emulator.world import World

T0 = 1_780_000_000.0


def world(**overrides: object) -> World:
    return World(EmulatorConfig(seed=11, **overrides))  # type: ignore[arg-type]


def create(w: World, **params: str) -> dict[str, object]:
    return dispatch(w, "CreateProduct", {"NodeType": "0", **params}, T0)


def query(w: World, pk: str) -> dict[str, object]:
    data = dispatch(w, "QueryProduct", {"ProductKey": pk}, T0 + 1)["Data"]
    assert isinstance(data, dict)
    return data


def test_every_documented_option_is_kept_and_answered() -> None:
    w = world()
    answer = create(
        w,
        ProductName="Lamp_01",
        AliyunCommodityCode="iothub_senior",
        DataFormat="0",
        Description="Street lamps",
        ProtocolType="zigbee",
        AuthType="x509",
        CategoryKey="Lighting",
        PublishAuto="false",
        ValidateType="2",
        ResourceGroupId="rg-acfmxazb4ph6aiy",
        Id2="false",
        IotInstanceId="iot-123",
    )
    data = answer["Data"]
    assert isinstance(data, dict)
    pk = answer["ProductKey"]
    assert data["ProductKey"] == pk
    assert len(data["ProductSecret"]) == 16
    assert data["ResourceGroupId"] == "rg-acfmxazb4ph6aiy"
    assert (data["DataFormat"], data["ProtocolType"], data["AuthType"]) == (0, "zigbee", "x509")
    product = w.products[str(pk)]
    assert product.publish_auto is False
    assert product.product_secret not in repr(product)
    queried = query(w, str(pk))
    assert {k: queried[k] for k in ("CategoryKey", "ValidateType", "DataFormat", "Id2")} == {
        "CategoryKey": "Lighting",
        "ValidateType": 2,
        "DataFormat": 0,
        "Id2": False,
    }
    assert "NetType" not in queried  # a sub-device (ProtocolType) has no network of its own
    assert queried["ProductSecret"] == product.product_secret
    assert queried["Owner"] is True


def test_net_type_is_answered_as_a_number_and_defaults_to_wifi() -> None:
    w = world()
    codes = {}
    for net_type in ("CELLULAR", "ETHERNET", "OTHER", None):
        params = {"NetType": net_type} if net_type else {}
        pk = str(create(w, ProductName=f"Net_{net_type}", **params)["ProductKey"])
        codes[net_type] = query(w, pk)["NetType"]
    assert codes == {"CELLULAR": 6, "ETHERNET": 7, "OTHER": 8, None: 3}
    lora = create(w, ProductName="LoRa_1", NetType="LORA", JoinPermissionId="8abc")
    assert query(w, str(lora["ProductKey"]))["NetType"] == 4


def test_basic_product_drops_what_only_tsl_products_have() -> None:
    w = world()
    pk = str(
        create(
            w, ProductName="Basic_1", DataFormat="1", ProtocolType="modbus", CategoryKey="Lighting"
        )["ProductKey"]
    )
    queried = query(w, pk)
    assert queried["AliyunCommodityCode"] == "iothub"
    for absent in ("DataFormat", "ProtocolType", "CategoryKey"):
        assert absent not in queried


REFUSED = [
    ({"ProductName": "ab"}, "iot.prod.InvalidFormattedProductName"),
    ({"ProductName": "Lamp_01", "NodeType": "2"}, "iot.prod.InvalidNodeType"),
    ({"ProductName": "Lamp_01", "NodeType": "x"}, "iot.prod.InvalidNodeType"),
    ({"ProductName": "Lamp_01", "AliyunCommodityCode": "pro"},
     "iot.prod.InvalidAliyunCommodityCode"),
    ({"ProductName": "Lamp_01", "Description": "d" * 101}, "iot.prod.LongProductDesc"),
    ({"ProductName": "Lamp_01", "AliyunCommodityCode": "iothub_senior"},
     "iot.prod.ProductDataFormatIsNull"),
    ({"ProductName": "Lamp_01", "DataFormat": "2"}, "iot.common.InvalidFormattedParameter"),
    ({"ProductName": "Lamp_01", "DataFormat": "one"}, "iot.common.InvalidFormattedParameter"),
    ({"ProductName": "Lamp_01", "ProtocolType": "can"}, "iot.common.InvalidFormattedParameter"),
    ({"ProductName": "Lamp_01", "NetType": "5G"}, "iot.common.InvalidFormattedParameter"),
    ({"ProductName": "Lamp_01", "NetType": "LORA"}, "iot.common.InvalidFormattedParameter"),
    ({"ProductName": "Lamp_01", "NetType": "LORA", "JoinPermissionId": "8", "AuthType": "id2"},
     "iot.common.InvalidFormattedParameter"),
    ({"ProductName": "Lamp_01", "AuthType": "token"}, "iot.common.InvalidFormattedParameter"),
    ({"ProductName": "Lamp_01", "ValidateType": "0"}, "iot.common.InvalidFormattedParameter"),
    ({"ProductName": "Lamp_01", "PublishAuto": "yes"}, "iot.common.InvalidFormattedParameter"),
    ({"ProductName": "Lamp_01", "Id2": "1"}, "iot.common.InvalidFormattedParameter"),
]  # fmt: skip


@pytest.mark.parametrize(("params", "code"), REFUSED)
def test_refused_options_get_business_errors(params: dict[str, str], code: str) -> None:
    w = world()
    with pytest.raises(BusinessError) as caught:
        create(w, **params)
    assert caught.value.code == code
    assert caught.value.message
    assert w.products == {}


def test_store_keeps_the_new_product_fields(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite3"
    store = Store(path)
    w = World(EmulatorConfig(state_path=path), listener=store)
    pk = w.create_product(
        T0,
        "Kept_1",
        1,
        aliyun_commodity_code="iothub_senior",
        data_format=1,
        category_key="Lighting",
        publish_auto=False,
        validate_type=2,
        resource_group_id="rg-1abc",
        net_type="ETHERNET",
    ).product_key
    store.close()
    store = Store(path)
    again = World(EmulatorConfig(state_path=path), listener=store)
    store.load_into(again)
    kept = again.products[pk]
    assert (kept.category_key, kept.publish_auto, kept.validate_type) == ("Lighting", False, 2)
    assert (kept.resource_group_id, kept.net_type) == ("rg-1abc", "ETHERNET")
    store.close()
