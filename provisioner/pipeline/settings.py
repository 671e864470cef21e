"""Settings of one provisioning run, as a frozen value built by the command line.

:class:`RunSettings` holds what the operator chose; :class:`Tuning` the knobs of the
pipeline (page workers, polling, heartbeat), with defaults sized for the real QPS
table and tests that shrink them. Nothing here holds a secret except through
:class:`~provisioner.config.ApiSettings` and
:class:`~provisioner.output.Encryption`, which keep theirs out of ``repr()``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

from provisioner.api.limits import QPS_MARGIN
from provisioner.config import ApiSettings
from provisioner.errors import UsageError
from provisioner.output import OUTPUT_FORMATS, Encryption, OutputFormat

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "QPS_MARGIN",
    "ExistingPolicy",
    "OutputSettings",
    "ProgressMode",
    "RunSettings",
    "Tuning",
    "check_existing",
    "empty_mapping",
    "product_key_of",
]

DEFAULT_CHUNK_SIZE = 10_000
ExistingPolicy = Literal["fail", "adopt"]
ProgressMode = Literal["auto", "rich", "log", "none"]


@dataclass(frozen=True, slots=True)
class Tuning:
    """How hard the pipeline pushes.

    * ``page_workers``: QueryPageByApplyId requests in flight. 50 QPS with 100 ms of
      latency needs 5; 24 covers half a second of round trip.
    * ``qps_margin``: the rate limiter's safety margin (see :data:`QPS_MARGIN`).
    * ``detail_workers``: QueryDeviceDetail requests in flight (``--existing adopt``).
    * ``import_workers``: ImportDevice requests in flight; 50 QPS with 100 ms of latency
      needs 5, 16 covers 300 ms.
    * ``poll_initial`` / ``poll_fast_seconds`` / ``poll_factor`` / ``poll_max``: an
      application's status is polled every ``poll_initial`` seconds for its first
      ``poll_fast_seconds`` in a state, then backs off by ``poll_factor`` up to
      ``poll_max``. Fast at first on purpose: the time to the first created
      application is the only part of the run the page budget cannot hide, and a
      late poll adds to it directly; a stage that takes minutes is polled gently.
    * ``status_share``: polls of all applications together stay under this share of
      the QueryBatchRegisterDeviceStatus budget (the interval grows with the number of
      applications polling).
    * ``heartbeat_seconds``: how often the lease is renewed.
    * ``create_attempts``: submissions of BatchRegisterDeviceWithApplyId for one
      application, each after asking the status (never blindly twice).
    * ``progress_seconds``: period of the ``run.progress`` log event.
    """

    page_workers: int = 24
    qps_margin: float = QPS_MARGIN
    detail_workers: int = 8
    import_workers: int = 16
    poll_initial: float = 0.1
    poll_fast_seconds: float = 10.0
    poll_factor: float = 1.5
    poll_max: float = 2.0
    status_share: float = 0.5
    heartbeat_seconds: float = 15.0
    create_attempts: int = 8
    create_retry_wait: float = 0.5
    progress_seconds: float = 5.0

    def __post_init__(self) -> None:
        if min(self.page_workers, self.detail_workers, self.import_workers) < 1:
            raise UsageError("page, detail and import workers must be at least 1")
        if self.poll_initial <= 0 or self.poll_max < self.poll_initial:
            raise UsageError("poll intervals must be positive and poll_max >= poll_initial")
        if self.poll_factor < 1:
            raise UsageError("poll factor must be at least 1")
        if not 0 < self.status_share <= 1:
            raise UsageError("status share must be in (0, 1]")
        if self.create_attempts < 1:
            raise UsageError("create attempts must be at least 1")


_PRODUCT_KEY = re.compile(r"[A-Za-z0-9_-]{1,64}")


def product_key_of(text: str) -> str:
    """The ProductKey an operator typed, without the spaces a copy and paste brings;
    :class:`UsageError` if nothing is left or it holds characters no key has."""
    key = text.strip()
    if not key:
        raise UsageError("--product-key is required")
    if not _PRODUCT_KEY.fullmatch(key):
        shown = key if len(key) <= 40 else key[:40] + "…"
        raise UsageError(
            f"malformed --product-key {shown!r}: a ProductKey is letters and digits "
            "(copy it from the console or `provisioner product create`)"
        )
    return key


def empty_mapping() -> Mapping[str, Any]:
    """A read-only empty mapping, the default of option mappings in frozen settings."""
    return MappingProxyType({})


@dataclass(frozen=True, slots=True, kw_only=True)
class OutputSettings:
    """What every kind of run that writes a credentials file is told.

    ``encryption_options`` are the option values the encryption was built from (public
    keys, a recipients file path, the *name* of a passphrase variable): they are
    journaled so ``provisioner resume RUN_ID`` can rebuild it. ``journal`` is a path or
    ``sqlite:///path``; ``None`` means ``PROVISIONER_JOURNAL`` or the default file.
    """

    product_key: str
    out: Path
    fmt: OutputFormat = "csv"
    force: bool = False
    journal: str | None = None
    progress: ProgressMode = "auto"
    encryption_options: Mapping[str, Any] = field(default_factory=empty_mapping)
    tuning: Tuning = field(default_factory=Tuning)

    def __post_init__(self) -> None:
        object.__setattr__(self, "product_key", product_key_of(self.product_key))
        if self.fmt not in OUTPUT_FORMATS:
            raise UsageError(f"unknown --format {self.fmt!r}; choose from csv, jsonl, parquet")


def check_existing(existing: str) -> None:
    """``--existing`` is fail or adopt."""
    if existing not in ("fail", "adopt"):
        raise UsageError(f"--existing must be fail or adopt, got {existing!r}")


@dataclass(frozen=True, slots=True, kw_only=True)
class RunSettings(OutputSettings):
    """One ``provisioner run``. ``encryption`` and ``api`` may be ``None`` only for a
    dry run (it makes no call and writes no output)."""

    input: Path
    encryption: Encryption | None = None
    chunk_size: int = DEFAULT_CHUNK_SIZE
    skip_invalid: bool = False
    existing: ExistingPolicy = "fail"
    dry_run: bool = False
    api: ApiSettings | None = None

    def __post_init__(self) -> None:
        OutputSettings.__post_init__(self)  # (zero-argument super() fails in slotted classes)
        if self.chunk_size < 1:
            raise UsageError(f"--chunk-size must be at least 1, got {self.chunk_size}")
        check_existing(self.existing)
        if not self.dry_run and self.encryption is None:
            raise UsageError(
                "the output must be encrypted: pass --recipient, --recipients-file or "
                "--passphrase-env"
            )
        if not self.dry_run and self.api is None:
            raise UsageError("API settings are required (credentials and endpoint)")
