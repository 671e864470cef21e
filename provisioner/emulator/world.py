"""The emulated server's data: products, devices and registration applications.

Pure and synchronous: no HTTP, no I/O except through an optional
:class:`WorldListener` (the SQLite store), and no clock of its own. Every method
that can observe time takes ``now`` (seconds since the epoch); transitions of
applications that fell due by then are applied first, in the order of their due
times. The world therefore behaves as if a background job ran each stage at the
exact moment it ends, but nothing runs between calls.

An application goes through::

    CHECK --check_seconds--> CHECK_SUCCESS | CHECK_FAILED
    CHECK_SUCCESS --BatchRegisterDeviceWithApplyId--> CREATE
    CREATE --create_seconds--> CREATE_SUCCESS | CREATE_FAILED

The check fails the names that already exist in the product when the check ends
and those matching ``fail_check_names``. Creation is atomic when CREATE ends: names
that exist by then, or that are picked by ``create_failure_rate``, fail; all the
others are created (also when the application ends CREATE_FAILED).

Products and single devices are :class:`~provisioner.emulator.catalog.Catalog`'s; this
module adds the applications and the clock. Business rule violations raise
:class:`~provisioner.emulator.model.BusinessError` (an ``iot.*`` code); the records and
states are :mod:`~provisioner.emulator.model`'s.
"""

from __future__ import annotations

import heapq
import itertools
import random
from collections import deque
from collections.abc import Iterable, Sequence
from typing import Any

from provisioner import naming
from provisioner.emulator.catalog import Catalog
from provisioner.emulator.config import EmulatorConfig
from provisioner.emulator.model import (
    CHECK,
    CHECK_FAILED,
    CHECK_SUCCESS,
    CREATE,
    CREATE_FAILED,
    CREATE_SUCCESS,
    Application,
    ApplicationKind,
    BusinessError,
    Device,
    Product,
    WorldListener,
    random_alnum,
)

__all__ = ["World"]


