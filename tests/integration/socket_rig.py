"""A real emulator on a socket and the CLI as a real process, for the socket tests.

:class:`Rig` holds the emulator (its world is inspected directly, as an operator
would look in the console), a temporary working directory, an age identity and a
product; :func:`run_cli` runs ``provisioner`` against it and can SIGKILL it when a
chosen log event appears. The assertions every socket test shares are here too:
no secret in any file of the working directory, and no throttled response.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyrage

AK_ID, AK_SECRET = "socket-key", "socket-secret-value-0123456789"
HEADER = ["ProductKey", "DeviceName", "DeviceSecret", "IotId", "Nickname", "ApplyId"]


@dataclass
class Rig:
    emulator: Any
    url: str
    tmp: Path
    identity: Any
    recipient: str
    product_key: str

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "ALIBABA_CLOUD_ACCESS_KEY_ID": AK_ID,
            "ALIBABA_CLOUD_ACCESS_KEY_SECRET": AK_SECRET,
            "PROVISIONER_ENDPOINT": self.url,
            "PROVISIONER_JOURNAL": str(self.tmp / "journal.sqlite3"),
            "XDG_STATE_HOME": str(self.tmp / "state"),
            "TMPDIR": str(self.tmp / "tmp"),
        }

    def secrets(self) -> list[str]:
        world = self.emulator.world
        devices = [d.device_secret for d in world.devices_by_iot_id.values()]
        return [*devices, *(p.product_secret for p in world.products.values()), AK_SECRET]


def write_input(path: Path, names: list[str]) -> None:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["DeviceName", "Nickname"])
        for i, name in enumerate(names):
            writer.writerow([name, f"nick_{i:06d}" if i % 2 else ""])


def run_cli(
    rig: Rig,
    *args: str,
    kill_on: str | None = None,
    log_name: str = "run.log",
    kill_with: int = signal.SIGKILL,
) -> tuple[int, list[dict[str, Any]], str]:
    """Run ``provisioner ARGS`` with JSON logs; with ``kill_on``, send ``kill_with``
    (SIGKILL by default) when that event appears in its log. Returns the exit code,
    the log events and the other stderr lines (the final message)."""
    command = [sys.executable, "-m", "provisioner", *args, "--log-format", "json"]
    events: list[dict[str, Any]] = []
    other: list[str] = []
    stdout_path = rig.tmp / f"{log_name}.stdout"
    with (rig.tmp / log_name).open("a", encoding="utf-8") as log, stdout_path.open(
        "w", encoding="utf-8"
    ) as stdout, subprocess.Popen(
        command, env=rig.env(), stdout=stdout, stderr=subprocess.PIPE, text=True, cwd=rig.tmp,
    ) as proc:  # fmt: skip
        assert proc.stderr is not None
        for line in proc.stderr:
            log.write(line)
            try:
                event = json.loads(line)
            except ValueError:
                other.append(line)
                continue
            events.append(event)
            if kill_on is not None and event.get("event") == kill_on:
                proc.send_signal(kill_with)
                kill_on = None
                if kill_with == signal.SIGKILL:
                    break
        code = proc.wait(timeout=600)
    return code, events, stdout_path.read_text(encoding="utf-8") + "".join(other)


def decrypt(rig: Rig, out: Path, header: list[str] = HEADER) -> list[dict[str, str]]:
    plain = pyrage.decrypt(out.read_bytes(), [rig.identity]).decode("utf-8")
    reader = csv.DictReader(io.StringIO(plain))
    assert reader.fieldnames == header
    return list(reader)


def assert_complete(rows: list[dict[str, str]], names: list[str], pk: str) -> None:
    got = [r["DeviceName"] for r in rows]
    assert len(got) == len(set(got)), "a device appears twice"
    assert set(got) == set(names)
    assert all(len(r["DeviceSecret"]) == 32 for r in rows)
    assert len({r["IotId"] for r in rows}) == len(rows)
    assert {r["ProductKey"] for r in rows} == {pk}


def assert_no_plaintext(rig: Rig) -> None:
    """No secret in any file under the working directory (journal, logs, temp files)."""
    needles = {s.encode() for s in rig.secrets()}
    for path in rig.tmp.rglob("*"):
        if path.is_file():
            found = find_any(path.read_bytes(), needles)
            assert found is None, f"a secret is in {path.name}"


def find_any(data: bytes, needles: set[bytes]) -> bytes | None:
    """The first of ``needles`` found in ``data``, or ``None``.

    Linear in ``data`` whatever the number of needles (25,000 DeviceSecrets): only runs
    of the needles' own characters can hold one, and only windows of a needle's length
    inside such a run are looked up in the set.
    """
    if not needles:
        return None
    lengths = sorted({len(n) for n in needles})
    alphabet = bytes(sorted(set(b"".join(needles))))
    runs = re.compile(b"[" + re.escape(alphabet) + b"]{%d,}" % lengths[0])
    for match in runs.finditer(data):
        run = match.group()
        for size in lengths:
            for start in range(len(run) - size + 1):
                if run[start : start + size] in needles:
                    return run[start : start + size]
    return None


def assert_never_throttled(rig: Rig) -> None:
    stats = rig.emulator.stats()
    assert stats["throttled"] == 0, f"throttled: {stats['throttled_by_key']}"
