"""``provisioner product create`` and ``provisioner product show`` (registered in ``cli.py``).

Options -> a checked :class:`~provisioner.products.ProductSpec` (no network, not even
credentials, until it passes) -> one library call -> message and exit code. ``create``
prints only the ProductKey on stdout, so ``PK=$(provisioner product create ...)`` works;
what happened to the ProductSecret is said on stderr. ``show`` prints the product's
fields, never its secret: a table on a terminal, ``field<TAB>value`` lines otherwise
(header line first), or JSON with ``--json``.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Annotated

import anyio
import typer
from rich.console import Console

from provisioner.api.records import Product
from provisioner.commands.common import guard, print_table
from provisioner.commands.options import (
    ApiOptions,
    EncryptionOptions,
    ForceOpt,
    LogOptions,
    OptionGroup,
    with_groups,
)
from provisioner.config import ApiSettings
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
    show_product,
)

__all__ = ["ProductSpecOptions", "create_command", "product_app", "show_command"]

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


@dataclasses.dataclass(frozen=True, slots=True)
class ProductSpecOptions(OptionGroup):
    """What ``product create`` makes; :meth:`spec` checks it before any call."""

    name: Annotated[
        str,
        typer.Option(
            "--name",
            help="ProductName: 4-30 characters of letters, digits and _ (a Chinese character "
            "counts as two); unique in the instance.",
            show_default=False,
        ),
    ]
    node_type: Annotated[
        str,
        typer.Option("--node-type", metavar="0|1", help="0 device, 1 gateway.", show_default=False),
    ]
    commodity_code: Annotated[
        str | None,
        typer.Option(
            "--commodity-code",
            metavar="iothub|iothub_senior",
            help="AliyunCommodityCode: iothub (Basic, the default) or iothub_senior (TSL "
            "models; needs --data-format).",
        ),
    ] = None
    data_format: Annotated[
        str | None,
        typer.Option(
            "--data-format",
            metavar="0|1",
            help="DataFormat: 1 Alink JSON, 0 custom (with a parsing script). TSL products only.",
        ),
    ] = None
    description: Annotated[
        str | None,
        typer.Option("--description", help="Description, 1-100 characters."),
    ] = None
    protocol_type: Annotated[
        str | None,
        typer.Option(
            "--protocol-type",
            metavar="|".join(PROTOCOL_TYPES),
            help="ProtocolType of devices that connect through a gateway (--node-type 0). "
            "TSL products only.",
        ),
    ] = None
    net_type: Annotated[
        str | None,
        typer.Option(
            "--net-type",
            metavar="|".join(NET_TYPES),
            help="NetType of devices that connect directly, and of gateways (the service's "
            "default: WIFI).",
        ),
    ] = None
    auth_type: Annotated[
        str | None,
        typer.Option(
            "--auth-type",
            metavar="|".join(AUTH_TYPES),
            help="AuthType (default: secret); id2 and x509 exist only in cn-shanghai.",
        ),
    ] = None
    category_key: Annotated[
        str | None,
        typer.Option(
            "--category-key",
            help="CategoryKey of a standard category (ListThingTemplates); its TSL model is "
            "used. TSL products only.",
        ),
    ] = None
    publish_auto: Annotated[
        bool | None,
        typer.Option(
            "--publish-auto/--no-publish-auto",
            help="PublishAuto: publish the TSL model once created (default: publish). "
            "TSL products only.",
            show_default=False,
        ),
    ] = None
    validate_type: Annotated[
        str | None,
        typer.Option(
            "--validate-type",
            metavar="1|2",
            help="ValidateType of TSL data: 1 weak (default), 2 none. TSL products only.",
        ),
    ] = None
    resource_group_id: Annotated[
        str | None,
        typer.Option("--resource-group-id", help="ResourceGroupId (rg-...) to put it in."),
    ] = None

    def spec(self) -> ProductSpec:
        """The checked :class:`~provisioner.products.ProductSpec`; :class:`UsageError` if not."""
        return parse_spec(**dataclasses.asdict(self))


def _secret_file_and_api(
    encryption: EncryptionOptions, api: ApiOptions, out: Path | None
) -> tuple[Encryption | None, ApiSettings]:
    """How to encrypt the ProductSecret file ``out`` (checked first: encryption options
    without ``--out`` are refused) and the API settings."""
    return encryption.secret_file(out), api.settings()


@product_app.command("create")
@with_groups()
def create_command(
    *,
    spec: ProductSpecOptions,
    out: SecretOutOpt = None,
    encryption: EncryptionOptions,
    force: ForceOpt = False,
    api: ApiOptions,
    logs: LogOptions,
) -> None:
    """Create a product; print its ProductKey. Its ProductSecret goes only to --out, encrypted.

    Every option is checked before any call: a refused one exits 2 and nothing is created.
    """
    # The spec first: a refused option is named before credentials or keys are looked at.
    product = guard(spec.spec)
    keys, api_settings = guard(lambda: _secret_file_and_api(encryption, api, out))

    def go() -> CreatedProduct:
        return anyio.run(
            lambda: create_product(product, api_settings, out=out, encryption=keys, force=force)
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
@with_groups()
def show_command(
    *,
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
    encryption: EncryptionOptions,
    force: ForceOpt = False,
    api: ApiOptions,
    logs: LogOptions,
) -> None:
    """Show a product's fields (QueryProduct), never its secret.

    --out saves the ProductSecret to an age-encrypted file instead.
    """
    keys, api_settings = guard(lambda: _secret_file_and_api(encryption, api, out))

    def go() -> Product:
        return anyio.run(
            lambda: show_product(product_key, api_settings, out=out, encryption=keys, force=force)
        )

    product = guard(go)
    if as_json:
        typer.echo(json.dumps(product_document(product), ensure_ascii=False, sort_keys=False))
    else:
        rows = [list(row) for row in product_rows(product)]
        print_table(Console(), ("field", "value"), rows)
    if out is not None:
        typer.echo(f"ProductSecret saved to {out} (age-encrypted, mode 0600)", err=True)
