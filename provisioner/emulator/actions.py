"""The twelve operations: request parameters in, response fields out.

Each handler reads the API parameters of one operation, calls the
:class:`~provisioner.emulator.world.World` and returns the response fields other
than ``RequestId`` and ``Success``. A missing mandatory parameter is a gateway
error (:func:`~provisioner.emulator.auth.missing_parameter`); every other
failure is a :class:`~provisioner.emulator.model.BusinessError`.
``IotInstanceId`` is accepted by all of them and ignored.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from provisioner.emulator.auth import missing_parameter
from provisioner.emulator.model import BusinessError, Device
from provisioner.emulator.products import created_fields, queried_fields
from provisioner.emulator.world import World

__all__ = ["ACTIONS", "MAX_PAGE_SIZE", "Handler", "dispatch"]

MAX_PAGE_SIZE = 50
_MAX_BATCH_QUERY = 100

Params = Mapping[str, str]
Handler = Callable[[World, Params, float], dict[str, Any]]

_NAME_LIST_RE = re.compile(r"^DeviceNameList\.(\d+)\.(DeviceName|DeviceNickname)$")
_NAME_N_RE = re.compile(r"^DeviceName\.(\d+)$")
_BEIJING = timezone(timedelta(hours=8))


# --- parameter helpers -------------------------------------------------------------------


def _required(params: Params, name: str) -> str:
    value = params.get(name)
    if value is None or value == "":
        raise missing_parameter(name)
    return value


def _optional(params: Params, name: str) -> str | None:
    value = params.get(name)
    return value if value else None


def _int(value: str, code: str, what: str) -> int:
    try:
        return int(value.strip())
    except ValueError:
        raise BusinessError(code, f"{what} must be an integer.") from None


def _apply_id(params: Params) -> int:
    value = params.get("ApplyId", "")
    if not value:
        raise BusinessError("iot.device.NullApplyId", "ApplyId is required.")
    return _int(value, "iot.device.InvalidFormattedApplyId", "ApplyId")


def _numbered(params: Params, pattern: re.Pattern[str]) -> list[tuple[int, str, str]]:
    found: list[tuple[int, str, str]] = []
    for key, value in params.items():
        match = pattern.match(key)
        if match:
            field = match.group(2) if pattern.groups > 1 else ""
            found.append((int(match.group(1)), field, value))
    found.sort()
    return found


def _device_names(params: Params) -> tuple[list[str], list[str | None]]:
    """``DeviceNameList.N.*`` when present (it wins), else the legacy ``DeviceName.N``."""
    listed = _numbered(params, _NAME_LIST_RE)
    if listed:
        rows: dict[int, dict[str, str]] = {}
        for n, field, value in listed:
            rows.setdefault(n, {})[field] = value
        names = [row.get("DeviceName", "") for _, row in sorted(rows.items())]
        nicks = [row.get("DeviceNickname") or None for _, row in sorted(rows.items())]
        return names, nicks
    legacy = [value for _, _, value in _numbered(params, _NAME_N_RE)]
    return legacy, [None] * len(legacy)


def _times(moment: float) -> dict[str, str]:
    utc = datetime.fromtimestamp(moment, UTC)
    return {
        "GmtCreate": utc.astimezone(_BEIJING).strftime("%Y-%m-%d %H:%M:%S"),
        "UtcCreate": utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z",
    }


def _device_detail(world: World, device: Device) -> dict[str, Any]:
    product = world.products[device.product_key]
    detail: dict[str, Any] = {
        "IotId": device.iot_id,
        "ProductKey": device.product_key,
        "ProductName": product.product_name,
        "DeviceName": device.device_name,
        "DeviceSecret": device.device_secret,
        "Nickname": device.nickname,
        "Status": "UNACTIVE",
        "NodeType": product.node_type,
        "Region": world.config.region,
        "Owner": True,
        **_times(device.created_at),
    }
    return {k: v for k, v in detail.items() if v is not None}


def _status_data(world: World, apply_id: int, product_key: str, now: float) -> dict[str, Any]:
    application = world.application(now, apply_id, product_key)
    data: dict[str, Any] = {
        "Status": application.status,
        "ValidList": {"Name": application.valid_names()},
        "InvalidList": {"Name": application.invalid_names()},
    }
    invalid = application.invalid_names()
    if invalid:
        data["InvalidDetailList"] = {
            "InvalidDetailList": [
                {
                    "DeviceName": name,
                    "ErrorMsg": application.failures[name],
                    "NickName": application.nicknames.get(name),
                }
                for name in invalid
            ]
        }
    return data


# --- products ----------------------------------------------------------------------------


def _flag(params: Params, name: str) -> bool | None:
    value = _optional(params, name)
    if value is None:
        return None
    if value.lower() not in ("true", "false"):
        raise BusinessError(
            "iot.common.InvalidFormattedParameter", f"{name} must be true or false."
        )
    return value.lower() == "true"


def _opt_int(params: Params, name: str) -> int | None:
    value = _optional(params, name)
    if value is None:
        return None
    return _int(value, "iot.common.InvalidFormattedParameter", name)


def create_product(world: World, params: Params, now: float) -> dict[str, Any]:
    name = _required(params, "ProductName")
    node_type = _int(_required(params, "NodeType"), "iot.prod.InvalidNodeType", "NodeType")
    _flag(params, "Id2")  # checked, then ignored: the service goes by AuthType (seed 001)
    product = world.create_product(
        now,
        name,
        node_type,
        aliyun_commodity_code=_optional(params, "AliyunCommodityCode") or "iothub",
        data_format=_opt_int(params, "DataFormat"),
        description=_optional(params, "Description"),
        protocol_type=_optional(params, "ProtocolType"),
        net_type=_optional(params, "NetType"),
        auth_type=_optional(params, "AuthType") or "secret",
        category_key=_optional(params, "CategoryKey"),
        publish_auto=_flag(params, "PublishAuto"),
        validate_type=_opt_int(params, "ValidateType"),
        resource_group_id=_optional(params, "ResourceGroupId"),
        join_permission_id=_optional(params, "JoinPermissionId"),
    )
    return {"Data": created_fields(product), "ProductKey": product.product_key}


def query_product(world: World, params: Params, now: float) -> dict[str, Any]:
    world.advance(now)
    return {"Data": queried_fields(world.product(_required(params, "ProductKey")))}


# --- the batch flow ----------------------------------------------------------------------


def batch_check_device_names(world: World, params: Params, now: float) -> dict[str, Any]:
    product_key = _required(params, "ProductKey")
    names, nicknames = _device_names(params)
    application = world.check_names(now, product_key, names, nicknames)
    return {
        "Data": {
            "ApplyId": application.apply_id,
            "InvalidDeviceNameList": {"InvalidDeviceName": []},
            "InvalidDeviceNicknameList": {"InvalidDeviceNickname": []},
            "RepeatedDeviceNameList": {"RepeatedDeviceName": [], "RepeatDevieNameList": []},
        }
    }


def query_batch_register_device_status(world: World, params: Params, now: float) -> dict[str, Any]:
    product_key = _required(params, "ProductKey")
    apply_id = _apply_id(params)
    world.advance(now)
    world.product(product_key)
    return {"Data": _status_data(world, apply_id, product_key, now)}


def batch_register_device_with_apply_id(world: World, params: Params, now: float) -> dict[str, Any]:
    product_key = _required(params, "ProductKey")
    apply_id = _apply_id(params)
    application = world.start_create(now, apply_id, product_key)
    return {"Data": {"ApplyId": application.apply_id}}


def batch_register_device(world: World, params: Params, now: float) -> dict[str, Any]:
    product_key = _required(params, "ProductKey")
    count = _int(_required(params, "Count"), "iot.common.InvalidFormattedParameter", "Count")
    application = world.register_random(now, product_key, count)
    return {"Data": {"ApplyId": application.apply_id}}


def query_page_by_apply_id(world: World, params: Params, now: float) -> dict[str, Any]:
    apply_id = _apply_id(params)
    bad_page = "iot.common.InvalidPageParams"
    page_size = _int(params.get("PageSize") or "10", bad_page, "PageSize")
    current = _int(params.get("CurrentPage") or "1", bad_page, "CurrentPage")
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        raise BusinessError(bad_page, f"PageSize must be 1 to {MAX_PAGE_SIZE}.")
    if current < 1:
        raise BusinessError(bad_page, "CurrentPage must be at least 1.")
    devices, total = world.page(now, apply_id, page_size, current)
    return {
        "Page": current,
        "PageSize": page_size,
        "PageCount": math.ceil(total / page_size),
        "Total": total,
        "ApplyDeviceList": {
            "ApplyDeviceInfo": [
                {
                    "DeviceId": d.iot_id[:20],
                    "DeviceName": d.device_name,
                    "DeviceSecret": d.device_secret,
                    "IotId": d.iot_id,
                }
                for d in devices
            ]
        },
    }


# --- single devices ----------------------------------------------------------------------


def _device_data(device: Device, *names: str) -> dict[str, Any]:
    """``Data`` of an answer about one device: its fields ``names``, in that order (each
    operation's sample has its own), without those it does not have."""
    fields = {
        "IotId": device.iot_id,
        "ProductKey": device.product_key,
        "DeviceName": device.device_name,
        "DeviceSecret": device.device_secret,
        "Nickname": device.nickname,
        "Sn": device.sn,
    }
    return {name: fields[name] for name in names if fields[name] is not None}


def import_device(world: World, params: Params, now: float) -> dict[str, Any]:
    device = world.import_device(
        now,
        _required(params, "ProductKey"),
        _required(params, "DeviceName"),
        _required(params, "DeviceSecret"),
        nickname=_optional(params, "Nickname"),
        sn=_optional(params, "Sn"),
    )
    names = ("DeviceName", "DeviceSecret", "IotId", "Nickname", "ProductKey", "Sn")
    return {"Data": _device_data(device, *names)}


def register_device(world: World, params: Params, now: float) -> dict[str, Any]:
    device = world.register_device(
        now,
        _required(params, "ProductKey"),
        _optional(params, "DeviceName"),
        nickname=_optional(params, "Nickname"),
    )
    names = ("IotId", "ProductKey", "DeviceName", "DeviceSecret", "Nickname")
    return {"Data": _device_data(device, *names)}


def _find(world: World, params: Params, now: float) -> Device:
    return world.find_device(
        now,
        iot_id=_optional(params, "IotId"),
        product_key=_optional(params, "ProductKey"),
        name=_optional(params, "DeviceName"),
    )


def query_device_detail(world: World, params: Params, now: float) -> dict[str, Any]:
    return {"Data": _device_detail(world, _find(world, params, now))}


def batch_query_device_detail(world: World, params: Params, now: float) -> dict[str, Any]:
    product_key = _required(params, "ProductKey")
    names = [value for _, _, value in _numbered(params, _NAME_N_RE)]
    if not names:
        raise BusinessError("iot.device.NoneDeviceNameElement", "The DeviceName list is empty.")
    if len(names) > _MAX_BATCH_QUERY:
        raise BusinessError(
            "iot.device.DeviceCountExceeded",
            f"At most {_MAX_BATCH_QUERY} DeviceNames can be queried at a time.",
        )
    devices = world.existing_devices(now, product_key, names)
    return {"Data": {"Data": [_device_detail(world, d) for d in devices]}}


def delete_device(world: World, params: Params, now: float) -> dict[str, Any]:
    world.delete_device(now, _find(world, params, now))
    return {}


ACTIONS: Mapping[str, Handler] = {
    "CreateProduct": create_product,
    "QueryProduct": query_product,
    "BatchCheckDeviceNames": batch_check_device_names,
    "QueryBatchRegisterDeviceStatus": query_batch_register_device_status,
    "BatchRegisterDeviceWithApplyId": batch_register_device_with_apply_id,
    "BatchRegisterDevice": batch_register_device,
    "QueryPageByApplyId": query_page_by_apply_id,
    "ImportDevice": import_device,
    "RegisterDevice": register_device,
    "QueryDeviceDetail": query_device_detail,
    "BatchQueryDeviceDetail": batch_query_device_detail,
    "DeleteDevice": delete_device,
}


def dispatch(world: World, action: str, params: Params, now: float) -> dict[str, Any]:
    """Run ``action``; the caller has already checked that it exists."""
    return ACTIONS[action](world, params, now)
