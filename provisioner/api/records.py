"""Typed records of successful IoT Platform answers: what the parsers build.

The parsers are in :mod:`provisioner.api.models`, which also exports every name here.

Secrets (DeviceSecret, ProductSecret) are fields with ``repr=False``: a record can be
logged or shown in a traceback without leaking them. Every other text field has been
cleaned by the parser of control and format characters and put on one line.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

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
    "SingleDevice",
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
class SingleDevice:
    """What every answer about one device holds; the base of the three records below.

    Not itself an answer: two records of different operations never compare equal.
    """

    product_key: str
    device_name: str
    device_secret: str = field(repr=False)
    iot_id: str
    nickname: str | None = None


@dataclass(frozen=True, slots=True)
class ImportedDevice(SingleDevice):
    """ImportDevice."""

    sn: str | None = None


@dataclass(frozen=True, slots=True)
class RegisteredDevice(SingleDevice):
    """RegisterDevice."""


@dataclass(frozen=True, slots=True)
class DeviceDetail(SingleDevice):
    """QueryDeviceDetail, and each entry of BatchQueryDeviceDetail."""

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
