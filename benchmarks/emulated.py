"""A `provisioner emulator` process at the real QPS limits for the benchmarks: started on
a free port with `--latency-ms 100`, a product created, stopped on exit."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import anyio
import httpx

from provisioner.api import IotClient
from provisioner.config import load_api_settings

KEY_ID, KEY_SECRET = "bench-key", "bench-secret-value"


@dataclass(frozen=True)
class Emulated:
    url: str
    env: dict[str, str]
    product_key: str

    def stats(self) -> dict[str, object]:
        return dict(httpx.get(f"{self.url}/_emulator/stats").json())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_up(url: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            httpx.get(f"{url}/_emulator/stats", timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.05)
    raise SystemExit("the emulator did not start")


async def _create_product(env: dict[str, str]) -> str:
    async with IotClient(load_api_settings(env=env)) as client:
        return (await client.create_product("bench_product", 0)).product_key


@contextmanager
def emulator(work: Path) -> Iterator[Emulated]:
    """The emulator process, with the environment a CLI run against it needs."""
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "ALIBABA_CLOUD_ACCESS_KEY_ID": KEY_ID,
        "ALIBABA_CLOUD_ACCESS_KEY_SECRET": KEY_SECRET,
        "PROVISIONER_ENDPOINT": url,
        "PROVISIONER_JOURNAL": str(work / "journal.sqlite3"),
    }
    process = subprocess.Popen(
        # The account comes from the environment: a secret on a command line shows in `ps`.
        [sys.executable, "-m", "provisioner", "emulator", "--port", str(port),
         "--latency-ms", "100"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
    )  # fmt: skip
    try:
        _wait_up(url)
        yield Emulated(url, env, anyio.run(_create_product, env))
    finally:
        process.terminate()
        process.wait(10)
