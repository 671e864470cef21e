"""The pure step function of one device of an import (ImportDevice, one call each).

A device goes ``pending`` -> ``importing`` (the intent, written for a group of devices
before they are sent) -> ``created`` / ``adopted`` / ``rejected`` / ``failed``. It is
never left in doubt, because ImportDevice can be asked about afterwards:

* ``iot.device.AlreadyExistedDeviceName`` for a device this run may have sent before
  (it was ``importing`` after a crash, or an earlier attempt lost its answer: the view
  says ``ours``) is looked up with QueryDeviceDetail: the same DeviceSecret means the
  earlier call worked (``created``); another secret is a conflict (``rejected``).
* The same code for a device that existed before the run is reported (``--existing
  fail``), or looked up and included when its secret matches (``--existing adopt``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from provisioner.api.records import DeviceDetail, ImportedDevice
from provisioner.errors import AuthenticationError, ProvisionerError
from provisioner.journal import DeviceRecord
from provisioner.pipeline.machine import Begin, Fail, Found, Refused

__all__ = [
    "CREATE_FAILED",
    "EXISTS",
    "EXISTS_REASON",
    "DeviceAction",
    "DeviceEvent",
    "DeviceView",
    "Emit",
    "Imported",
    "Inspect",
    "Record",
    "SubmitImport",
    "import_step",
]

EXISTS = "iot.device.AlreadyExistedDeviceName"
CREATE_FAILED = "iot.device.CreateDeviceFailed"
#: Errors about the account or the call, not about one device: the run stops.
FATAL = frozenset({"iot.system.InstanceNotFound", "iot.prod.NotExistedProduct"})
#: How an "already exists" rejection starts; ``--existing adopt`` re-opens these.
EXISTS_REASON = "already exists in product"


@dataclass(frozen=True, slots=True)
class DeviceView:
    """One device of an import, with what the input says of it. ``ours``: a call of this
    run may already have imported it (its answer was lost, or a crash came between)."""

    device: DeviceRecord
    secret: str = field(repr=False)
    nickname: str | None
    ours: bool


@dataclass(frozen=True, slots=True)
class Imported:
    """ImportDevice answered."""

    answer: ImportedDevice


DeviceEvent = Begin | Imported | Refused | Found


@dataclass(frozen=True, slots=True)
class SubmitImport:
    """ImportDevice with the input's secret -> Imported | Refused."""


@dataclass(frozen=True, slots=True)
class Inspect:
    """QueryDeviceDetail of this device -> Found."""


@dataclass(frozen=True, slots=True)
class Record:
    """The device's end, journaled with others in one transaction."""

    state: str
    reason: str | None = None
    iot_id: str | None = None


@dataclass(frozen=True, slots=True)
class Emit:
    """Write the device's output row (the secret is the input's)."""

    iot_id: str
    nickname: str | None


DeviceAction = SubmitImport | Inspect | Record | Emit | Fail


def import_step(
    view: DeviceView, event: DeviceEvent, *, product_key: str, adopt: bool
) -> list[DeviceAction]:
    """The next actions of one device (see the module docstring)."""
    if isinstance(event, Begin):
        return [SubmitImport()]
    if isinstance(event, Imported):
        if event.answer.device_secret != view.secret:
            return [Record("failed", "ImportDevice returned another DeviceSecret")]
        return [
            Record("created", iot_id=event.answer.iot_id),
            Emit(event.answer.iot_id, view.nickname),
        ]
    if isinstance(event, Refused):
        return _refused(view, event.error, product_key=product_key, adopt=adopt)
    return _found(view, event.detail, product_key=product_key)


def _refused(
    view: DeviceView, error: ProvisionerError, *, product_key: str, adopt: bool
) -> list[DeviceAction]:
    code = str(getattr(error, "code", type(error).__name__))
    if code == EXISTS:
        if view.ours or adopt:
            return [Inspect()]
        return [
            Record(
                "rejected",
                f"{EXISTS_REASON} {product_key} (pass --existing adopt to include it when its "
                "DeviceSecret matches)",
            )
        ]
    if isinstance(error, AuthenticationError) or code in FATAL or not hasattr(error, "code"):
        return [Fail(error)]
    message = str(getattr(error, "message", ""))
    if view.secret:
        message = message.replace(view.secret, "***")
    state = "failed" if code == CREATE_FAILED else "rejected"
    return [Record(state, f"ImportDevice: {code}: {message}")]


def _found(
    view: DeviceView, detail: DeviceDetail | None, *, product_key: str
) -> list[DeviceAction]:
    if detail is None:
        return [Record("failed", "ImportDevice said it exists, QueryDeviceDetail not")]
    if detail.device_secret != view.secret:
        return [
            Record(
                "rejected",
                f"exists in product {product_key} with a different DeviceSecret (conflict)",
            )
        ]
    state = "created" if view.ours else "adopted"
    return [
        Record(state, iot_id=detail.iot_id),
        Emit(detail.iot_id, detail.nickname or view.nickname),
    ]
