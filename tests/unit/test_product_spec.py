"""CreateProduct's options checked in pure code, and a product's fields shown without its secret."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyrage
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from provisioner import naming
from provisioner.api.records import Product
from provisioner.emulator.model import BusinessError
from provisioner.emulator.products import check_product_options
from provisioner.errors import UsageError
from provisioner.output import Encryption, encrypt_bytes, load_encryption
from provisioner.products import (
    AUTH_TYPES,
    NET_TYPES,
    PROTOCOL_TYPES,
    ProductSpec,
    parse_spec,
    product_document,
    product_rows,
    secret_file_encryption,
    spec_problems,
)

SENIOR: dict[str, Any] = {"commodity_code": "iothub_senior", "data_format": 1}


def test_minimal_and_full_specs_are_accepted() -> None:
    assert spec_problems(ProductSpec("Lamp_01", 0)) == []
    full = ProductSpec(
        "路灯_Lamp",
        0,
        description="Street lamps of plant 3",
        protocol_type="modbus",
        auth_type="x509",
        category_key="Lighting",
        publish_auto=False,
        validate_type=2,
        resource_group_id="rg-acfmxazb4ph6aiy",
        **SENIOR,
    )
    assert full.senior
    gateway = ProductSpec("Gateway_1", 1, net_type="ETHERNET", **SENIOR)
    assert not ProductSpec("Gateway_2", 1, net_type="CELLULAR").senior
    assert gateway.net_type == "ETHERNET"


REFUSED: list[tuple[dict[str, Any], str]] = [
    ({"name": "ab"}, "--name: ProductName must be 4-30"),
    ({"name": "lamp-01"}, "--name: ProductName may hold only"),
    ({"name": "路灯" * 8}, "got 32"),  # 16 Chinese characters count as 32
    ({"node_type": 2}, "--node-type must be 0 (device) or 1 (gateway)"),
    ({"commodity_code": "iothub_pro"}, "--commodity-code must be iothub"),
    ({"commodity_code": "iothub_senior"}, "iothub_senior needs --data-format"),
    ({"data_format": 1}, "--data-format only apply to products with TSL models"),
    ({"data_format": 2, "commodity_code": "iothub_senior"}, "--data-format must be 0"),
    ({"description": "x" * 101}, "--description must be 1-100 characters, got 101"),
    ({"description": ""}, "got 0"),
    ({"protocol_type": "can", **SENIOR}, "--protocol-type must be one of modbus"),
    ({"protocol_type": "modbus"}, "--protocol-type only apply"),
    ({"protocol_type": "ble", "node_type": 1, **SENIOR}, "leave it out for a gateway"),
    ({"protocol_type": "ble", "net_type": "WIFI", **SENIOR}, "give one of them"),
    ({"net_type": "5G"}, "--net-type must be one of WIFI, CELLULAR, ETHERNET, OTHER"),
    ({"net_type": "LORA"}, "create LoRaWAN products in the IoT Platform console"),
    ({"auth_type": "password"}, "--auth-type must be one of secret, id2, x509"),
    ({"category_key": "Street Light", **SENIOR}, "--category-key must be 1-64"),
    ({"category_key": "Lighting"}, "--category-key only apply"),
    ({"publish_auto": True}, "--publish-auto/--no-publish-auto only apply"),
    ({"validate_type": 0, **SENIOR}, "--validate-type must be 1"),
    ({"validate_type": 1}, "--validate-type only apply"),
    ({"resource_group_id": "group-1"}, "--resource-group-id must look like rg-"),
]


@pytest.mark.parametrize(("options", "match"), REFUSED, ids=[m for _, m in REFUSED])
def test_refused_options_name_the_option(options: dict[str, Any], match: str) -> None:
    fields = {"name": "Lamp_01", "node_type": 0, **options}
    with pytest.raises(UsageError) as caught:
        ProductSpec(**fields)
    message = str(caught.value)
    assert match in message
    assert "\n" not in message


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(UsageError) as caught:
        parse_spec(name="a b", node_type="x", data_format="1", net_type="lora", validate_type="0")
    message = str(caught.value)
    for option in ("--name", "--node-type", "--net-type LORA", "--validate-type", "TSL models"):
        assert option in message
    assert message.count(";") >= 4


def test_parse_spec_forgives_case_and_parses_numbers() -> None:
    spec = parse_spec(
        name="Lamp_01",
        node_type=" 0 ",
        commodity_code="IOTHUB_SENIOR",
        data_format="1",
        protocol_type="OPC-UA",
        auth_type="X509",
        validate_type="2",
        category_key=" Lighting ",
        resource_group_id="rg-abc123",
    )
    assert (spec.commodity_code, spec.protocol_type, spec.auth_type) == (
        "iothub_senior",
        "opc-ua",
        "x509",
    )
    assert (spec.node_type, spec.data_format, spec.validate_type) == (0, 1, 2)
    assert spec.category_key == "Lighting"
    assert parse_spec(name="Gw_0001", node_type="1", net_type="cellular").net_type == "CELLULAR"
    for odd in ("-0", "²", "0x1", ""):
        with pytest.raises(UsageError, match="--node-type must be 0"):
            parse_spec(name="Lamp_01", node_type=odd)


@given(st.text(alphabet=st.sampled_from("aZ9_ -路é\n"), max_size=20))
def test_name_rule_is_the_naming_rule(name: str) -> None:
    refused = any(p.startswith("--name") for p in spec_problems_of(name))
    assert refused == (naming.product_name_problem(name) is not None)


def spec_problems_of(name: str) -> list[str]:
    try:
        ProductSpec(name, 0)
    except UsageError as exc:
        return str(exc).split("; ")
    return []


OPTIONAL = st.none()


@settings(max_examples=300, deadline=None)
@given(
    node_type=st.sampled_from([0, 1]),
    commodity_code=st.sampled_from([None, "iothub", "iothub_senior"]),
    data_format=st.sampled_from([None, 0, 1]),
    protocol_type=st.sampled_from([None, *PROTOCOL_TYPES]),
    net_type=st.sampled_from([None, *NET_TYPES]),
    auth_type=st.sampled_from([None, *AUTH_TYPES]),
    validate_type=st.sampled_from([None, 1, 2]),
    description=st.one_of(OPTIONAL, st.text(min_size=1, max_size=100)),
)
def test_what_the_client_accepts_the_emulator_accepts(
    node_type: int,
    commodity_code: str | None,
    data_format: int | None,
    protocol_type: str | None,
    net_type: str | None,
    auth_type: str | None,
    validate_type: int | None,
    description: str | None,
) -> None:
    """The client is at least as strict as the (emulated) service: what it sends passes."""
    try:
        spec = ProductSpec(
            "Lamp_01",
            node_type,
            commodity_code=commodity_code,
            data_format=data_format,
            protocol_type=protocol_type,
            net_type=net_type,
            auth_type=auth_type,
            validate_type=validate_type,
            description=description,
        )
    except UsageError:
        return
    try:
        check_product_options(
            spec.name,
            spec.node_type,
            aliyun_commodity_code=spec.commodity_code or "iothub",
            data_format=spec.data_format,
            description=spec.description,
            protocol_type=spec.protocol_type,
            net_type=spec.net_type,
            auth_type=spec.auth_type or "secret",
            validate_type=spec.validate_type,
            join_permission_id=None,
        )
    except BusinessError as exc:  # pragma: no cover - the failure message is the point
        pytest.fail(f"the client accepted {spec!r} but the emulator refused it: {exc}")


def test_encryption_options_need_out_and_out_needs_encryption(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    recipient = str(pyrage.x25519.Identity.generate().to_public())
    assert secret_file_encryption(None) is None
    with pytest.raises(UsageError, match="add --out FILE"):
        secret_file_encryption(None, [recipient])
    with pytest.raises(UsageError, match="add --out FILE"):
        secret_file_encryption(None, passphrase_env="PP")
    with pytest.raises(UsageError, match="must be encrypted"):
        secret_file_encryption(tmp_path / "s.age")
    assert secret_file_encryption(tmp_path / "s.age", [recipient]) is not None
    monkeypatch.setenv("PP", "a passphrase")
    encryption = secret_file_encryption(tmp_path / "s.age", passphrase_env="PP")
    assert encryption is not None
    assert encryption.kind == "passphrase"


def test_encrypt_bytes_round_trips_for_recipients_and_passphrase() -> None:
    identity = pyrage.x25519.Identity.generate()
    data = b'{"ProductSecret": "abc"}\n'
    sealed = encrypt_bytes(data, load_encryption([str(identity.to_public())]))
    assert data not in sealed
    assert pyrage.decrypt(sealed, [identity]) == data
    by_passphrase = encrypt_bytes(data, Encryption(recipients=(), passphrase="pp"))
    assert pyrage.passphrase.decrypt(by_passphrase, "pp") == data


PRODUCT = Product(
    product_key="a1BwAGV1234",
    product_name="Street_light",
    node_type=1,
    data_format=1,
    auth_type="secret",
    aliyun_commodity_code="iothub_senior",
    description="two\tlines\nhere",
    device_count=3,
    net_type="6",
    product_status="DEVELOPMENT_STATUS",
    gmt_create=1581595942000,
    validate_type=2,
    id2=False,
    owner=True,
    product_secret="U5tW7i44uilcSecret",
)


def test_product_document_and_rows_never_hold_the_secret() -> None:
    document = product_document(PRODUCT)
    assert "ProductSecret" not in document
    assert "U5tW7i44uilcSecret" not in repr(document)
    assert document["NetType"] == "CELLULAR"
    assert document["GmtCreate"] == 1581595942000
    rows = dict(product_rows(PRODUCT))
    assert "U5tW7i44uilcSecret" not in repr(rows)
    assert rows["NodeType"] == "1 (gateway)"
    assert rows["DataFormat"] == "1 (Alink JSON)"
    assert rows["ValidateType"] == "2 (none)"
    assert rows["GmtCreate"] == "2020-02-13T12:12:22Z"
    assert rows["Description"] == "two lines here"
    assert rows["Id2"] == "false"
    assert list(rows)[:2] == ["ProductKey", "ProductName"]
    assert "ProtocolType" not in rows  # absent fields are left out, not shown empty
