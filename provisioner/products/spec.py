"""CreateProduct's options as a checked value, and a product's fields for people.

Pure code, no I/O. :class:`ProductSpec` refuses, on construction, every value and
combination the reference rules out (seed 003 and seed 001, 4.7.1), with one line per
problem naming the option to fix. It is stricter than the service on purpose: options
the service silently drops for a Basic product (DataFormat, ProtocolType, CategoryKey,
PublishAuto, ValidateType) are refused unless the product uses TSL models
(``iothub_senior``), so that nothing the operator asked for is lost without a word.

Where the reference is unclear or contradicts itself:

* ``--protocol-type`` is for a device that connects through a gateway (NodeType 0, as
  CreateProduct's NodeType text says; QueryProduct's text mentions NodeType 1), and it
  excludes ``--net-type``, which is for devices that connect directly and for gateways;
* ``--net-type LORA`` needs a network access credential (JoinPermissionId) that this
  tool does not set, so it is refused;
* ``--validate-type`` is 1 or 2: 0 (strict) exists only on products made before
  October 2020.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from provisioner import naming
from provisioner.api.records import Product
from provisioner.errors import UsageError

__all__ = [
    "AUTH_TYPES",
    "COMMODITY_CODES",
    "DATA_FORMATS",
    "NET_TYPES",
    "NET_TYPE_NAMES",
    "NODE_TYPES",
    "PROTOCOL_TYPES",
    "VALIDATE_TYPES",
    "ProductSpec",
    "parse_spec",
    "product_document",
    "product_rows",
    "spec_problems",
]

NODE_TYPES = {0: "device", 1: "gateway"}
COMMODITY_CODES = {"iothub": "Basic", "iothub_senior": "TSL models"}
DATA_FORMATS = {0: "custom", 1: "Alink JSON"}
PROTOCOL_TYPES = ("modbus", "opc-ua", "customize", "ble", "zigbee")
NET_TYPES = ("WIFI", "CELLULAR", "ETHERNET", "OTHER")
AUTH_TYPES = ("secret", "id2", "x509")
VALIDATE_TYPES = {1: "weak", 2: "none"}
#: QueryProduct answers NetType as a number; CreateProduct takes the name.
NET_TYPE_NAMES = {3: "WIFI", 4: "LORA", 6: "CELLULAR", 7: "ETHERNET", 8: "OTHER"}

_SENIOR = "iothub_senior"
_NOT_A_NUMBER = -1
_MAX_DESCRIPTION = 100
# ListThingTemplates' category keys are identifiers (Lighting, StreetLight...).
_CATEGORY_KEY_RE = re.compile(r"[A-Za-z0-9_]{1,64}")
_RESOURCE_GROUP_RE = re.compile(r"rg-[A-Za-z0-9]{1,61}")


def _choices(values: Sequence[object]) -> str:
    return ", ".join(str(v) for v in values)


@dataclass(frozen=True, slots=True)
class ProductSpec:
    """CreateProduct's options, checked on construction (:class:`UsageError` if refused).

    ``None`` leaves an option to the service's default: a Basic product (``iothub``),
    AuthType ``secret``, NetType ``WIFI``, PublishAuto true, ValidateType 1.
    """

    name: str
    node_type: int
    data_format: int | None = None
    commodity_code: str | None = None
    description: str | None = None
    protocol_type: str | None = None
    net_type: str | None = None
    auth_type: str | None = None
    category_key: str | None = None
    publish_auto: bool | None = None
    validate_type: int | None = None
    resource_group_id: str | None = None

    def __post_init__(self) -> None:
        problems = spec_problems(self)
        if problems:
            raise UsageError("; ".join(problems))

    @property
    def senior(self) -> bool:
        """Whether the product uses TSL models (``--commodity-code iothub_senior``)."""
        return self.commodity_code == _SENIOR


def _value_problems(spec: ProductSpec) -> list[str]:
    problems: list[str] = []
    name_problem = naming.product_name_problem(spec.name)
    if name_problem is not None:
        problems.append(f"--name: {name_problem}")
    if spec.node_type not in NODE_TYPES:
        problems.append("--node-type must be 0 (device) or 1 (gateway)")
    if spec.commodity_code is not None and spec.commodity_code not in COMMODITY_CODES:
        problems.append("--commodity-code must be iothub (Basic) or iothub_senior (TSL models)")
    if spec.data_format is not None and spec.data_format not in DATA_FORMATS:
        problems.append("--data-format must be 0 (custom) or 1 (Alink JSON)")
    if spec.description is not None and not 1 <= len(spec.description) <= _MAX_DESCRIPTION:
        problems.append(
            f"--description must be 1-{_MAX_DESCRIPTION} characters, got {len(spec.description)}"
        )
    if spec.protocol_type is not None and spec.protocol_type not in PROTOCOL_TYPES:
        problems.append(f"--protocol-type must be one of {_choices(PROTOCOL_TYPES)}")
    if spec.net_type == "LORA":
        problems.append(
            "--net-type LORA needs a LoRaWAN network access credential this tool does not "
            "set; create LoRaWAN products in the IoT Platform console"
        )
    elif spec.net_type is not None and spec.net_type not in NET_TYPES:
        problems.append(f"--net-type must be one of {_choices(NET_TYPES)}")
    if spec.auth_type is not None and spec.auth_type not in AUTH_TYPES:
        problems.append(f"--auth-type must be one of {_choices(AUTH_TYPES)}")
    if spec.category_key is not None and not _CATEGORY_KEY_RE.fullmatch(spec.category_key):
        problems.append(
            "--category-key must be 1-64 letters, digits or _ (a key from ListThingTemplates)"
        )
    if spec.validate_type is not None and spec.validate_type not in VALIDATE_TYPES:
        problems.append(
            "--validate-type must be 1 (weak: identifier and dataType) or 2 (no verification)"
        )
    if spec.resource_group_id is not None and not _RESOURCE_GROUP_RE.fullmatch(
        spec.resource_group_id
    ):
        problems.append("--resource-group-id must look like rg-acfmxazb4ph6aiy")
    return problems


def _combination_problems(spec: ProductSpec) -> list[str]:
    problems: list[str] = []
    if spec.senior and spec.data_format is None:
        problems.append(
            "--commodity-code iothub_senior needs --data-format 1 (Alink JSON) or 0 (custom)"
        )
    tsl_only = [
        option
        for option, value in (
            ("--data-format", spec.data_format),
            ("--protocol-type", spec.protocol_type),
            ("--category-key", spec.category_key),
            ("--publish-auto/--no-publish-auto", spec.publish_auto),
            ("--validate-type", spec.validate_type),
        )
        if value is not None
    ]
    if tsl_only and not spec.senior:
        problems.append(
            f"{', '.join(tsl_only)} only apply to products with TSL models: "
            "add --commodity-code iothub_senior"
        )
    if spec.protocol_type is not None and spec.node_type == 1:
        problems.append(
            "--protocol-type is for devices that connect through a gateway (--node-type 0); "
            "leave it out for a gateway"
        )
    if spec.protocol_type is not None and spec.net_type is not None:
        problems.append(
            "--net-type is for devices that connect directly and gateways, --protocol-type for "
            "devices behind a gateway: give one of them"
        )
    return problems


def spec_problems(spec: ProductSpec) -> list[str]:
    """Every reason to refuse ``spec``, one line each (empty when it is acceptable)."""
    return _value_problems(spec) + _combination_problems(spec)


def _number(text: str | int) -> int:
    """``text`` as an integer; ``-1`` when it is none, which every check then refuses
    with the option's own message (so one run reports every problem)."""
    if isinstance(text, int):
        return text
    stripped = text.strip()
    # isascii: str.isdigit() is true of digits int() refuses, such as superscripts.
    return int(stripped) if stripped.isascii() and stripped.isdigit() else _NOT_A_NUMBER


