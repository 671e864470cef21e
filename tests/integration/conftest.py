"""Fixtures of the integration tests: emulators on real sockets."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyrage
import pytest
import structlog
from socket_rig import AK_ID, AK_SECRET, Rig

from provisioner.api import retry as retry_mod
from provisioner.emulator.app import create_app
from provisioner.emulator.config import EmulatorConfig
from provisioner.emulator.serve import running_emulator


@pytest.fixture
def rig_factory(tmp_path: Path) -> Iterator[Any]:
    stack: list[Any] = []

    def make(**config: Any) -> Rig:
        cfg = EmulatorConfig(accounts={AK_ID: AK_SECRET}, seed=3, **config)
        app = create_app(cfg)
        ctx = running_emulator(cfg, app=app)
        url = ctx.__enter__()
        stack.append(ctx)
        emu = app.state.emulator
        pk = emu.world.create_product(time.time(), "socket_product", 0).product_key
        ident = pyrage.x25519.Identity.generate()
        (tmp_path / "tmp").mkdir(exist_ok=True)
        return Rig(emu, url, tmp_path, ident, str(ident.to_public()), pk)

    yield make
    for ctx in reversed(stack):
        ctx.__exit__(None, None, None)


@pytest.fixture
def no_retry_waits() -> Iterator[None]:
    # Logging set up by another test (CliRunner streams are closed after each invoke)
    # must not leak in: start from structlog's defaults. Retries do not wait.
    structlog.reset_defaults()
    with retry_mod.testing():
        yield
    structlog.reset_defaults()
