"""The process entry point: signals first, then the command line.

Installed before anything heavy is imported, so a Ctrl-C in the first fraction of a
second (while polars loads) ends with the same one line as one during a run, never a
traceback. SIGTERM (systemd stopping a unit, a cron timeout, ``kill``) is handled
like SIGINT: the run in progress is cancelled, its temporary output removed, its lease
released and its journal left consistent; then one line says that nothing was lost
and which command carries on. Exit codes: 130 after SIGINT, 143 after SIGTERM (128 +
the signal number, as a shell reports them).
"""

from __future__ import annotations

import os
import signal
import sys
from types import FrameType

__all__ = ["EXIT_SIGINT", "EXIT_SIGTERM", "main"]

EXIT_SIGINT = 128 + signal.SIGINT
EXIT_SIGTERM = 128 + signal.SIGTERM

_received: list[int] = []


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    """SIGTERM while a command works: unwind exactly as for SIGINT."""
    # Hand over to whatever handles SIGINT now (asyncio's runner while a run works,
    # which cancels the main task; Python's default otherwise, which raises
    # KeyboardInterrupt), so that both signals unwind through the same code.
    _received.append(signum)
    handler = signal.getsignal(signal.SIGINT)
    if callable(handler):
        handler(signal.SIGINT, frame)
    else:
        raise KeyboardInterrupt


def _stopped() -> int:
    """The one line a stop prints, and the exit code."""
    from provisioner.stopping import resume_hint

    term = _received[0] == signal.SIGTERM if _received else False
    name = "SIGTERM" if term else "SIGINT (Ctrl-C)"
    hint = resume_hint()
    carry_on = f"; carry on with `{hint}`" if hint else ""
    sys.stderr.write(f"stopped by {name}: nothing was lost{carry_on}\n")
    return EXIT_SIGTERM if term else EXIT_SIGINT


def _defer(signum: int, frame: FrameType | None) -> None:
    _received.append(signum)


def _late(signum: int, frame: FrameType | None) -> None:
    """A signal after the command decided its answer changes nothing."""


def _quiet(handler: signal._HANDLER) -> None:
    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)


def _command() -> int:
    from provisioner.cli import main as cli_main

    if _received:  # stopped while the CLI was imported
        return EXIT_SIGINT
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        cli_main()
        return 0
    except SystemExit as exc:
        if exc.code is None or isinstance(exc.code, int):
            return exc.code or 0
        sys.stderr.write(f"{exc.code}\n")
        return 1
    finally:
        _quiet(_late)


def _run() -> int:
    # While the CLI is imported a signal is only noted: an exception raised inside an
    # import (or a callback the import machinery runs) would print a traceback.
    _quiet(_defer)
    try:
        code = _command()
    except KeyboardInterrupt:
        code = EXIT_SIGINT
    # typer turns a KeyboardInterrupt into exit 130 without a word.
    if _received or code == EXIT_SIGINT:
        return _stopped()
    return code


def main() -> None:
    """Console-script entry point of ``provisioner``."""
    code = _run()
    if code in (EXIT_SIGINT, EXIT_SIGTERM):
        # Everything has unwound (output removed, lease released). CPython remembers a
        # KeyboardInterrupt that passed through any eval() (typer evaluates annotations)
        # and would end the process by SIGINT instead of this code: leave directly.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)
