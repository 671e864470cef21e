"""Parsers of successful IoT Platform answers into typed records.

The records themselves are in :mod:`provisioner.api.records`. Parsers
take the decoded JSON object of a success (see
:func:`provisioner.api.protocol.read_response`) and are tolerant of the shapes real
clients see for the same field: a list may come as ``[...]``, ``{}``, ``{"Name": [...]}``
or ``{"InvalidDeviceName": [...]}``, or be missing; ApplyId may be a number or a string;
QueryDeviceDetail spells the alias ``Nickname`` or ``NickName``. A field the caller
cannot do without (an ApplyId, a DeviceSecret on an export page) that is missing raises
a :class:`~provisioner.errors.TerminalApiError` with code ``MalformedResponse``.

Secrets (DeviceSecret, ProductSecret) are fields with ``repr=False``: a record can be
logged or shown in a traceback without leaking them.
Every other text field may reach a terminal, a log, the journal or a rejects file, so it
is cleaned here of control and format characters (ESC, BEL, bidi overrides) and put on
one line (:func:`provisioner.api.scrub.clean_text`). Secrets are kept byte for byte: they
go only to the encrypted output, and a changed secret would be a wrong one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypedDict

from provisioner.api import records
from provisioner.api.records import *  # noqa: F403 (the records are this module's too: see __all__)
from provisioner.api.scrub import clean_text
from provisioner.errors import TerminalApiError

__all__ = [
    "parse_apply_accepted",
    "parse_apply_status",
    "parse_check_result",
    "parse_device_detail",
    "parse_device_details",
    "parse_device_page",
    "parse_imported_device",
    "parse_product",
    "parse_product_created",
    "parse_registered_device",
]
# Every record is exported from here as well, under the list its own module keeps.
__all__ += records.__all__


# --- tolerant field access ------------------------------------------------------------


def _malformed(action: str, what: str) -> TerminalApiError:
    return TerminalApiError(action, "MalformedResponse", f"the answer has no usable {what}")


def _obj(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _opt_secret(value: Any) -> str | None:
    """A secret as sent: never shown, so never cleaned."""
    if value is None or isinstance(value, (Mapping, list)):
        return None
    text = str(value)
    return text if text else None


def _opt_str(value: Any) -> str | None:
    """Any other text of the server, without control characters, on one line."""
    text = _opt_secret(value)
    return None if text is None else clean_text(text) or None


def _opt_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    return None


def _opt_bool(value: Any) -> bool | None:
    # XML answers carry booleans as text.
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    return None


def _req_str(data: Mapping[str, Any], key: str, action: str, *, secret: bool = False) -> str:
    value = (_opt_secret if secret else _opt_str)(data.get(key))
    if value is None:
        raise _malformed(action, key)
    return value


def _req_int(data: Mapping[str, Any], key: str, action: str) -> int:
    value = _opt_int(data.get(key))
    if value is None:
        raise _malformed(action, key)
    return value


def _items(value: Any, *keys: str) -> list[Any]:
    """The elements of a list field, whatever wrapper the serializer put around it.

    ``None``/``{}`` -> ``[]``; a list as is; ``{"Name": [...]}`` or another of ``keys``
    unwrapped; a dict holding one list under any other key unwrapped; any other dict
    is a single element (XML-to-JSON turns a one-element list into the element).
    """
    if value is None:
        return []
    if isinstance(value, list):
        return value
    if isinstance(value, Mapping):
        if not value:
            return []
        for key in keys:
            if key in value:
                return _items(value[key])
        lists = [v for v in value.values() if isinstance(v, list)]
        if len(value) == 1 and lists:
            return lists[0]
        return [value]
    return [value]


def _names(value: Any, *keys: str) -> list[str]:
    names: list[str] = []
    for item in _items(value, *keys, "Name"):
        if isinstance(item, Mapping):
            item = item.get("DeviceName") or item.get("Name")
        text = _opt_str(item)
        if text is not None:
            names.append(text)
    return names


def _apply_id(data: Mapping[str, Any], action: str) -> int:
    value = _opt_int(data.get("ApplyId"))
    if value is None or value <= 0:
        raise _malformed(action, "Data.ApplyId")
    return value


def _nickname(data: Mapping[str, Any]) -> str | None:
    # The reference's own sample of QueryDeviceDetail spells it NickName.
    return _opt_str(data.get("Nickname", data.get("NickName")))


# --- parsers --------------------------------------------------------------------------


def parse_check_result(payload: Mapping[str, Any]) -> records.CheckResult:
    action = "BatchCheckDeviceNames"
    data = _obj(payload.get("Data"))
    return records.CheckResult(
        apply_id=_apply_id(data, action),
        invalid_names=_names(data.get("InvalidDeviceNameList"), "InvalidDeviceName"),
        invalid_nicknames=_names(data.get("InvalidDeviceNicknameList"), "InvalidDeviceNickname"),
        repeated_names=_names(data.get("RepeatedDeviceNameList"), "RepeatedDeviceName"),
    )


def parse_apply_accepted(
    payload: Mapping[str, Any], action: str = "BatchRegisterDeviceWithApplyId"
) -> records.ApplyAccepted:
    data = _obj(payload.get("Data"))
    return records.ApplyAccepted(apply_id=_apply_id(data, action))


def _invalid_details(value: Any) -> list[records.InvalidDetail]:
    details: list[records.InvalidDetail] = []
    for item in _items(value, "InvalidDetailList", "InvalidDetail"):
        if not isinstance(item, Mapping):
            continue
        name = _opt_str(item.get("DeviceName"))
        if name is None:
            continue
        details.append(
            records.InvalidDetail(
                device_name=name,
                error_message=_opt_str(item.get("ErrorMsg") or item.get("ErrorMessage")) or "",
                nickname=_nickname(item),
            )
        )
    return details


def parse_apply_status(payload: Mapping[str, Any]) -> records.ApplyStatus:
    action = "QueryBatchRegisterDeviceStatus"
    data = _obj(payload.get("Data"))
    status = _req_str(data, "Status", action).strip().upper()
    return records.ApplyStatus(
        status=status,
        valid_names=_names(data.get("ValidList")),
        invalid_names=_names(data.get("InvalidList")),
        invalid_details=_invalid_details(data.get("InvalidDetailList")),
    )


def parse_device_page(payload: Mapping[str, Any]) -> records.DevicePage:
    """QueryPageByApplyId. Page, PageSize, PageCount and Total are at the top level."""
    action = "QueryPageByApplyId"
    devices: list[records.DeviceCredential] = []
    for item in _items(payload.get("ApplyDeviceList"), "ApplyDeviceInfo"):
        entry = _obj(item)
        devices.append(
            records.DeviceCredential(
                device_name=_req_str(entry, "DeviceName", action),
                device_secret=_req_str(entry, "DeviceSecret", action, secret=True),
                iot_id=_opt_str(entry.get("IotId")) or "",
            )
        )
    page = _opt_int(payload.get("Page"))
    page_size = _opt_int(payload.get("PageSize"))
    total = _opt_int(payload.get("Total"))
    if page is None or total is None:
        raise _malformed(action, "Page / Total")
    size = page_size if page_size else max(len(devices), 1)
    page_count = _opt_int(payload.get("PageCount"))
    if page_count is None:
        page_count = -(-total // size)
    return records.DevicePage(
        page=page, page_size=size, page_count=page_count, total=total, devices=devices
    )


class _SingleDeviceFields(TypedDict):
    """The keyword arguments of :class:`~provisioner.api.records.SingleDevice`."""

    product_key: str
    device_name: str
    device_secret: str
    iot_id: str
    nickname: str | None


def _single_device(
    data: Mapping[str, Any], action: str, *, secret_required: bool = True
) -> _SingleDeviceFields:
    """The fields every answer about one device has. A detail may come without the
    DeviceSecret (``secret_required=False``); a created or imported device may not."""
    return {
        "product_key": _opt_str(data.get("ProductKey")) or "",
        "device_name": _req_str(data, "DeviceName", action),
        "device_secret": (
            _req_str(data, "DeviceSecret", action, secret=True)
            if secret_required
            else _opt_secret(data.get("DeviceSecret")) or ""
        ),
        "iot_id": _opt_str(data.get("IotId")) or "",
        "nickname": _nickname(data),
    }


def parse_imported_device(payload: Mapping[str, Any]) -> records.ImportedDevice:
    data = _obj(payload.get("Data"))
    return records.ImportedDevice(
        **_single_device(data, "ImportDevice"), sn=_opt_str(data.get("Sn"))
    )


def parse_registered_device(payload: Mapping[str, Any]) -> records.RegisteredDevice:
    return records.RegisteredDevice(**_single_device(_obj(payload.get("Data")), "RegisterDevice"))


def _device_detail(data: Mapping[str, Any], action: str) -> records.DeviceDetail:
    return records.DeviceDetail(
        **_single_device(data, action, secret_required=False),
        status=_opt_str(data.get("Status")),
        product_name=_opt_str(data.get("ProductName")),
        node_type=_opt_int(data.get("NodeType")),
        region=_opt_str(data.get("Region")),
        firmware_version=_opt_str(data.get("FirmwareVersion")),
        ip_address=_opt_str(data.get("IpAddress")),
        utc_create=_opt_str(data.get("UtcCreate")),
        utc_active=_opt_str(data.get("UtcActive")),
        utc_online=_opt_str(data.get("UtcOnline")),
    )


def parse_device_detail(payload: Mapping[str, Any]) -> records.DeviceDetail:
    return _device_detail(_obj(payload.get("Data")), "QueryDeviceDetail")


def parse_device_details(payload: Mapping[str, Any]) -> list[records.DeviceDetail]:
    """BatchQueryDeviceDetail: ``Data.Data[]``, only the devices that exist."""
    action = "BatchQueryDeviceDetail"
    return [
        _device_detail(_obj(item), action)
        for item in _items(payload.get("Data"), "Data")
        if isinstance(item, Mapping)
    ]


class _ProductFields(TypedDict):
    """The keyword arguments :class:`~provisioner.api.records.Product` and
    :class:`~provisioner.api.records.ProductCreated` share, read the same way."""

    node_type: int | None
    data_format: int | None
    auth_type: str | None
    aliyun_commodity_code: str | None
    description: str | None
    protocol_type: str | None
    product_secret: str | None


def _product_fields(data: Mapping[str, Any]) -> _ProductFields:
    """The fields both QueryProduct and CreateProduct answer."""
    return {
        "node_type": _opt_int(data.get("NodeType")),
        "data_format": _opt_int(data.get("DataFormat")),
        "auth_type": _opt_str(data.get("AuthType")),
        "aliyun_commodity_code": _opt_str(data.get("AliyunCommodityCode")),
        "description": _opt_str(data.get("Description")),
        "protocol_type": _opt_str(data.get("ProtocolType")),
        "product_secret": _opt_secret(data.get("ProductSecret")),
    }


def parse_product(payload: Mapping[str, Any]) -> records.Product:
    action = "QueryProduct"
    data = _obj(payload.get("Data"))
    return records.Product(
        product_key=_req_str(data, "ProductKey", action),
        product_name=_opt_str(data.get("ProductName")) or "",
        **_product_fields(data),
        device_count=_opt_int(data.get("DeviceCount")),
        net_type=_opt_str(data.get("NetType")),
        product_status=_opt_str(data.get("ProductStatus")),
        category_key=_opt_str(data.get("CategoryKey")),
        gmt_create=_opt_int(data.get("GmtCreate")),
        validate_type=_opt_int(data.get("ValidateType")),
        category_name=_opt_str(data.get("CategoryName")),
        id2=_opt_bool(data.get("Id2")),
        owner=_opt_bool(data.get("Owner")),
    )


def parse_product_created(payload: Mapping[str, Any]) -> records.ProductCreated:
    action = "CreateProduct"
    data = _obj(payload.get("Data"))
    # ProductKey is both in Data and at the top level; either will do.
    key = _opt_str(data.get("ProductKey")) or _opt_str(payload.get("ProductKey"))
    if key is None:
        raise _malformed(action, "ProductKey")
    return records.ProductCreated(
        product_key=key, product_name=_opt_str(data.get("ProductName")), **_product_fields(data)
    )
