"""Typed records of successful IoT Platform answers, and the parsers that build them.

Parsers take the decoded JSON object of a success (see
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
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from provisioner.api.scrub import clean_text
from provisioner.errors import TerminalApiError

__all__ = [
    "FINAL_STATES",
    "ApplyAccepted",
    "ApplyState",
    "ApplyStatus",
    "CheckResult",
    "DeviceCredential",
    "DeviceDetail",
    "DevicePage",
    "ImportedDevice",
    "InvalidDetail",
    "Product",
    "ProductCreated",
    "RegisteredDevice",
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


class ApplyState(StrEnum):
    """``Data.Status`` of an application (QueryBatchRegisterDeviceStatus)."""

    CHECK = "CHECK"
    CHECK_SUCCESS = "CHECK_SUCCESS"
    CHECK_FAILED = "CHECK_FAILED"
    CREATE = "CREATE"
    CREATE_SUCCESS = "CREATE_SUCCESS"
    CREATE_FAILED = "CREATE_FAILED"


#: States after which polling stops: the next step depends on which one it is.
FINAL_STATES = frozenset(
    {
        ApplyState.CHECK_SUCCESS,
        ApplyState.CHECK_FAILED,
        ApplyState.CREATE_SUCCESS,
        ApplyState.CREATE_FAILED,
    }
)


# --- records --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CheckResult:
    """BatchCheckDeviceNames: the application was accepted; the check runs on the server."""

    apply_id: int
    invalid_names: list[str] = field(default_factory=list)
    invalid_nicknames: list[str] = field(default_factory=list)
    repeated_names: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class ApplyAccepted:
    """BatchRegisterDeviceWithApplyId / BatchRegisterDevice: creation started."""

    apply_id: int


@dataclass(frozen=True, slots=True)
class InvalidDetail:
    """One entry of the optional ``InvalidDetailList`` of newer API versions."""

    device_name: str
    error_message: str
    nickname: str | None = None


@dataclass(frozen=True, slots=True)
class ApplyStatus:
    """QueryBatchRegisterDeviceStatus. ``status`` is an :class:`ApplyState` value when known."""

    status: str
    valid_names: list[str] = field(default_factory=list)
    invalid_names: list[str] = field(default_factory=list)
    invalid_details: list[InvalidDetail] = field(default_factory=list)

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_STATES


@dataclass(frozen=True, slots=True)
class DeviceCredential:
    """One device of a QueryPageByApplyId page: what an export writes."""

    device_name: str
    device_secret: str = field(repr=False)
    iot_id: str


@dataclass(frozen=True, slots=True)
class DevicePage:
    """QueryPageByApplyId: one page of the devices of an application."""

    page: int
    page_size: int
    page_count: int
    total: int
    devices: list[DeviceCredential] = field(default_factory=list)

    @property
    def is_last(self) -> bool:
        return self.page >= self.page_count


@dataclass(frozen=True, slots=True)
class ImportedDevice:
    """ImportDevice."""

    product_key: str
    device_name: str
    device_secret: str = field(repr=False)
    iot_id: str
    nickname: str | None = None
    sn: str | None = None


@dataclass(frozen=True, slots=True)
class RegisteredDevice:
    """RegisterDevice."""

    product_key: str
    device_name: str
    device_secret: str = field(repr=False)
    iot_id: str
    nickname: str | None = None


@dataclass(frozen=True, slots=True)
class DeviceDetail:
    """QueryDeviceDetail, and each entry of BatchQueryDeviceDetail."""

    product_key: str
    device_name: str
    device_secret: str = field(repr=False)
    iot_id: str
    nickname: str | None = None
    status: str | None = None
    product_name: str | None = None
    node_type: int | None = None
    region: str | None = None
    firmware_version: str | None = None
    ip_address: str | None = None
    utc_create: str | None = None
    utc_active: str | None = None
    utc_online: str | None = None


@dataclass(frozen=True, slots=True)
class Product:
    """QueryProduct."""

    product_key: str
    product_name: str
    node_type: int | None = None
    data_format: int | None = None
    auth_type: str | None = None
    aliyun_commodity_code: str | None = None
    description: str | None = None
    device_count: int | None = None
    net_type: str | None = None
    product_status: str | None = None
    category_key: str | None = None
    gmt_create: int | None = None
    protocol_type: str | None = None
    validate_type: int | None = None
    category_name: str | None = None
    id2: bool | None = None
    owner: bool | None = None
    product_secret: str | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class ProductCreated:
    """CreateProduct."""

    product_key: str
    product_name: str | None = None
    node_type: int | None = None
    data_format: int | None = None
    auth_type: str | None = None
    aliyun_commodity_code: str | None = None
    description: str | None = None
    protocol_type: str | None = None
    product_secret: str | None = field(default=None, repr=False)


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


def parse_check_result(payload: Mapping[str, Any]) -> CheckResult:
    action = "BatchCheckDeviceNames"
    data = _obj(payload.get("Data"))
    return CheckResult(
        apply_id=_apply_id(data, action),
        invalid_names=_names(data.get("InvalidDeviceNameList"), "InvalidDeviceName"),
        invalid_nicknames=_names(data.get("InvalidDeviceNicknameList"), "InvalidDeviceNickname"),
        repeated_names=_names(data.get("RepeatedDeviceNameList"), "RepeatedDeviceName"),
    )


def parse_apply_accepted(
    payload: Mapping[str, Any], action: str = "BatchRegisterDeviceWithApplyId"
) -> ApplyAccepted:
    data = _obj(payload.get("Data"))
    return ApplyAccepted(apply_id=_apply_id(data, action))


def _invalid_details(value: Any) -> list[InvalidDetail]:
    details: list[InvalidDetail] = []
    for item in _items(value, "InvalidDetailList", "InvalidDetail"):
        if not isinstance(item, Mapping):
            continue
        name = _opt_str(item.get("DeviceName"))
        if name is None:
            continue
        details.append(
            InvalidDetail(
                device_name=name,
                error_message=_opt_str(item.get("ErrorMsg") or item.get("ErrorMessage")) or "",
                nickname=_nickname(item),
            )
        )
    return details


def parse_apply_status(payload: Mapping[str, Any]) -> ApplyStatus:
    action = "QueryBatchRegisterDeviceStatus"
    data = _obj(payload.get("Data"))
    status = _req_str(data, "Status", action).strip().upper()
    return ApplyStatus(
        status=status,
        valid_names=_names(data.get("ValidList")),
        invalid_names=_names(data.get("InvalidList")),
        invalid_details=_invalid_details(data.get("InvalidDetailList")),
    )


def parse_device_page(payload: Mapping[str, Any]) -> DevicePage:
    """QueryPageByApplyId. Page, PageSize, PageCount and Total are at the top level."""
    action = "QueryPageByApplyId"
    devices: list[DeviceCredential] = []
    for item in _items(payload.get("ApplyDeviceList"), "ApplyDeviceInfo"):
        entry = _obj(item)
        devices.append(
            DeviceCredential(
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
    return DevicePage(
        page=page, page_size=size, page_count=page_count, total=total, devices=devices
    )


def parse_imported_device(payload: Mapping[str, Any]) -> ImportedDevice:
    action = "ImportDevice"
    data = _obj(payload.get("Data"))
    return ImportedDevice(
        product_key=_opt_str(data.get("ProductKey")) or "",
        device_name=_req_str(data, "DeviceName", action),
        device_secret=_req_str(data, "DeviceSecret", action, secret=True),
        iot_id=_opt_str(data.get("IotId")) or "",
        nickname=_nickname(data),
        sn=_opt_str(data.get("Sn")),
    )


def parse_registered_device(payload: Mapping[str, Any]) -> RegisteredDevice:
    action = "RegisterDevice"
    data = _obj(payload.get("Data"))
    return RegisteredDevice(
        product_key=_opt_str(data.get("ProductKey")) or "",
        device_name=_req_str(data, "DeviceName", action),
        device_secret=_req_str(data, "DeviceSecret", action, secret=True),
        iot_id=_opt_str(data.get("IotId")) or "",
        nickname=_nickname(data),
    )


def _device_detail(data: Mapping[str, Any], action: str) -> DeviceDetail:
    return DeviceDetail(
        product_key=_opt_str(data.get("ProductKey")) or "",
        device_name=_req_str(data, "DeviceName", action),
        device_secret=_opt_secret(data.get("DeviceSecret")) or "",
        iot_id=_opt_str(data.get("IotId")) or "",
        nickname=_nickname(data),
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


def parse_device_detail(payload: Mapping[str, Any]) -> DeviceDetail:
    return _device_detail(_obj(payload.get("Data")), "QueryDeviceDetail")


def parse_device_details(payload: Mapping[str, Any]) -> list[DeviceDetail]:
    """BatchQueryDeviceDetail: ``Data.Data[]``, only the devices that exist."""
    action = "BatchQueryDeviceDetail"
    return [
        _device_detail(_obj(item), action)
        for item in _items(payload.get("Data"), "Data")
        if isinstance(item, Mapping)
    ]


def parse_product(payload: Mapping[str, Any]) -> Product:
    action = "QueryProduct"
    data = _obj(payload.get("Data"))
    return Product(
        product_key=_req_str(data, "ProductKey", action),
        product_name=_opt_str(data.get("ProductName")) or "",
        node_type=_opt_int(data.get("NodeType")),
        data_format=_opt_int(data.get("DataFormat")),
        auth_type=_opt_str(data.get("AuthType")),
        aliyun_commodity_code=_opt_str(data.get("AliyunCommodityCode")),
        description=_opt_str(data.get("Description")),
        device_count=_opt_int(data.get("DeviceCount")),
        net_type=_opt_str(data.get("NetType")),
        product_status=_opt_str(data.get("ProductStatus")),
        category_key=_opt_str(data.get("CategoryKey")),
        gmt_create=_opt_int(data.get("GmtCreate")),
        protocol_type=_opt_str(data.get("ProtocolType")),
        validate_type=_opt_int(data.get("ValidateType")),
        category_name=_opt_str(data.get("CategoryName")),
        id2=_opt_bool(data.get("Id2")),
        owner=_opt_bool(data.get("Owner")),
        product_secret=_opt_secret(data.get("ProductSecret")),
    )


def parse_product_created(payload: Mapping[str, Any]) -> ProductCreated:
    action = "CreateProduct"
    data = _obj(payload.get("Data"))
    # ProductKey is both in Data and at the top level; either will do.
    key = _opt_str(data.get("ProductKey")) or _opt_str(payload.get("ProductKey"))
    if key is None:
        raise _malformed(action, "ProductKey")
    return ProductCreated(
        product_key=key,
        product_name=_opt_str(data.get("ProductName")),
        node_type=_opt_int(data.get("NodeType")),
        data_format=_opt_int(data.get("DataFormat")),
        auth_type=_opt_str(data.get("AuthType")),
        aliyun_commodity_code=_opt_str(data.get("AliyunCommodityCode")),
        description=_opt_str(data.get("Description")),
        protocol_type=_opt_str(data.get("ProtocolType")),
        product_secret=_opt_secret(data.get("ProductSecret")),
    )
