"""Create and inspect IoT Platform products: the library behind ``provisioner product``.

:mod:`~provisioner.products.spec` checks CreateProduct's options in pure code;
:mod:`~provisioner.products.service` makes the calls and keeps the ProductSecret out of
everything but an encrypted file.
"""

from __future__ import annotations

from provisioner.products.service import (
    CreatedProduct,
    create_product,
    secret_file_encryption,
    show_product,
)
from provisioner.products.spec import (
    AUTH_TYPES,
    COMMODITY_CODES,
    DATA_FORMATS,
    NET_TYPE_NAMES,
    NET_TYPES,
    NODE_TYPES,
    PROTOCOL_TYPES,
    VALIDATE_TYPES,
    ProductSpec,
    parse_spec,
    product_document,
    product_rows,
    spec_problems,
)

__all__ = [
    "AUTH_TYPES",
    "COMMODITY_CODES",
    "DATA_FORMATS",
    "NET_TYPES",
    "NET_TYPE_NAMES",
    "NODE_TYPES",
    "PROTOCOL_TYPES",
    "VALIDATE_TYPES",
    "CreatedProduct",
    "ProductSpec",
    "create_product",
    "parse_spec",
    "product_document",
    "product_rows",
    "secret_file_encryption",
    "show_product",
    "spec_problems",
]