def _optional_number(text: str | int | None) -> int | None:
    return None if text is None else _number(text)


def _canonical(text: str | None, values: Sequence[str]) -> str | None:
    """``text`` spelled as in ``values`` when it matches one whatever its case."""
    if text is None:
        return None
    stripped = text.strip()
    return next((v for v in values if v.lower() == stripped.lower()), stripped)


def parse_spec(
    *,
    name: str,
    node_type: str | int,
    data_format: str | int | None = None,
    commodity_code: str | None = None,
    description: str | None = None,
    protocol_type: str | None = None,
    net_type: str | None = None,
    auth_type: str | None = None,
    category_key: str | None = None,
    publish_auto: bool | None = None,
    validate_type: str | int | None = None,
    resource_group_id: str | None = None,
) -> ProductSpec:
    """A :class:`ProductSpec` from command-line text: numbers parsed, the case of
    enumerations forgiven (``wifi`` is ``WIFI``). Raises :class:`UsageError`."""
    return ProductSpec(
        name=name,
        node_type=_number(node_type),
        data_format=_optional_number(data_format),
        commodity_code=_canonical(commodity_code, tuple(COMMODITY_CODES)),
        description=description,
        protocol_type=_canonical(protocol_type, PROTOCOL_TYPES),
        net_type=_canonical(net_type, (*NET_TYPES, "LORA")),
        auth_type=_canonical(auth_type, AUTH_TYPES),
        category_key=category_key.strip() if category_key is not None else None,
        publish_auto=publish_auto,
        validate_type=_optional_number(validate_type),
        resource_group_id=resource_group_id.strip() if resource_group_id is not None else None,
    )


