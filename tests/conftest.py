"""Shared fixtures: the anyio backend, and logging isolated between tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import structlog


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def _isolated_structlog() -> Iterator[None]:
    # A CLI test configures structlog process-wide (level filter, renderer); without a
    # reset, later tests would see another test's configuration.
    yield
    structlog.reset_defaults()
