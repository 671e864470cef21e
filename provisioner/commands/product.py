"""``provisioner product create`` and ``provisioner product show`` (registered in ``cli.py``).

Options -> a checked :class:`~provisioner.products.ProductSpec` (no network, not even
credentials, until it passes) -> one library call -> message and exit code. ``create``
prints only the ProductKey on stdout, so ``PK=$(provisioner product create ...)`` works;
what happened to the ProductSecret is said on stderr. ``show`` prints the product's
fields, never its secret: a table on a terminal, ``field<TAB>value`` lines otherwise
(header line first), or JSON with ``--json``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import anyio
import typer
from rich.console import Console

from provisioner.api.models import Product
from provisioner.commands.common import (
    DeadlineOpt,
    EndpointOpt,
    ForceOpt,
    InsecureHttpOpt,
    InstanceOpt,
    LogFormatChoice,
    LogFormatOpt,
    PassphraseEnvOpt,
    QpsScaleOpt,
    RecipientOpt,
    RecipientsFileOpt,
    RegionOpt,
    TimeoutOpt,
    guard,
    print_table,
)
from provisioner.config import ApiSettings, load_api_settings
from provisioner.log import configure_logging
from provisioner.output import Encryption
from provisioner.products import (
    AUTH_TYPES,
    NET_TYPES,
    PROTOCOL_TYPES,
    CreatedProduct,
    ProductSpec,
    create_product,
    parse_spec,
    product_document,
    product_rows,
    secret_file_encryption,
    show_product,
)

__all__ = ["create_command", "product_app", "show_command"]

product_app = typer.Typer(
    help="Create a product (CreateProduct) or show one (QueryProduct).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

SecretOutOpt = Annotated[
    Path | None,
    typer.Option(
        "--out",
        metavar="FILE",
        help="Save the ProductSecret to FILE, age-encrypted (mode 0600); needs --recipient, "
        "--recipients-file or --passphrase-env.",
        show_default=False,
    ),
]


def _configure_logging(log_format: LogFormatChoice | None) -> None:
    configure_logging(log_format.value if log_format else None)


def _api(
    endpoint: str | None,
    region: str | None,
    iot_instance_id: str | None,
    qps_scale: float | None,
    *,
    insecure_http: bool,
    timeout: float | None,
    deadline: float | None,
) -> ApiSettings:
    return load_api_settings(
        endpoint=endpoint,
        region=region,
        iot_instance_id=iot_instance_id,
        qps_scale=qps_scale,
        timeout=timeout,
        deadline=deadline,
        insecure_http=insecure_http or None,
    )


@product_app.command("create")
def create_command(
    name: Annotated[
        str,
        typer.Option(
            "--name",
            help="ProductName: 4-30 characters of letters, digits and _ (a Chinese character "
            "counts as two); unique in the instance.",
            show_default=False,
        ),
    ],
    node_type: Annotated[
        str,
        typer.Option("--node-type", metavar="0|1", help="0 device, 1 gateway.", show_default=False),
    ],
    commodity_code: Annotated[
        str | None,
        typer.Option(
            "--commodity-code",
            metavar="iothub|iothub_senior",
            help="AliyunCommodityCode: iothub (Basic, the default) or iothub_senior (TSL "
            "models; needs --data-format).",
        ),
    ] = None,
    data_format: Annotated[
        str | None,
        typer.Option(
            "--data-format",
            metavar="0|1",
            help="DataFormat: 1 Alink JSON, 0 custom (with a parsing script). TSL products only.",
        ),
    ] = None,
    description: Annotated[
        str | None,
        typer.Option("--description", help="Description, 1-100 characters."),
    ] = None,
    protocol_type: Annotated[
        str | None,
        typer.Option(
            "--protocol-type",
            metavar="|".join(PROTOCOL_TYPES),
            help="ProtocolType of devices that connect through a gateway (--node-type 0). "
            "TSL products only.",
        ),
    ] = None,
    net_type: Annotated[
        str | None,
        typer.Option(
            "--net-type",
            metavar="|".join(NET_TYPES),
            help="NetType of devices that connect directly, and of gateways (the service's "
            "default: WIFI).",
        ),
    ] = None,
    auth_type: Annotated[
        str | None,
        typer.Option(
            "--auth-type",
            metavar="|".join(AUTH_TYPES),
            help="AuthType (default: secret); id2 and x509 exist only in cn-shanghai.",
        ),
    ] = None,
    category_key: Annotated[
        str | None,
        typer.Option(
            "--category-key",
            help="CategoryKey of a standard category (ListThingTemplates); its TSL model is "
            "used. TSL products only.",
        ),
    ] = None,
    publish_auto: Annotated[
        bool | None,
        typer.Option(
            "--publish-auto/--no-publish-auto",
            help="PublishAuto: publish the TSL model once created (default: publish). "
            "TSL products only.",
            show_default=False,
        ),
    ] = None,
    validate_type: Annotated[
        str | None,
        typer.Option(
            "--validate-type",
            metavar="1|2",
            help="ValidateType of TSL data: 1 weak (default), 2 none. TSL products only.",
        ),
    ] = None,
    resource_group_id: Annotated[
        str | None,
        typer.Option("--resource-group-id", help="ResourceGroupId (rg-...) to put it in."),
    ] = None,
    out: SecretOutOpt = None,
    recipient: RecipientOpt = None,
    recipients_file: RecipientsFileOpt = None,
    passphrase_env: PassphraseEnvOpt = None,
    force: ForceOpt = False,
    endpoint: EndpointOpt = None,
    region: RegionOpt = None,
    iot_instance_id: InstanceOpt = None,
    insecure_http: InsecureHttpOpt = False,
    timeout: TimeoutOpt = None,
    deadline: DeadlineOpt = None,
    log_format: LogFormatOpt = None,
    qps_scale: QpsScaleOpt = None,
) -> None:
    """Create a product; print its ProductKey. Its ProductSecret goes only to --out, encrypted.

    Every option is checked before any call: a refused one exits 2 and nothing is created.
    """
    _configure_logging(log_format)

    def prepare() -> tuple[ProductSpec, Encryption | None, ApiSettings]:
        spec = parse_spec(
            name=name,
            node_type=node_type,
            data_format=data_format,
            commodity_code=commodity_code,
            description=description,
            protocol_type=protocol_type,
            net_type=net_type,
            auth_type=auth_type,
            category_key=category_key,
            publish_auto=publish_auto,
            validate_type=validate_type,
            resource_group_id=resource_group_id,
        )
        encryption = secret_file_encryption(out, recipient or (), recipients_file, passphrase_env)
        api = _api(
            endpoint,
            region,
            iot_instance_id,
            qps_scale,
            insecure_http=insecure_http,
            timeout=timeout,
            deadline=deadline,
        )
        return spec, encryption, api

    spec, encryption, api = guard(prepare)

    def go() -> CreatedProduct:
        return anyio.run(
            lambda: create_product(spec, api, out=out, encryption=encryption, force=force)
        )

    created = guard(go)
    typer.echo(created.product_key)
    if created.secret_file is not None:
        where = f"its ProductSecret is in {created.secret_file} (age-encrypted, mode 0600)"
    else:
        where = (
            "its ProductSecret was not saved; to save it encrypted, run "
            f"`provisioner product show {created.product_key} --out FILE --recipient age1...`"
        )
    typer.echo(f"created product {created.product_name} ({created.product_key}); {where}", err=True)


@product_app.command("show")
def show_command(
    product_key: Annotated[
        str,
        typer.Argument(
            metavar="PRODUCT_KEY", help="ProductKey of the product.", show_default=False
        ),
    ],
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON object (API field names).")
    ] = False,
    out: SecretOutOpt = None,
    recipient: RecipientOpt = None,
    recipients_file: RecipientsFileOpt = None,
    passphrase_env: PassphraseEnvOpt = None,
    force: ForceOpt = False,
    endpoint: EndpointOpt = None,
    region: RegionOpt = None,
    iot_instance_id: InstanceOpt = None,
    insecure_http: InsecureHttpOpt = False,
    timeout: TimeoutOpt = None,
    deadline: DeadlineOpt = None,
    log_format: LogFormatOpt = None,
    qps_scale: QpsScaleOpt = None,
) -> None:
    """Show a product's fields (QueryProduct), never its secret.

    --out saves the ProductSecret to an age-encrypted file instead.
    """
    _configure_logging(log_format)

    def prepare() -> tuple[Encryption | None, ApiSettings]:
        encryption = secret_file_encryption(out, recipient or (), recipients_file, passphrase_env)
        api = _api(
            endpoint,
            region,
            iot_instance_id,
            qps_scale,
            insecure_http=insecure_http,
            timeout=timeout,
            deadline=deadline,
        )
        return encryption, api

    encryption, api = guard(prepare)

    def go() -> Product:
        return anyio.run(
            lambda: show_product(product_key, api, out=out, encryption=encryption, force=force)
        )

    product = guard(go)
    if as_json:
        typer.echo(json.dumps(product_document(product), ensure_ascii=False, sort_keys=False))
    else:
        rows = [list(row) for row in product_rows(product)]
        print_table(Console(), ("field", "value"), rows)
    if out is not None:
        typer.echo(f"ProductSecret saved to {out} (age-encrypted, mode 0600)", err=True)
