"""The emulated server's products and their devices, with the rules of the documented API.

:class:`Catalog` is the part of the emulated world that knows nothing of registration
applications: CreateProduct and QueryProduct, and the single-device operations
(ImportDevice, RegisterDevice, QueryDeviceDetail, BatchQueryDeviceDetail). The
applications and the clock that moves them are added by
:class:`~provisioner.emulator.world.World`, which is what the emulator uses.

Pure and synchronous, like the world: no HTTP, no I/O except through the optional
:class:`~provisioner.emulator.model.WorldListener`. Business rule violations raise
:class:`~provisioner.emulator.model.BusinessError` (an ``iot.*`` code).
"""

from __future__ import annotations

import random
from collections.abc import Iterable

from provisioner import naming
from provisioner.emulator.config import EmulatorConfig
from provisioner.emulator.model import (
    BusinessError,
    Device,
    Product,
    WorldListener,
    random_alnum,
    secret_alnum,
)
from provisioner.emulator.products import check_product_options

__all__ = ["Catalog"]

_MAX_PRODUCTS = 1000


class Catalog:
    """Products and their devices; subclassed by :class:`~provisioner.emulator.world.World`."""

    def __init__(
        self,
        config: EmulatorConfig,
        *,
        rng: random.Random | None = None,
        listener: WorldListener | None = None,
    ) -> None:
        self.config = config
        self.rng = rng if rng is not None else random.Random(config.seed)
        self.listener = listener
        self.products: dict[str, Product] = {}
        self.product_names: dict[str, str] = {}
        self.devices_by_iot_id: dict[str, Device] = {}

    def advance(self, now: float) -> None:
        """Apply whatever fell due by ``now``. Every operation that can observe time calls
        this first; products and devices alone have nothing that falls due, the world's
        applications do (:meth:`provisioner.emulator.world.World.advance`)."""

    # --- products -------------------------------------------------------------------------

    def create_product(
        self,
        now: float,
        name: str,
        node_type: int,
        *,
        aliyun_commodity_code: str = "iothub",
        data_format: int | None = None,
        description: str | None = None,
        protocol_type: str | None = None,
        net_type: str | None = None,
        auth_type: str = "secret",
        category_key: str | None = None,
        publish_auto: bool | None = None,
        validate_type: int | None = None,
        resource_group_id: str | None = None,
        join_permission_id: str | None = None,
    ) -> Product:
        """CreateProduct with the checks the reference documents (seeds 001 4.7.1 and 003).

        The options the reference calls available only for ``iothub_senior`` (DataFormat,
        ProtocolType, CategoryKey) are accepted and dropped for a Basic product, as the
        service does not return them for one; their values are still checked.
        """
        check_product_options(
            name,
            node_type,
            aliyun_commodity_code=aliyun_commodity_code,
            data_format=data_format,
            description=description,
            protocol_type=protocol_type,
            net_type=net_type,
            auth_type=auth_type,
            validate_type=validate_type,
            join_permission_id=join_permission_id,
        )
        if name in self.product_names:
            raise BusinessError(
                "iot.prod.AlreadyExistedProductName", "The product name already exists."
            )
        if len(self.products) >= _MAX_PRODUCTS:
            raise BusinessError("iot.prod.ProductCountExceedMax", "Up to 1,000 products.")
        key = "a1" + random_alnum(self.rng, 9)
        while key in self.products:
            key = "a1" + random_alnum(self.rng, 9)
        senior = aliyun_commodity_code == "iothub_senior"
        if net_type is None and protocol_type is None:
            net_type = "WIFI"  # the documented default for devices that connect directly
        product = Product(
            product_key=key,
            product_name=name,
            node_type=node_type,
            product_secret=secret_alnum(16),
            created_at=now,
            aliyun_commodity_code=aliyun_commodity_code,
            data_format=data_format if senior else None,
            description=description,
            protocol_type=protocol_type if senior else None,
            net_type=net_type,
            auth_type=auth_type,
            category_key=category_key if senior else None,
            publish_auto=True if publish_auto is None else publish_auto,
            validate_type=1 if validate_type is None else validate_type,
            resource_group_id=resource_group_id,
        )
        self.products[key] = product
        self.product_names[name] = key
        if self.listener is not None:
            self.listener.product_saved(product)
        return product

    def product(self, product_key: str) -> Product:
        product = self.products.get(product_key)
        if product is None:
            raise BusinessError(
                "iot.prod.NotExistedProduct", "The specified product does not exist."
            )
        return product

    # --- single devices -------------------------------------------------------------------

    def _new_device(
        self,
        product: Product,
        name: str,
        now: float,
        *,
        secret: str | None = None,
        nickname: str | None = None,
        sn: str | None = None,
    ) -> Device:
        device = self._build_device(product, name, now, secret=secret, nickname=nickname, sn=sn)
        self._file(product, device)
        return device

    def _build_device(
        self,
        product: Product,
        name: str,
        now: float,
        *,
        secret: str | None = None,
        nickname: str | None = None,
        sn: str | None = None,
    ) -> Device:
        """A new device with its identifiers, not yet in the product."""
        iot_id = random_alnum(self.rng, 20) + "000100"
        while iot_id in self.devices_by_iot_id:
            iot_id = random_alnum(self.rng, 20) + "000100"
        return Device(
            iot_id=iot_id,
            product_key=product.product_key,
            device_name=name,
            device_secret=secret if secret is not None else secret_alnum(32),
            created_at=now,
            nickname=nickname,
            sn=sn,
        )

    def _file(self, product: Product, device: Device) -> None:
        """Make ``device`` part of ``product``."""
        product.devices[device.device_name] = device
        self.devices_by_iot_id[device.iot_id] = device

    def _add_one(self, product: Product, name: str, now: float, **extra: str | None) -> Device:
        if name in product.devices:
            raise BusinessError(
                "iot.device.AlreadyExistedDeviceName", "The DeviceName already exists."
            )
        device = self._new_device(product, name, now, **extra)
        if self.listener is not None:
            self.listener.devices_created([device])
        return device

    def import_device(
        self,
        now: float,
        product_key: str,
        name: str,
        secret: str,
        *,
        nickname: str | None = None,
        sn: str | None = None,
    ) -> Device:
        self.advance(now)
        product = self.product(product_key)
        _require_valid_name(name)
        for problem in (
            naming.device_secret_problem(secret),
            naming.nickname_problem(nickname, min_length=1) if nickname is not None else None,
            naming.sn_problem(sn) if sn is not None else None,
        ):
            if problem is not None:
                raise BusinessError("iot.common.InvalidFormattedParameter", problem)
        return self._add_one(product, name, now, secret=secret, nickname=nickname, sn=sn)

    def register_device(
        self, now: float, product_key: str, name: str | None, *, nickname: str | None = None
    ) -> Device:
        self.advance(now)
        product = self.product(product_key)
        if name is None:
            name = random_alnum(self.rng, 20)
            while name in product.devices:
                name = random_alnum(self.rng, 20)
        _require_valid_name(name)
        if nickname is not None:
            problem = naming.nickname_problem(nickname)
            if problem is not None:
                raise BusinessError("iot.common.InvalidFormattedParameter", problem)
        return self._add_one(product, name, now, nickname=nickname)

    def find_device(
        self,
        now: float,
        *,
        iot_id: str | None = None,
        product_key: str | None = None,
        name: str | None = None,
    ) -> Device:
        """By IotId, or by ProductKey and DeviceName."""
        self.advance(now)
        device: Device | None
        if iot_id:
            device = self.devices_by_iot_id.get(iot_id)
        else:
            if not product_key:
                raise BusinessError("iot.prod.NullProductKey", "ProductKey or IotId is required.")
            if not name:
                raise BusinessError("iot.device.NullDeviceName", "DeviceName or IotId is required.")
            device = self.product(product_key).devices.get(name)
        if device is None:
            raise BusinessError("iot.device.NotExistedDevice", "The device does not exist.")
        return device

    def existing_devices(self, now: float, product_key: str, names: Iterable[str]) -> list[Device]:
        """BatchQueryDeviceDetail: the named devices that exist, in the order asked."""
        self.advance(now)
        product = self.product(product_key)
        return [product.devices[n] for n in names if n in product.devices]


def _require_valid_name(name: str) -> None:
    problem = naming.device_name_problem(name)
    if problem is not None:
        raise BusinessError("iot.device.InvalidFormattedDeviceName", problem)
