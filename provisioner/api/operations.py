"""One builder per IoT Platform operation: Python arguments to an :class:`ApiRequest`.

Builders check what is cheap to check and would otherwise cost a round trip or fail a
whole application on the server: counts, ranges, required and mutually exclusive
parameters, repeated names in a batch. The naming rules of the values themselves
(DeviceName characters, nickname length...) are checked at the edge by
:mod:`provisioner.naming` and the input validation, where a bad row is rejected with a
reason instead of failing a call.

Errors are :class:`~provisioner.errors.UsageError` whose messages name parameters and
positions, never values: a value can be a secret (ImportDevice's DeviceSecret).
Parameter names and shapes follow the API reference (seed 001, 4.7-4.8), CreateProduct
(seed 003) and ImportDevice (seed 000).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypedDict, Unpack

from provisioner.api.protocol import ApiRequest
from provisioner.errors import UsageError

__all__ = [
    "MAX_CHECK_NAMES",
    "MAX_DETAIL_NAMES",
    "MAX_PAGE_SIZE",
    "MAX_REGISTER_COUNT",
    "DeviceRef",
    "ProductOptions",
    "batch_check_device_names",
    "batch_query_device_detail",
    "batch_register_device",
    "batch_register_device_with_apply_id",
    "create_product",
    "delete_device",
    "import_device",
    "query_batch_register_device_status",
    "query_device_detail",
    "query_page_by_apply_id",
    "query_product",
    "register_device",
]

MAX_CHECK_NAMES = 10_000
MAX_REGISTER_COUNT = 10_000
MAX_PAGE_SIZE = 50
MAX_DETAIL_NAMES = 100


def _check(condition: bool, message: str) -> None:
    # Messages name parameters and positions, never values: a value can be a secret.
    if not condition:
        raise UsageError(message)


def _text(name: str, value: str | None) -> str:
    _check(isinstance(value, str) and value != "", f"{name} is required")
    return str(value)


def _apply_id(value: int | str) -> str:
    text = str(value).strip()
    _check(text.isdigit() and int(text) > 0, "ApplyId must be a positive integer")
    return str(int(text))


def _flag(value: bool) -> str:
    return "true" if value else "false"


def _present(query: dict[str, str], **optional: str | None) -> dict[str, str]:
    """``query`` with the optional parameters that were given (neither None nor empty)."""
    query.update({name: value for name, value in optional.items() if value})
    return query


class DeviceRef(TypedDict, total=False):
    """One device, named by ``iot_id`` or by ``product_key`` and ``device_name``."""

    product_key: str | None
    device_name: str | None
    iot_id: str | None


def _device_ref(
    *, product_key: str | None = None, device_name: str | None = None, iot_id: str | None = None
) -> dict[str, str]:
    """IotId, or ProductKey + DeviceName: the two ways to name one device."""
    if iot_id:
        _check(
            not product_key and not device_name,
            "give either IotId or ProductKey + DeviceName, not both",
        )
        return {"IotId": iot_id}
    _check(bool(product_key) and bool(device_name), "give ProductKey + DeviceName, or IotId")
    return {"ProductKey": str(product_key), "DeviceName": str(device_name)}


class ProductOptions(TypedDict, total=False):
    """CreateProduct's optional parameters; ``None`` (or leaving one out) sends nothing."""

    data_format: int | None
    description: str | None
    aliyun_commodity_code: str | None
    auth_type: str | None
    protocol_type: str | None
    net_type: str | None
    category_key: str | None
    publish_auto: bool | None
    validate_type: int | None
    resource_group_id: str | None
    id2: bool | None
    join_permission_id: str | None


def create_product(
    product_name: str, node_type: int, **options: Unpack[ProductOptions]
) -> ApiRequest:
    """CreateProduct (seed 003). ``node_type`` 0 is a device, 1 a gateway."""
    query = {"ProductName": _text("ProductName", product_name)}
    _check(node_type in (0, 1), "NodeType must be 0 (device) or 1 (gateway)")
    query["NodeType"] = str(node_type)
    data_format = options.get("data_format")
    if data_format is not None:
        _check(data_format in (0, 1), "DataFormat must be 0 (custom) or 1 (Alink JSON)")
        query["DataFormat"] = str(data_format)
    description = options.get("description")
    if description is not None:
        _check(len(description) <= 100, "Description must be at most 100 characters")
        query["Description"] = description
    validate_type = options.get("validate_type")
    if validate_type is not None:
        # 0 (strict) exists only on products made before October 2020; CreateProduct takes 1, 2.
        _check(validate_type in (1, 2), "ValidateType must be 1 (weak) or 2 (none)")
        query["ValidateType"] = str(validate_type)
    for name, flag in (("PublishAuto", options.get("publish_auto")), ("Id2", options.get("id2"))):
        if flag is not None:
            query[name] = _flag(flag)
    optional = {
        "AliyunCommodityCode": options.get("aliyun_commodity_code"),
        "AuthType": options.get("auth_type"),
        "ProtocolType": options.get("protocol_type"),
        "NetType": options.get("net_type"),
        "CategoryKey": options.get("category_key"),
        "ResourceGroupId": options.get("resource_group_id"),
        "JoinPermissionId": options.get("join_permission_id"),
    }
    query.update({k: v for k, v in optional.items() if v is not None})
    return ApiRequest("CreateProduct", query)