class World(Catalog):
    """Products, devices and applications, with the rules of the documented API."""

    def __init__(
        self,
        config: EmulatorConfig,
        *,
        rng: random.Random | None = None,
        listener: WorldListener | None = None,
    ) -> None:
        super().__init__(config, rng=rng, listener=listener)
        self.applications: dict[int, Application] = {}
        self.next_apply_id = 1_295_006
        self._fail_check = config.fail_check_pattern()
        self._due: list[tuple[float, int, int]] = []
        # Applications in CREATE whose devices may be built ahead, and how far along.
        self._creating: deque[int] = deque()
        self._cursor: dict[int, int] = {}
        self._seq = itertools.count()

    # --- loading (used by the store) ----------------------------------------------------

    def load(
        self,
        products: Iterable[Product],
        devices: Iterable[Device],
        applications: Iterable[Application],
    ) -> None:
        """Restore saved state without telling the listener."""
        for product in products:
            self.products[product.product_key] = product
            self.product_names[product.product_name] = product.product_key
        for application in applications:
            self.applications[application.apply_id] = application
            self.next_apply_id = max(self.next_apply_id, application.apply_id + 1)
            if application.due_at is not None and application.status in (CHECK, CREATE):
                self._schedule(application)
        for device in devices:
            self.products[device.product_key].devices[device.device_name] = device
            self.devices_by_iot_id[device.iot_id] = device
            if device.apply_id is not None and device.apply_id in self.applications:
                self.applications[device.apply_id].devices.append(device)

    # --- the clock ------------------------------------------------------------------------

    def _schedule(self, application: Application) -> None:
        assert application.due_at is not None
        heapq.heappush(self._due, (application.due_at, next(self._seq), application.apply_id))

    def advance(self, now: float) -> None:
        """Apply every transition due at or before ``now``, earliest first."""
        while self._due and self._due[0][0] <= now:
            due_at, _, apply_id = heapq.heappop(self._due)
            application = self.applications[apply_id]
            if application.due_at != due_at:
                continue
            if application.status == CHECK:
                self._finish_check(application)
            elif application.status == CREATE:
                self._finish_create(application, due_at)

    def prepare(self, limit: int) -> int:
        """Build up to ``limit`` devices ahead for applications being created; how many.

        Creating 10,000 devices at the moment an application is due takes tens of
        milliseconds; done in one go it would stall the emulator, and the requests that
        arrive meanwhile would be timestamped together, as a burst the client never
        sent. The app calls this from a background task in small steps instead.
        """
        built = 0
        while self._creating and built < limit:
            apply_id = self._creating[0]
            application = self.applications[apply_id]
            names = application.names
            start = self._cursor.get(apply_id, 0)
            if application.status != CREATE or start >= len(names):
                self._creating.popleft()
                self._cursor.pop(apply_id, None)
                continue
            product = self.products[application.product_key]
            stop = min(len(names), start + limit - built)
            for name in names[start:stop]:
                if name not in product.devices:
                    application.prepared[name] = self._build_device(
                        product,
                        name,
                        application.submitted_at,
                        nickname=application.nicknames.get(name),
                    )
            built += stop - start
            self._cursor[apply_id] = stop
        return built

    def _finish_check(self, application: Application) -> None:
        product = self.products[application.product_key]
        failures: dict[str, str] = {}
        for name in application.names:
            if name in product.devices:
                failures[name] = "The DeviceName already exists in the product."
            elif self._fail_check is not None and self._fail_check.search(name):
                failures[name] = "The DeviceName was rejected by the check."
        application.failures = failures
        application.status = CHECK_FAILED if failures else CHECK_SUCCESS
        application.due_at = None
        self._saved(application)

    def _finish_create(self, application: Application, at: float) -> None:
        product = self.products[application.product_key]
        rate = self.config.create_failure_rate
        created: list[Device] = []
        failures: dict[str, str] = {}
        for name in application.names:
            if name in product.devices:
                failures[name] = "The DeviceName already exists in the product."
            elif rate > 0 and self.rng.random() < rate:
                failures[name] = "The system failed to create the device."
            else:
                device = application.prepared.get(name)
                if device is None or device.iot_id in self.devices_by_iot_id:
                    device = self._build_device(
                        product, name, at, nickname=application.nicknames.get(name)
                    )
                device.created_at = at
                self._file(product, device)
                device.apply_id = application.apply_id
                created.append(device)
        application.prepared = {}
        application.devices.extend(created)
        application.failures = failures
        application.status = CREATE_FAILED if failures else CREATE_SUCCESS
        application.due_at = None
        if self.listener is not None:
            self.listener.devices_created(created, application)

    def _saved(self, application: Application) -> None:
        if self.listener is not None:
            self.listener.application_saved(application)

    # --- applications ---------------------------------------------------------------------

    def _new_application(
        self,
        now: float,
        product_key: str,
        kind: ApplicationKind,
        names: list[str],
        nicknames: dict[str, str],
    ) -> Application:
        if kind == "check":
            status, due = CHECK, now + self.config.check_seconds
        else:
            status, due = CREATE, now + self.config.create_seconds
        application = Application(
            apply_id=self.next_apply_id,
            product_key=product_key,
            kind=kind,
            names=names,
            nicknames=nicknames,
            submitted_at=now,
            status=status,
            due_at=due,
        )
        self.next_apply_id += 1
        self.applications[application.apply_id] = application
        self._schedule(application)
        if status == CREATE:
            self._creating.append(application.apply_id)
        self._saved(application)
        return application

    def check_names(
        self, now: float, product_key: str, names: Sequence[str], nicknames: Sequence[str | None]
    ) -> Application:
        """BatchCheckDeviceNames: validate at once, then start the asynchronous check."""
        self.advance(now)
        self.product(product_key)
        if not names:
            raise BusinessError("iot.device.NoneDeviceNameElement", "The DeviceName list is empty.")
        if len(names) > self.config.max_batch:
            raise BusinessError(
                "iot.device.DeviceCountExceeded",
                f"At most {self.config.max_batch} devices can be created at a time.",
            )
        bad_names = [n for n in names if naming.device_name_problem(n) is not None]
        bad_nicks = [
            nick for nick in nicknames if nick is not None and naming.nickname_problem(nick)
        ]
        seen: set[str] = set()
        repeated: list[str] = []
        for name in names:
            if name in seen and name not in repeated:
                repeated.append(name)
            seen.add(name)
        if bad_names or bad_nicks or repeated:
            data: dict[str, Any] = {
                "InvalidDeviceNameList": {"InvalidDeviceName": bad_names},
                "InvalidDeviceNicknameList": {"InvalidDeviceNickname": bad_nicks},
                "RepeatedDeviceNameList": {
                    "RepeatedDeviceName": repeated,
                    "RepeatDevieNameList": repeated,
                },
            }
            if bad_nicks and not bad_names and not repeated:
                raise BusinessError(
                    "iot.device.InvalidDeviceNickNameExisted",
                    "An invalid device alias exists in the list of DeviceNames.",
                    data,
                )
            raise BusinessError(
                "iot.device.InvalidFormattedDeviceNameInNameList",
                "The list holds invalid or repeated DeviceNames.",
                data,
            )
        nick_map = {n: k for n, k in zip(names, nicknames, strict=True) if k is not None}
        return self._new_application(now, product_key, "check", list(names), nick_map)

    def application(self, now: float, apply_id: int, product_key: str | None = None) -> Application:
        self.advance(now)
        application = self.applications.get(apply_id)
        if application is None or (
            product_key is not None and application.product_key != product_key
        ):
            raise BusinessError(
                "iot.device.DeviceApplyIsNotFound", "The ApplyId parameter is invalid."
            )
        return application

    def start_create(self, now: float, apply_id: int, product_key: str) -> Application:
        """BatchRegisterDeviceWithApplyId: CHECK_SUCCESS -> CREATE."""
        self.product(product_key)
        application = self.application(now, apply_id, product_key)
        if application.status == CHECK:
            raise BusinessError(
                "iot.device.IncorrentDeviceApplyInfo",
                "The DeviceNames of this application are still being checked (CHECK).",
            )
        if application.status == CHECK_FAILED:
            raise BusinessError(
                "iot.device.IncorrentDeviceApplyInfo",
                "The application failed the check (CHECK_FAILED); submit the valid names again.",
            )
        if application.status != CHECK_SUCCESS:
            raise BusinessError(
                "iot.device.CreateDeviceTaskIsRunning",
                f"Creation of this application already started ({application.status}).",
            )
        application.status = CREATE
        application.due_at = now + self.config.create_seconds
        self._schedule(application)
        self._creating.append(application.apply_id)
        self._saved(application)
        return application

    def register_random(self, now: float, product_key: str, count: int) -> Application:
        """BatchRegisterDevice: ``count`` random DeviceNames, straight to CREATE."""
        self.advance(now)
        product = self.product(product_key)
        if count > self.config.max_batch:
            raise BusinessError(
                "iot.device.DeviceCountExceeded",
                f"At most {self.config.max_batch} devices can be created at a time.",
            )
        if count < 1:
            raise BusinessError(
                "iot.common.InvalidFormattedParameter", "Count must be a positive integer."
            )
        names: list[str] = []
        chosen: set[str] = set()
        while len(names) < count:
            name = random_alnum(self.rng, 20)
            if name not in chosen and name not in product.devices:
                chosen.add(name)
                names.append(name)
        return self._new_application(now, product_key, "random", names, {})

    def page(
        self, now: float, apply_id: int, page_size: int, current_page: int
    ) -> tuple[Sequence[Device], int]:
        """One page of the devices an application created, and their total."""
        application = self.application(now, apply_id)
        devices = application.existing_devices()
        start = (current_page - 1) * page_size
        return devices[start : start + page_size], len(devices)

    # --- deleting a device ------------------------------------------------------------------

    def delete_device(self, now: float, device: Device) -> None:
        """DeleteDevice. Here rather than in the catalog: the application that created the
        device counts the devices deleted since."""
        self.advance(now)
        product = self.products[device.product_key]
        if product.devices.get(device.device_name) is not device:
            raise BusinessError("iot.device.NotExistedDevice", "The device does not exist.")
        del product.devices[device.device_name]
        del self.devices_by_iot_id[device.iot_id]
        device.deleted = True
        if device.apply_id is not None and device.apply_id in self.applications:
            self.applications[device.apply_id].deleted_count += 1
        if self.listener is not None:
            self.listener.device_deleted(device)

    def counts(self) -> dict[str, int]:
        return {
            "products": len(self.products),
            "devices": len(self.devices_by_iot_id),
            "applications": len(self.applications),
        }
