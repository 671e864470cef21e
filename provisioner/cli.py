"""The ``provisioner`` command line: options -> settings -> one library call -> exit code.

Each command only turns options into settings, calls one library function and turns
its result or error into a message and an exit code (see ``errors.py`` for the codes).
No command prints a traceback for an error an operator can cause. The commands live in
:mod:`provisioner.commands`; each sets up its own logging, once, before it runs
(:func:`provisioner.commands.options.with_groups`), so the root sets up nothing.
"""

from __future__ import annotations

import os
import sys

import typer

from provisioner import __version__
from provisioner.commands.emulator import emulator_command
from provisioner.commands.importing import import_command
from provisioner.commands.keys import decrypt_command, keygen_command
from provisioner.commands.product import product_app
from provisioner.commands.register import register_random_command
from provisioner.commands.run import export_command, resume_command, run_command, status_command
from provisioner.commands.validate import validate_command
from provisioner.errors import EXIT_FAILED, ProvisionerError

__all__ = ["app", "main"]

app = typer.Typer(
    name="provisioner",
    help="Bulk device provisioning for Alibaba Cloud IoT Platform.",
    no_args_is_help=True,
    add_completion=False,
    # Rich tracebacks show local variables, which may hold secrets: never enable them.
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"provisioner {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Bulk device provisioning for Alibaba Cloud IoT Platform.

    Exit codes: 0 done; 1 failed, can be resumed; 2 usage error; 3 input rejected,
    nothing sent; 4 finished, but some devices were not provisioned; 130 stopped by
    SIGINT (Ctrl-C), 143 stopped by SIGTERM (nothing lost; the same command resumes).
    """


app.command(
    "validate",
    help="Check an input file against the naming rules; no network. Exit 0 all valid, 3 otherwise.",
)(validate_command)
app.command(
    "run",
    help="Provision the devices of an input file; write their credentials encrypted.",
)(run_command)
app.command(
    "register-random",
    help="Register devices with server-chosen names; write their credentials encrypted.",
)(register_random_command)
app.command(
    "import",
    help="Import devices with their existing secrets (migrations); write credentials encrypted.",
)(import_command)
app.command("resume", help="Resume an unfinished run by its id.")(resume_command)
app.command("status", help="List runs, or show one run's chunks and states.")(status_command)
app.command(
    "export",
    help="Re-export the credentials of an existing application into an encrypted file.",
)(export_command)
app.command(
    "keygen",
    help="Create an age identity file (mode 0600) and print its recipient (age1...).",
)(keygen_command)
app.command(
    "decrypt",
    help="Decrypt an output file with an identity or passphrase; to stdout unless --out.",
)(decrypt_command)
app.command(
    "emulator",
    help="Serve a local emulator of the IoT Platform API (for rehearsals and tests).",
)(emulator_command)
app.add_typer(
    product_app,
    name="product",
    help="Create a product (CreateProduct) or show one (QueryProduct).",
)


def main() -> None:
    """Console-script entry point: run the app, turn library errors into exit codes."""
    try:
        app(standalone_mode=True)
    except ProvisionerError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except Exception as exc:
        if os.environ.get("PROVISIONER_DEBUG"):
            raise
        typer.echo(
            f"internal error: {type(exc).__name__}; set PROVISIONER_DEBUG=1 to see the traceback",
            err=True,
        )
        sys.exit(EXIT_FAILED)
