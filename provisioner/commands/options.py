"""The options of the commands, each declared once, in groups, and the decorator that adds them.

An option group is a frozen dataclass whose fields are typer options (an ``Annotated``
type and a default). A command asks for a group with a parameter annotated with the
group's class (``api: ApiOptions``); :func:`with_groups` puts the group's options in that
parameter's place, so ``--help`` lists them where the command has them, and calls the
command with one instance of the group. The groups turn their values into what the
library takes (:meth:`ApiOptions.settings`, :meth:`EncryptionOptions.encryption`,
:meth:`EncryptionOptions.recorded`). Options that stand alone in several commands
(``--journal``, ``--format``, ``--force``, ``--product-key``, ``--out``) are aliases here.
:func:`with_groups` also sets up logging (:func:`provisioner.log.setup_logging`), once,
before the command's body runs: it is the only caller.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, ClassVar, get_type_hints

import typer

from provisioner.config import ApiSettings, load_api_settings
from provisioner.log import LogFormat, setup_logging
from provisioner.output import Encryption, load_encryption
from provisioner.products import secret_file_encryption

__all__ = [
    "ApiOptions",
    "ApiOverrides",
    "EncryptionOptions",
    "ExistingChoice",
    "ForceOpt",
    "FormatChoice",
    "FormatOpt",
    "JournalOpt",
    "LogFormatChoice",
    "LogOptions",
    "LostChoice",
    "OptionGroup",
    "OutOpt",
    "ProductKeyOpt",
    "with_groups",
]


class ExistingChoice(StrEnum):
    fail = "fail"
    adopt = "adopt"


class FormatChoice(StrEnum):
    csv = "csv"
    jsonl = "jsonl"
    parquet = "parquet"


class LogFormatChoice(StrEnum):
    console = "console"
    json = "json"


class LostChoice(StrEnum):
    """What to do with BatchRegisterDevice calls whose answer was lost."""

    fail = "fail"
    resubmit = "resubmit"
    abandon = "abandon"


# --- options that stand alone -------------------------------------------------------------

ProductKeyOpt = Annotated[str, typer.Option("--product-key", help="ProductKey of the product.")]
OutOpt = Annotated[Path, typer.Option("--out", help="Encrypted credentials file to write.")]
JournalOpt = Annotated[
    str | None,
    typer.Option(
        "--journal",
        metavar="URL",
        help="Journal file or sqlite:///path (env PROVISIONER_JOURNAL; default "
        "$XDG_STATE_HOME/provisioner/journal.sqlite3).",
    ),
]
FormatOpt = Annotated[
    FormatChoice, typer.Option("--format", help="Plaintext format inside the age file.")
]
ForceOpt = Annotated[bool, typer.Option("--force", help="Replace an existing output file.")]

# In both ApiOptions and ApiOverrides (resume takes these four, not the endpoint).
_InsecureHttpOpt = Annotated[
    bool,
    typer.Option(
        "--insecure-http",
        help="Allow a plain http:// endpoint on another machine: the AccessKey ID, signatures "
        "and device secrets cross the network unencrypted (env PROVISIONER_INSECURE_HTTP=1). "
        "http:// to this machine needs no option.",
    ),
]
_TimeoutOpt = Annotated[
    float | None,
    typer.Option(
        "--timeout",
        metavar="SECONDS",
        min=0.001,
        help="Longest time to keep trying an endpoint from which no answer at all comes; "
        "each attempt waits a third of it (env PROVISIONER_TIMEOUT; default 60).",
    ),
]
_DeadlineOpt = Annotated[
    float | None,
    typer.Option(
        "--deadline",
        metavar="SECONDS",
        min=0.001,
        help="Throttled calls keep waiting for the account's QPS window at most this long "
        "after the command starts calling the API; then the run stops, resumable "
        "(env PROVISIONER_DEADLINE; default none).",
    ),
]
# For compressed rehearsals against an emulator started with --qps-scale.
_QpsScaleOpt = Annotated[float | None, typer.Option("--qps-scale", hidden=True)]


# --- groups -------------------------------------------------------------------------------


class OptionGroup:
    """Base of the option groups: a frozen dataclass whose fields are typer options."""

    __slots__ = ()
    # Declared for mypy: every group is a dataclass (what dataclasses.fields accepts).
    __dataclass_fields__: ClassVar[dict[str, dataclasses.Field[Any]]]


@dataclasses.dataclass(frozen=True, slots=True)
class EncryptionOptions(OptionGroup):
    """How the output is encrypted: age recipients, or a passphrase from the environment."""

    recipient: Annotated[
        list[str] | None,
        typer.Option(
            "--recipient",
            "-r",
            help="age X25519 (age1...) or SSH public key to encrypt to; repeatable.",
        ),
    ] = None
    recipients_file: Annotated[
        Path | None,
        typer.Option("--recipients-file", "-R", help="File of recipients, one per line."),
    ] = None
    passphrase_env: Annotated[
        str | None,
        typer.Option(
            "--passphrase-env",
            metavar="VAR",
            help="Encrypt with the passphrase held in this environment variable.",
        ),
    ] = None

    @property
    def given(self) -> bool:
        """Whether any of the options was given (``resume``: replace the recorded ones)."""
        return bool(self.recipient or self.recipients_file or self.passphrase_env)

    def encryption(self) -> Encryption:
        """The encryption; :class:`~provisioner.errors.UsageError` if none or a bad one."""
        return load_encryption(self.recipient or (), self.recipients_file, self.passphrase_env)

    def secret_file(self, out: Path | None) -> Encryption | None:
        """The encryption of a ProductSecret file ``out`` (``None``: no file)."""
        return secret_file_encryption(
            out, self.recipient or (), self.recipients_file, self.passphrase_env
        )

    def recorded(self) -> dict[str, Any]:
        """What the journal keeps to rebuild the encryption on ``resume``: public keys, a
        path and a variable *name*, never a passphrase."""
        return {
            "recipients": list(self.recipient or ()),
            "recipients_file": str(self.recipients_file.absolute())
            if self.recipients_file
            else None,
            "passphrase_env": self.passphrase_env,
        }


@dataclasses.dataclass(frozen=True, slots=True)
class ApiOverrides(OptionGroup):
    """How to call the API, without where: what ``resume`` may change of a recorded run."""

    insecure_http: _InsecureHttpOpt = False
    timeout: _TimeoutOpt = None
    deadline: _DeadlineOpt = None
    qps_scale: _QpsScaleOpt = None

    @property
    def given(self) -> bool:
        return (
            self.qps_scale is not None
            or self.timeout is not None
            or self.deadline is not None
            or self.insecure_http
        )

    def overrides(self) -> dict[str, Any]:
        """Keyword arguments of :func:`~provisioner.config.load_api_settings`; ``None``
        leaves each to the environment (so does a ``--insecure-http`` not given)."""
        return {
            "qps_scale": self.qps_scale,
            "timeout": self.timeout,
            "deadline": self.deadline,
            "insecure_http": self.insecure_http or None,
        }


@dataclasses.dataclass(frozen=True, slots=True)
class ApiOptions(OptionGroup):
    """Where and how to call the API. The credentials come from the environment only."""

    endpoint: Annotated[
        str | None, typer.Option("--endpoint", help="API endpoint (env PROVISIONER_ENDPOINT).")
    ] = None
    region: Annotated[
        str | None, typer.Option("--region", help="Region id (env PROVISIONER_REGION).")
    ] = None
    iot_instance_id: Annotated[
        str | None,
        typer.Option(
            "--iot-instance-id", help="IoT instance id (env PROVISIONER_IOT_INSTANCE_ID)."
        ),
    ] = None
    insecure_http: _InsecureHttpOpt = False
    timeout: _TimeoutOpt = None
    deadline: _DeadlineOpt = None
    qps_scale: _QpsScaleOpt = None

    def settings(self) -> ApiSettings:
        """The API settings: these options, then the environment, then the defaults;
        :class:`~provisioner.errors.UsageError` naming what to set or fix."""
        overrides = ApiOverrides(self.insecure_http, self.timeout, self.deadline, self.qps_scale)
        return load_api_settings(
            endpoint=self.endpoint,
            region=self.region,
            iot_instance_id=self.iot_instance_id,
            **overrides.overrides(),
        )


@dataclasses.dataclass(frozen=True, slots=True)
class LogOptions(OptionGroup):
    """``--log-format``; without it the rule of :func:`provisioner.log.setup_logging`."""

    log_format: Annotated[
        LogFormatChoice | None,
        typer.Option("--log-format", help="Log lines for people or machines (default: by TTY)."),
    ] = None

    @property
    def fmt(self) -> LogFormat | None:
        return self.log_format.value if self.log_format is not None else None


# --- the decorator ------------------------------------------------------------------------

_KEYWORD = inspect.Parameter.KEYWORD_ONLY


def _is_group(annotation: object) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, OptionGroup)


def _group_parameters(group: type[OptionGroup]) -> list[inspect.Parameter]:
    """The group's fields as the parameters typer reads (``Annotated`` type, default)."""
    hints = get_type_hints(group, include_extras=True)
    return [
        inspect.Parameter(
            field.name,
            _KEYWORD,
            default=inspect.Parameter.empty
            if field.default is dataclasses.MISSING
            else field.default,
            annotation=hints[field.name],
        )
        for field in dataclasses.fields(group)
    ]


