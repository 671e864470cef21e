"""The encrypted credentials file: encryption settings, the streaming writer, the report.

Plaintext credentials never touch the disk: they are encrypted with age in memory and
written to a private (0600) temporary file that is renamed into place on commit.
"""

from __future__ import annotations

from provisioner.output._atomic import (
    atomic_file,
    create_partial,
    discard,
    os_error,
    publish,
)
from provisioner.output.decrypt import decrypt_to, generate_identity
from provisioner.output.encryption import (
    Encryption,
    encrypt_bytes,
    load_encryption,
    load_identities,
    parse_recipient,
)
from provisioner.output.report import report_path, write_json_atomic
from provisioner.output.writer import (
    IMPORT_COLUMNS,
    OUTPUT_COLUMNS,
    OUTPUT_FORMATS,
    CredentialWriter,
    OutputFormat,
    remove_stale_partials,
)

__all__ = [
    "IMPORT_COLUMNS",
    "OUTPUT_COLUMNS",
    "OUTPUT_FORMATS",
    "CredentialWriter",
    "Encryption",
    "OutputFormat",
    "atomic_file",
    "create_partial",
    "decrypt_to",
    "discard",
    "encrypt_bytes",
    "generate_identity",
    "load_encryption",
    "load_identities",
    "os_error",
    "parse_recipient",
    "publish",
    "remove_stale_partials",
    "report_path",
    "write_json_atomic",
]
