"""The emulated server's records: products, devices, applications, and their errors.

Plain data shared by :mod:`~provisioner.emulator.world` and
:mod:`~provisioner.emulator.catalog` (the rules),
:mod:`~provisioner.emulator.store` (persistence) and
:mod:`~provisioner.emulator.actions` (the response shapes).
"""

from __future__ import annotations

import random
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

__all__ = [
    "CHECK",
    "CHECK_FAILED",
    "CHECK_SUCCESS",
    "CREATE",
    "CREATE_FAILED",
    "CREATE_SUCCESS",
    "Application",
    "ApplicationKind",
    "BusinessError",
    "Device",
    "Product",
    "WorldListener",
    "random_alnum",
    "secret_alnum",
]

CHECK = "CHECK"
CHECK_SUCCESS = "CHECK_SUCCESS"
CHECK_FAILED = "CHECK_FAILED"
CREATE = "CREATE"
CREATE_SUCCESS = "CREATE_SUCCESS"
CREATE_FAILED = "CREATE_FAILED"

ApplicationKind = Literal["check", "random"]

_ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"


class BusinessError(Exception):
    """An API-level failure: HTTP 200, ``Success: false``, ``Code`` and ``ErrorMessage``."""

    def __init__(self, code: str, message: str, data: dict[str, Any] | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.data = data


# Random bytes to letters and digits in C (bytes.translate), without modulo bias: a byte
# below 248 = 4 * 62 maps to one of the 62 characters, the others are dropped. A created
# application makes 10,000 devices at once, and a slow loop here would stall the
# emulator long enough to bunch up the requests it timestamps for throttling.
_ALNUM_TABLE = bytes(ord(_ALNUM[b % 62]) if b < 248 else 0 for b in range(256))
_ALNUM_DROP = bytes(range(248, 256))


def _alnum_from(draw: Callable[[int], bytes], length: int) -> str:
    out = b""
    while len(out) < length:
        out += draw(length + 8).translate(_ALNUM_TABLE, _ALNUM_DROP)
    return out[:length].decode("ascii")


def random_alnum(rng: random.Random, length: int) -> str:
    """Letters and digits from a (seedable) random source: identifiers, not secrets."""
    return _alnum_from(rng.randbytes, length)


def secret_alnum(length: int = 32) -> str:
    """Letters and digits from :mod:`secrets`, without modulo bias."""
    return _alnum_from(secrets.token_bytes, length)


@dataclass(slots=True)
class Device:
    iot_id: str
    product_key: str
    device_name: str
    device_secret: str
    created_at: float
    nickname: str | None = None
    sn: str | None = None
    apply_id: int | None = None
    deleted: bool = False


@dataclass(slots=True)
class Product:
    product_key: str
    product_name: str
    node_type: int
    product_secret: str = field(repr=False)
    created_at: float
    aliyun_commodity_code: str = "iothub"
    data_format: int | None = None
    description: str | None = None
    protocol_type: str | None = None
    net_type: str | None = None
    auth_type: str = "secret"
    category_key: str | None = None
    publish_auto: bool = True
    validate_type: int = 1
    resource_group_id: str | None = None
    devices: dict[str, Device] = field(default_factory=dict, repr=False)


@dataclass(slots=True)
class Application:
    apply_id: int
    product_key: str
    kind: ApplicationKind
    names: list[str]
    nicknames: dict[str, str]
    submitted_at: float
    status: str
    due_at: float | None
    #: name -> reason, for the names that failed the check or the creation.
    failures: dict[str, str] = field(default_factory=dict)
    #: Created devices in creation order: the stable order of QueryPageByApplyId.
    devices: list[Device] = field(default_factory=list, repr=False)
    deleted_count: int = 0
    #: Devices built ahead while the application is in CREATE (name -> device), not yet
    #: in the product: the creation then only files them (see World.prepare).
    prepared: dict[str, Device] = field(default_factory=dict, repr=False)

    def valid_names(self) -> list[str]:
        if self.status == CHECK_SUCCESS:
            return list(self.names)
        if self.status == CREATE_SUCCESS:
            return [d.device_name for d in self.devices]
        return []

    def invalid_names(self) -> list[str]:
        if self.status in (CHECK_FAILED, CREATE_FAILED):
            return list(self.failures)
        return []

    def existing_devices(self) -> Sequence[Device]:
        if self.deleted_count == 0:
            return self.devices
        return [d for d in self.devices if not d.deleted]


class WorldListener(Protocol):
    """Told about every change, to persist it (see :mod:`provisioner.emulator.store`)."""

    def product_saved(self, product: Product) -> None: ...

    def devices_created(
        self, devices: Sequence[Device], application: Application | None = None
    ) -> None:
        """New devices, and the application that created them (saved in the same commit)."""

    def device_deleted(self, device: Device) -> None: ...

    def application_saved(self, application: Application) -> None: ...