def query_product(product_key: str) -> ApiRequest:
    return ApiRequest("QueryProduct", {"ProductKey": _text("ProductKey", product_key)})


def batch_check_device_names(
    product_key: str, names: Sequence[tuple[str, str | None] | str]
) -> ApiRequest:
    """BatchCheckDeviceNames with ``DeviceNameList.N.DeviceName`` / ``.DeviceNickname``.

    ``names`` holds ``(DeviceName, nickname or None)`` pairs (a bare name means no
    nickname). The list goes in the form body, as the official SDK sends it: 10,000
    names would not fit in a URL.
    """
    _check(
        1 <= len(names) <= MAX_CHECK_NAMES,
        f"BatchCheckDeviceNames takes 1-{MAX_CHECK_NAMES} names, got {len(names)}",
    )
    form: dict[str, str] = {}
    seen: dict[str, int] = {}
    for n, entry in enumerate(names, start=1):
        name, nickname = (entry, None) if isinstance(entry, str) else entry
        _check(bool(name), f"DeviceNameList.{n}.DeviceName is empty")
        if name in seen:
            # The server fails the whole application on a repeated name.
            raise UsageError(f"DeviceNameList.{n} repeats the DeviceName of entry {seen[name]}")
        seen[name] = n
        form[f"DeviceNameList.{n}.DeviceName"] = name
        if nickname:
            form[f"DeviceNameList.{n}.DeviceNickname"] = nickname
    return ApiRequest(
        "BatchCheckDeviceNames", {"ProductKey": _text("ProductKey", product_key)}, form
    )


def query_batch_register_device_status(product_key: str, apply_id: int | str) -> ApiRequest:
    return ApiRequest(
        "QueryBatchRegisterDeviceStatus",
        {"ProductKey": _text("ProductKey", product_key), "ApplyId": _apply_id(apply_id)},
    )


def batch_register_device_with_apply_id(product_key: str, apply_id: int | str) -> ApiRequest:
    return ApiRequest(
        "BatchRegisterDeviceWithApplyId",
        {"ProductKey": _text("ProductKey", product_key), "ApplyId": _apply_id(apply_id)},
    )


def batch_register_device(product_key: str, count: int) -> ApiRequest:
    """BatchRegisterDevice: ``count`` devices with names chosen by the server."""
    _check(
        1 <= count <= MAX_REGISTER_COUNT,
        f"Count must be 1-{MAX_REGISTER_COUNT}, got {count}",
    )
    return ApiRequest(
        "BatchRegisterDevice",
        {"ProductKey": _text("ProductKey", product_key), "Count": str(count)},
    )


def query_page_by_apply_id(
    apply_id: int | str, page: int, page_size: int = MAX_PAGE_SIZE
) -> ApiRequest:
    """QueryPageByApplyId: page ``page`` (from 1) of ``page_size`` (1-50) devices."""
    _check(page >= 1, f"CurrentPage must be at least 1, got {page}")
    _check(
        1 <= page_size <= MAX_PAGE_SIZE,
        f"PageSize must be 1-{MAX_PAGE_SIZE}, got {page_size}",
    )
    return ApiRequest(
        "QueryPageByApplyId",
        {"ApplyId": _apply_id(apply_id), "CurrentPage": str(page), "PageSize": str(page_size)},
    )


def import_device(
    product_key: str,
    device_name: str,
    device_secret: str,
    nickname: str | None = None,
    sn: str | None = None,
) -> ApiRequest:
    """ImportDevice: one device with a DeviceSecret chosen by the caller (seed 000)."""
    query = {
        "ProductKey": _text("ProductKey", product_key),
        "DeviceName": _text("DeviceName", device_name),
        "DeviceSecret": _text("DeviceSecret", device_secret),
    }
    return ApiRequest("ImportDevice", _present(query, Nickname=nickname, Sn=sn))


def register_device(
    product_key: str, device_name: str | None = None, nickname: str | None = None
) -> ApiRequest:
    """RegisterDevice: one device; the server picks a name when ``device_name`` is None."""
    query = {"ProductKey": _text("ProductKey", product_key)}
    return ApiRequest("RegisterDevice", _present(query, DeviceName=device_name, Nickname=nickname))


def query_device_detail(**device: Unpack[DeviceRef]) -> ApiRequest:
    return ApiRequest("QueryDeviceDetail", _device_ref(**device))


def batch_query_device_detail(product_key: str, device_names: Sequence[str]) -> ApiRequest:
    """BatchQueryDeviceDetail with ``DeviceName.N`` (1-100 names of one product)."""
    _check(
        1 <= len(device_names) <= MAX_DETAIL_NAMES,
        f"BatchQueryDeviceDetail takes 1-{MAX_DETAIL_NAMES} names, got {len(device_names)}",
    )
    query = {"ProductKey": _text("ProductKey", product_key)}
    for n, name in enumerate(device_names, start=1):
        query[f"DeviceName.{n}"] = _text(f"DeviceName.{n}", name)
    return ApiRequest("BatchQueryDeviceDetail", query)


def delete_device(**device: Unpack[DeviceRef]) -> ApiRequest:
    return ApiRequest("DeleteDevice", _device_ref(**device))
