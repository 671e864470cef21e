"""The emulated service's rules and answers for products: CreateProduct and QueryProduct.

The checks follow the reference (seed 001, 4.7.1-4.7.2, and seed 003): a bad value
is a business error (HTTP 200, ``Success: false``) with the documented code where
there is one (``iot.prod.InvalidFormattedProductName``, ``InvalidNodeType``,
``InvalidAliyunCommodityCode``, ``LongProductDesc``), else
``iot.common.InvalidFormattedParameter``. The emulator is deliberately no stricter
than the reference: options it documents as meaningful only for ``iothub_senior``
are accepted for a Basic product and dropped, since the service does not return them.

These rules are the server's and are kept apart from the client's own, stricter
validation (:mod:`provisioner.products`) on purpose: tests compare the two.
"""

from __future__ import annotations

from typing import Any

from provisioner import naming
from provisioner.emulator.model import BusinessError, Product

__all__ = [
    "AUTH_TYPES",
    "NET_TYPES",
    "NET_TYPE_CODES",
    "PROTOCOL_TYPES",
    "VALIDATE_TYPES",
    "check_product_options",
    "created_fields",
    "queried_fields",
]

PROTOCOL_TYPES = ("modbus", "opc-ua", "customize", "ble", "zigbee")
#: LORA is in the API reference (seed 001), not in the CreateProduct page (seed 003).
NET_TYPES = ("WIFI", "CELLULAR", "ETHERNET", "LORA", "OTHER")
AUTH_TYPES = ("secret", "id2", "x509")
#: CreateProduct takes 1 (weak) and 2 (none); 0 (strict) exists only on old products.
VALIDATE_TYPES = (1, 2)
#: QueryProduct answers NetType as a number (3 Wi-Fi, 6 cellular, 7 Ethernet, 8 other).
#: The reference gives no number for LoRaWAN; 4 is the console's.
NET_TYPE_CODES = {"WIFI": 3, "LORA": 4, "CELLULAR": 6, "ETHERNET": 7, "OTHER": 8}

_BAD_PARAMETER = "iot.common.InvalidFormattedParameter"


def check_product_options(
    name: str,
    node_type: int,
    *,
    aliyun_commodity_code: str,
    data_format: int | None,
    description: str | None,
    protocol_type: str | None,
    net_type: str | None,
    auth_type: str,
    validate_type: int | None,
    join_permission_id: str | None,
) -> None:
    """Raise :class:`BusinessError` for the first CreateProduct parameter the service refuses."""
    problem = naming.product_name_problem(name)
    if problem is not None:
        raise BusinessError("iot.prod.InvalidFormattedProductName", problem)
    if node_type not in (0, 1):
        raise BusinessError("iot.prod.InvalidNodeType", "NodeType must be 0 or 1.")
    if aliyun_commodity_code not in ("iothub", "iothub_senior"):
        raise BusinessError(
            "iot.prod.InvalidAliyunCommodityCode",
            "AliyunCommodityCode must be iothub or iothub_senior.",
        )
    if description is not None and len(description) > 100:
        raise BusinessError(
            "iot.prod.LongProductDesc", "The description must be 1 to 100 characters."
        )
    choices: list[tuple[str, object, tuple[object, ...]]] = [
        ("DataFormat", data_format, (0, 1)),
        ("ProtocolType", protocol_type, PROTOCOL_TYPES),
        ("NetType", net_type, NET_TYPES),
        ("AuthType", auth_type, AUTH_TYPES),
        ("ValidateType", validate_type, VALIDATE_TYPES),
    ]
    for parameter, value, allowed in choices:
        if value is not None and value not in allowed:
            shown = ", ".join(str(a) for a in allowed)
            raise BusinessError(_BAD_PARAMETER, f"{parameter} must be one of {shown}.")
    if aliyun_commodity_code == "iothub_senior" and data_format is None:
        # The reference requires DataFormat here but names no code for its absence;
        # this documented one says what is missing.
        raise BusinessError(
            "iot.prod.ProductDataFormatIsNull",
            "DataFormat is required when AliyunCommodityCode is iothub_senior.",
        )
    if net_type == "LORA":
        if not join_permission_id:
            raise BusinessError(
                _BAD_PARAMETER, "JoinPermissionId is required when NetType is LORA."
            )
        if auth_type != "secret":
            raise BusinessError(_BAD_PARAMETER, "A LORA product can only use AuthType secret.")


def _present(fields: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in fields.items() if v is not None}


def _answered(product: Product) -> dict[str, Any]:
    """The fields both CreateProduct and QueryProduct answer, in the order of their samples."""
    return {
        "ProductKey": product.product_key,
        "ProductName": product.product_name,
        "ProductSecret": product.product_secret,
        "NodeType": product.node_type,
        "AliyunCommodityCode": product.aliyun_commodity_code,
        "AuthType": product.auth_type,
        "Id2": product.auth_type == "id2",
        "Description": product.description,
        "DataFormat": product.data_format,
        "ProtocolType": product.protocol_type,
    }


def created_fields(product: Product) -> dict[str, Any]:
    """``Data`` of a CreateProduct answer (the fields of the seed's sample)."""
    return _present({**_answered(product), "ResourceGroupId": product.resource_group_id})


def queried_fields(product: Product) -> dict[str, Any]:
    """``Data`` of a QueryProduct answer."""
    net_type = NET_TYPE_CODES.get(product.net_type) if product.net_type else None
    return _present(
        {
            **_answered(product),
            "NetType": net_type,
            "CategoryKey": product.category_key,
            "ValidateType": product.validate_type,
            "DeviceCount": len(product.devices),
            "GmtCreate": int(product.created_at * 1000),
            "ProductStatus": "DEVELOPMENT_STATUS",
            "Owner": True,
        }
    )
