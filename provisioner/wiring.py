"""The one place that builds the parts of a run from settings.

Commands and library calls never construct a journal, a rate limiter, an API client or
a credentials writer themselves: they ask here. A new backend (a Redis limiter, a
PostgreSQL journal) plugs in here and nowhere else.

* :func:`open_journal`: the journal named by ``--journal`` / ``PROVISIONER_JOURNAL``.
* :func:`limiter`: the rate limiter shared by every client of a run (one budget per
  AccessKey and operation).
* :func:`clients`: a run's two clients on one limiter: one retries transient errors,
  the other sends once (for calls that create something; see
  :func:`~provisioner.api.retry.submit`).
* :func:`client`: one client for a single command (``product``, ``export``).
* :func:`writer`: the encrypted, atomic credentials writer.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import httpx

from provisioner.api import IotClient, RetryPolicy, SlidingWindowLimiter
from provisioner.api.limits import QPS_MARGIN, Limiter
from provisioner.config import ApiSettings
from provisioner.journal import open_journal
from provisioner.output import OUTPUT_COLUMNS, CredentialWriter, Encryption, OutputFormat

__all__ = ["client", "clients", "limiter", "open_journal", "writer"]


def limiter(api: ApiSettings, *, margin: float = QPS_MARGIN) -> Limiter:
    """The rate limiter of one process for ``api``'s AccessKey."""
    return SlidingWindowLimiter(api.credentials.access_key_id, scale=api.qps_scale, margin=margin)


@asynccontextmanager
async def clients(
    api: ApiSettings,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    margin: float = QPS_MARGIN,
) -> AsyncIterator[tuple[IotClient, IotClient]]:
    """A run's two clients on one limiter: one retries, one sends once."""
    shared = limiter(api, margin=margin)
    retry = RetryPolicy(max_attempts=api.max_attempts, max_total_seconds=api.max_retry_seconds)
    once = RetryPolicy(max_attempts=1, max_total_seconds=api.max_retry_seconds)
    async with (
        IotClient(api, transport=transport, limiter=shared, retry=retry) as retrying,
        IotClient(api, transport=transport, limiter=shared, retry=once) as sending,
    ):
        yield retrying, sending


@asynccontextmanager
async def client(
    api: ApiSettings, *, transport: httpx.AsyncBaseTransport | None = None
) -> AsyncIterator[IotClient]:
    """One retrying client with its own limiter (a command that is not a run)."""
    async with IotClient(api, transport=transport, limiter=limiter(api)) as one:
        yield one


def writer(
    out: Path,
    encryption: Encryption,
    *,
    fmt: OutputFormat = "csv",
    columns: Sequence[str] = OUTPUT_COLUMNS,
    force: bool = False,
) -> CredentialWriter:
    """The credentials writer: encrypted in memory, a private temporary file, renamed
    into place only by ``commit``."""
    return CredentialWriter(out, encryption, fmt=fmt, columns=columns, force=force)
