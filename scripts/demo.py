"""`make run`: the main job end to end on the built-in emulator, in one command.

Starts `provisioner emulator` as a real process on a free port, creates a product,
registers the devices of sample_data/devices.csv through the custom-name flow with our
client, and shows the first credentials with their secrets masked. Everything it
writes goes to demo-output/.
"""

from __future__ import annotations

import csv
import logging
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import anyio
import httpx

from provisioner.api import IotClient
from provisioner.config import load_api_settings
from provisioner.log import configure_logging

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "demo-output"
SAMPLE = ROOT / "sample_data" / "devices.csv"
KEY_ID, KEY_SECRET = "demo-key", "demo-secret-not-for-production"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_until_up(url: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit("the emulator exited before it was ready; see demo-output/emulator.log")
        try:
            httpx.get(f"{url}/_emulator/stats", timeout=1).raise_for_status()
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    sys.exit("the emulator did not come up within 20 s")


def _mask(secret: str) -> str:
    return secret[:3] + "*" * (len(secret) - 3)


async def _flow(env: dict[str, str]) -> None:
    with SAMPLE.open(newline="", encoding="utf-8") as fh:
        rows = [(r["DeviceName"], r.get("Nickname") or None) for r in csv.DictReader(fh)]
    settings = load_api_settings(env=env)
    async with IotClient(settings) as client:
        product = await client.create_product("demo_product", 0)
        pk = product.product_key
        print(f"created product {pk}")
        check = await client.batch_check_device_names(pk, rows)
        while (
            await client.query_batch_register_device_status(pk, check.apply_id)
        ).status == "CHECK":
            await anyio.sleep(0.2)
        await client.batch_register_device_with_apply_id(pk, check.apply_id)
        while (
            await client.query_batch_register_device_status(pk, check.apply_id)
        ).status == "CREATE":
            await anyio.sleep(0.2)
        first = await client.query_page_by_apply_id(check.apply_id, 1, page_size=50)
        print(f"application {check.apply_id}: {first.total} devices created")
        for device in first.devices[:5]:
            print(f"  {device.device_name:<24} {_mask(device.device_secret)}  {device.iot_id}")


def main() -> None:
    configure_logging(level=logging.WARNING)
    OUT.mkdir(exist_ok=True)
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log = (OUT / "emulator.log").open("wb")
    emulator = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "provisioner",
            "emulator",
            "--port",
            str(port),
            "--access-key-id",
            KEY_ID,
            "--access-key-secret",
            KEY_SECRET,
            "--check-seconds",
            "0.5",
            "--create-seconds",
            "1",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        _wait_until_up(url, emulator)
        print(f"emulator listening on {url} (log: {OUT / 'emulator.log'})")
        env = {
            **os.environ,
            "ALIBABA_CLOUD_ACCESS_KEY_ID": KEY_ID,
            "ALIBABA_CLOUD_ACCESS_KEY_SECRET": KEY_SECRET,
            "PROVISIONER_ENDPOINT": url,
        }
        anyio.run(_flow, env)
    finally:
        emulator.terminate()
        emulator.wait(10)


if __name__ == "__main__":
    main()
