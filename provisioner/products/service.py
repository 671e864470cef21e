"""CreateProduct and QueryProduct for ``provisioner product``, and the ProductSecret file.

:func:`create_product` makes one CreateProduct call. The ProductSecret it returns goes
only into an age-encrypted file (mode 0600, written atomically) when one is asked for;
it is never logged, printed or put in an exception message. The file is created,
empty and private, *before* the call, so that a path that cannot be written fails
before a product exists whose secret would then have nowhere to go.
:func:`show_product` makes one QueryProduct call and can save the secret the same way.

Refusals the operator can fix (a name in use, an option the service refused, an
unknown ProductKey or instance) become one-line :class:`UsageError` (exit 2).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import httpx
import structlog

from provisioner.api.client import IotClient
from provisioner.api.records import Product, ProductCreated
from provisioner.config import ApiSettings
from provisioner.errors import ApiError, OutputError, ProvisionerError, UsageError
from provisioner.output import Encryption, atomic_file, encrypt_bytes, load_encryption, os_error
from provisioner.products.spec import ProductSpec

__all__ = ["CreatedProduct", "create_product", "secret_file_encryption", "show_product"]

logger = structlog.get_logger(__name__)

_PRODUCT_KEY_RE = re.compile(r"[A-Za-z0-9]{1,64}")

# Codes by which the service refuses an option value: the operator fixes the option.
_REFUSED_OPTION_CODES = frozenset(
    {
        "iot.prod.InvalidFormattedProductName",
        "iot.prod.NullProductName",
        "iot.prod.InvalidNodeType",
        "iot.prod.InvalidAliyunCommodityCode",
        "iot.prod.LongProductDesc",
        "iot.prod.InvalidFormattedCatId",
        "iot.prod.ProductDataFormatIsNull",
        "iot.common.InvalidFormattedParameter",
    }
)
_UNKNOWN_PRODUCT_CODES = frozenset(
    {"iot.prod.NotExistedProduct", "iot.prod.InvalidFormattedProductkey", "iot.prod.NullProductKey"}
)


def secret_file_encryption(
    out: Path | None,
    recipients: Sequence[str] = (),
    recipients_file: Path | None = None,
    passphrase_env: str | None = None,
) -> Encryption | None:
    """How to encrypt the ProductSecret file ``out``; ``None`` when there is no file.

    Encryption options without ``--out`` are refused: the operator would believe the
    secret was saved. Raises :class:`UsageError`.
    """
    wants_encryption = bool(recipients) or recipients_file is not None or passphrase_env
    if out is None:
        if wants_encryption:
            raise UsageError(
                "--recipient, --recipients-file and --passphrase-env encrypt the "
                "ProductSecret file: add --out FILE"
            )
        return None
    return load_encryption(recipients, recipients_file, passphrase_env)


@dataclass(frozen=True, slots=True)
class CreatedProduct:
    """What :func:`create_product` made. Deliberately without the ProductSecret."""

    product_key: str
    product_name: str
    node_type: int
    secret_file: Path | None = None


def _require_encryption(out: Path | None, encryption: Encryption | None) -> None:
    # A ProductSecret is never written in the clear, whichever command writes it.
    if out is not None and encryption is None:
        raise UsageError("the ProductSecret file must be encrypted: pass --recipient or another")


def _secret_document(product_key: str, product_name: str, secret: str) -> bytes:
    record = {"ProductKey": product_key, "ProductName": product_name, "ProductSecret": secret}
    return (json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8")


def _refused(exc: ApiError, what: str) -> UsageError:
    # ``exc.message`` is the server's, with request values already scrubbed by the client.
    return UsageError(f"IoT Platform refused {what}: {exc.code}: {exc.message}; fix the option")


def _create_error(exc: ApiError, spec: ProductSpec, retried: bool) -> UsageError | None:
    """The refusal the operator can act on, or ``None`` to let ``exc`` through as it is."""
    if exc.code == "iot.prod.AlreadyExistedProductName":
        hint = "choose another --name"
        if retried:
            # A retried CreateProduct may have taken effect on an attempt whose answer was lost.
            hint += (
                " (an earlier attempt of this call may have created it before its answer "
                "was lost: look for it in the console)"
            )
        return UsageError(f"a product named {spec.name} already exists in the instance; {hint}")
    if exc.code == "iot.prod.ProductCountExceedMax":
        return UsageError(
            "the instance has the most products allowed (1,000); delete unused products first"
        )
    if exc.code in _REFUSED_OPTION_CODES:
        return _refused(exc, "the product options")
    return _instance_error(exc)


def _instance_error(exc: ApiError) -> UsageError | None:
    if exc.code == "iot.system.InstanceNotFound":
        return UsageError(
            "IoT Platform does not know that instance: check --iot-instance-id "
            "(or PROVISIONER_IOT_INSTANCE_ID)"
        )
    return None


def _check_product_key(product_key: str) -> str:
    key = product_key.strip()
    if not _PRODUCT_KEY_RE.fullmatch(key):
        raise UsageError("PRODUCT_KEY must be the product's ProductKey: letters and digits")
    return key


def _save_secret(
    file: BinaryIO,
    out: Path,
    encryption: Encryption,
    product_key: str,
    name: str,
    secret: str | None,
) -> None:
    if not secret:
        raise OutputError(f"IoT Platform returned no ProductSecret for {product_key}")
    data = encrypt_bytes(_secret_document(product_key, name, secret), encryption)
    try:
        file.write(data)
    except OSError as exc:
        raise os_error(out, exc) from exc


async def _call_create(client: IotClient, spec: ProductSpec) -> ProductCreated:
    try:
        return await client.create_product(
            spec.name,
            spec.node_type,
            data_format=spec.data_format,
            description=spec.description,
            aliyun_commodity_code=spec.commodity_code,
            auth_type=spec.auth_type,
            protocol_type=spec.protocol_type,
            net_type=spec.net_type,
            category_key=spec.category_key,
            publish_auto=spec.publish_auto,
            validate_type=spec.validate_type,
            resource_group_id=spec.resource_group_id,
        )
    except ApiError as exc:
        usage = _create_error(exc, spec, client.retry_stats.retries > 0)
        if usage is None:
            raise
        raise usage from exc


async def _create_and_save(
    client: IotClient, spec: ProductSpec, out: Path, encryption: Encryption, force: bool
) -> ProductCreated:
    created: ProductCreated | None = None
    try:
        with atomic_file(out, force=force) as file:
            created = await _call_create(client, spec)
            name = created.product_name or spec.name
            _save_secret(file, out, encryption, created.product_key, name, created.product_secret)
    except ProvisionerError as exc:
        if created is None:
            raise
        # The product exists now: say which, and how to get its secret after all.
        raise OutputError(
            f"product {created.product_key} was created but its ProductSecret was not saved "
            f"({exc}); save it with `provisioner product show {created.product_key} --out FILE` "
            "and an encryption option"
        ) from exc
    assert created is not None
    return created


async def create_product(
    spec: ProductSpec,
    api: ApiSettings,
    *,
    out: Path | None = None,
    encryption: Encryption | None = None,
    force: bool = False,
    transport: httpx.AsyncBaseTransport | None = None,
) -> CreatedProduct:
    """CreateProduct with ``spec``; the ProductSecret goes only to ``out``, encrypted.

    ``out`` is created (empty, 0600, under a temporary name) before the call and
    published after it, so an unwritable path fails before a product exists. Raises
    :class:`ProvisionerError` subclasses, never with the secret in the message.
    """
    _require_encryption(out, encryption)
    async with IotClient(api, transport=transport) as client:
        if out is None:
            created = await _call_create(client, spec)
        else:
            assert encryption is not None
            created = await _create_and_save(client, spec, out, encryption, force)
    result = CreatedProduct(
        product_key=created.product_key,
        product_name=created.product_name or spec.name,
        node_type=spec.node_type,
        secret_file=out,
    )
    logger.info(
        "product.created",
        product_key=result.product_key,
        product_name=result.product_name,
        node_type=result.node_type,
        commodity_code=spec.commodity_code or "iothub",
        secret_file=str(out) if out is not None else None,
        encryption=encryption.kind if encryption is not None else None,
    )
    return result


async def show_product(
    product_key: str,
    api: ApiSettings,
    *,
    out: Path | None = None,
    encryption: Encryption | None = None,
    force: bool = False,
    transport: httpx.AsyncBaseTransport | None = None,
) -> Product:
    """QueryProduct; with ``out``, also save the ProductSecret there, encrypted.

    The returned :class:`~provisioner.api.records.Product` holds the secret (hidden from
    its ``repr``); show it through :func:`product_rows` / :func:`product_document`.
    """
    key = _check_product_key(product_key)
    _require_encryption(out, encryption)
    async with IotClient(api, transport=transport) as client:

        async def call() -> Product:
            try:
                return await client.query_product(key)
            except ApiError as exc:
                if exc.code in _UNKNOWN_PRODUCT_CODES:
                    raise UsageError(
                        f"no product {key} in this account or instance: check the ProductKey "
                        "(and --iot-instance-id)"
                    ) from exc
                usage = _instance_error(exc)
                if usage is None:
                    raise
                raise usage from exc

        if out is None:
            return await call()
        assert encryption is not None
        with atomic_file(out, force=force) as file:
            product = await call()
            _save_secret(
                file,
                out,
                encryption,
                product.product_key,
                product.product_name,
                product.product_secret,
            )
    logger.info(
        "product.secret_saved",
        product_key=product.product_key,
        secret_file=str(out),
        encryption=encryption.kind,
    )
    return product
