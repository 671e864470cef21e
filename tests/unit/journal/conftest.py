"""Fixtures of the journal contract: one store per backend, opened by ``open_journal``.

A backend is a way to name a fresh, empty journal for one test; adding one (PostgreSQL)
is one more line in :data:`BACKENDS`, and every contract test runs against it too.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from journal_kit import FakeClock, OpenStore

from provisioner.journal import JournalStore, open_journal

#: Backend name -> the location of a fresh journal under the test's temporary directory.
BACKENDS: dict[str, Callable[[Path], str]] = {
    "sqlite": lambda tmp: str(tmp / "state" / "journal.sqlite3"),
}


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(params=sorted(BACKENDS))
def location(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return BACKENDS[request.param](tmp_path)


@pytest.fixture
def open_store(location: str, clock: FakeClock) -> Iterator[OpenStore]:
    """Open (another handle on) the test's journal: ``open_store(pid=..., hostname=...)``."""
    opened: list[JournalStore] = []

    def open_(**kw: Any) -> JournalStore:
        kw.setdefault("clock", clock)
        # An empty environment: PROVISIONER_JOURNAL of the machine running the tests
        # must not choose the journal.
        store = open_journal(location, {}, **kw)
        opened.append(store)
        return store

    yield open_
    for store in opened:
        store.close()


@pytest.fixture
def store(open_store: OpenStore) -> JournalStore:
    return open_store()