def _when(millis: int) -> str:
    return datetime.fromtimestamp(millis / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def product_document(product: Product) -> dict[str, Any]:
    """The product's fields under their API names, for ``--json``; never the secret.

    NetType is given by its CreateProduct name (``WIFI``) rather than QueryProduct's number.
    """
    net_type: str | None = product.net_type
    if net_type is not None and net_type.isascii() and net_type.isdigit():
        net_type = NET_TYPE_NAMES.get(int(net_type), net_type)
    fields: dict[str, Any] = {
        "ProductKey": product.product_key,
        "ProductName": product.product_name,
        "NodeType": product.node_type,
        "AliyunCommodityCode": product.aliyun_commodity_code,
        "DataFormat": product.data_format,
        "AuthType": product.auth_type,
        "NetType": net_type,
        "ProtocolType": product.protocol_type,
        "ValidateType": product.validate_type,
        "CategoryKey": product.category_key,
        "CategoryName": product.category_name,
        "Description": product.description,
        "DeviceCount": product.device_count,
        "ProductStatus": product.product_status,
        "GmtCreate": product.gmt_create,
        "Id2": product.id2,
        "Owner": product.owner,
    }
    return {k: v for k, v in fields.items() if v is not None}


def product_rows(product: Product) -> list[tuple[str, str]]:
    """(field, value) pairs for people: codes explained, the creation time in UTC."""
    meanings: dict[str, dict[Any, str]] = {
        "NodeType": dict(NODE_TYPES),
        "DataFormat": dict(DATA_FORMATS),
        "ValidateType": {0: "strict", **VALIDATE_TYPES},
    }
    rows: list[tuple[str, str]] = []
    for name, value in product_document(product).items():
        if name in meanings and value in meanings[name]:
            text = f"{value} ({meanings[name][value]})"
        elif name == "GmtCreate":
            text = _when(value)
        elif isinstance(value, bool):
            text = "true" if value else "false"
        else:
            # One line per field whatever the description holds.
            text = " ".join(str(value).split()) if name == "Description" else str(value)
        rows.append((name, text))
    return rows
