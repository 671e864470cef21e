"""The step function of one imported device, table-tested without a network or journal."""

from __future__ import annotations

from typing import Any

import pytest

from provisioner.api.records import DeviceDetail, ImportedDevice
from provisioner.errors import AuthenticationError, TerminalApiError
from provisioner.journal import DeviceRecord
from provisioner.pipeline.kinds.devices import (
    EXISTS,
    DeviceView,
    Emit,
    Imported,
    Inspect,
    Record,
    SubmitImport,
    import_step,
)
from provisioner.pipeline.machine import Begin, Fail, Found, Refused

SECRET = "s3cret-value-0001"


def view(*, ours: bool = False, state: str = "pending") -> DeviceView:
    device = DeviceRecord(2, "dev-1", "nick_1", None, state, None)  # type: ignore[arg-type]
    return DeviceView(device, SECRET, "nick_1", ours)


def step(event: Any, *, ours: bool = False, adopt: bool = False) -> list[Any]:
    return import_step(view(ours=ours), event, product_key="a1PK", adopt=adopt)


def detail(secret: str = SECRET) -> DeviceDetail:
    return DeviceDetail("a1PK", "dev-1", secret, "iot-1", nickname="server_nick")


def refused(code: str) -> Refused:
    return Refused(TerminalApiError("ImportDevice", code, f"no {SECRET} here"))


def test_begin_sends() -> None:
    assert step(Begin(False)) == [SubmitImport()]
    assert step(Begin(True), ours=True) == [SubmitImport()]


def test_an_answer_with_the_input_secret_is_created_and_written() -> None:
    answer = ImportedDevice("a1PK", "dev-1", SECRET, "iot-1")
    assert step(Imported(answer)) == [Record("created", iot_id="iot-1"), Emit("iot-1", "nick_1")]


def test_an_answer_with_another_secret_fails_and_writes_nothing() -> None:
    answer = ImportedDevice("a1PK", "dev-1", "other", "iot-1")
    (record,) = step(Imported(answer))
    assert record.state == "failed"


@pytest.mark.parametrize(
    ("ours", "adopt", "expected"),
    [(False, False, "Record"), (True, False, "Inspect"), (False, True, "Inspect")],
)
def test_already_exists_is_looked_up_only_when_it_may_be_ours_or_adoption_is_asked(
    ours: bool, adopt: bool, expected: str
) -> None:
    (action,) = step(refused(EXISTS), ours=ours, adopt=adopt)
    assert type(action).__name__ == expected
    if isinstance(action, Record):
        assert action.state == "rejected"
        assert "--existing adopt" in (action.reason or "")


@pytest.mark.parametrize(
    ("found", "ours", "expected"),
    [
        (None, True, [Record("failed", "ImportDevice said it exists, QueryDeviceDetail not")]),
        ("other-secret", True, "rejected"),
        (SECRET, True, [Record("created", iot_id="iot-1"), Emit("iot-1", "server_nick")]),
        (SECRET, False, [Record("adopted", iot_id="iot-1"), Emit("iot-1", "server_nick")]),
    ],
)
def test_a_found_device_is_ours_adopted_or_a_conflict(
    found: str | None, ours: bool, expected: Any
) -> None:
    actions = step(Found(detail(found) if found else None), ours=ours)
    if expected == "rejected":
        assert actions[0].state == "rejected"
        assert "different DeviceSecret" in actions[0].reason
    else:
        assert actions == expected


def test_a_reason_never_repeats_the_secret() -> None:
    (record,) = step(refused("iot.device.InvalidFormattedDeviceSecret"))
    assert isinstance(record, Record)
    assert SECRET not in (record.reason or "")
    assert record.state == "rejected"
    (failed,) = step(refused("iot.device.CreateDeviceFailed"))
    assert failed.state == "failed"


@pytest.mark.parametrize(
    "error",
    [
        AuthenticationError("ImportDevice", "InvalidAccessKeyId.NotFound", "no"),
        TerminalApiError("ImportDevice", "iot.prod.NotExistedProduct", "no"),
    ],
)
def test_account_errors_stop_the_run(error: Any) -> None:
    (fail,) = step(Refused(error))
    assert isinstance(fail, Fail)
    assert fail.error is error


def test_the_view_never_shows_the_secret() -> None:
    assert SECRET not in repr(view())
    assert not isinstance(step(Begin(False))[0], Inspect)
