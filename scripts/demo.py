"""`make run`: the main job end to end on the built-in emulator, in one command.

Starts `provisioner emulator` as a real process on a free port, creates a product,
makes an age identity, runs `provisioner run` on sample_data/devices.csv, decrypts the
output and shows the first rows with their secrets masked. Everything it writes goes
to demo-output/ (start again from scratch with `make clean` or by deleting it).
"""

from __future__ import annotations

import csv
import io
import logging
import os
import shutil
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
CLI = [sys.executable, "-m", "provisioner"]


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


async def _create_product(env: dict[str, str]) -> str:
    async with IotClient(load_api_settings(env=env)) as client:
        return (await client.create_product("demo_product", 0)).product_key


def _step(title: str) -> None:
    print(f"\n== {title}", flush=True)


def main() -> None:
    configure_logging(level=logging.WARNING)
    shutil.rmtree(OUT, ignore_errors=True)
    OUT.mkdir()
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "ALIBABA_CLOUD_ACCESS_KEY_ID": KEY_ID,
        "ALIBABA_CLOUD_ACCESS_KEY_SECRET": KEY_SECRET,
        "PROVISIONER_ENDPOINT": url,
        "PROVISIONER_JOURNAL": str(OUT / "journal.sqlite3"),
    }
    log = (OUT / "emulator.log").open("wb")
    emulator = subprocess.Popen(
        # The account comes from the environment: a secret on a command line shows in `ps`.
        [*CLI, "emulator", "--port", str(port), "--check-seconds", "1", "--create-seconds", "2"],
        stdout=log, stderr=subprocess.STDOUT, env=env,
    )  # fmt: skip
    try:
        _wait_until_up(url, emulator)
        _step(f"emulator listening on {url}")
        pk = anyio.run(_create_product, env)
        print(f"created product {pk}")

        _step("provisioner keygen")
        identity = OUT / "station.key"
        recipient = subprocess.run(
            [*CLI, "keygen", "--out", str(identity)],
            env=env, check=True, capture_output=True, text=True,
        ).stdout.strip()  # fmt: skip
        print(f"identity {identity} -> recipient {recipient}")

        _step(f"provisioner run {SAMPLE.relative_to(ROOT)}")
        out = OUT / "credentials.csv.age"
        run = subprocess.run(
            [*CLI, "run", str(SAMPLE), "--product-key", pk, "--out", str(out),
             "--recipient", recipient],
            env=env, check=False,
        )  # fmt: skip
        if run.returncode != 0:
            sys.exit(f"provisioner run exited {run.returncode}")

        _step("provisioner decrypt (secrets masked)")
        plain = subprocess.run(
            [*CLI, "decrypt", str(out), "--identity", str(identity)],
            env=env, check=True, capture_output=True, text=True,
        ).stdout  # fmt: skip
        rows = list(csv.DictReader(io.StringIO(plain)))
        for row in rows[:5]:
            secret = row["DeviceSecret"]
            row["DeviceSecret"] = secret[:3] + "*" * (len(secret) - 3)
            print("  " + ",".join(row.values()))
        print(f"  ... {len(rows)} devices in all")

        _step("where everything is")
        for label, path in [
            ("encrypted credentials", out),
            ("report", Path(f"{out}.report.json")),
            ("identity (keep it safe)", identity),
            ("journal", OUT / "journal.sqlite3"),
            ("emulator log", OUT / "emulator.log"),
        ]:
            print(f"  {label:<24} {path.relative_to(ROOT)}")
    finally:
        emulator.terminate()
        emulator.wait(10)


if __name__ == "__main__":
    main()
