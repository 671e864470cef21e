"""``provisioner keygen`` and ``provisioner decrypt``: the keys of the encrypted output.

``keygen`` writes an age identity (age-keygen format, mode 0600) and prints its public key,
the value to pass as ``--recipient``. ``decrypt`` reads an output file back with an
identity file or a passphrase from the environment, to stdout by default. The standard
``age`` CLI does the same (``age -d -i identity.txt out.csv.age``). ``decrypt --excel-safe``
prefixes every CSV cell that a spreadsheet would run as a formula with ``'``
(:mod:`provisioner.output.spreadsheet`); it is opt-in because valid DeviceNames may start
with ``-`` or ``@``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from provisioner.commands.common import guard
from provisioner.commands.options import with_groups
from provisioner.errors import UsageError
from provisioner.output import (
    atomic_file,
    decrypt_to,
    generate_identity,
    load_encryption,
    load_identities,
)

__all__ = ["decrypt_command", "decrypt_file", "keygen_command"]


@with_groups()
def keygen_command(
    out: Annotated[
        Path,
        typer.Option(
            "--out",
            help="Where to write the identity (private key). Keep it secret and backed up.",
            metavar="FILE",
            show_default=False,
        ),
    ],
    force: Annotated[
        bool,
        typer.Option("--force", help="Replace FILE if it exists (the old key is lost)."),
    ] = False,
) -> None:
    """Create an age identity; print its public key, the value for --recipient."""
    recipient = guard(lambda: generate_identity(out, force=force))
    typer.echo(recipient)
    typer.echo(
        f"identity written to {out} (mode 0600); keep it secret: it decrypts the output",
        err=True,
    )


def decrypt_file(
    path: Path,
    *,
    identity: Path | None,
    passphrase_env: str | None,
    out: Path | None,
    force: bool = False,
    excel_safe: bool = False,
) -> None:
    """Decrypt ``path`` to ``out`` (atomically, mode 0600) or to stdout when ``out`` is None.

    ``excel_safe``: neutralise formula-like cells of the (CSV) plaintext.

    Raises :class:`~provisioner.errors.ProvisionerError` subclasses.
    """
    if (identity is None) == (passphrase_env is None):
        raise UsageError("pass --identity FILE or --passphrase-env VAR (exactly one of them)")
    identities: list[object] = []
    passphrase: str | None = None
    if identity is not None:
        identities = load_identities(identity)
    else:
        passphrase = load_encryption(passphrase_env=passphrase_env).passphrase
    if out is None:
        decrypt_to(
            path,
            typer.get_binary_stream("stdout"),
            identities=identities,
            passphrase=passphrase,
            excel_safe=excel_safe,
        )
        return
    if out.exists() and path.exists() and out.samefile(path):
        raise UsageError("--out must not be the encrypted file itself; choose another --out")
    # Written like every other output: a private temporary file renamed when complete,
    # so a wrong key or a damaged file leaves no half-written plaintext behind.
    with atomic_file(out, force=force) as file:
        decrypt_to(path, file, identities=identities, passphrase=passphrase, excel_safe=excel_safe)


@with_groups()
def decrypt_command(
    path: Annotated[
        Path,
        typer.Argument(help="The encrypted output file.", metavar="FILE", show_default=False),
    ],
    identity: Annotated[
        Path | None,
        typer.Option(
            "--identity",
            "-i",
            help="age identity file (from `provisioner keygen` or age-keygen) "
            "or an unencrypted SSH private key.",
            metavar="KEYFILE",
            show_default=False,
        ),
    ] = None,
    passphrase_env: Annotated[
        str | None,
        typer.Option(
            "--passphrase-env",
            help="Name of the environment variable holding the passphrase.",
            metavar="VAR",
            show_default=False,
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help="Write the plaintext to this file (mode 0600) instead of stdout.",
            metavar="OUT",
            show_default=False,
        ),
    ] = None,
    force: Annotated[
        bool,
        typer.Option("--force", help="Replace OUT if it exists."),
    ] = False,
    excel_safe: Annotated[
        bool,
        typer.Option(
            "--excel-safe",
            help="For CSV opened in a spreadsheet: put a ' before every cell starting with "
            "= + - @ TAB or CR, so it is not run as a formula (DeviceNames may start with - "
            "or @: they change too).",
        ),
    ] = False,
) -> None:
    """Decrypt an output file to stdout, or to --out. The result holds device secrets."""
    guard(
        lambda: decrypt_file(
            path,
            identity=identity,
            passphrase_env=passphrase_env,
            out=out,
            force=force,
            excel_safe=excel_safe,
        )
    )
    if out is not None:
        # Plaintext on disk is the operator's explicit choice; make sure it is a conscious one.
        typer.echo(
            f"warning: {out} holds plaintext device secrets (mode 0600); delete it when done",
            err=True,
        )
