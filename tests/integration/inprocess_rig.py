"""An emulator in-process (httpx.ASGITransport) with a recording transport, for the
pipeline's integration tests: a product, an age identity and fast tuning.

The recorder can crash the "process" before or after the emulator acts on a chosen
request, so a re-run has to reconcile with the server.
"""

from __future__ import annotations

import csv
import io
import json
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import anyio
import httpx
import pyrage

from provisioner.api import IotClient
from provisioner.config import ApiSettings, Credentials
from provisioner.emulator.app import create_app
from provisioner.emulator.config import EmulatorConfig
from provisioner.output import Encryption
from provisioner.pipeline import RunOutcome, RunSettings, Tuning, provision

FAST = Tuning(
    page_workers=8,
    poll_initial=0.01,
    poll_fast_seconds=5.0,
    poll_max=0.05,
    heartbeat_seconds=0.2,
    create_retry_wait=0.01,
)
SCALE = 20.0


class Crash(Exception):
    """Stands for the process dying: not an error the client or pipeline handles."""


@dataclass
class Recorder(httpx.AsyncBaseTransport):
    """Forwards to the emulator and records (action, ApplyId) of every request that
    took effect (the emulator answered it with a success).

    ``crash(action, n)`` (n = how many requests of that action so far, this one
    included) returns ``"before"`` to die before the emulator sees the request,
    ``"after"`` to die after it acted (the answer is lost), or ``None``.
    """

    inner: httpx.AsyncBaseTransport
    calls: list[tuple[str, str | None]] = field(default_factory=list)
    crash: Callable[[str, int], str | None] | None = None
    counts: Counter[str] = field(default_factory=Counter)
    #: Probability of a dropped connection before, and again after, the emulator acts
    #: (the emulator's own drop faults need a socket; over ASGI they are simulated here).
    drop_rate: float = 0.0
    rng: random.Random = field(default_factory=lambda: random.Random(5))

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        query = parse_qs(request.url.query.decode())
        action = query.get("Action", [""])[0]
        apply_id = query.get("ApplyId", [None])[0]
        self.counts[action] += 1
        when = self.crash(action, self.counts[action]) if self.crash else None
        if when == "before":
            raise Crash(action)
        if self.drop_rate and self.rng.random() < self.drop_rate:
            raise httpx.ConnectError("dropped before", request=request)
        response = await self.inner.handle_async_request(request)
        body = json.loads(await response.aread() or b"{}")
        if response.status_code == 200 and "Code" not in body:
            self.calls.append((action, apply_id))
        if when == "after":
            raise Crash(action)
        if self.drop_rate and self.rng.random() < self.drop_rate:
            raise httpx.RemoteProtocolError("dropped after", request=request)
        return response

    def submits(self, action: str) -> Counter[str | None]:
        return Counter(apply_id for a, apply_id in self.calls if a == action)


@dataclass
class World:
    tmp: Path
    app: Any
    recorder: Recorder
    api: ApiSettings
    product_key: str
    identity: Any
    encryption: Encryption

    @property
    def emulator(self) -> Any:
        return self.app.state.emulator

    def stats(self) -> dict[str, Any]:
        return dict(self.emulator.stats())

    def write_input(self, names: list[str], *, extra: str = "", name: str = "in.csv") -> Path:
        path = self.tmp / name
        lines = ["DeviceName,Nickname"] + [f"{n},nick_{n.replace('-', '_')}" for n in names]
        path.write_text("\n".join(lines) + "\n" + extra)
        return path

    def settings(self, input_path: Path, **kw: Any) -> RunSettings:
        base: dict[str, Any] = {
            "input": input_path,
            "product_key": self.product_key,
            "out": self.tmp / "out.csv.age",
            "encryption": self.encryption,
            "api": self.api,
            "journal": str(self.tmp / "journal.sqlite3"),
            "progress": "none",
            "chunk_size": 500,
            "tuning": FAST,
        }
        base.update(kw)
        return RunSettings(**base)

    def run(self, settings: RunSettings) -> RunOutcome:
        return anyio.run(lambda: provision(settings, transport=self.recorder))

    def decrypt(self, path: Path | None = None) -> list[dict[str, str]]:
        data = (path or self.tmp / "out.csv.age").read_bytes()
        text = pyrage.decrypt(data, [self.identity]).decode()
        return list(csv.DictReader(io.StringIO(text)))


def make_world(tmp_path: Path, **config: Any) -> World:
    options: dict[str, Any] = {
        "check_seconds": 0.05,
        "create_seconds": 0.05,
        "qps_scale": SCALE,
        "seed": 7,
    }
    options.update(config)
    app = create_app(EmulatorConfig(**options))
    recorder = Recorder(httpx.ASGITransport(app=app))
    api = ApiSettings(
        Credentials("testid", "testsecret"), endpoint="http://emulator.test", qps_scale=SCALE
    )

    async def product() -> str:
        async with IotClient(api, transport=recorder) as client:
            return (await client.create_product("PipelineTest", 0)).product_key

    identity = pyrage.x25519.Identity.generate()
    return World(
        tmp=tmp_path,
        app=app,
        recorder=recorder,
        api=api,
        product_key=anyio.run(product),
        identity=identity,
        encryption=Encryption(recipients=(identity.to_public(),)),
    )


def names(n: int, prefix: str = "dev") -> list[str]:
    return [f"{prefix}{i:05d}" for i in range(n)]