def with_groups(
    *, progress_bars: bool = False
) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Make a command of a function whose parameters may be option groups.

    Each parameter annotated with an :class:`OptionGroup` subclass is replaced, in its
    place, by the group's options; the command is called with one instance of the
    group under the parameter's name. Typer reads a command's parameters with
    :func:`inspect.signature` and :func:`typing.get_type_hints` (``typer.utils.
    get_params_from_function``), so the wrapper carries the expanded ``__signature__``
    and ``__annotations__``, the types already resolved. Its parameters are all
    keyword-only: typer passes them by name. Commands begin with ``*`` for the same
    reason: a group, which has no default, may then stand after options that have one.

    Before the command's body, logging is set up (:func:`provisioner.log.setup_logging`)
    from its :class:`LogOptions` group, or by the default rule when it has none;
    ``progress_bars``: the command draws progress bars on a terminal.
    """

    def decorate(command: Callable[..., None]) -> Callable[..., None]:
        hints = get_type_hints(command, include_extras=True)
        groups: dict[str, type[OptionGroup]] = {}
        parameters: list[inspect.Parameter] = []
        for name, parameter in inspect.signature(command).parameters.items():
            annotation = hints.get(name, parameter.annotation)
            if _is_group(annotation):
                groups[name] = annotation
                parameters.extend(_group_parameters(annotation))
            else:
                parameters.append(parameter.replace(kind=_KEYWORD, annotation=annotation))
        names = [parameter.name for parameter in parameters]
        clashes = sorted({name for name in names if names.count(name) > 1})
        if clashes:
            raise TypeError(f"{command.__qualname__}: options declared twice: {clashes}")
        fields = {
            name: [field.name for field in dataclasses.fields(group)]
            for name, group in groups.items()
        }
        log_groups = [name for name, group in groups.items() if issubclass(group, LogOptions)]

        @functools.wraps(command)
        def wrapper(**values: Any) -> None:
            for name, group in groups.items():
                values[name] = group(**{field: values.pop(field) for field in fields[name]})
            if log_groups:
                logs: LogOptions = values[log_groups[0]]
                setup_logging(logs.fmt, progress_bars=progress_bars)
            else:
                setup_logging(unless_configured=True)
            command(**values)

        wrapper.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
            parameters, return_annotation=hints.get("return", inspect.Signature.empty)
        )
        wrapper.__annotations__ = {p.name: p.annotation for p in parameters} | {
            "return": hints.get("return")
        }
        return wrapper

    return decorate
