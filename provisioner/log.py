"""structlog set-up: console lines on a TTY, JSON lines for machines, secrets redacted.

Events are named (``run.chunk_checked``) and carry key/value fields. Whatever a caller
passes, the redaction processor replaces the value of any field whose name looks like
a secret, so a mistake elsewhere cannot write a DeviceSecret or AccessKey secret to a log.

:func:`configure_logging` is the primitive; :func:`setup_logging` is the rule a command
follows, called once per process by :func:`provisioner.commands.options.with_groups`.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any, Literal, TextIO

import structlog

__all__ = ["LogFormat", "configure_logging", "redact_secrets", "setup_logging"]

LogFormat = Literal["console", "json"]

_SECRET_KEYS = frozenset(
    {
        "devicesecret",
        "device_secret",
        "secret",
        "access_key_secret",
        "accesskeysecret",
        "productsecret",
        "product_secret",
        "signature",
        "authorization",
        "passphrase",
        "password",
        "identity",
    }
)
REDACTED = "[redacted]"


def redact_secrets(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: blank the value of every field named like a secret."""
    for key in list(event_dict):
        if key.lower() in _SECRET_KEYS:
            event_dict[key] = REDACTED
    return event_dict


class _Stderr:
    """Writes to whatever ``sys.stderr`` is at the time of the write.

    Binding the stream object at configuration time would keep writing to a stream
    that a test runner or a redirect has since replaced and closed.
    """

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()

    def isatty(self) -> bool:
        return sys.stderr.isatty()


def configure_logging(
    fmt: LogFormat | None = None,
    *,
    level: int = logging.INFO,
    stream: TextIO | None = None,
    stdlib: bool = False,
) -> None:
    """Configure structlog for the process. ``fmt=None`` picks console on a TTY, else JSON.

    ``stdlib``: JSON lines handed to the standard ``logging`` module (loggers named
    ``provisioner...``) instead of a stream, for a program that uses the library and
    decides itself what to show.
    """
    out: Any = stream if stream is not None else _Stderr()
    if fmt is None:
        fmt = "console" if out.isatty() and not stdlib else "json"
    renderer: Any
    if fmt == "json":
        renderer = structlog.processors.JSONRenderer()
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=out.isatty())
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            redact_secrets,
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=(
            structlog.stdlib.LoggerFactory() if stdlib else structlog.PrintLoggerFactory(file=out)
        ),
        cache_logger_on_first_use=False,
    )


def setup_logging(
    fmt: LogFormat | None = None,
    *,
    progress_bars: bool = False,
    unless_configured: bool = False,
) -> None:
    """The logging of one command: the only place that decides it.

    * ``fmt`` (``--log-format``) chosen: that format, from INFO up.
    * Not chosen, on a terminal, for a command that draws progress bars
      (``progress_bars``): console lines at WARNING only, because the bars tell the story.
    * Otherwise: console lines on a terminal, JSON lines elsewhere, from INFO up.

    ``unless_configured`` (commands without ``--log-format``): leave a configuration that
    is already in place, such as an application's that embeds the commands or a test's
    that captures the events, instead of replacing it.
    """
    if unless_configured and structlog.is_configured():
        return
    if fmt is None and progress_bars and sys.stderr.isatty():
        configure_logging("console", level=logging.WARNING)
    else:
        configure_logging(fmt)
